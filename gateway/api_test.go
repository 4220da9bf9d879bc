package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/wire"
)

func TestBootstrap(t *testing.T) {
	g := startGateway(t)
	var me MeResponse
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/me", g.admin(), nil), &me)
	if me.User != "admin" || !me.Admin || len(me.Groups) != 1 || me.Groups[0] != "admin@ROOT" {
		t.Fatalf("me = %+v", me)
	}
	// A second start on the same store neither re-creates nor re-announces.
	var announce strings.Builder
	cfg := g.cfg
	cfg.Announce = &announce
	cfg.AdminPassword = ""
	s2, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if announce.Len() != 0 {
		t.Fatalf("second start announced: %q", announce.String())
	}
}

func TestBootstrapGeneratesPassword(t *testing.T) {
	t.Setenv("PORTHOLE_ADMIN_PASSWORD", "")
	var announce strings.Builder
	g := startGateway(t, func(c *Config) { c.AdminPassword = ""; c.Announce = &announce })
	out := announce.String()
	lines := strings.Fields(out)
	var pw string
	for i, w := range lines {
		if w == "password:" && i+1 < len(lines) {
			pw = lines[i+1]
		}
	}
	if len(pw) < 16 {
		t.Fatalf("no generated password in %q", out)
	}
	g.login("admin", pw)
}

