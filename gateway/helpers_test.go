package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/porthole/porthole/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		// gokrb5 keeps one process-wide replay cache with a cleaner that
		// never stops (Kerberos sign-ins start it).
		goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.GetReplayCache.func1.1"),
		goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.VerifyAPREQ.GetReplayCache.func1.1"))
}

// tlog is a log writer that goes to t.Log until the test ends.
type tlog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &tlog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastHash keeps tests quick; production uses defaultHash.
var fastHash = &HashParams{Memory: 1024, Time: 1, Threads: 1}

const adminPassword = "admin-password"

// testGW is an in-process gateway serving on a real loopback port over a
// SQLite file in a temporary folder.
type testGW struct {
	*Server
	t   *testing.T
	URL string
	// client makes the calls; nil means http.DefaultClient.
	client *http.Client
}

func startGateway(t *testing.T, mods ...func(*Config)) *testGW {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), AdminPassword: adminPassword, Logger: testLogger(t),
		PasswordCost: fastHash, Announce: io.Discard}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.Close()
	})
	return &testGW{Server: s, t: t, URL: "http://" + ln.Addr().String()}
}

// call sends a request and returns the status and body.
func (g *testGW) call(method, path, ticket string, body any) (int, []byte, http.Header) {
	g.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, g.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ticket != "" {
		req.Header.Set("Authorization", "Bearer "+ticket)
	}
	client := g.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

// mustCall is call that fails the test unless the status is want.
func (g *testGW) mustCall(want int, method, path, ticket string, body any) []byte {
	g.t.Helper()
	status, data, _ := g.call(method, path, ticket, body)
	if status != want {
		g.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, data)
	}
	return data
}

func (g *testGW) login(user, password string) string {
	g.t.Helper()
	var resp LoginResponse
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/login", "", map[string]string{"username": user, "password": password}), &resp)
	return resp.Ticket
}

func (g *testGW) admin() string { return g.login("admin", adminPassword) }

// addUser creates an environment and group if needed and a user in them.
func (g *testGW) addUser(admin, name string, groups ...string) string {
	g.t.Helper()
	for _, grp := range groups {
		n, env, _ := strings.Cut(grp, "@")
		g.call("POST", "/api/v1/admin/environments", admin, map[string]string{"name": env})
		g.call("POST", "/api/v1/admin/groups", admin, map[string]string{"name": n, "environment": env})
	}
	g.mustCall(201, "POST", "/api/v1/admin/users", admin, UserSpec{Username: name, Password: name + "-password", Groups: groups})
	return g.login(name, name+"-password")
}

// errBody decodes a JSON error answer.
func errBody(t *testing.T, data []byte) wire.Error {
	t.Helper()
	var e wire.Error
	if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error body: %s", data)
	}
	return e
}

// echoServer is a real TCP target that upper-cases what it gets and
// half-closes when its input ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						c.Write(bytes.ToUpper(buf[:n]))
					}
					if err != nil {
						c.(*net.TCPConn).CloseWrite()
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// dialTunnel opens /ws-proxy/{context} the way the client does.
func (g *testGW) dialTunnel(context, ticket string, h http.Header) (*websocket.Conn, *http.Response, error) {
	if h == nil {
		h = http.Header{}
	}
	if ticket != "" {
		h.Set("Authorization", "Bearer "+ticket)
	}
	d := websocket.Dialer{Subprotocols: []string{wire.Subprotocol}, HandshakeTimeout: 5 * time.Second}
	return d.Dial("ws"+strings.TrimPrefix(g.URL, "http")+wire.ProxyPath+context, h)
}

// openStream opens a tunnel stream and fails the test if it is refused.
func (g *testGW) openStream(context, ticket string) *wire.Conn {
	g.t.Helper()
	ws, resp, err := g.dialTunnel(context, ticket, nil)
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		g.t.Fatalf("open tunnel %s: %v %s", context, err, body)
	}
	c := wire.NewConn(ws, wire.Options{HalfClose: ws.Subprotocol() == wire.Subprotocol})
	g.t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// auditedCount is how many events of kind the audit log accounts for:
// pending repeat counts are written first, and a row that folds repeated
// refusals counts for each of them.
func (g *testGW) auditedCount(kind string) int {
	g.t.Helper()
	if sa, ok := g.audit.(*storeAudit); ok {
		sa.flushRepeats(g.t.Context(), true)
	}
	evs, err := g.events(g.t.Context(), eventFilter(kind))
	if err != nil {
		g.t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if r, ok := e.Details["repeated"].(float64); ok {
			n += int(r)
		} else {
			n++
		}
	}
	return n
}
