package app

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/tunnel"
)

// harness runs the UI on Fyne's test driver over a real tunnel.Service
// and a real in-process gateway. UI work queued from goroutines runs on
// the test goroutine (in pump), so widgets are only touched there.
type harness struct {
	t        *testing.T
	app      fyne.App
	gw       *gatewaytest.Gateway
	svc      *tunnel.Service
	ui       *UI
	q        chan func()
	quit     chan struct{}
	settings string
	tickets  *tunnel.FileStore
	auto     *fakeAutostart
	notes    chan string // notifications the backend raised: "title: body"
}

type fakeAutostart struct{ on bool }

func (f *fakeAutostart) Enabled() bool     { return f.on }
func (f *fakeAutostart) Set(on bool) error { f.on = on; return nil }

func newHarness(t *testing.T, gw *gatewaytest.Gateway, dir string) *harness {
	t.Helper()
	h := &harness{t: t, app: test.NewTempApp(t), gw: gw, q: make(chan func(), 1024), quit: make(chan struct{}),
		settings: filepath.Join(dir, "settings.json"), tickets: &tunnel.FileStore{Path: filepath.Join(dir, "tickets.json")}, auto: &fakeAutostart{},
		notes: make(chan string, 16)}
	log := slog.New(slog.DiscardHandler)
	var ui *UI
	svc, err := tunnel.NewService(tunnel.ServiceConfig{
		SettingsPath: h.settings, Tickets: h.tickets, Logger: log, ProbePeriod: 100 * time.Millisecond,
		OnChange:       func() { h.q <- func() { ui.tunnels.update(); ui.refreshTray() } },
		OnNotify:       func(title, body string) { h.notes <- title + ": " + body },
		OnSignInNeeded: func(err error) { h.q <- func() { ui.showSignIn("Your session has ended; sign in again.") } },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	ui = New(h.app, svc, Options{Do: func(f func()) { h.q <- f }, Logger: log, TrayAvailable: func() bool { return false },
		Autostart: h.auto, Quit: func() { close(h.quit) }})
	h.ui = ui
	t.Cleanup(func() { ui.Quit() })
	return h
}

// pump runs queued UI work until cond holds.
func (h *harness) pump(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case f := <-h.q:
			f()
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) signIn(gateway, user, password string) {
	f := h.ui.signIn
	f.gateway.SetText("")
	f.user.SetText("")
	test.Type(f.gateway, gateway)
	test.Type(f.user, user)
	test.Type(f.password, password)
	test.Tap(f.button)
}

func (h *harness) onTunnels() bool { return h.ui.win.Content() == h.ui.tunnels.content }

func (h *harness) row(name string) *tunnelRow {
	r := h.ui.tunnels.rows[strings.ToLower(name)]
	if r == nil {
		h.t.Fatalf("no row for %s", name)
	}
	return r
}

func setup(t *testing.T) (*gatewaytest.Gateway, string) {
	gw := gatewaytest.Start(t)
	if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "echo", SocketAddress: gatewaytest.UpperAfterEOF(t), Description: "upper-casing echo"}); err != nil {
		t.Fatal(err)
	}
	return gw, t.TempDir()
}

func roundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSignInToggleAndBytes(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.pump("the sign-in form", func() bool { return h.ui.win.Content() == h.ui.signIn.content })

	h.signIn(gw.URL, "admin", "wrong-password")
	h.pump("the wrong-password message", func() bool { return h.ui.signIn.errLabel.Text == "Wrong user name or password." })

	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("the tunnel list", h.onTunnels)
	if !strings.Contains(h.ui.tunnels.who.Text, "Signed in as admin") {
		t.Fatalf("who: %q", h.ui.tunnels.who.Text)
	}
	r := h.row("echo")
	if !strings.Contains(r.title.Text, "upper-casing echo") || !strings.HasPrefix(r.status.Text, "Closed") {
		t.Fatalf("row: %q / %q", r.title.Text, r.status.Text)
	}
	// The CLI shares the sign-in: settings and the ticket are where it looks.
	st, _ := tunnel.LoadSettings(h.settings)
	if st.Gateway != gw.URL || st.User != "admin" {
		t.Fatalf("settings: %+v", st)
	}
	if _, err := h.tickets.Load(gw.URL); err != nil {
		t.Fatalf("ticket not stored: %v", err)
	}

	test.Tap(r.toggle)
	h.pump("the tunnel open", func() bool { return r.view.State == tunnel.Open })
	if got := roundTrip(t, r.view.Addr, "one click"); got != "ONE CLICK" {
		t.Fatalf("got %q", got)
	}
	// A tunnel without a suggested port keeps the free port it got.
	st, _ = tunnel.LoadSettings(h.settings)
	if st.Tunnels["echo"].LocalPort == 0 || strconv.Itoa(st.Tunnels["echo"].LocalPort) != r.port.Text {
		t.Fatalf("port not kept: %+v, entry %q", st.Tunnels, r.port.Text)
	}
	h.pump("the byte counters", func() bool {
		h.ui.tunnels.update()
		return strings.Contains(r.status.Text, "sent 9 B · received 9 B")
	})
	// Tray menu and icon follow the state.
	m := h.ui.trayMenu()
	if !strings.Contains(menuText(m), "echo → localhost:"+r.port.Text+" (open)") {
		t.Fatalf("tray menu: %s", menuText(m))
	}
	if state, _ := trayState(h.svc.Tunnels()); state != "open" {
		t.Fatalf("tray state %s", state)
	}
	// Copy connection string: the button says so, and offers to copy
	// again a moment later, also across the window's refreshes.
	copiedFor = 300 * time.Millisecond
	test.Tap(r.copy)
	if got := h.app.Clipboard().Content(); !strings.Contains(got, "localhost:"+r.port.Text) && !strings.Contains(got, "port="+r.port.Text) {
		t.Fatalf("clipboard %q", got)
	}
	h.ui.tunnels.update()
	if r.copy.Text != copiedLabel {
		t.Fatalf("after a copy the button says %q", r.copy.Text)
	}
	h.pump("the copy button to reset", func() bool { return r.copy.Text == copyLabel })
	// Toggle closes it.
	test.Tap(r.toggle)
	h.pump("the tunnel closed", func() bool { return r.view.State == tunnel.Closed })
	if _, err := net.Dial("tcp", r.view.Addr); err == nil && r.view.Addr != "" {
		t.Fatal("still listening")
	}
}

func menuText(m *fyne.Menu) string {
	var parts []string
	for _, it := range m.Items {
		parts = append(parts, it.Label)
	}
	return strings.Join(parts, " | ")
}

