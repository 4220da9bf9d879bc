package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/internal/pgtest"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/internal/toxitest"
	"github.com/porthole/porthole/tunnel"
	"github.com/porthole/porthole/wire"
)

// haStore is a store DSN in a schema of the test's own on the PostgreSQL
// server scripts/test starts.
func haStore(t *testing.T) string { return pgtest.Schema(t) }

// startGatewayOn runs a porthole-gateway process on the given store.
func startGatewayOn(t *testing.T, name, store string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.json")
	b, _ := json.Marshal(map[string]string{"listen": "127.0.0.1:0", "store": store, "dataDir": dir})
	os.WriteFile(cfg, b, 0o600)
	cmd := exec.Command(filepath.Join(binaries(t), "porthole-gateway"), "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "PORTHOLE_ADMIN_PASSWORD=admin-password")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{data: dir, cmd: cmd, out: watch(t, name, pr)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			stopProcess(t, name, cmd)
		}
		pw.Close()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, g.out.text())
		}
	})
	addr := g.out.wait(t, regexp.MustCompile(`porthole gateway listening"? addr=(\S+)`), 30*time.Second)
	g.url = "http://" + addr
	return g
}

// startHAProxy balances HTTP and WebSocket over the gateways, checking
// each one's /healthz. It picks a port and tries another if it is taken.
func startHAProxy(t *testing.T, backends []string) string {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var servers strings.Builder
		for i, b := range backends {
			fmt.Fprintf(&servers, "  server g%d %s check cookie g%d\n", i+1, strings.TrimPrefix(b, "http://"), i+1)
		}
		cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
		os.WriteFile(cfg, []byte(`global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  # WebSocket tunnels live long: idle ones are kept alive by Porthole's pings.
  timeout tunnel 1h
  option redispatch
  retries 3
frontend porthole
  bind `+addr+`
  default_backend gateways
backend gateways
  balance roundrobin
  # A client's tunnel session resumes on the gateway that holds it.
  cookie porthole_gw insert indirect nocache
  option httpchk GET /healthz
  default-server inter 300ms fall 2 rise 2
`+servers.String()), 0o600)
		cmd := exec.Command("haproxy", "-db", "-f", cfg)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				return "http://" + addr
			}
			if cmd.ProcessState != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("haproxy on %s did not start (attempt %d): %s", addr, attempt+1, out.String())
	}
	t.Fatal("haproxy did not start")
	return ""
}

// TestThreeGatewaysBehindHAProxy: three gateway processes on one
// PostgreSQL behind HAProxy (all real). Sign-in and tunnels go through the
// balancer and reach every gateway; a change made on one is seen on all;
// after kill -9 of one gateway new connections go through the others and
// the store has lost nothing.
func TestThreeGatewaysBehindHAProxy(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatal("haproxy is missing (Debian's haproxy): scripts/test installs it")
	}
	store := haStore(t)
	gws := []*gatewayProc{startGatewayOn(t, "g1", store), startGatewayOn(t, "g2", store), startGatewayOn(t, "g3", store)}
	lb := startHAProxy(t, []string{gws[0].url, gws[1].url, gws[2].url})
	lbg := &gatewayProc{url: lb}

	admin := loginAPI(t, lbg, "admin", "admin-password")
	if status, b := apiCall(t, lbg, "POST", "/api/v1/admin/tunnels", admin, map[string]any{"context": "echo", "socketAddress": gatewaytest.UpperAfterEOF(t)}); status != 201 {
		t.Fatalf("create a tunnel through the balancer: %d %s", status, b)
	}
	// Made through one gateway, seen on every one.
	for i, g := range gws {
		status, b := apiCall(t, g, "GET", "/api/v1/tunnels", admin, nil)
		if status != 200 || !strings.Contains(string(b), `"echo"`) {
			t.Fatalf("gateway g%d: %d %s", i+1, status, b)
		}
	}

	// One WebSocket per connection, so the balancer spreads connections
	// (sessions spread by client: TestSessionsBehindHAProxy).
	c := newClient(t)
	c.env = append(c.env, "PORTHOLE_SESSIONS=off")
	c.login(t, lbg, "admin", "admin-password")
	o := c.open(t, "echo:0")
	addr := o.addrs["echo"]
	for i := range 9 {
		msg := fmt.Sprintf("round %d", i)
		if got := roundTrip(t, addr, msg); got != strings.ToUpper(msg) {
			t.Fatalf("%s through the balancer: %q", msg, got)
		}
	}
	for i, g := range gws {
		if !strings.Contains(g.out.text(), "tunnel opened") {
			t.Fatalf("gateway g%d carried no tunnel: the balancer did not spread them", i+1)
		}
	}

	// kill -9 one gateway (once what it carried is recorded: a close in
	// the last milliseconds before a kill -9 can be lost with the
	// process), and new connections go through the other two.
	waitUntil(t, "the first nine closes in the audit log", func() bool {
		_, b := apiCall(t, lbg, "GET", "/api/v1/admin/audit?kind=tunnel.close&limit=1000", admin, nil)
		var closes []map[string]any
		json.Unmarshal(b, &closes)
		return len(closes) >= 9
	})
	gws[1].cmd.Process.Kill()
	gws[1].cmd.Wait()
	for i := range 12 {
		msg := fmt.Sprintf("after the kill %d", i)
		if got := roundTrip(t, addr, msg); got != strings.ToUpper(msg) {
			t.Fatalf("%s: %q", msg, got)
		}
	}
	// A sign-in still works, and the store kept everything: every round
	// trip's close is in the audit log (the gateways write it in batches,
	// so the last ones may take a moment).
	other := loginAPI(t, lbg, "admin", "admin-password")
	var closes []map[string]any
	waitUntil(t, "every round trip's close in the audit log", func() bool {
		status, b := apiCall(t, lbg, "GET", "/api/v1/admin/audit?kind=tunnel.close&limit=1000", other, nil)
		closes = nil
		json.Unmarshal(b, &closes)
		return status == 200 && len(closes) >= 21
	})
	o.interrupt(t)
}

