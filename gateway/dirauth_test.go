package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/internal/adtest"
	"github.com/porthole/porthole/wire"
)

// directoryConfig points a gateway at the test domain (a real Samba AD
// domain controller, started by scripts/lib/directory.sh).
func directoryConfig(d *adtest.Domain) *DirectoryConfig {
	return &DirectoryConfig{URL: d.URL, CAFile: d.CAFile, ServerName: "127.0.0.1", BindDN: d.BindDN, BindPassword: d.BindPassword,
		BaseDN: d.BaseDN, RecheckPeriod: Duration(500 * time.Millisecond)}
}

func TestDirectorySignIn(t *testing.T) {
	d := adtest.Get(t)
	user, off := adtest.Name("u"), adtest.Name("u")
	dba, ops := adtest.Name("dba"), adtest.Name("ops")
	userDN := d.AddUser(t, user, "Dir3ctory-Pass!")
	offDN := d.AddUser(t, off, "Dir3ctory-Pass!")
	dbaDN, opsDN := d.AddGroup(t, dba), d.AddGroup(t, ops)
	d.AddMember(t, dbaDN, userDN)
	d.AddMember(t, opsDN, dbaDN) // user is in ops only through dba
	d.AddMember(t, dbaDN, offDN)
	d.Disable(t, offDN)

	g := startGateway(t, func(c *Config) { c.Directory = directoryConfig(d) })
	admin := g.admin()
	// ops@PORTHOLE exists, so the nested directory group ops maps to it by
	// name; dba maps to readers@Prod by an administrator's mapping.
	g.mustCall(201, "POST", "/api/v1/admin/environments", admin, map[string]string{"name": "PORTHOLE"})
	g.mustCall(201, "POST", "/api/v1/admin/groups", admin, map[string]string{"name": ops, "environment": "PORTHOLE"})
	g.mustCall(201, "POST", "/api/v1/admin/environments", admin, map[string]string{"name": "Prod"})
	g.mustCall(201, "POST", "/api/v1/admin/groups", admin, map[string]string{"name": "readers", "environment": "Prod"})
	g.mustCall(200, "PUT", "/api/v1/admin/directory/mappings", admin, []GroupMapping{{DirectoryGroup: strings.ToUpper(dba), Group: "readers@prod"}})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "db", SocketAddress: echoServer(t), UserGroups: ops + "@PORTHOLE"})

	var resp LoginResponse
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/login", "", map[string]string{"username": user, "password": "Dir3ctory-Pass!"}), &resp)
	want := []string{ops + "@PORTHOLE", "readers@Prod"}
	if !slices.Equal(sortedStrings(resp.Groups), sortedStrings(want)) {
		t.Fatalf("directory user's groups %v, want %v", resp.Groups, want)
	}
	var u UserInfo
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/users/"+user, admin, nil), &u)
	if u.Source != "directory" || !slices.ContainsFunc(u.DirectoryGroups, func(s string) bool { return strings.EqualFold(s, "Domain Users") }) {
		t.Fatalf("the admin API shows %+v, want source directory with its directory groups", u)
	}

	for name, tc := range map[string]struct {
		user, password string
		status         int
		msg            string
	}{
		"wrong password":   {user, "Wrong-Pass!", 401, "wrong user name or password"},
		"unknown account":  {"nobody-" + user, "Dir3ctory-Pass!", 401, "wrong user name or password"},
		"disabled account": {off, "Dir3ctory-Pass!", 403, "disabled in the directory"},
		"injection *":      {"*", "Dir3ctory-Pass!", 401, "wrong user name or password"},
		"injection )(":     {user + ")(cn=*", "Dir3ctory-Pass!", 401, "wrong user name or password"},
	} {
		t.Run(name, func(t *testing.T) {
			status, data, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": tc.user, "password": tc.password})
			if e := errBody(t, data); status != tc.status || !strings.Contains(e.Error, tc.msg) {
				t.Fatalf("%d %s, want %d %q", status, data, tc.status, tc.msg)
			}
		})
	}
	t.Run("admin cannot set a directory account's password", func(t *testing.T) {
		status, data, _ := g.call("PUT", "/api/v1/admin/users/"+user, admin, map[string]string{"password": "local-password-1"})
		if status != 400 || !strings.Contains(string(data), "changed in the directory") {
			t.Fatalf("%d %s", status, data)
		}
	})

	// A live tunnel ends within the re-check period once the user leaves
	// the directory group that gave access (here: dba, through which the
	// user was in ops).
	c := g.openStream("db", resp.Ticket)
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PING" {
		t.Fatalf("echo through the tunnel: %q %v", buf, err)
	}
	errc := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, c); errc <- err }()
	d.RemoveMember(t, dbaDN, userDN)
	select {
	case err := <-errc:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseUnauthorized || !strings.Contains(ce.Reason, "removed from") {
			t.Fatalf("tunnel ended with %v, want the removal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tunnel outlived the user's removal from the directory group")
	}
	status, _, _ := g.call("GET", "/api/v1/me", resp.Ticket, nil)
	if status != 401 {
		t.Fatalf("the old ticket still works after the removal: %d", status)
	}
	if n := g.auditedCount("user.update"); n == 0 {
		t.Fatal("the directory's change of the user's groups was not audited")
	}
	// Signing in again gives only what is left.
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/login", "", map[string]string{"username": user, "password": "Dir3ctory-Pass!"}), &resp)
	if len(resp.Groups) != 0 {
		t.Fatalf("groups after the removal: %v", resp.Groups)
	}
}