func TestLogin(t *testing.T) {
	g := startGateway(t)
	tests := map[string]struct {
		body   any
		status int
		want   string
	}{
		"wrong password": {map[string]string{"username": "admin", "password": "nope-nope"}, 401, "wrong user name or password"},
		"unknown user":   {map[string]string{"username": "ghost", "password": "nope-nope"}, 401, "wrong user name or password"},
		"missing fields": {map[string]string{}, 400, "password is required; username is required"},
		"malformed json": {`{"username": "admin",`, 400, "not valid JSON"},
		"unknown field":  {`{"username":"admin","password":"x","pin":1}`, 400, `unknown field "pin"`},
		"wrong type":     {`{"username":["admin"],"password":"x"}`, 400, "not valid"},
		"trailing data":  {`{"username":"a","password":"b"} {}`, 400, "after the JSON object"},
		"empty body":     {"", 400, "empty"},
		"huge body":      {`{"username":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger than"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, data, _ := g.call("POST", "/api/v1/login", "", tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, data)
			}
			if e := errBody(t, data); !strings.Contains(e.Error, tc.want) {
				t.Fatalf("error %q, want %q", e.Error, tc.want)
			}
		})
	}
	t.Run("wrong content type", func(t *testing.T) {
		req, _ := http.NewRequest("POST", g.URL+"/api/v1/login", strings.NewReader("username=admin"))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		status, data, h := g.call("GET", "/api/v1/login", "", nil)
		if status != 405 || h.Get("Allow") != "POST" {
			t.Fatalf("status %d allow %q", status, h.Get("Allow"))
		}
		errBody(t, data)
	})
	t.Run("success", func(t *testing.T) {
		var resp LoginResponse
		json.Unmarshal(g.mustCall(200, "POST", "/api/v1/login", "", map[string]string{"username": "ADMIN", "password": adminPassword}), &resp)
		if resp.User != "admin" || resp.Ticket == "" || time.Until(resp.ExpiresAt) < 23*time.Hour {
			t.Fatalf("login = %+v", resp)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g := startGateway(t, func(c *Config) { c.Now = clock })
	bad := map[string]string{"username": "admin", "password": "guess-guess"}
	for i := range 5 {
		if status, data, _ := g.call("POST", "/api/v1/login", "", bad); status != 401 {
			t.Fatalf("attempt %d: status %d %s", i+1, status, data)
		}
	}
	// Locked out now, even with the right password.
	status, data, h := g.call("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": adminPassword})
	if status != http.StatusTooManyRequests {
		t.Fatalf("status %d %s", status, data)
	}
	if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra < 1 || ra > 30 {
		t.Fatalf("Retry-After = %q", h.Get("Retry-After"))
	}
	if !strings.Contains(errBody(t, data).Error, "too many failed sign-ins") {
		t.Fatalf("body %s", data)
	}
	now = now.Add(31 * time.Second) // the gateway's clock moves on (the same variable)
	g.login("admin", adminPassword)
	if failures := g.auditedCount("auth.login_failed"); failures != 6 {
		t.Fatalf("audit has %d failed sign-ins, want 6", failures)
	}
}

func TestRenewAndLogout(t *testing.T) {
	g := startGateway(t)
	tok := g.admin()
	var renewed LoginResponse
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/renew", tok, nil), &renewed)
	if renewed.Ticket == "" {
		t.Fatal("no renewed ticket")
	}
	g.mustCall(200, "GET", "/api/v1/me", renewed.Ticket, nil)
	g.mustCall(200, "POST", "/api/v1/logout", renewed.Ticket, nil)
	// Both tickets of the session stop working.
	for _, tk := range []string{tok, renewed.Ticket} {
		status, data, h := g.call("GET", "/api/v1/me", tk, nil)
		if status != 401 || !strings.Contains(errBody(t, data).Error, "signed out") || h.Get("WWW-Authenticate") != `Bearer realm="porthole"` {
			t.Fatalf("after logout: %d %s", status, data)
		}
	}
	g.mustCall(401, "POST", "/api/v1/renew", tok, nil)
}

func TestTicketErrors(t *testing.T) {
	now := time.Now()
	g := startGateway(t, func(c *Config) { c.Now = func() time.Time { return now } })
	tok := g.admin()
	tests := map[string]struct {
		ticket string
		want   string
	}{
		"none":     {"", "no ticket"},
		"garbage":  {"hello", "not valid"},
		"tampered": {tok[:len(tok)-4] + "AAAA", "not valid"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, data, _ := g.call("GET", "/api/v1/me", tc.ticket, nil)
			if status != 401 || !strings.Contains(errBody(t, data).Error, tc.want) {
				t.Fatalf("%d %s", status, data)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		now = now.Add(25 * time.Hour)
		status, data, _ := g.call("GET", "/api/v1/me", tok, nil)
		if status != 401 || !strings.Contains(errBody(t, data).Error, "expired") {
			t.Fatalf("%d %s", status, data)
		}
	})
}

func TestTunnelValidation(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/environments", admin, map[string]string{"name": "MyEnv"})
	g.mustCall(201, "POST", "/api/v1/admin/groups", admin, map[string]string{"name": "AppPublishers", "environment": "MyEnv"})
	tests := map[string]struct {
		spec   TunnelSpec
		status int
		fields []string
	}{
		"seed example":      {TunnelSpec{Context: "myDatabase", SocketAddress: "myDatabaseHost:1433", UserGroups: "AppPublishers@MyEnv"}, 201, nil},
		"default groups":    {TunnelSpec{Context: "open", SocketAddress: "db:5432"}, 201, nil},
		"ipv6":              {TunnelSpec{Context: "v6", SocketAddress: "[::1]:5432"}, 201, nil},
		"reserved":          {TunnelSpec{Context: "backend", SocketAddress: "db:1", UserGroups: ".*@.*"}, 400, []string{"context"}},
		"reserved any case": {TunnelSpec{Context: "LICENSE", SocketAddress: "db:1"}, 400, []string{"context"}},
		"bad context":       {TunnelSpec{Context: "my db", SocketAddress: "db:1"}, 400, []string{"context"}},
		"no port":           {TunnelSpec{Context: "x", SocketAddress: "db"}, 400, []string{"socketAddress"}},
		"port range":        {TunnelSpec{Context: "x", SocketAddress: "db:70000"}, 400, []string{"socketAddress"}},
		"spaces in groups":  {TunnelSpec{Context: "x", SocketAddress: "db:1", UserGroups: "AppPublishers@MyEnv; admin@ROOT"}, 400, []string{"userGroups"}},
		"unknown group":     {TunnelSpec{Context: "x", SocketAddress: "db:1", UserGroups: "AppUsers@AnotherEnv"}, 400, []string{"userGroups"}},
		"bad regex":         {TunnelSpec{Context: "x", SocketAddress: "db:1", UserGroups: "(@.*"}, 400, []string{"userGroups"}},
		"bad local port":    {TunnelSpec{Context: "x", SocketAddress: "db:1", LocalPort: 70000}, 400, []string{"localPort"}},
		"several at once":   {TunnelSpec{Context: "api", SocketAddress: "nope", UserGroups: "x"}, 400, []string{"context", "socketAddress", "userGroups"}},
		"taken any case":    {TunnelSpec{Context: "MYDATABASE", SocketAddress: "db:1"}, 409, []string{"context"}},
	}
	for _, name := range []string{"seed example", "default groups", "ipv6", "reserved", "reserved any case", "bad context", "no port", "port range", "spaces in groups", "unknown group", "bad regex", "bad local port", "several at once", "taken any case"} {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			status, data, _ := g.call("POST", "/api/v1/admin/tunnels", admin, tc.spec)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, data)
			}
			if tc.fields == nil {
				return
			}
			e := errBody(t, data)
			if len(e.Fields) != len(tc.fields) {
				t.Fatalf("fields %v, want %v", e.Fields, tc.fields)
			}
			for _, f := range tc.fields {
				if e.Fields[f] == "" {
					t.Fatalf("no reason for %s in %v", f, e.Fields)
				}
			}
		})
	}
	// Refused input changed nothing.
	var ts []TunnelInfo
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/tunnels", admin, nil), &ts)
	if len(ts) != 3 {
		t.Fatalf("tunnels after refusals: %+v", ts)
	}
	if ts[1].UserGroups != ".*@.*" {
		t.Fatalf("default groups not applied: %+v", ts[1])
	}
}

func TestTunnelUpdateDelete(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "mysql", SocketAddress: "db:3306", LocalPort: 13306, Description: "orders"})
	var got TunnelSpec
	json.Unmarshal(g.mustCall(200, "PUT", "/api/v1/admin/tunnels/MYSQL", admin, map[string]any{"socketAddress": "db2:3306"}), &got)
	if got.SocketAddress != "db2:3306" || got.LocalPort != 13306 || got.Description != "orders" || got.UserGroups != ".*@.*" {
		t.Fatalf("partial update lost fields: %+v", got)
	}
	status, data, _ := g.call("PUT", "/api/v1/admin/tunnels/mysql", admin, map[string]any{"userGroups": ""})
	if status != 400 || errBody(t, data).Fields["userGroups"] == "" {
		t.Fatalf("emptying user groups: %d %s", status, data)
	}
	g.mustCall(404, "PUT", "/api/v1/admin/tunnels/nope", admin, map[string]any{"description": "x"})
	g.mustCall(204, "DELETE", "/api/v1/admin/tunnels/mysql", admin, nil)
	g.mustCall(404, "DELETE", "/api/v1/admin/tunnels/mysql", admin, nil)
	evs, _ := g.events(t.Context(), eventFilter("tunnel."))
	if len(evs) != 3 || evs[0].Kind != "tunnel.delete" || evs[1].Kind != "tunnel.update" || evs[2].Kind != "tunnel.create" {
		t.Fatalf("audit: %+v", evs)
	}
	before := evs[1].Details["before"].(map[string]any)
	after := evs[1].Details["after"].(map[string]any)
	if before["socketAddress"] != "db:3306" || after["socketAddress"] != "db2:3306" || evs[1].Actor != "admin" {
		t.Fatalf("update audit before/after: %+v", evs[1])
	}
}

func TestAdminOnly(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	alice := g.addUser(admin, "alice", "staff@Prod")
	for _, path := range []string{"/api/v1/admin/tunnels", "/api/v1/admin/users", "/api/v1/admin/groups", "/api/v1/admin/environments", "/api/v1/admin/audit"} {
		status, data, _ := g.call("GET", path, alice, nil)
		if status != 403 {
			t.Fatalf("%s as non-admin: %d %s", path, status, data)
		}
		g.mustCall(401, "GET", path, "", nil)
	}
	g.mustCall(403, "POST", "/api/v1/admin/tunnels", alice, TunnelSpec{Context: "x", SocketAddress: "h:1"})
}

func TestIdentities(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/environments", admin, map[string]string{"name": "Prod"})
	g.mustCall(409, "POST", "/api/v1/admin/environments", admin, map[string]string{"name": "prod"})
	status, data, _ := g.call("POST", "/api/v1/admin/groups", admin, map[string]string{"name": "dba", "environment": "Nowhere"})
	if status != 400 || errBody(t, data).Fields["environment"] == "" {
		t.Fatalf("group in missing env: %d %s", status, data)
	}
	g.mustCall(201, "POST", "/api/v1/admin/groups", admin, map[string]string{"name": "dba", "environment": "Prod"})
	status, data, _ = g.call("POST", "/api/v1/admin/users", admin, UserSpec{Username: "bad name", Password: "short", Groups: []string{"nope@Prod"}})
	if e := errBody(t, data); status != 400 || len(e.Fields) != 3 {
		t.Fatalf("bad user: %d %s", status, data)
	}
	g.mustCall(201, "POST", "/api/v1/admin/users", admin, UserSpec{Username: "bob", Password: "bob-password", Groups: []string{"dba@Prod"}})
	g.mustCall(409, "POST", "/api/v1/admin/users", admin, UserSpec{Username: "BOB", Password: "bob-password"})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "pg", SocketAddress: "db:5432", UserGroups: "dba@Prod"})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "pg2", SocketAddress: "db:5432", UserGroups: "dba@.*"})
	// In use: refused with the list of tunnels.
	status, data, _ = g.call("DELETE", "/api/v1/admin/groups/dba@Prod", admin, nil)
	if status != 409 || !strings.Contains(errBody(t, data).Error, "pg, pg2") {
		t.Fatalf("delete referenced group: %d %s", status, data)
	}
	status, data, _ = g.call("DELETE", "/api/v1/admin/environments/Prod", admin, nil)
	if status != 409 || !strings.Contains(errBody(t, data).Error, "pg") {
		t.Fatalf("delete referenced env: %d %s", status, data)
	}
	g.mustCall(409, "DELETE", "/api/v1/admin/environments/ROOT", admin, nil)
	g.mustCall(409, "DELETE", "/api/v1/admin/groups/admin@ROOT", admin, nil)
	g.mustCall(400, "DELETE", "/api/v1/admin/groups/dba", admin, nil)
	// The last administrator stays.
	status, data, _ = g.call("PUT", "/api/v1/admin/users/admin", admin, map[string]any{"disabled": true})
	if status != 409 || !strings.Contains(errBody(t, data).Error, "last enabled administrator") {
		t.Fatalf("disable last admin: %d %s", status, data)
	}
	g.mustCall(409, "DELETE", "/api/v1/admin/users/admin", admin, nil)
	g.mustCall(409, "PUT", "/api/v1/admin/users/admin", admin, map[string]any{"groups": []string{}})
	// After removing the references, deletes go through.
	g.mustCall(204, "DELETE", "/api/v1/admin/tunnels/pg", admin, nil)
	g.mustCall(204, "DELETE", "/api/v1/admin/tunnels/pg2", admin, nil)
	g.mustCall(409, "DELETE", "/api/v1/admin/environments/Prod", admin, nil) // still has a group
	g.mustCall(204, "DELETE", "/api/v1/admin/groups/dba@Prod", admin, nil)
	g.mustCall(204, "DELETE", "/api/v1/admin/environments/Prod", admin, nil)
	var users []UserInfo
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/users", admin, nil), &users)
	if len(users) != 2 || users[1].Username != "bob" || len(users[1].Groups) != 0 {
		t.Fatalf("users: %+v", users)
	}
	if strings.Contains(string(g.mustCall(200, "GET", "/api/v1/admin/users", admin, nil)), "argon2") {
		t.Fatal("password hashes leak through the API")
	}
}

func TestUserTunnelList(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	alice := g.addUser(admin, "alice", "staff@Prod")
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "mine", SocketAddress: "db:1", UserGroups: "staff@Prod", LocalPort: 15432})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "theirs", SocketAddress: "db:2", UserGroups: "admin@ROOT"})
	var list []UserTunnel
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/tunnels", alice, nil), &list)
	if len(list) != 1 || list[0].Context != "mine" || list[0].LocalPort != 15432 || list[0].SocketAddress != "" {
		t.Fatalf("alice sees %+v", list)
	}
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/tunnels", admin, nil), &list)
	if len(list) != 1 || list[0].Context != "theirs" || list[0].SocketAddress != "db:2" {
		t.Fatalf("admin sees %+v", list)
	}
	g.mustCall(200, "GET", "/api/v1/tunnels/MINE", alice, nil)
	g.mustCall(403, "GET", "/api/v1/tunnels/theirs", alice, nil)
	g.mustCall(404, "GET", "/api/v1/tunnels/nope", alice, nil)
}

func TestAuditFilters(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	for i := range 5 {
		g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: fmt.Sprintf("t%d", i), SocketAddress: "db:1"})
	}
	var evs []AuditEvent
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/audit?kind=tunnel.&limit=2", admin, nil), &evs)
	if len(evs) != 2 || evs[0].Target != "t4" || evs[1].Target != "t3" {
		t.Fatalf("page 1: %+v", evs)
	}
	json.Unmarshal(g.mustCall(200, "GET", fmt.Sprintf("/api/v1/admin/audit?kind=tunnel.&limit=2&before=%d", evs[1].ID), admin, nil), &evs)
	if len(evs) != 2 || evs[0].Target != "t2" {
		t.Fatalf("page 2: %+v", evs)
	}
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/audit?target=t0", admin, nil), &evs)
	if len(evs) != 1 || evs[0].Actor != "admin" || evs[0].Details["after"] == nil {
		t.Fatalf("by target: %+v", evs)
	}
	g.mustCall(400, "GET", "/api/v1/admin/audit?limit=0", admin, nil)
	g.mustCall(400, "GET", "/api/v1/admin/audit?before=x", admin, nil)
}

func TestOperations(t *testing.T) {
	g := startGateway(t)
	g.mustCall(200, "GET", "/healthz", "", nil)
	g.mustCall(404, "GET", "/api/v1/nothing", "", nil)
	g.mustCall(404, "GET", "/nothing", "", nil)
	g.call("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": "wrong-wrong"})
	body := string(g.mustCall(200, "GET", "/metrics", "", nil))
	for _, want := range []string{"porthole_tunnels_active 0", "porthole_signin_failures_total 1", `porthole_tunnel_denials_total{reason="forbidden"} 0`} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}

func TestMetricsAdminOnly(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.MetricsAdminOnly = true })
	g.mustCall(401, "GET", "/metrics", "", nil)
	g.mustCall(200, "GET", "/metrics", g.admin(), nil)
}

func TestCrossOriginAPI(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	req, _ := http.NewRequest("POST", g.URL+"/api/v1/admin/tunnels", strings.NewReader(`{"context":"evil","socketAddress":"h:1"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site POST: status %d", resp.StatusCode)
	}
	g.mustCall(404, "GET", "/api/v1/admin/tunnels/evil", admin, nil)
}

// A client asks whether the gateway reaches a tunnel's target before the
// first connection; the answer never shows the address to non-admins.
func TestCheckTarget(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	alice := g.addUser(admin, "alice", "staff@Prod")
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	downAddr := closed.Addr().String()
	closed.Close()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "up", SocketAddress: echoServer(t), UserGroups: "staff@Prod"})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "down", SocketAddress: downAddr, UserGroups: "staff@Prod"})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "theirs", SocketAddress: downAddr, UserGroups: "admin@ROOT"})
	var tc TargetCheck
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/tunnels/up/check", alice, nil), &tc)
	if !tc.Reachable || !strings.HasPrefix(tc.Message, "Reachable in ") {
		t.Fatalf("up: %+v", tc)
	}
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/tunnels/down/check", alice, nil), &tc)
	if tc.Reachable || tc.Message != "Not reachable from the gateway: connection refused." || strings.Contains(tc.Message, downAddr) {
		t.Fatalf("down: %+v", tc)
	}
	errBody(t, g.mustCall(403, "POST", "/api/v1/tunnels/theirs/check", alice, nil))
	errBody(t, g.mustCall(404, "POST", "/api/v1/tunnels/nope/check", alice, nil))
	errBody(t, g.mustCall(401, "POST", "/api/v1/tunnels/up/check", "", nil))
}

