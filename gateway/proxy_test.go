package gateway

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

func eventFilter(kind string) store.EventFilter { return store.EventFilter{Kind: kind, Limit: 1000} }

func TestProxyCarriesBytes(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
	c := g.openStream("ECHO", admin) // contexts ignore case
	data := make([]byte, 3<<20)
	rand.Read(data)
	for i := range data {
		data[i] = 'a' + data[i]%26
	}
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, bytes.ToUpper(data)) {
		t.Fatalf("got %d bytes, not the upper-cased %d", len(got), len(data))
	}
	c.Close()
	// The close is audited with bytes both ways.
	waitFor(t, 5*time.Second, "tunnel.close audit", func() bool {
		evs, _ := g.events(t.Context(), eventFilter("tunnel.close"))
		return len(evs) == 1
	})
	evs, _ := g.events(t.Context(), eventFilter("tunnel."))
	if evs[0].Kind != "tunnel.close" || evs[1].Kind != "tunnel.open" {
		t.Fatalf("audit: %+v", evs)
	}
	d := evs[0].Details
	if d["bytesUp"].(float64) != float64(len(data)) || d["bytesDown"].(float64) != float64(len(data)) || d["user"] != "admin" || d["context"] != "echo" || d["target"] == "" {
		t.Fatalf("close details: %+v", d)
	}
	if !strings.Contains(string(g.mustCall(200, "GET", "/metrics", "", nil)), "porthole_tunnels_opened_total 1") {
		t.Fatal("opened counter not incremented")
	}
}

func TestProxyRefusals(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	alice := g.addUser(admin, "alice", "staff@Prod")
	// A port with nothing listening: take one from a listener we close.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "admins", SocketAddress: echoServer(t), UserGroups: "admin@ROOT"})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "down", SocketAddress: dead})
	tests := map[string]struct {
		context, ticket string
		header          http.Header
		status          int
		want            string
	}{
		"no ticket":      {"admins", "", nil, 401, "sign in"},
		"bad ticket":     {"admins", "pt1.x.y", nil, 401, "not valid"},
		"unknown":        {"nope", admin, nil, 404, `no tunnel "nope"`},
		"not allowed":    {"admins", alice, nil, 403, "alice may not use tunnel"},
		"unreachable":    {"down", admin, nil, 502, "cannot reach"},
		"cross-origin":   {"admins", admin, http.Header{"Origin": {"https://evil.example"}}, 403, "another site"},
		"cross-site hdr": {"admins", admin, http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403, "another site"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ws, resp, err := g.dialTunnel(tc.context, tc.ticket, tc.header)
			if err == nil {
				ws.Close()
				t.Fatal("tunnel opened")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("resp %v, want %d", resp, tc.status)
			}
			data, _ := io.ReadAll(resp.Body)
			if e := errBody(t, data); !strings.Contains(e.Error, tc.want) {
				t.Fatalf("error %q, want %q", e.Error, tc.want)
			}
		})
	}
	t.Run("unreachable says why in plain words", func(t *testing.T) {
		_, resp, err := g.dialTunnel("down", admin, nil)
		if err == nil || resp == nil {
			t.Fatal("tunnel to a dead port opened")
		}
		data, _ := io.ReadAll(resp.Body)
		if e := errBody(t, data).Error; !strings.HasSuffix(e, ": connection refused") {
			t.Fatalf("reason %q", e)
		}
	})
	t.Run("not a websocket", func(t *testing.T) {
		status, data, _ := g.call("GET", "/ws-proxy/admins", admin, nil)
		if status != 400 || !strings.Contains(errBody(t, data).Error, "WebSocket") {
			t.Fatalf("%d %s", status, data)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		status, data, _ := g.call("POST", "/ws-proxy/admins", admin, "{}")
		if status != 405 {
			t.Fatalf("%d %s", status, data)
		}
	})
	if n := g.auditedCount("tunnel.denied"); n != 8 {
		t.Fatalf("%d denials audited, want 8", n)
	}
	m := string(g.mustCall(200, "GET", "/metrics", "", nil))
	for _, want := range []string{`reason="unreachable"} 2`, `reason="forbidden"} 1`, `reason="not_found"} 1`, `reason="unauthorized"} 2`, `reason="origin"} 2`} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

func TestProxySameOriginBrowserAllowed(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
	h := http.Header{"Origin": {g.URL}}
	h.Set("Cookie", wire.SessionCookie+"="+admin)
	d := websocket.Dialer{}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(g.URL, "http")+"/ws-proxy/echo", h)
	if err != nil {
		t.Fatalf("same-origin browser tunnel with the session cookie: %v", err)
	}
	ws.WriteMessage(websocket.BinaryMessage, []byte("hi"))
	_, msg, err := ws.ReadMessage()
	if err != nil || string(msg) != "HI" {
		t.Fatalf("plain WebSocket client: %q %v", msg, err)
	}
	ws.Close()
}

