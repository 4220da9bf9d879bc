package gateway

import (
	"context"
	"encoding/json"
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
	"github.com/pquerna/otp/totp"

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

// TestPortalSignInMethodsInBrowser: an administrator makes and revokes an
// API token and maps a directory group; a user sets up a second factor
// from the QR code page and then signs in with a code.
func TestPortalSignInMethodsInBrowser(t *testing.T) {
	clock := &testClock{t: time.Now()}
	g := startGateway(t, func(c *Config) { c.Now = clock.Now })
	admin := g.admin()
	g.addUser(admin, "alice", "staff@Prod")
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t), UserGroups: "staff@Prod"})
	ctx := browser(t)
	base := g.URL

	signIn(t, ctx, base, "admin", adminPassword)
	run(t, ctx, chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "nightly export"),
		chromedp.SetValue(chromedp.ID("user"), "alice"),
		chromedp.SendKeys(chromedp.ID("tunnels"), "echo"))
	clickLoad(t, ctx, button("Make token"))
	token := strings.TrimSpace(text(t, ctx, "#new-token"))
	screenshot(t, ctx, "tokens")
	if status, data, _ := g.call("GET", "/api/v1/tunnels", token, nil); status != 200 || !strings.Contains(string(data), `"echo"`) {
		t.Fatalf("the token from the page: %d %s", status, data)
	}
	run(t, ctx, chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible(button("Revoke")))
	if strings.Contains(text(t, ctx, "main"), token) {
		t.Fatal("the token is shown again after it was made")
	}
	clickLoad(t, ctx, button("Revoke"))
	if status, _, _ := g.call("GET", "/api/v1/tunnels", token, nil); status != 401 {
		t.Fatalf("the token works after it was revoked: %d", status)
	}

	run(t, ctx, chromedp.Navigate(base+"/directory"), chromedp.WaitVisible(chromedp.ID("directoryGroup")),
		chromedp.SendKeys(chromedp.ID("directoryGroup"), "SQL Admins"),
		chromedp.SetValue(chromedp.ID("group"), "staff@Prod"))
	clickLoad(t, ctx, button("Add mapping"))
	if got := text(t, ctx, "table"); !strings.Contains(got, "SQL Admins") || !strings.Contains(got, "staff@Prod") {
		t.Fatalf("mapping table: %q", got)
	}
	screenshot(t, ctx, "directory")
	var info DirectoryInfo
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/directory", admin, nil), &info)
	if len(info.Mappings) != 1 || info.Mappings[0].Group != "staff@Prod" {
		t.Fatalf("stored mappings %+v", info.Mappings)
	}
	clickLoad(t, ctx, button("Sign out"))

	signIn(t, ctx, base, "alice", "alice-password")
	run(t, ctx, chromedp.Navigate(base+"/account"), chromedp.WaitVisible(button("Set up a second factor")))
	clickLoad(t, ctx, button("Set up a second factor"))
	run(t, ctx, chromedp.WaitVisible(`img[alt="QR code of the secret"]`))
	secret := strings.TrimSpace(text(t, ctx, "code.secret"))
	screenshot(t, ctx, "second-factor")
	code, _ := totp.GenerateCode(secret, clock.Now())
	run(t, ctx, chromedp.SendKeys(chromedp.ID("code"), code))
	clickLoad(t, ctx, button("Turn on"))
	if got := text(t, ctx, ".flash"); !strings.Contains(got, "Second factor on") {
		t.Fatalf("after turning it on: %q", got)
	}
	clickLoad(t, ctx, button("Sign out"))

	clock.Add(30 * time.Second)
	signIn(t, ctx, base, "alice", "alice-password")
	run(t, ctx, chromedp.WaitVisible(chromedp.ID("otp")))
	if got := text(t, ctx, ".error"); !strings.Contains(got, "authenticator app") {
		t.Fatalf("sign-in page asks with %q", got)
	}
	code, _ = totp.GenerateCode(secret, clock.Now())
	run(t, ctx, chromedp.SendKeys(chromedp.ID("password"), "alice-password"), chromedp.SendKeys(chromedp.ID("otp"), code))
	clickLoad(t, ctx, button("Sign in"))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(loc, "/my") {
		t.Fatalf("after signing in with the code the browser is at %s", loc)
	}
}