// A user changes their own password: the session that did it carries on,
// every other session ends and its tunnels close with the reason.
func TestChangeOwnPassword(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	here := g.addUser(admin, "alice", "staff@Prod")
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t), UserGroups: "staff@Prod"})
	elsewhere := g.login("alice", "alice-password")
	stream := g.openStream("echo", elsewhere)
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, stream)
		ended <- err
	}()
	waitFor(t, 5*time.Second, "the tunnel registered", func() bool { return len(g.liveSnapshot(nil)) == 1 })

	for name, tc := range map[string]struct {
		body  PasswordChange
		field string
	}{
		"wrong current":  {PasswordChange{CurrentPassword: "guess-guess", NewPassword: "alice-new-password"}, "currentPassword"},
		"short new":      {PasswordChange{CurrentPassword: "alice-password", NewPassword: "short"}, "newPassword"},
		"same again":     {PasswordChange{CurrentPassword: "alice-password", NewPassword: "alice-password"}, "newPassword"},
		"no current one": {PasswordChange{NewPassword: "alice-new-password"}, "currentPassword"},
	} {
		e := errBody(t, g.mustCall(400, "POST", "/api/v1/password", here, tc.body))
		if e.Fields[tc.field] == "" {
			t.Fatalf("%s: %+v", name, e)
		}
	}
	errBody(t, g.mustCall(401, "POST", "/api/v1/password", "", PasswordChange{CurrentPassword: "alice-password", NewPassword: "alice-new-password"}))
	g.mustCall(200, "POST", "/api/v1/password", here, PasswordChange{CurrentPassword: "alice-password", NewPassword: "alice-new-password"})

	g.mustCall(200, "GET", "/api/v1/me", here, nil)
	errBody(t, g.mustCall(401, "GET", "/api/v1/me", elsewhere, nil))
	select {
	case err := <-ended:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || ce.Reason != "your password was changed" {
			t.Fatalf("the other session's tunnel ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other session's tunnel stayed open")
	}
	if status, _, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password"}); status != 401 {
		t.Fatalf("the old password still signs in: %d", status)
	}
	g.login("alice", "alice-new-password")
	evs, _ := g.events(t.Context(), eventFilter("user.password"))
	if len(evs) != 1 || evs[0].Actor != "alice" || strings.Contains(fmt.Sprint(evs[0].Details), "argon2") {
		t.Fatalf("audit %+v", evs)
	}
}

