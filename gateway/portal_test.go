package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/connstr"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/portal")

// TestPortalGolden renders every template with sample data and compares
// it with testdata/portal/NAME.html (go test -run Golden -update rewrites).
func TestPortalGolden(t *testing.T) {
	at := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC)
	// The portal shows times against the gateway's clock, never the real one.
	pages, err := loadPortal(func() time.Time { return at.Add(20*24*time.Hour + time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	admin := &pageUser{Name: "admin", Admin: true}
	spec := TunnelSpec{Context: "mysql", SocketAddress: "db.internal:3306", UserGroups: "staff@Prod;admin@ROOT", LocalPort: 13306, Description: "Orders <MySQL>"}
	samples := map[string]page{
		"login": {Title: "Sign in", Data: loginData{Username: "admin", Error: "Wrong user name or password.", Next: "/tunnels"}},
		"tunnels": {Title: "Tunnels", Nav: "tunnels", User: admin, CSRF: "tok", Flash: "Tunnel mysql created; it works now.",
			Data: map[string]any{"Tunnels": []TunnelInfo{{TunnelSpec: spec, Connections: 2, CreatedAt: at, UpdatedAt: at}}}},
		"tunnel_form": {Title: "Add a new tunnel", Nav: "tunnels", User: admin, CSRF: "tok", Data: tunnelForm{Spec: TunnelSpec{Context: "backend", SocketAddress: "db:3306", UserGroups: ".*@Prod"},
			Fields: map[string]string{"context": `"backend" is reserved for Porthole's own use`}, Error: "Please correct the fields marked below.",
			Test: "Reachable in 0.4 ms.", TestOK: true, Preview: preview{Users: []string{"alice", "bob"}}, Denied: "169.254.0.0/16, fe80::/10"}},
		"connections": {Title: "Live connections: mysql", Nav: "tunnels", User: admin, CSRF: "tok", Data: map[string]any{"Tunnel": spec,
			"Conns": []liveView{{ID: 7, User: "alice", Since: at, Remote: "10.0.0.8", Up: 1234, Down: 5 << 20}}}},
		"confirm": {Title: "Delete tunnel mysql?", Nav: "tunnels", User: admin, CSRF: "tok", Data: confirmData{Question: "Delete tunnel mysql?",
			Detail: "Its 2 open connection(s) will be closed.", Button: "Delete tunnel", Back: "/tunnels", Error: "Something is in the way."}},
		"users": {Title: "Users", Nav: "users", User: admin, CSRF: "tok", Data: map[string]any{"Users": []UserInfo{
			{Username: "admin", Groups: []string{"admin@ROOT"}, Admin: true, Source: "local", SecondFactor: true, CreatedAt: at}, {Username: "bob", Disabled: true, Source: "local", CreatedAt: at},
			{Username: "carol", Groups: []string{"DBA@PDT"}, Source: "directory", DirectoryGroups: []string{"DBA", "Domain Users"}, CreatedAt: at}}}},
		"user_form": {Title: "Edit user bob", Nav: "users", User: admin, CSRF: "tok", Data: userForm{Editing: "bob", Disabled: true,
			AllGroups: []groupChoice{{Name: "admin@ROOT"}, {Name: "staff@Prod", Checked: true}}, Fields: map[string]string{"password": "must have at least 8 characters"}}},
		"groups": {Title: "Groups", Nav: "groups", User: admin, CSRF: "tok", Data: map[string]any{"Fields": map[string]string{},
			"Groups": []GroupInfo{{Name: "admin", Environment: "ROOT", Members: 1}}, "Environments": []string{"Prod", "ROOT"}, "Environment": "Prod"}},
		"environments": {Title: "Environments", Nav: "environments", User: admin, CSRF: "tok", Data: map[string]any{"Fields": map[string]string{},
			"Environments": []EnvironmentInfo{{Name: "Prod", Groups: 1, CreatedAt: at}, {Name: "ROOT", Groups: 1, CreatedAt: at}}}},
		"audit": {Title: "Audit", Nav: "audit", User: admin, CSRF: "tok", Data: map[string]any{"Filter": store.EventFilter{Kind: "tunnel."}, "Kinds": auditKinds,
			"Filtered": true, "ExportURL": template.URL("/audit/export?kind=tunnel."), "NewerURL": template.URL("/audit?kind=tunnel."), "OlderURL": template.URL("/audit?before=3&kind=tunnel."),
			"Events": []AuditEvent{{ID: 4, Time: at, Actor: "admin", Kind: "tunnel.create", Target: "mysql", Outcome: "ok", Details: map[string]any{"after": map[string]any{"context": "mysql"}}}}}},
		"my": {Title: "My tunnels", Nav: "my", User: &pageUser{Name: "alice"}, CSRF: "tok", Data: map[string]any{"Tunnels": []myTunnel{
			{Context: "mysql", Description: "Orders", LocalPort: 13306, Examples: connstr.For(connstr.MySQL, 13306)}}}},
		"account": {Title: "Account", Nav: "account", User: &pageUser{Name: "alice"}, CSRF: "tok", Data: accountForm{Error: "Please correct the fields marked below.",
			Fields: map[string]string{"currentPassword": "is wrong", "repeat": "The two new passwords differ"},
			Setup:  &SecondFactorSetup{Secret: "JBSWY3DPEHPK3PXP", URL: "otpauth://totp/Porthole:alice?secret=JBSWY3DPEHPK3PXP"}, SetupQR: "data:image/png;base64,AAAA", CodeError: "wrong code"}},
		"directory": {Title: "Directory", Nav: "directory", User: admin, CSRF: "tok", Data: directoryPageData{Info: DirectoryInfo{Configured: true,
			URL: "ldaps://dc1.pdt.local", Domain: "PDT", RecheckPeriod: "5m0s", Mappings: []GroupMapping{{DirectoryGroup: "SQL Admins", Group: "dba@Prod"}}},
			Groups: []string{"admin@ROOT", "dba@Prod"}, Group: "dba@Prod", Error: `group "x@y" does not exist`}},
		"tokens": {Title: "API tokens", Nav: "tokens", User: admin, CSRF: "tok", Data: tokensPageData{Users: []string{"admin", "nightly"}, User: "nightly",
			Made:   &TokenInfo{ID: "t1", Name: "nightly export", User: "nightly", Tunnels: []string{"mysql"}, ExpiresAt: at.Add(90 * 24 * time.Hour), Token: "v1.secret-token"},
			Tokens: []TokenInfo{{ID: "t1", Name: "nightly export", User: "nightly", Tunnels: []string{"mysql"}, CreatedBy: "admin", CreatedAt: at, ExpiresAt: at.Add(90 * 24 * time.Hour)}},
			Fields: map[string]string{"tunnels": `no tunnel "pg"`}, Error: "Please correct the fields marked below."}},
		"error": {Title: "Administrators only", User: &pageUser{Name: "alice"}, CSRF: "tok", Data: map[string]string{"Heading": "Administrators only", "Message": "Only members of admin@ROOT may open this page."}},
	}
	for _, name := range portalPages {
		t.Run(name, func(t *testing.T) {
			pg, ok := samples[name]
			if !ok {
				t.Fatalf("no sample data for template %s", name)
			}
			var buf bytes.Buffer
			if err := pages[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "portal", name+".html")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				os.WriteFile(golden, buf.Bytes(), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run Golden -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("%s differs from %s (run with -update after checking):\n%s", name, golden, buf.String())
			}
		})
	}
	// Escaping: the description's markup is text.
	var buf bytes.Buffer
	pages["tunnels"].ExecuteTemplate(&buf, "layout", samples["tunnels"])
	if strings.Contains(buf.String(), "<MySQL>") || !strings.Contains(buf.String(), "Orders &lt;MySQL&gt;") {
		t.Fatal("a description is not escaped")
	}
}

// browserSession signs in through the portal form and returns the cookie
// and a client that does not follow redirects.
type browserSession struct {
	t      *testing.T
	g      *testGW
	cookie *http.Cookie
	csrf   string
	client *http.Client
}

func portalSignIn(t *testing.T, g *testGW, user, password string) *browserSession {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(g.URL+"/login", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	bs := &browserSession{t: t, g: g, client: c}
	for _, ck := range resp.Cookies() {
		if ck.Name == wire.SessionCookie {
			bs.cookie = ck
		}
	}
	if bs.cookie == nil {
		t.Fatal("no session cookie")
	}
	p, err := g.checkTicket(t.Context(), bs.cookie.Value)
	if err != nil {
		t.Fatal(err)
	}
	bs.csrf = g.csrfToken(p.session)
	return bs
}

func (b *browserSession) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.g.URL+path, nil)
	req.AddCookie(b.cookie)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// post sends a same-origin form (as the page would, with its token).
func (b *browserSession) post(path string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.g.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.g.URL)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.AddCookie(b.cookie)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String(), resp.Header
}

func TestPortalSecurity(t *testing.T) {
	g := startGateway(t)
	b := portalSignIn(t, g, "admin", adminPassword)
	if !b.cookie.HttpOnly || b.cookie.SameSite != http.SameSiteStrictMode || b.cookie.Secure {
		t.Fatalf("cookie over http: %+v", b.cookie)
	}
	if time.Until(b.cookie.Expires) < 23*time.Hour {
		t.Fatalf("cookie does not expire with the ticket: %v", b.cookie.Expires)
	}
	form := url.Values{"context": {"evil"}, "socketAddress": {"h:1"}, "userGroups": {".*@.*"}, "action": {"save"}}
	t.Run("cross-site form post", func(t *testing.T) {
		status, _, _ := b.post("/tunnels/new", form, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
		if status != http.StatusForbidden {
			t.Fatalf("status %d", status)
		}
	})
	t.Run("missing token", func(t *testing.T) {
		f := url.Values{"csrf": {""}}
		for k, v := range form {
			f[k] = v
		}
		f.Set("csrf", "")
		status, body, _ := b.post("/tunnels/new", f, nil)
		if status != http.StatusForbidden || !strings.Contains(body, "Form expired") {
			t.Fatalf("status %d", status)
		}
	})
	g.mustCall(404, "GET", "/api/v1/admin/tunnels/evil", g.admin(), nil)
	t.Run("cross-origin websocket with the cookie", func(t *testing.T) {
		g.mustCall(201, "POST", "/api/v1/admin/tunnels", g.admin(), TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
		h := http.Header{"Origin": {"https://evil.example"}}
		h.Set("Cookie", wire.SessionCookie+"="+b.cookie.Value)
		_, resp, err := g.dialTunnel("echo", "", h)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin upgrade: %v %v", resp, err)
		}
	})
	t.Run("headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", g.URL+"/tunnels", nil)
		req.AddCookie(b.cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"frame-ancestors 'none'", "default-src 'none'", "script-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Fatalf("CSP %q lacks %q", csp, want)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("headers %v", resp.Header)
		}
	})
	t.Run("secure cookie under https", func(t *testing.T) {
		req := httptest.NewRequest("POST", "https://gw.example/login", strings.NewReader("username=admin&password="+adminPassword))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.TLS = &tls.ConnectionState{}
		rec := httptest.NewRecorder()
		g.Handler().ServeHTTP(rec, req)
		var found bool
		for _, ck := range rec.Result().Cookies() {
			if ck.Name == wire.SessionCookie {
				found = ck.Secure && ck.HttpOnly && ck.SameSite == http.SameSiteStrictMode
			}
		}
		if !found {
			t.Fatalf("no Secure session cookie under https: %v", rec.Result().Header)
		}
	})
	t.Run("signed out pages redirect to sign-in", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(g.URL + "/users")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fusers" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("open redirect refused", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, _ := c.PostForm(g.URL+"/login", url.Values{"username": {"admin"}, "password": {adminPassword}, "next": {"//evil.example/x"}})
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/tunnels" {
			t.Fatalf("redirected to %q", loc)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		resp, _ := http.PostForm(g.URL+"/login", url.Values{"username": {"admin"}, "password": {"nope-nope"}})
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(buf.String(), "Wrong user name or password.") {
			t.Fatalf("%d %s", resp.StatusCode, buf.String())
		}
	})
}