// TestSessionsBehindHAProxy: a client's tunnel session through HAProxy
// (toxiproxy between the client and the balancer for the network). A cut
// network resumes the session on the gateway that holds it (the
// balancer's affinity cookie), losing nothing; when that gateway dies
// (kill -9), its connections end with a reason and the next connection
// starts a new session on another gateway.
func TestSessionsBehindHAProxy(t *testing.T) {
	store := haStore(t)
	gws := []*gatewayProc{startGatewayOn(t, "g1", store), startGatewayOn(t, "g2", store), startGatewayOn(t, "g3", store)}
	lb := startHAProxy(t, []string{gws[0].url, gws[1].url, gws[2].url})
	admin := loginAPI(t, &gatewayProc{url: lb}, "admin", "admin-password")
	if status, b := apiCall(t, &gatewayProc{url: lb}, "POST", "/api/v1/admin/tunnels", admin, map[string]any{"context": "echo", "socketAddress": gatewaytest.UpperAfterEOF(t)}); status != 201 {
		t.Fatalf("create a tunnel: %d %s", status, b)
	}
	network := toxitest.New(t, strings.TrimPrefix(lb, "http://"))
	client, err := tunnel.NewClient("http://"+network.Addr(), tunnel.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Login(t.Context(), "admin", "admin-password"); err != nil {
		t.Fatal(err)
	}
	upper := func(conn net.Conn, parts ...string) string {
		t.Helper()
		for _, p := range parts {
			if _, err := conn.Write([]byte(p)); err != nil {
				t.Fatalf("write %q: %v", p, err)
			}
		}
		conn.(interface{ CloseWrite() error }).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := io.ReadAll(conn)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, b)
		}
		conn.Close()
		return string(b)
	}

	conn, err := client.Dial(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("before the cut, "))
	time.Sleep(100 * time.Millisecond)
	network.Cut()
	time.Sleep(500 * time.Millisecond)
	network.Restore()
	if got := upper(conn, "after it"); got != "BEFORE THE CUT, AFTER IT" {
		t.Fatalf("across the cut: %q", got)
	}
	if n := client.Session().Resumes(); n != 1 {
		t.Fatalf("the session resumed %d times, want 1", n)
	}
	// The gateway logs the resume once the new WebSocket carries the
	// session, so the bytes above may have crossed before the line is out.
	holder := -1
	waitUntil(t, "a gateway saying it resumed the session", func() bool {
		for i, g := range gws {
			if strings.Contains(g.out.text(), "tunnel session resumed") {
				holder = i
			}
		}
		return holder >= 0
	})
	if !strings.Contains(gws[holder].out.text(), "tunnel session started") {
		t.Fatalf("g%d resumed a session another gateway started", holder+1)
	}

	// The holding gateway dies under an open connection.
	conn, err = client.Dial(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("lost with g"))
	gws[holder].cmd.Process.Kill()
	gws[holder].cmd.Wait()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadAll(conn)
	var ce *wire.CloseError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "no longer has this tunnel session") {
		t.Fatalf("a connection on the dead gateway ended with %v, want the reason", err)
	}
	conn, err = client.Dial(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if got := upper(conn, "on a new session"); got != "ON A NEW SESSION" {
		t.Fatalf("after the gateway died: %q", got)
	}
}
