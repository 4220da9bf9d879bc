package acl

import (
	"regexp"
	"strings"
	"testing"
)

type dir struct {
	envs   []string
	groups []Group
}

func (d dir) HasEnvironment(name string) bool {
	for _, e := range d.envs {
		if strings.EqualFold(e, name) {
			return true
		}
	}
	return false
}

func (d dir) HasGroup(name, env string) bool {
	for _, g := range d.groups {
		if strings.EqualFold(g.Name, name) && (env == "" || strings.EqualFold(g.Env, env)) {
			return true
		}
	}
	return false
}

var testDir = dir{
	envs:   []string{"ROOT", "MyEnv", "AnotherEnv", "PDT"},
	groups: []Group{{"admin", "ROOT"}, {"AppPublishers", "MyEnv"}, {"AppUsers", "AnotherEnv"}, {"Domain Users", "PDT"}},
}

func TestCheckContext(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string // substring of the error, "" for valid
	}{
		"simple":          {"mysql", ""},
		"seed example":    {"myDatabase", ""},
		"all characters":  {"a.b_c-D9", ""},
		"64 chars":        {strings.Repeat("a", 64), ""},
		"empty":           {"", "required"},
		"65 chars":        {strings.Repeat("a", 65), "longer than 64"},
		"space":           {"my db", "only contain"},
		"slash":           {"a/b", "only contain"},
		"unicode":         {"dätabase", "only contain"},
		"dots only":       {"..", "only dots"},
		"reserved":        {"backend", "reserved"},
		"reserved case":   {"License", "reserved"},
		"reserved api":    {"API", "reserved"},
		"reserved ws":     {"ws-proxy", "reserved"},
		"reserved portal": {"portal", "reserved"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckContext(tc.in)
			checkErr(t, err, tc.want)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
}

func TestParseSocketAddress(t *testing.T) {
	tests := map[string]struct {
		in       string
		wantHost string
		wantPort int
		wantErr  string
	}{
		"host name":         {in: "myDatabaseHost:1433", wantHost: "myDatabaseHost", wantPort: 1433},
		"fqdn":              {in: "db.example.com:5432", wantHost: "db.example.com", wantPort: 5432},
		"localhost":         {in: "localhost:1433", wantHost: "localhost", wantPort: 1433},
		"ipv4":              {in: "10.0.0.5:3306", wantHost: "10.0.0.5", wantPort: 3306},
		"ipv6 bracketed":    {in: "[2001:db8::1]:5432", wantHost: "2001:db8::1", wantPort: 5432},
		"ipv6 loopback":     {in: "[::1]:5432", wantHost: "::1", wantPort: 5432},
		"underscore host":   {in: "my_db:5432", wantHost: "my_db", wantPort: 5432},
		"max port":          {in: "h:65535", wantHost: "h", wantPort: 65535},
		"empty":             {in: "", wantErr: "required"},
		"no port":           {in: "db.example.com", wantErr: "needs a port"},
		"port zero":         {in: "h:0", wantErr: "outside 1-65535"},
		"port too big":      {in: "h:65536", wantErr: "outside 1-65535"},
		"port not a number": {in: "h:mysql", wantErr: "not a number"},
		"port signed":       {in: "h:+80", wantErr: "not a number"},
		"ipv6 unbracketed":  {in: "2001:db8::1:5432", wantErr: "brackets"},
		"bad ipv6":          {in: "[2001:zz::1]:5432", wantErr: "not a valid IPv6"},
		"no host":           {in: ":5432", wantErr: "needs a host"},
		"spaces":            {in: " h:1", wantErr: "spaces"},
		"bad host":          {in: "a b:1", wantErr: "not a valid host"},
		"bad ipv4":          {in: "300.1.1.1:80", wantErr: "not a valid IPv4"},
		"scheme":            {in: "tcp://h:1", wantErr: "without a scheme"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSocketAddress(tc.in)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (got.Host != tc.wantHost || got.Port != tc.wantPort) {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestParsePatterns(t *testing.T) {
	tests := map[string]struct {
		in       string
		parseErr string
		checkErr string
	}{
		"default":                {in: ".*@.*"},
		"seed example":           {in: "AppPublishers@MyEnv;AppUsers@AnotherEnv"},
		"group any env":          {in: "admin@.*"},
		"any group of env":       {in: ".*@MyEnv"},
		"name with space":        {in: "Domain Users@PDT"},
		"case-insensitive names": {in: "ADMIN@root"},
		"spaces around entries":  {in: "group1@ROOT; group2@Test", parseErr: "spaces around it"},
		"trailing semicolon":     {in: "admin@ROOT;", parseErr: "empty"},
		"empty":                  {in: "", parseErr: "required"},
		"no at":                  {in: "admins", parseErr: "Group@Environment"},
		"two ats":                {in: "a@b@c", parseErr: "more than one"},
		"no env":                 {in: "admin@", parseErr: "both a group and an environment"},
		"bad regex":              {in: "adm(in@ROOT", parseErr: "not a valid regular expression"},
		"unknown group":          {in: "nobody@ROOT", checkErr: `group "nobody@ROOT" does not exist`},
		"unknown env":            {in: ".*@Nowhere", checkErr: `environment "Nowhere" does not exist`},
		"group in no env":        {in: "ghosts@.*", checkErr: `no environment has a group "ghosts"`},
		"regex group is fine":    {in: "App.*@MyEnv"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ps, err := ParsePatterns(tc.in)
			checkErr(t, err, tc.parseErr)
			if tc.parseErr != "" {
				return
			}
			checkErr(t, ps.Check(testDir), tc.checkErr)
			if ps.String() != tc.in {
				t.Fatalf("String() = %q, want %q", ps.String(), tc.in)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	alice := []Group{{"AppPublishers", "MyEnv"}}
	bob := []Group{{"AppUsers", "AnotherEnv"}, {"staff", "ROOT"}}
	carol := []Group{{"AppUsers", "MyEnv"}}
	tests := map[string]struct {
		patterns string
		groups   []Group
		want     bool
	}{
		"default admits anyone":      {".*@.*", carol, true},
		"default needs some group":   {".*@.*", nil, false},
		"seed: publisher in MyEnv":   {"AppPublishers@MyEnv;AppUsers@AnotherEnv", alice, true},
		"seed: user in AnotherEnv":   {"AppPublishers@MyEnv;AppUsers@AnotherEnv", bob, true},
		"seed: user in wrong env":    {"AppPublishers@MyEnv;AppUsers@AnotherEnv", carol, false},
		"env wildcard":               {".*@MyEnv", carol, true},
		"group wildcard env":         {"AppUsers@.*", carol, true},
		"whole-name match, not part": {"App@MyEnv", alice, false},
		"whole-name env":             {".*@My", alice, false},
		"prefix regex":               {"App.*@MyEnv", alice, true},
		"case-insensitive":           {"apppublishers@myenv", alice, true},
		"alternation stays anchored": {"AppUsers|staff@ROOT", bob, true},
		"alternation no partial":     {"xx|App@MyEnv", alice, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ps, err := ParsePatterns(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := ps.Allows(tc.groups); got != tc.want {
				t.Fatalf("Allows = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseGroup(t *testing.T) {
	g, err := ParseGroup("Domain Users@PDT")
	if err != nil || g.Name != "Domain Users" || g.Env != "PDT" {
		t.Fatalf("got %+v %v", g, err)
	}
	for _, bad := range []string{"", "admin", "@ROOT", "admin@", "a@b@c", " admin@ROOT", "a*@ROOT"} {
		if _, err := ParseGroup(bad); err == nil {
			t.Errorf("ParseGroup(%q) accepted", bad)
		}
	}
}

func FuzzParsePatterns(f *testing.F) {
	for _, s := range []string{".*@.*", "AppPublishers@MyEnv;AppUsers@AnotherEnv", "a@b;", "(@)", "x|y@z", "[@]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePatterns(s)
		if err != nil {
			return
		}
		// A parsed value writes back to itself and parses again.
		if ps.String() != s {
			t.Fatalf("String() = %q, want %q", ps.String(), s)
		}
		if _, err := ParsePatterns(ps.String()); err != nil {
			t.Fatalf("reparse: %v", err)
		}
		ps.Allows([]Group{{"a", "b"}})
		ps.Check(testDir)
		// Each side is a regular expression on its own, so anchoring it
		// cannot be escaped by an unbalanced ")".
		for _, p := range ps {
			for _, side := range []string{p.Group, p.Env} {
				if _, err := regexp.Compile(side); err != nil {
					t.Fatalf("side %q of %q was accepted but is no regular expression: %v", side, s, err)
				}
			}
		}
	})
}

// A side cannot close the anchoring group: "admin)|(.*" is not a regular
// expression on its own, and would otherwise admit every group.
func TestPatternsCannotEscapeTheirAnchors(t *testing.T) {
	for _, s := range []string{"admin)|(.*@Prod", "admin@ROOT)|(.*", "a)(b@c", "x@(y"} {
		if ps, err := ParsePatterns(s); err == nil {
			t.Errorf("%q accepted as %v; it admits %v", s, ps, ps.Allows([]Group{{"staff", "Prod"}, {"x", "ROOT"}}))
		}
	}
	ps, err := ParsePatterns("admin|ops@Prod")
	if err != nil {
		t.Fatal(err)
	}
	for g, want := range map[Group]bool{{"admin", "Prod"}: true, {"ops", "prod"}: true, {"xadmin", "Prod"}: false, {"adminx", "Prod"}: false, {"admin", "Prod2"}: false} {
		if got := ps.Allows([]Group{g}); got != want {
			t.Errorf("admin|ops@Prod admits %v: %v, want %v", g, got, want)
		}
	}
}

func FuzzParseSocketAddress(f *testing.F) {
	for _, s := range []string{"h:1", "[::1]:5432", "10.0.0.1:80", "a:b:c", "[x]:1", ":0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseSocketAddress(s)
		if err != nil {
			return
		}
		if a.Port < 1 || a.Port > 65535 || a.Host == "" {
			t.Fatalf("accepted %q as %+v", s, a)
		}
		// The canonical form parses to the same address.
		b, err := ParseSocketAddress(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %+v, %v", s, b, err)
		}
	})
}

func BenchmarkAllows(b *testing.B) {
	ps, err := ParsePatterns("AppPublishers@MyEnv;AppUsers@AnotherEnv;admins@.*;.*@Prod")
	if err != nil {
		b.Fatal(err)
	}
	groups := []Group{{"staff", "Dev"}, {"AppUsers", "AnotherEnv"}}
	b.ReportAllocs()
	for b.Loop() {
		if !ps.Allows(groups) {
			b.Fatal("not allowed")
		}
	}
}