func TestPortalIdentityForms(t *testing.T) {
	g := startGateway(t)
	b := portalSignIn(t, g, "admin", adminPassword)
	steps := []struct {
		path   string
		form   url.Values
		status int
		want   string
	}{
		{"/environments", url.Values{"name": {"Prod"}}, 303, ""},
		{"/environments", url.Values{"name": {"prod"}}, 409, "already exists"},
		{"/environments", url.Values{"name": {""}}, 400, "Environment name is required."},
		{"/groups", url.Values{"name": {"staff"}, "environment": {"Prod"}}, 303, ""},
		{"/groups", url.Values{"name": {"bad*name"}, "environment": {"Prod"}}, 400, "may only contain"},
		{"/users/new", url.Values{"username": {"alice"}, "password": {"short"}, "groups": {"staff@Prod"}}, 400, "Password must have at least 8 characters."},
		{"/users/new", url.Values{"username": {"alice"}, "password": {"alice-password"}, "groups": {"staff@Prod"}}, 303, ""},
		{"/tunnels/new", url.Values{"context": {"pg"}, "socketAddress": {"db:5432"}, "userGroups": {"staff@Prod"}, "localPort": {"x"}, "action": {"save"}}, 400, "Local port must be a number"},
		{"/tunnels/new", url.Values{"context": {"pg"}, "socketAddress": {"db:5432"}, "userGroups": {"staff@Prod"}, "localPort": {"15432"}, "action": {"save"}}, 303, ""},
		{"/groups/staff@Prod/delete", url.Values{}, 409, "still named by tunnel(s) pg"},
		{"/environments/Prod/delete", url.Values{}, 409, "still named by tunnel(s) pg"},
	}
	for _, st := range steps {
		status, body, _ := b.post(st.path, st.form, nil)
		if status != st.status || !strings.Contains(body, st.want) {
			t.Fatalf("POST %s %v: %d, want %d with %q:\n%s", st.path, st.form, status, st.status, st.want, body)
		}
	}
	alice := g.login("alice", "alice-password")
	// Edit: reset the password and remove the group; her ticket stops working.
	status, _, _ := b.post("/users/alice/edit", url.Values{"password": {"new-password"}}, nil)
	if status != 303 {
		t.Fatalf("edit: %d", status)
	}
	g.mustCall(401, "GET", "/api/v1/me", alice, nil)
	u, _ := g.st.User(t.Context(), "alice")
	if len(u.Groups) != 0 {
		t.Fatalf("unchecked groups kept: %+v", u.Groups)
	}
	g.login("alice", "new-password")
	status, _, _ = b.post("/users/alice/edit", url.Values{"disabled": {"1"}, "groups": {"staff@Prod"}}, nil)
	if u, _ := g.st.User(t.Context(), "alice"); status != 303 || !u.Disabled || len(u.Groups) != 1 {
		t.Fatalf("disable: %d %+v", status, u)
	}
	// The edit page shows the state.
	_, page := b.get("/users/alice/edit")
	if !strings.Contains(page, `value="staff@Prod" checked`) || !strings.Contains(page, `name="disabled" value="1" checked`) {
		t.Fatalf("edit page does not show the state:\n%s", page)
	}
	// Deleting asks first (GET) and deletes on POST.
	if status, body := b.get("/users/alice/delete"); status != 200 || !strings.Contains(body, "Delete user alice?") {
		t.Fatalf("confirm: %d", status)
	}
	if status, _, _ := b.post("/users/alice/delete", url.Values{}, nil); status != 303 {
		t.Fatalf("delete: %d", status)
	}
	g.mustCall(404, "GET", "/api/v1/admin/users/alice", g.admin(), nil)
}

