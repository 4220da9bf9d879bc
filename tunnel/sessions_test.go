package tunnel

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/wire"
)

// TestGatewayWithoutSessions puts the client in front of a gateway that
// does not offer tunnel sessions (an older one: /ws-mux answers 404): the
// client carries each connection on a WebSocket of its own instead.
func TestGatewayWithoutSessions(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	u, _ := url.Parse(e.url)
	rp := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	var proxied []string
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = append(proxied, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == wire.MuxPath {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(old.Close)
	c, err := NewClient(old.URL, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Login(t.Context(), "admin", gatewaytest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, c, nil)
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := roundTrip(t, f.Addr().String(), "select 1"); err != nil || got != "SELECT 1" {
			t.Fatalf("got %q %v", got, err)
		}
	}
	if c.Session() != nil {
		t.Fatal("a session on a gateway without them")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(proxied, " "), wire.ProxyPath+"echo") {
		t.Fatalf("no connection went to %s: %v", wire.ProxyPath, proxied)
	}
}

// TestSessionProtocolVersions: a client that offers only another version
// of the session protocol gets 404 with a code (so it falls back), not a
// session it cannot read.
func TestSessionProtocolVersions(t *testing.T) {
	e := newEnv(t)
	h := http.Header{"Authorization": {"Bearer " + e.admin.Ticket()}}
	d := websocket.Dialer{Subprotocols: []string{"porthole.mux.v1"}}
	ws, resp, err := d.Dial(e.admin.wsURL(wire.MuxPath), h)
	if err == nil {
		ws.Close()
		t.Fatal("a porthole.mux.v1 client got a session")
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("answer %v, %v", resp, err)
	}
	var body wire.Error
	json.NewDecoder(resp.Body).Decode(&body)
	if body.Code != wire.CodeUnsupportedProtocol || !strings.Contains(body.Error, wire.MuxSubprotocol) {
		t.Fatalf("body %+v", body)
	}
	d.Subprotocols = []string{wire.MuxSubprotocol}
	ws, _, err = d.Dial(e.admin.wsURL(wire.MuxPath), h)
	if err != nil {
		t.Fatalf("the current version: %v", err)
	}
	ws.Close()
}
