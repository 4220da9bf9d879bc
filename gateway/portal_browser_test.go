package gateway

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/porthole/porthole/wire"
)

// browser starts Debian's Chromium headless (as root it needs
// --no-sandbox) with a fresh profile. scripts/test installs chromium and
// sets PORTHOLE_REQUIRE_BROWSER, so there a missing browser fails.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("PORTHOLE_REQUIRE_BROWSER") != "" {
			t.Fatal("chromium is not installed although scripts/test should have installed it")
		}
		t.Skip("chromium is not installed: run scripts/test, which installs it")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	// The first call starts the browser; it must not carry the timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	return tctx
}

// screenshot saves the page as a test artifact in artifacts/screenshots.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("PORTHOLE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	dir = filepath.Join(dir, "screenshots")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func poll(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// clickLoad clicks and waits for the page the click loads.
func clickLoad[S chromedp.Selectable](t *testing.T, ctx context.Context, sel S) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, chromedp.Click(sel))); err != nil {
		t.Fatalf("click %v: %v", sel, err)
	}
}

func button(label string) chromedp.Search {
	return chromedp.Search(`//button[normalize-space()="` + label + `"]`)
}

func link(label string) chromedp.Search {
	return chromedp.Search(`//a[normalize-space()="` + label + `"]`)
}

func signIn(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	clickLoad(t, ctx, button("Sign in"))
}