// Guessing the current password is limited like signing in.
func TestChangeOwnPasswordRateLimit(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	alice := g.addUser(admin, "alice", "staff@Prod")
	for range 5 {
		g.mustCall(400, "POST", "/api/v1/password", alice, PasswordChange{CurrentPassword: "guess-guess", NewPassword: "alice-new-password"})
	}
	status, data, h := g.call("POST", "/api/v1/password", alice, PasswordChange{CurrentPassword: "alice-password", NewPassword: "alice-new-password"})
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("status %d retry-after %q: %s", status, h.Get("Retry-After"), data)
	}
}

// A client that trickles a request body is cut off after bodyReadTimeout
// instead of holding the connection as long as it likes.
func TestTricklingBodyIsCutOff(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { bodyReadTimeout = old })
	g := startGateway(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := io.ReadAll(c)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the connection was held for %s (%v)", d, err)
	}
	if len(answer) > 0 && !strings.Contains(string(answer), "400 Bad Request") {
		t.Fatalf("answer %q", answer)
	}
	// A normal request on a kept-alive connection is not affected by the
	// deadline of the one before it.
	resp, err := http.Post(g.URL+"/api/v1/login", "application/json", strings.NewReader(`{"username":"admin","password":"`+adminPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(2 * bodyReadTimeout)
	resp, err = http.Get(g.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("kept-alive request after the deadline: %v", err)
	}
	resp.Body.Close()
}