// A broken settings.json is explained on the window the user sees, with
// where the broken file went; what could be read of it still works.
func TestBrokenSettingsAreShown(t *testing.T) {
	gw, dir := setup(t)
	path := filepath.Join(dir, "settings.json")
	if err := os.WriteFile(path, []byte(`{"gateway": "`+gw.URL+`", "user": "admin", "tunnels": {"echo": {"localPort": "x"}}, "gatway": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.pump("the sign-in form", func() bool { return h.ui.win.Content() == h.ui.signIn.content })
	msg := h.ui.signIn.errLabel.Text
	kept, _ := filepath.Glob(path + ".broken-*")
	if len(kept) != 1 || !strings.Contains(msg, "kept as "+kept[0]) || !strings.Contains(msg, `tunnels.echo: "localPort" must be a number`) ||
		!strings.Contains(msg, "gatway") || !h.ui.signIn.errLabel.Visible() {
		t.Fatalf("sign-in shows %q (backups %v)", msg, kept)
	}
	// The gateway and user were kept, so signing in needs only the password.
	if h.ui.signIn.gateway.Text != gw.URL || h.ui.signIn.user.Text != "admin" {
		t.Fatalf("prefilled %q %q", h.ui.signIn.gateway.Text, h.ui.signIn.user.Text)
	}
	test.Type(h.ui.signIn.password, gatewaytest.AdminPassword)
	test.Tap(h.ui.signIn.button)
	h.pump("the tunnel list", h.onTunnels)
	if !strings.Contains(h.ui.tunnels.notice.Text, "kept as") || !h.ui.tunnels.notice.Visible() {
		t.Fatalf("the tunnel list does not show the problem: %q", h.ui.tunnels.notice.Text)
	}
}

// A sign-in made with the CLI while the tray asks for one is picked up:
// the tray shows the tunnels again and connections go through.
func TestSignInFromTheCLIIsPickedUp(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.pump("the sign-in form", func() bool { return h.ui.win.Content() == h.ui.signIn.content })
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("the tunnel list", h.onTunnels)
	r := h.row("echo")
	test.Tap(r.toggle)
	h.pump("the tunnel open", func() bool { return r.view.State == tunnel.Open })
	// The session ends (signed out elsewhere) ...
	old, _ := h.tickets.Load(gw.URL)
	cli, _ := tunnel.NewClient(gw.URL, tunnel.ClientOptions{})
	cli.SetTicket(old.Ticket)
	if err := cli.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	// ... and the CLI signs in again, into the shared keyring.
	fresh, err := cli.Login(t.Context(), "admin", gatewaytest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.tickets.Save(gw.URL, fresh); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, r.view.Addr, "picked up"); got != "PICKED UP" {
		t.Fatalf("got %q", got)
	}
}

func TestSignInMessages(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	h.signIn(dead, "admin", "x-password")
	h.pump("unreachable", func() bool { return strings.HasPrefix(h.ui.signIn.errLabel.Text, "Cannot reach the gateway at "+dead) })
	h.signIn("", "admin", "x")
	h.pump("address", func() bool { return strings.Contains(h.ui.signIn.errLabel.Text, "gateway's address") })
	for range 5 {
		h.signIn(gw.URL, "admin", "wrong-password")
		h.pump("wrong password", func() bool { return h.ui.signIn.button.Disabled() == false && h.ui.signIn.errLabel.Text != "" })
	}
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("too many attempts", func() bool { return strings.HasPrefix(h.ui.signIn.errLabel.Text, "Too many failed attempts.") })
	if !strings.Contains(explain(tunnel.ErrCertificate, "https://gw"), "CA certificate") {
		t.Fatal("certificate message")
	}
}

func TestPortInUse(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("the tunnel list", h.onTunnels)
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	r := h.row("echo")
	r.port.SetText("")
	test.Type(r.port, strconv.Itoa(busy.Addr().(*net.TCPAddr).Port))
	test.Tap(r.apply)
	h.pump("the port-in-use message", func() bool { return strings.Contains(r.portMsg.Text, "is used by") })
	if !strings.Contains(r.portMsg.Text, "(pid ") {
		t.Fatalf("the message does not name the holder: %q", r.portMsg.Text)
	}
	r.port.SetText("")
	test.Type(r.port, "99999")
	test.Tap(r.apply)
	if r.portMsg.Text != "The port must be a number from 1 to 65535." {
		t.Fatalf("range: %q", r.portMsg.Text)
	}
	// A free port is kept and used when the tunnel opens.
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()
	r.port.SetText("")
	test.Type(r.port, strconv.Itoa(port))
	test.Tap(r.apply)
	h.pump("the port kept", func() bool { return r.view.Port == port && !r.portMsg.Visible() })
	test.Tap(r.toggle)
	h.pump("open on the chosen port", func() bool { return r.view.Addr == "127.0.0.1:"+strconv.Itoa(port) })
}

// TestReSignInCompletesWaitingConnection: the ticket is revoked while a
// tunnel is open; a connection arriving then waits, the app asks the user
// to sign in again, and the connection goes through once they have.
func TestReSignInCompletesWaitingConnection(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("the tunnel list", h.onTunnels)
	r := h.row("echo")
	test.Tap(r.toggle)
	h.pump("open", func() bool { return r.view.State == tunnel.Open })

	// Revoke the session behind the app's back (as sign-out elsewhere would).
	tk, _ := h.tickets.Load(gw.URL)
	c, _ := tunnel.NewClient(gw.URL, tunnel.ClientOptions{})
	c.SetTicket(tk.Ticket)
	if err := c.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	result := make(chan string, 1)
	addr := r.view.Addr
	go func() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			result <- err.Error()
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		conn.Write([]byte("waited for you"))
		conn.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(conn)
		result <- string(b)
	}()
	h.pump("the sign-in form again", func() bool { return h.ui.win.Content() == h.ui.signIn.content })
	if !strings.Contains(h.ui.signIn.errLabel.Text, "session has ended") {
		t.Fatalf("message %q", h.ui.signIn.errLabel.Text)
	}
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	var got string
	h.pump("the waiting connection", func() bool {
		select {
		case got = <-result:
			return true
		default:
			return false
		}
	})
	if got != "WAITED FOR YOU" {
		t.Fatalf("waiting connection got %q", got)
	}
}

func TestAutoStartAndQuit(t *testing.T) {
	gw, dir := setup(t)
	// First run: sign in and mark the tunnel auto-start.
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("the tunnel list", h.onTunnels)
	test.Tap(h.row("echo").auto)
	h.pump("auto-start saved", func() bool {
		st, _ := tunnel.LoadSettings(h.settings)
		return st.Tunnels["echo"].AutoStart
	})
	test.Tap(h.ui.tunnels.autostart)
	if !h.auto.on {
		t.Fatal("start at login not switched on")
	}
	h.ui.Quit()

	// Next start: the kept ticket is used and the tunnel opens by itself.
	h2 := newHarness(t, gw, dir)
	h2.ui.Start()
	h2.pump("auto-started tunnel", func() bool { return h2.onTunnels() && h2.row("echo").view.State == tunnel.Open })
	addr := h2.row("echo").view.Addr
	if got := roundTrip(t, addr, "auto"); got != "AUTO" {
		t.Fatalf("got %q", got)
	}
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.Write([]byte("held open"))

	// Quit (menu item) closes every forwarder and connection within 2 s.
	var quit *fyne.MenuItem
	for _, it := range h2.ui.trayMenu().Items {
		if it.IsQuit {
			quit = it
		}
	}
	start := time.Now()
	quit.Action()
	select {
	case <-h2.quit:
	case <-time.After(2 * time.Second):
		t.Fatal("Quit did not end the app within 2 s")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Quit took %s", d)
	}
	held.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(held); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("held connection: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still listening after Quit")
	}
}

func TestNoTrayHostQuitsOnClose(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.ui.windowClosed() // the window's close button, without a tray host
	select {
	case <-h.quit:
	case <-time.After(2 * time.Second):
		t.Fatal("closing the window without a tray host did not quit")
	}
}

// The real backend is the tunnel package's Service.

// TestFailureNotifications: the user is told when a tunnel's target is
// down and when their access was removed, not left with a silent close.
func TestFailureNotifications(t *testing.T) {
	gw, dir := setup(t)
	h := newHarness(t, gw, dir)
	h.ui.Start()
	h.signIn(gw.URL, "admin", gatewaytest.AdminPassword)
	h.pump("the tunnel list", h.onTunnels)
	r := h.row("echo")
	test.Tap(r.toggle)
	h.pump("open", func() bool { return r.view.State == tunnel.Open })
	expect := func(want string, act func()) {
		t.Helper()
		act()
		var got string
		h.pump("a notification with "+want, func() bool {
			select {
			case got = <-h.notes:
				return strings.Contains(got, want)
			default:
				return false
			}
		})
	}
	dial := func() {
		c, err := net.Dial("tcp", r.view.Addr)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.ReadAll(c)
			c.Close()
		}
	}
	// The target goes away.
	if _, err := gw.UpdateTunnel(t.Context(), "test", "echo", gateway.TunnelPatch{SocketAddress: ptr("127.0.0.1:1")}); err != nil {
		t.Fatal(err)
	}
	expect("echo is down", dial)
	// Access is taken away.
	if _, err := gw.UpdateTunnel(t.Context(), "test", "echo", gateway.TunnelPatch{UserGroups: ptr("nobody@ROOT")}); err == nil {
		t.Fatal("a pattern naming a missing group was accepted")
	}
	if err := gw.CreateGroup(t.Context(), "test", "nobody", "ROOT"); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.UpdateTunnel(t.Context(), "test", "echo", gateway.TunnelPatch{UserGroups: ptr("nobody@ROOT")}); err != nil {
		t.Fatal(err)
	}
	expect("Access to echo was removed", dial)
}

func ptr[T any](v T) *T { return &v }