// TestRevocation: every change that takes access away closes the live
// tunnel within 5 seconds and tells the client why.
func TestRevocation(t *testing.T) {
	type setup struct {
		g      *testGW
		admin  string
		ticket string
	}
	tests := map[string]struct {
		revoke    func(s setup)
		code      int
		reason    string
		ticketDie bool
	}{
		"sign-out": {func(s setup) { s.g.mustCall(200, "POST", "/api/v1/logout", s.ticket, nil) }, wire.CloseUnauthorized, "signed out", true},
		"disabled": {func(s setup) {
			s.g.mustCall(200, "PUT", "/api/v1/admin/users/alice", s.admin, map[string]any{"disabled": true})
		}, wire.CloseUnauthorized, "disabled", true},
		"deleted": {func(s setup) { s.g.mustCall(204, "DELETE", "/api/v1/admin/users/alice", s.admin, nil) }, wire.CloseUnauthorized, "deleted", true},
		"removed from group": {func(s setup) {
			s.g.mustCall(200, "PUT", "/api/v1/admin/users/alice", s.admin, map[string]any{"groups": []string{"other@Prod"}})
		}, wire.CloseUnauthorized, "removed from group staff@Prod", true},
		"tunnel groups changed": {func(s setup) {
			s.g.mustCall(200, "PUT", "/api/v1/admin/tunnels/db", s.admin, map[string]any{"userGroups": "admin@ROOT"})
		}, wire.CloseForbidden, "access to this tunnel was removed", false},
		"tunnel deleted": {func(s setup) { s.g.mustCall(204, "DELETE", "/api/v1/admin/tunnels/db", s.admin, nil) }, wire.CloseForbidden, "deleted", false},
		"changed behind the gateway's back": {func(s setup) {
			// Another gateway (or an offline command) on the same store:
			// a second Server over the same data folder makes the change.
			other, err := New(s.g.baseCtx, Config{DataDir: s.g.cfg.DataDir, Logger: s.g.log, PasswordCost: fastHash}, nil)
			if err != nil {
				panic(err)
			}
			defer other.Close()
			if _, err := other.UpdateTunnel(s.g.baseCtx, "elsewhere", "db", TunnelPatch{UserGroups: ptr("admin@ROOT")}); err != nil {
				panic(err)
			}
		}, wire.CloseForbidden, "removed", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := startGateway(t)
			admin := g.admin()
			g.addUser(admin, "x", "other@Prod")
			alice := g.addUser(admin, "alice", "staff@Prod")
			g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "db", SocketAddress: echoServer(t), UserGroups: "staff@Prod"})
			c := g.openStream("db", alice)
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING" {
				t.Fatalf("before revocation: %q %v", buf, err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, c)
				errc <- err
			}()
			start := time.Now()
			tc.revoke(setup{g, admin, alice})
			select {
			case err := <-errc:
				var ce *wire.CloseError
				if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Reason, tc.reason) {
					t.Fatalf("client saw %v, want code %d with %q", err, tc.code, tc.reason)
				}
				t.Logf("closed %s after the change", time.Since(start).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("live tunnel still open 5 seconds after the change")
			}
			if tc.ticketDie {
				g.mustCall(401, "GET", "/api/v1/tunnels", alice, nil)
			}
			_, resp, err := g.dialTunnel("db", alice, nil)
			if err == nil || resp == nil || (resp.StatusCode != 401 && resp.StatusCode != 403 && resp.StatusCode != 404) {
				t.Fatalf("reopening after revocation: %v %v", resp, err)
			}
		})
	}
}

func TestShutdownClosesTunnels(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
	c := g.openStream("echo", admin)
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		errc <- err
	}()
	waitFor(t, 5*time.Second, "tunnel registered", func() bool { return len(g.liveSnapshot(nil)) == 1 })
	start := time.Now()
	g.Close()
	select {
	case err := <-errc:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseGoingAway {
			t.Fatalf("client saw %v, want going away", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tunnel survived shutdown")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
}

func TestOversizedMessageClosesTunnel(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
	ws, _, err := g.dialTunnel("echo", admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.BinaryMessage, make([]byte, wire.MaxMessageSize+1))
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err != nil {
			// The close frame says why; under load the rest of the refused
			// message can still be unread when the gateway closes, and
			// then the kernel resets the connection instead.
			if !websocket.IsCloseError(err, wire.CloseTooBig, wire.ClosePeerError) && !wire.IsConnReset(err) {
				t.Fatalf("got %v, want a close for the oversized message", err)
			}
			break
		}
	}
	waitFor(t, 20*time.Second, "tunnel closed and audited", func() bool {
		evs, _ := g.events(t.Context(), eventFilter("tunnel.close"))
		return len(evs) == 1 && strings.Contains(evs[0].Details["error"].(string), "larger than")
	})
}

func TestSocketBufferSize(t *testing.T) {
	// The option reaches the target socket.
	dialed := make(chan *net.TCPConn, 1)
	dial := func(ctx contextT, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			dialed <- c.(*net.TCPConn)
		}
		return c, err
	}
	g := startGateway(t, func(c *Config) { c.SocketBufferSize, c.Dial = 262144, dial })
	if n := g.socketBufferSize(t.Context()); n != 262144 {
		t.Fatalf("socketBufferSize = %d", n)
	}
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
	c := g.openStream("echo", admin)
	got := sockBuf(<-dialed)
	c.Close()
	// Linux keeps min(value, rmem_max) and reports it doubled.
	want := 2 * min(262144, rmemMax())
	if got != want {
		t.Fatalf("target SO_RCVBUF = %d, want %d", got, want)
	}
}

func ptr[T any](v T) *T { return &v }