func TestPortalAudit(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	for i := range 60 {
		g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "t" + itoa(i), SocketAddress: "db:1"})
	}
	b := portalSignIn(t, g, "admin", adminPassword)
	status, body := b.get("/audit?kind=tunnel.create")
	if status != 200 || strings.Count(body, "<code>tunnel.create</code>") != auditPageSize || !strings.Contains(body, "Older →") || strings.Contains(body, "← Newest") {
		t.Fatalf("page 1: %d", status)
	}
	if !strings.Contains(body, ">t59<") || strings.Contains(body, ">t9<") {
		t.Fatal("page 1 is not the newest events")
	}
	i := strings.Index(body, `href="/audit?before=`)
	older := body[i+6 : i+6+strings.Index(body[i+6:], `"`)]
	_, body = b.get(strings.ReplaceAll(older, "&amp;", "&"))
	if strings.Count(body, "<code>tunnel.create</code>") != 10 || !strings.Contains(body, ">t0<") || !strings.Contains(body, "← Newest") {
		t.Fatal("page 2")
	}
	_, body = b.get("/audit?target=t3")
	if strings.Count(body, "<code>tunnel.create</code>") != 1 {
		t.Fatal("target filter")
	}
	_, body = b.get("/audit?actor=nobody")
	if !strings.Contains(body, "No events match.") {
		t.Fatal("empty state")
	}
	status, body = b.get("/audit/export?kind=tunnel.create")
	sc := bufio.NewScanner(strings.NewReader(body))
	n := 0
	for sc.Scan() {
		var e AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Kind != "tunnel.create" {
			t.Fatalf("line %d: %s %v", n, sc.Text(), err)
		}
		n++
	}
	if status != 200 || n != 60 {
		t.Fatalf("export: %d, %d lines", status, n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestPortalTestConnection(t *testing.T) {
	g := startGateway(t)
	b := portalSignIn(t, g, "admin", adminPassword)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	tests := map[string]struct{ addr, want string }{
		"reachable":   {echoServer(t), "Reachable in "},
		"refused":     {dead, "Not reachable from the gateway: connection refused."},
		"bad address": {"db", "Socket address needs a port"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, body, _ := b.post("/tunnels/new", url.Values{"context": {"x"}, "socketAddress": {tc.addr}, "userGroups": {".*@.*"}, "action": {"test"}}, nil)
			if status != 200 || !strings.Contains(body, tc.want) {
				i := strings.Index(body, `id="test-result"`)
				t.Fatalf("%d, want %q in the page, test result: %.200s", status, tc.want, body[max(i, 0):])
			}
		})
	}
	// Testing saves nothing.
	g.mustCall(404, "GET", "/api/v1/admin/tunnels/x", g.admin(), nil)
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/tunnels":                "/tunnels",
		"/audit?kind=tunnel.&x=1": "/audit?kind=tunnel.&x=1",
		"":                        "/",
		"tunnels":                 "/",
		"//evil.example":          "/",
		"/\\evil.example":         "/",
		"/\t/evil.example":        "/",
		"/\n/evil.example":        "/",
		"/%09/evil.example":       "/%09/evil.example", // still encoded: a path on this site
		"/ /evil.example":         "/",
		"/\u00a0/evil.example":    "/",
		"https://evil.example/":   "/",
		"/x\x00":                  "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// The sign-in page decodes next= itself: "%09" arrives as a tab and must
// not send the browser to another site.
func TestSignInRedirectStaysOnTheSite(t *testing.T) {
	g := startGateway(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(g.URL+"/login", url.Values{"username": {"admin"}, "password": {adminPassword}, "next": {"/\t/evil.example"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || strings.Contains(loc, "evil") || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
		t.Fatalf("redirect %d to %q", resp.StatusCode, loc)
	}
}

// usersFail is the gateway's store with its user list failing, as a broken
// disk would.
type usersFail struct{ store.Store }

func (usersFail) Users(context.Context) ([]store.User, error) {
	return nil, errors.New("disk I/O error (test)")
}

// TestPortalFailuresAreLogged: a page whose store read fails answers 500
// with the portal's error page, and the cause reaches the gateway's log
// (the page only says "see its log").
func TestPortalFailuresAreLogged(t *testing.T) {
	var logs syncBuffer
	g := startGateway(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	b := portalSignIn(t, g, "admin", adminPassword)
	g.st = usersFail{g.st}
	status, body := b.get("/users")
	if status != http.StatusInternalServerError || !strings.Contains(body, "see its log") {
		t.Fatalf("GET /users with a failing store: %d %q", status, body)
	}
	if !strings.Contains(logs.String(), "disk I/O error (test)") || !strings.Contains(logs.String(), "/users") {
		t.Fatalf("the cause is not in the log:\n%s", logs.String())
	}
}
