package tunnel

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		// The keyring library keeps one session-bus connection for the process.
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).inWorker"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.(*Conn).outWorker"),
		goleak.IgnoreAnyFunction("github.com/godbus/dbus/v5.newConn.func1"))
}

// env is a real gateway on loopback (SQLite on disk), an upper-casing
// target and an admin client.
type env struct {
	t      *testing.T
	gw     *gatewaytest.Gateway
	url    string
	admin  *Client
	target string
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newEnv(t *testing.T) *env {
	t.Helper()
	gw := gatewaytest.Start(t)
	e := &env{t: t, gw: gw, url: gw.URL, target: gatewaytest.UpperAfterEOF(t)}
	e.admin = e.client()
	if _, err := e.admin.Login(t.Context(), "admin", gatewaytest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) client() *Client {
	c, err := NewClient(e.url, ClientOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	return c
}

// api calls the admin API with the admin's ticket.
func (e *env) api(method, path string, body any) {
	e.t.Helper()
	if err := e.admin.do(e.t.Context(), method, path, body, nil); err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
}

func (e *env) tunnel(spec gateway.TunnelSpec) {
	e.t.Helper()
	e.api("POST", "/api/v1/admin/tunnels", spec)
}

func newManager(t *testing.T, c *Client, mod func(*ManagerConfig)) *Manager {
	cfg := ManagerConfig{Client: c, Logger: quietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// roundTrip sends msg through addr, half-closes, and returns the answer.
func roundTrip(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestStartForwardsWithHalfClose(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	m := newManager(t, e.admin, nil)
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The echo target answers only after our FIN: half-close crossed.
	got, err := roundTrip(t, f.Addr().String(), "select 1")
	if err != nil || got != "SELECT 1" {
		t.Fatalf("got %q %v", got, err)
	}
	st := f.Stats()
	if st.Accepted != 1 || st.BytesUp != 8 || st.BytesDown != 8 {
		t.Fatalf("stats %+v", st)
	}
	if again, _ := m.Start(t.Context(), "ECHO", ""); again != f {
		t.Fatal("starting an open tunnel again made a second forwarder")
	}
}

func TestStartUsesSuggestedPort(t *testing.T) {
	e := newEnv(t)
	// Pick a port the OS says is free, then ask the gateway to suggest it.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e.tunnel(gateway.TunnelSpec{Context: "mysql", SocketAddress: e.target, LocalPort: port})
	m := newManager(t, e.admin, nil)
	f, err := m.Start(t.Context(), "mysql", "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Addr().(*net.TCPAddr).Port != port || !f.Addr().(*net.TCPAddr).IP.IsLoopback() {
		t.Fatalf("listening on %s, want 127.0.0.1:%d", f.Addr(), port)
	}
}

func TestStartRefusedBeforeListening(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "admins", SocketAddress: e.target, UserGroups: "admin@ROOT"})
	e.api("POST", "/api/v1/admin/environments", map[string]string{"name": "Prod"})
	e.api("POST", "/api/v1/admin/groups", map[string]string{"name": "staff", "environment": "Prod"})
	e.api("POST", "/api/v1/admin/users", gateway.UserSpec{Username: "alice", Password: "alice-password", Groups: []string{"staff@Prod"}})
	alice := e.client()
	if _, err := alice.Login(t.Context(), "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, alice, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tests := map[string]struct {
		name string
		want error
		msg  string
	}{
		"forbidden": {"admins", ErrForbidden, "alice may not use tunnel"},
		"unknown":   {"nope", ErrNotFound, `no tunnel "nope"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := m.Start(t.Context(), tc.name, addr)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v with %q", err, tc.want, tc.msg)
			}
			// Nothing listens.
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Fatal("a refused tunnel listens anyway")
			}
		})
	}
}

func TestPortInUse(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	m := newManager(t, e.admin, nil)
	_, err := m.Start(t.Context(), "echo", busy.Addr().String())
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("err %v", err)
	}
	// This test process holds the port, and Linux says so.
	if !strings.Contains(err.Error(), "pid "+itoa(os.Getpid())) {
		t.Fatalf("error does not name the holder: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRefusalLaterIsSurfaced(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	errs := make(chan error, 4)
	m := newManager(t, e.admin, func(c *ManagerConfig) {
		c.OnConnError = func(_ string, err error) { errs <- err }
	})
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The target goes away after the tunnel was opened.
	e.api("PUT", "/api/v1/admin/tunnels/echo", map[string]string{"socketAddress": "127.0.0.1:1"})
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-errs:
		if !errors.Is(err, ErrTargetUnreachable) || !strings.Contains(err.Error(), "cannot reach") {
			t.Fatalf("surfaced %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refusal was not reported")
	}
	if f.Stats().LastError == nil {
		t.Fatal("LastError not kept")
	}
}

func TestStopClosesConnections(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	m := newManager(t, e.admin, nil)
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("open and idle"))
	for f.Stats().Open != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := m.Stop("echo"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop took %s", d)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatalf("local connection not closed: %v", err)
	}
	if _, err := net.Dial("tcp", f.Addr().String()); err == nil {
		t.Fatal("still listening after Stop")
	}
	if err := m.Stop("echo"); err == nil {
		t.Fatal("stopping a closed tunnel is not reported")
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "reset")
}

func TestRenewal(t *testing.T) {
	e := newEnv(t)
	renewed := make(chan Ticket, 1)
	// Claim the ticket expires in 2 s so renewal is due after 1 s.
	m := newManager(t, e.admin, func(c *ManagerConfig) {
		c.ExpiresAt = time.Now().Add(2 * time.Second)
		c.OnTicket = func(t Ticket) { renewed <- t }
	})
	old := m.Ticket()
	select {
	case nt := <-renewed:
		if nt.Ticket == "" || nt.Ticket == old || m.Ticket() != nt.Ticket || time.Until(nt.ExpiresAt) < 23*time.Hour {
			t.Fatalf("renewed ticket %+v", nt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal")
	}
}

func TestRenewalAuthLost(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	if _, err := c.Login(t.Context(), "admin", "admin-password"); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	newManager(t, c, func(mc *ManagerConfig) {
		mc.ExpiresAt = time.Now().Add(2 * time.Second)
		mc.OnAuthLost = func(err error) { lost <- err }
	})
	if err := c.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("auth lost with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lost sign-in not reported")
	}
}

// TestWaitForNewTicket: a connection that arrives while the ticket is
// revoked waits for the user to sign in again, then goes through.
func TestWaitForNewTicket(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	c := e.client()
	if _, err := c.Login(t.Context(), "admin", "admin-password"); err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{}, 4)
	m := newManager(t, c, func(mc *ManagerConfig) {
		mc.TicketWait = time.Minute
		mc.OnAuthLost = func(error) { lost <- struct{}{} }
	})
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	result := make(chan string, 1)
	go func() {
		got, err := roundTrip(t, f.Addr().String(), "waited")
		if err != nil {
			got = err.Error()
		}
		result <- got
	}()
	<-lost // the app now asks the user to sign in again
	fresh := e.client()
	tk, err := fresh.Login(t.Context(), "admin", "admin-password")
	if err != nil {
		t.Fatal(err)
	}
	m.SetTicket(tk)
	select {
	case got := <-result:
		if got != "WAITED" {
			t.Fatalf("waiting connection got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting connection never completed")
	}
}

func TestClientErrors(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	_, err := c.Login(t.Context(), "admin", "wrong-password")
	var ae *APIError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ae) || ae.Message != "wrong user name or password" {
		t.Fatalf("wrong password: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	c2, _ := NewClient("http://"+dead, ClientOptions{})
	if _, err := c2.Login(t.Context(), "a", "b"); !errors.Is(err, ErrGatewayUnreachable) {
		t.Fatalf("dead gateway: %v", err)
	}
	// Not a Porthole gateway.
	other := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>hello</html>")) })}
	oln, _ := net.Listen("tcp", "127.0.0.1:0")
	go other.Serve(oln)
	defer other.Close()
	c3, _ := NewClient("http://"+oln.Addr().String(), ClientOptions{})
	if _, err := c3.Login(t.Context(), "a", "b"); err == nil || !strings.Contains(err.Error(), "Porthole gateway") {
		t.Fatalf("foreign server: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "http://"} {
		if _, err := NewClient(bad, ClientOptions{}); err == nil {
			t.Fatalf("NewClient(%q) accepted", bad)
		}
	}
	if u, _ := NormalizeGateway("gw.example.com/"); u != "https://gw.example.com" {
		t.Fatalf("normalized %q", u)
	}
}

func TestParseTarget(t *testing.T) {
	tests := map[string]struct {
		name string
		port int
		bad  bool
	}{
		"mysql": {name: "mysql"}, "mysql:13306": {name: "mysql", port: 13306},
		":1": {bad: true}, "x:y": {bad: true}, "x:70000": {bad: true},
	}
	for in, tc := range tests {
		name, port, err := ParseTarget(in)
		if (err != nil) != tc.bad || name != tc.name || port != tc.port {
			t.Errorf("ParseTarget(%q) = %q %d %v", in, name, port, err)
		}
	}
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "porthole", "settings.json")
	s, err := LoadSettings(path)
	if err != nil || s.Gateway != "" {
		t.Fatalf("missing file: %+v %v", s, err)
	}
	// IT's pre-provisioned file with fields this version does not know:
	// they are reported, used for nothing, and kept.
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte(`{"gateway": "https://gw.example.com", "proxy": {"mode": "auto"},
	  "tunnels": {"mysql": {"localPort": 13306, "autoStart": true, "localport": 1}}}`), 0o644)
	s, err = LoadSettings(path)
	var p *SettingsProblem
	if !errors.As(err, &p) || errors.Is(err, ErrBrokenSettings) || !slices.Equal(p.Unknown, []string{`tunnels.mysql.localport (did you mean "localPort"?)`, "proxy"}) {
		t.Fatalf("unknown keys: %v", err)
	}
	if s.Gateway != "https://gw.example.com" || s.Tunnels["mysql"].LocalPort != 13306 || !s.Tunnels["mysql"].AutoStart {
		t.Fatalf("load: %+v", s)
	}
	s.User = "alice"
	if err := SaveSettings(path, s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"proxy"`, `"mode": "auto"`, `"user": "alice"`, `"localport": 1`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("saved settings lost %s:\n%s", want, b)
		}
	}
	// allowOtherUsers is read and kept; a wrong type is reported.
	os.WriteFile(path, []byte(`{"gateway": "https://gw.example.com", "allowOtherUsers": true}`), 0o644)
	if s, err = LoadSettings(path); err != nil || !s.AllowOtherUsers {
		t.Fatalf("allowOtherUsers: %+v %v", s, err)
	}
	SaveSettings(path, s)
	if s, err = LoadSettings(path); err != nil || !s.AllowOtherUsers {
		t.Fatalf("allowOtherUsers after a save: %+v %v", s, err)
	}
	os.WriteFile(path, []byte(`{"allowOtherUsers": "yes"}`), 0o644)
	if _, err = LoadSettings(path); !errors.Is(err, ErrBrokenSettings) || !strings.Contains(err.Error(), `"allowOtherUsers" must be`) {
		t.Fatalf("allowOtherUsers as a string: %v", err)
	}
}

func TestBrokenSettings(t *testing.T) {
	tests := map[string]struct {
		body    string
		want    []string // in the problem's text
		kept    Settings // what is still used
		unknown int
	}{
		"not JSON":      {body: "{\"gateway\": \"https://gw.example.com\",\n  \"user\": ", want: []string{"is not valid JSON", "line 2", "uses its defaults"}},
		"not an object": {body: `["https://gw.example.com"]`, want: []string{"must hold a JSON object"}},
		"a wrong field": {body: `{"gateway": "https://gw.example.com", "user": 5, "tunnels": {"mysql": {"localPort": "x"}, "pg": {"localPort": 15432, "autostart": true}}}`,
			want: []string{`"user" must be a string`, `tunnels.mysql: "localPort" must be a number`, "still used: gateway https://gw.example.com, 1 tunnel setting(s)"},
			kept: Settings{Gateway: "https://gw.example.com", Tunnels: map[string]TunnelSettings{"pg": {LocalPort: 15432}}}, unknown: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "settings.json")
			os.WriteFile(path, []byte(tc.body), 0o600)
			s, err := LoadSettings(path)
			var p *SettingsProblem
			if !errors.Is(err, ErrBrokenSettings) || !errors.As(err, &p) {
				t.Fatalf("err %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("%q lacks %q", err, w)
				}
			}
			// Nothing is lost: the broken file is kept as it was, and the
			// message says where.
			if b, rerr := os.ReadFile(p.Backup); rerr != nil || string(b) != tc.body || !strings.Contains(err.Error(), "kept as "+p.Backup) {
				t.Fatalf("backup %q: %q %v (%v)", p.Backup, b, rerr, err)
			}
			if s.Gateway != tc.kept.Gateway || s.User != tc.kept.User || len(s.Tunnels) != len(tc.kept.Tunnels) || len(p.Unknown) != tc.unknown {
				t.Fatalf("kept %+v unknown %v, want %+v", s, p.Unknown, tc.kept)
			}
			for k, v := range tc.kept.Tunnels {
				if s.Tunnels[k].LocalPort != v.LocalPort {
					t.Fatalf("tunnel %s: %+v", k, s.Tunnels[k])
				}
			}
			// What could be read is in place, so the next start is clean
			// but for the keys still unknown.
			again, err := LoadSettings(path)
			if errors.Is(err, ErrBrokenSettings) || again.Gateway != tc.kept.Gateway {
				t.Fatalf("reload: %+v %v", again, err)
			}
			if tc.unknown > 0 {
				b, _ := os.ReadFile(path)
				if !strings.Contains(string(b), `"autostart": true`) {
					t.Fatalf("the unknown key was dropped: %s", b)
				}
			}
		})
	}
	// A file broken after it was loaded is kept aside before a save.
	path := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(path, []byte(`{"gateway": `), 0o600)
	if err := SaveSettings(path, Settings{Gateway: "https://new.example.com"}); err != nil {
		t.Fatal(err)
	}
	if kept, _ := filepath.Glob(path + ".broken-*"); len(kept) != 1 {
		t.Fatalf("broken file not kept: %v", kept)
	}
}

func TestFileStore(t *testing.T) {
	fs := &FileStore{Path: filepath.Join(t.TempDir(), "porthole", "tickets.json")}
	if _, err := fs.Load("https://a"); !errors.Is(err, ErrNoTicket) {
		t.Fatalf("empty: %v", err)
	}
	tk := Ticket{Ticket: "pt1.x.y", User: "alice", ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	if err := fs.Save("https://a", tk); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(fs.Path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("ticket file mode %v", fi.Mode())
	}
	got, err := fs.Load("https://a")
	if err != nil || got.Ticket != tk.Ticket || !got.ExpiresAt.Equal(tk.ExpiresAt) {
		t.Fatalf("load %+v %v", got, err)
	}
	if err := fs.Delete("https://a"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Load("https://a"); !errors.Is(err, ErrNoTicket) {
		t.Fatalf("after delete: %v", err)
	}
	if FallbackWarning(fs) == "" || FallbackWarning(KeyringStore{}) != "" {
		t.Fatal("fallback warning")
	}
}

func TestHTTPSGateway(t *testing.T) {
	dir := t.TempDir()
	cert, key := gatewaytest.WriteCert(t, dir)
	gw := gatewaytest.Start(t, func(c *gateway.Config) { c.TLSCert, c.TLSKey = cert, key })
	url := gw.URL

	// Without the CA: a clear message that says what to do.
	plain, _ := NewClient(url, ClientOptions{})
	_, err := plain.Login(t.Context(), "admin", "admin-password")
	if !errors.Is(err, ErrCertificate) || !strings.Contains(err.Error(), "--ca") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	// With --ca: sign in and carry bytes over wss://.
	c, err := NewClient(url, ClientOptions{CAFile: cert})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(t.Context(), "admin", "admin-password"); err != nil {
		t.Fatal(err)
	}
	target := gatewaytest.UpperAfterEOF(t)
	if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "echo", SocketAddress: target}); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, c, nil)
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, f.Addr().String(), "over tls"); err != nil || got != "OVER TLS" {
		t.Fatalf("got %q %v", got, err)
	}
	// The tunnel session's TLS handshake resumed the sign-in's TLS
	// session (the ticket the gateway gave with the first connection).
	if !c.TLSResumed() {
		t.Fatal("the tunnel session did a full TLS handshake after the sign-in")
	}
	if _, err := NewClient(url, ClientOptions{CAFile: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
	if _, err := NewClient(url, ClientOptions{CAFile: key}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a key as CA file: %v", err)
	}
}

// A local program that ends its connection abruptly (closes before the
// answer arrives, or resets) is its own doing: no error is reported or
// kept for the tray to show.
func TestLocalCloseIsNoError(t *testing.T) {
	e := newEnv(t)
	// A target that answers with plenty at once, then half-closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(make([]byte, 4<<20))
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	e.tunnel(gateway.TunnelSpec{Context: "big", SocketAddress: ln.Addr().String()})
	reported := make(chan error, 16)
	m := newManager(t, e.admin, func(c *ManagerConfig) { c.OnConnError = func(_ string, err error) { reported <- err } })
	f, err := m.Start(t.Context(), "big", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ends := map[string]func(c *net.TCPConn){
		"half-close, then close unread": func(c *net.TCPConn) { c.CloseWrite(); c.Close() },
		"reset while data flows": func(c *net.TCPConn) {
			io.ReadFull(c, make([]byte, 1024))
			c.SetLinger(0)
			c.Close()
		},
		"close after the first bytes": func(c *net.TCPConn) { io.ReadFull(c, make([]byte, 10)); c.Close() },
	}
	for name, end := range ends {
		for range 3 {
			c, err := net.Dial("tcp", f.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			end(c.(*net.TCPConn))
		}
		deadline := time.Now().Add(10 * time.Second)
		for f.Stats().Open > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if st := f.Stats(); st.Open > 0 || st.LastError != nil {
			t.Fatalf("%s: %d still open, last error %v", name, st.Open, st.LastError)
		}
	}
	select {
	case err := <-reported:
		t.Fatalf("a local close was reported as an error: %v", err)
	default:
	}
}