func TestDirectoryDownLocalAdminStillSignsIn(t *testing.T) {
	g := startGateway(t, func(c *Config) {
		c.Directory = &DirectoryConfig{URL: "ldap://127.0.0.1:1", BindDN: "cn=gw", BindPassword: "x", BaseDN: "DC=corp,DC=example", Timeout: Duration(2 * time.Second)}
	})
	status, data, h := g.call("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "whatever-it-is"})
	if e := errBody(t, data); status != 503 || !strings.Contains(e.Error, "ldap://127.0.0.1:1") || !strings.Contains(e.Error, "local accounts still can") || h.Get("Retry-After") == "" {
		t.Fatalf("directory down: %d %s", status, data)
	}
	g.admin() // the local administrator signs in
	// A directory outage is not a guess: it does not count toward the
	// rate limit.
	for range 8 {
		if status, _, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "whatever-it-is"}); status != 503 {
			t.Fatalf("attempt answered %d, want 503 each time", status)
		}
	}
}

// FuzzGroupMapping: whatever the directory groups and mappings, only
// groups that exist come out, each once, and each is explained by a
// directory group the user is in (same name in the domain environment,
// or a mapping of one).
func FuzzGroupMapping(f *testing.F) {
	f.Add("DBA,Domain Users", "DBA=readers@Prod", "PDT")
	f.Add("dba", "DBA=readers@prod;dba=DBA@PDT", "pdt")
	f.Add("", "=@", "")
	f.Add("a@b", "a@b=a@b", "b")
	cat := &catalog{groups: []store.Group{{Name: "DBA", Environment: "PDT"}, {Name: "readers", Environment: "Prod"}, {Name: "Domain Users", Environment: "PDT"}}}
	f.Fuzz(func(t *testing.T, groups, mappings, env string) {
		var dg []string
		if groups != "" {
			dg = strings.Split(groups, ",")
		}
		var ms []GroupMapping
		for _, m := range strings.Split(mappings, ";") {
			k, v, _ := strings.Cut(m, "=")
			ms = append(ms, GroupMapping{DirectoryGroup: k, Group: v})
		}
		out := mapGroups(dg, ms, env, cat)
		seen := map[string]bool{}
		for _, g := range out {
			key := strings.ToLower(g.Name + "@" + g.Environment)
			if seen[key] {
				t.Fatalf("%s twice in %v", key, out)
			}
			seen[key] = true
			if !cat.HasGroup(g.Name, g.Environment) || g.Environment == "" {
				t.Fatalf("%v does not exist", g)
			}
			explained := false
			for _, d := range dg {
				if strings.EqualFold(d, g.Name) && strings.EqualFold(env, g.Environment) {
					explained = true
				}
				for _, m := range ms {
					if strings.EqualFold(m.DirectoryGroup, d) && strings.EqualFold(m.Group, g.Name+"@"+g.Environment) {
						explained = true
					}
				}
			}
			if !explained {
				t.Fatalf("%v came from nowhere (groups %q, mappings %q, env %q)", g, dg, ms, env)
			}
		}
		if len(dg) == 0 && len(out) > 0 {
			t.Fatalf("no directory groups but %v", out)
		}
	})
}