func TestPortalInBrowser(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.addUser(admin, "alice", "staff@Prod")
	target := echoServer(t)
	ctx := browser(t)
	base := g.URL

	// Sign in; an administrator lands on Tunnels, empty for now.
	signIn(t, ctx, base, "admin", adminPassword)
	if h := text(t, ctx, "h1"); h != "Tunnels" {
		t.Fatalf("after sign-in: %q", h)
	}
	if !strings.Contains(text(t, ctx, ".empty"), "No tunnels yet") {
		t.Fatal("no empty state")
	}

	// A reserved context: the reason appears beside the field.
	clickLoad(t, ctx, link("Add a new tunnel"))
	run(t, ctx,
		chromedp.SendKeys(chromedp.ID("context"), "backend"),
		chromedp.SendKeys(chromedp.ID("socketAddress"), target),
	)
	clickLoad(t, ctx, button("Save"))
	if e := text(t, ctx, "#context-error"); !strings.Contains(e, "reserved") || !strings.HasPrefix(e, "URI context path") {
		t.Fatalf("context error: %q", e)
	}
	screenshot(t, ctx, "tunnel-form-error")

	// Fix it; the preview shows who may use it; test the connection; save.
	run(t, ctx,
		chromedp.Clear(chromedp.ID("context")),
		chromedp.SendKeys(chromedp.ID("context"), "orders-db"),
		chromedp.Clear(chromedp.ID("userGroups")),
		chromedp.SendKeys(chromedp.ID("userGroups"), "staff@Prod"),
		chromedp.SendKeys(chromedp.ID("localPort"), "13306"),
		chromedp.SendKeys(chromedp.ID("description"), "Orders database (MySQL)"),
	)
	poll(t, ctx, `document.querySelector("#preview").textContent.includes("alice") && !document.querySelector("#preview").textContent.includes("admin")`)
	clickLoad(t, ctx, button("Test connection"))
	if r := text(t, ctx, "#test-result"); !strings.HasPrefix(r, "Reachable in ") || !strings.HasSuffix(r, " ms.") {
		t.Fatalf("test connection: %q", r)
	}
	screenshot(t, ctx, "tunnel-form")
	clickLoad(t, ctx, button("Save"))
	if f := text(t, ctx, ".flash"); !strings.Contains(f, "orders-db created") {
		t.Fatalf("flash: %q", f)
	}

	// It works at once: alice opens a WebSocket through it right after.
	alice := g.login("alice", "alice-password")
	c := g.openStream("orders-db", alice)
	c.Write([]byte("select 1"))
	buf := make([]byte, 8)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "SELECT 1" {
		t.Fatalf("through the new tunnel: %q %v", buf, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		errc <- err
	}()

	// The tunnels table shows it with one open connection; the live view
	// shows alice, and Disconnect closes her connection.
	run(t, ctx, chromedp.Navigate(base+"/tunnels"), chromedp.WaitVisible(chromedp.CSS("table")))
	row := text(t, ctx, "tbody tr")
	for _, want := range []string{"orders-db", target, "staff@Prod", "13306", "Orders database", "1"} {
		if !strings.Contains(row, want) {
			t.Fatalf("tunnel row %q lacks %q", row, want)
		}
	}
	screenshot(t, ctx, "tunnels")
	run(t, ctx, chromedp.Navigate(base+"/tunnels/orders-db/connections"), chromedp.WaitVisible(chromedp.CSS("tbody tr")))
	if row := text(t, ctx, "tbody tr"); !strings.Contains(row, "alice") || !strings.Contains(row, "8 B") {
		t.Fatalf("live connection row: %q", row)
	}
	screenshot(t, ctx, "connections")
	clickLoad(t, ctx, button("Disconnect"))
	select {
	case err := <-errc:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseDisconnected {
			t.Fatalf("alice saw %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Disconnect did not close the connection")
	}

	// The audit view shows the change and the disconnect, newest first.
	run(t, ctx, chromedp.Navigate(base+"/audit?kind=tunnel.create"), chromedp.WaitVisible(chromedp.CSS("table.audit")))
	if row := text(t, ctx, "table.audit tbody tr"); !strings.Contains(row, "admin") || !strings.Contains(row, "orders-db") || !strings.Contains(row, "staff@Prod") {
		t.Fatalf("audit row: %q", row)
	}
	run(t, ctx, chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS("table.audit")))
	if !strings.Contains(text(t, ctx, "table.audit tbody"), "connection.disconnect") {
		t.Fatal("disconnect not in the audit view")
	}
	screenshot(t, ctx, "audit")

	// Deleting asks first; Cancel keeps the tunnel, confirming deletes it.
	run(t, ctx, chromedp.Navigate(base+"/tunnels"))
	clickLoad(t, ctx, link("Delete"))
	if h := text(t, ctx, "h1"); h != "Delete tunnel orders-db?" {
		t.Fatalf("confirmation: %q", h)
	}
	screenshot(t, ctx, "confirm-delete")
	clickLoad(t, ctx, link("Cancel"))
	g.mustCall(200, "GET", "/api/v1/admin/tunnels/orders-db", admin, nil)

	// A non-administrator sees only "My tunnels", with connection strings.
	clickLoad(t, ctx, button("Sign out"))
	signIn(t, ctx, base, "alice", "alice-password")
	if h := text(t, ctx, "h1"); h != "My tunnels" {
		t.Fatalf("alice lands on %q", h)
	}
	card := text(t, ctx, "section.tunnel")
	for _, want := range []string{"orders-db", "localhost:13306", "mysql --protocol=TCP -h 127.0.0.1 -P 13306", "jdbc:mysql://localhost:13306/"} {
		if !strings.Contains(card, want) {
			t.Fatalf("my tunnels card lacks %q:\n%s", want, card)
		}
	}
	if strings.Contains(text(t, ctx, "nav"), "Tunnels\n") || strings.Contains(text(t, ctx, "nav"), "Audit") {
		t.Fatalf("alice's menu shows admin pages: %q", text(t, ctx, "nav"))
	}
	screenshot(t, ctx, "my-tunnels")
	run(t, ctx, chromedp.Navigate(base+"/tunnels"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h := text(t, ctx, "h1"); h != "Administrators only" {
		t.Fatalf("alice on /tunnels: %q", h)
	}

	// Back as admin: confirm the delete.
	clickLoad(t, ctx, button("Sign out"))
	signIn(t, ctx, base, "admin", adminPassword)
	run(t, ctx, chromedp.Navigate(base+"/tunnels/orders-db/delete"))
	clickLoad(t, ctx, button("Delete tunnel"))
	g.mustCall(404, "GET", "/api/v1/admin/tunnels/orders-db", admin, nil)
	evs, _ := g.events(t.Context(), eventFilter("tunnel.delete"))
	if len(evs) != 1 || evs[0].Actor != "admin" {
		t.Fatalf("delete audit: %+v", evs)
	}

	// Users, groups and environments pages render with their data.
	for _, p := range []struct{ path, want string }{{"/users", "alice"}, {"/groups", "staff"}, {"/environments", "Prod"}} {
		run(t, ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS("table")))
		if !strings.Contains(text(t, ctx, "table"), p.want) {
			t.Fatalf("%s lacks %s", p.path, p.want)
		}
		screenshot(t, ctx, strings.TrimPrefix(p.path, "/"))
	}
}

// TestPortalBrowserWebSocket: the browser itself opens a tunnel with its
// session cookie (same origin), right after the tunnel was added.
func TestPortalBrowserWebSocket(t *testing.T) {
	g := startGateway(t)
	ctx := browser(t)
	signIn(t, ctx, g.URL, "admin", adminPassword)
	target := echoServer(t)
	run(t, ctx,
		chromedp.Navigate(g.URL+"/tunnels/new"),
		chromedp.WaitVisible(chromedp.ID("context")),
		chromedp.SendKeys(chromedp.ID("context"), "echo"),
		chromedp.SendKeys(chromedp.ID("socketAddress"), target),
	)
	clickLoad(t, ctx, button("Save"))
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`new Promise((resolve, reject) => {
		const ws = new WebSocket("ws://" + location.host + "/ws-proxy/echo");
		ws.binaryType = "arraybuffer";
		ws.onopen = () => ws.send(new TextEncoder().encode("hello from the browser"));
		ws.onmessage = (e) => { resolve(new TextDecoder().decode(e.data)); ws.close(); };
		ws.onerror = () => reject("websocket error");
		setTimeout(() => reject("timeout"), 5000);
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got != "HELLO FROM THE BROWSER" {
		t.Fatalf("browser WebSocket got %q", got)
	}
}

// TestPortalAccountInBrowser: a user changes their own password on the
// Account page; mistakes are explained beside their fields.
func TestPortalAccountInBrowser(t *testing.T) {
	g := startGateway(t)
	g.addUser(g.admin(), "alice", "staff@Prod")
	ctx := browser(t)
	signIn(t, ctx, g.URL, "alice", "alice-password")
	clickLoad(t, ctx, link("Account"))
	if h := text(t, ctx, "h1"); h != "Account" {
		t.Fatalf("account page: %q", h)
	}
	fill := func(current, next, repeat string) {
		run(t, ctx,
			chromedp.SendKeys(chromedp.ID("current"), current),
			chromedp.SendKeys(chromedp.ID("new"), next),
			chromedp.SendKeys(chromedp.ID("repeat"), repeat),
		)
		clickLoad(t, ctx, button("Change password"))
	}
	fill("guess-guess", "alice-new-password", "alice-new-password")
	if e := text(t, ctx, "#current-error"); e != "Current password is wrong." {
		t.Fatalf("wrong current password: %q", e)
	}
	fill("alice-password", "alice-new-password", "alice-new-passwrod")
	if e := text(t, ctx, "#repeat-error"); e != "The two new passwords differ." {
		t.Fatalf("mismatch: %q", e)
	}
	screenshot(t, ctx, "account-error")
	fill("alice-password", "alice-new-password", "alice-new-password")
	if f := text(t, ctx, ".flash"); !strings.Contains(f, "Your password was changed") {
		t.Fatalf("flash: %q", f)
	}
	// This browser stays signed in; the new password signs in elsewhere.
	if h := text(t, ctx, "h1"); h != "Account" {
		t.Fatalf("after the change: %q", h)
	}
	g.login("alice", "alice-new-password")
}
