package directory

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/porthole/porthole/internal/adtest"
)

// A real Samba AD domain controller (scripts/lib/directory.sh starts it).
func newDirectory(t *testing.T, d *adtest.Domain, mod func(*Config)) *Directory {
	t.Helper()
	cfg := Config{URL: d.URL, CAFile: d.CAFile, ServerName: "127.0.0.1", BindDN: d.BindDN, BindPassword: d.BindPassword, BaseDN: d.BaseDN}
	if mod != nil {
		mod(&cfg)
	}
	dir, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestActiveDirectory(t *testing.T) {
	d := adtest.Get(t)
	dir := newDirectory(t, d, nil)
	ctx := t.Context()
	user, other := adtest.Name("u"), adtest.Name("u")
	userDN := d.AddUser(t, user, "Corr3ct-Horse!")
	otherDN := d.AddUser(t, other, "Corr3ct-Horse!")
	inner, outer := adtest.Name("dba"), adtest.Name("ops")
	innerDN, outerDN := d.AddGroup(t, inner), d.AddGroup(t, outer)
	d.AddMember(t, innerDN, userDN)
	d.AddMember(t, outerDN, innerDN) // outer contains inner: user is in outer through it

	acct, err := dir.Authenticate(ctx, user, "Corr3ct-Horse!")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Domain Users", inner, outer}
	if !sameFold(acct.Groups, want) || !strings.EqualFold(acct.Username, user) || !strings.EqualFold(acct.DN, userDN) {
		t.Fatalf("account %+v, want groups %v (nested and primary included)", acct, want)
	}

	t.Run("direct groups only", func(t *testing.T) {
		direct := newDirectory(t, d, func(c *Config) { c.DirectGroupsOnly = true })
		acct, err := direct.Lookup(ctx, user)
		if err != nil || !sameFold(acct.Groups, []string{"Domain Users", inner}) {
			t.Fatalf("direct groups: %+v %v", acct, err)
		}
	})
	for name, tc := range map[string]struct {
		user, password string
		want           error
	}{
		"wrong password":  {user, "Wrong-Horse!", ErrBadCredentials},
		"empty password":  {user, "", ErrBadCredentials},
		"unknown account": {"nobody-" + user, "Corr3ct-Horse!", ErrNoSuchUser},
		"injection *":     {"*", "Corr3ct-Horse!", ErrNoSuchUser},
		"injection )(":    {user + ")(sAMAccountName=*", "Corr3ct-Horse!", ErrNoSuchUser},
		"injection |":     {"*)(|(sAMAccountName=*", "Corr3ct-Horse!", ErrNoSuchUser},
		"NUL":             {user + "\x00", "Corr3ct-Horse!", ErrNoSuchUser},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dir.Authenticate(ctx, tc.user, tc.password)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authenticate(%q): %v, want %v", tc.user, err, tc.want)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		d.Disable(t, otherDN)
		if _, err := dir.Authenticate(ctx, other, "Corr3ct-Horse!"); !errors.Is(err, ErrDisabled) {
			t.Fatalf("disabled account: %v, want ErrDisabled", err)
		}
		if _, err := dir.Lookup(ctx, other); !errors.Is(err, ErrDisabled) {
			t.Fatalf("lookup of a disabled account: %v, want ErrDisabled", err)
		}
	})
	t.Run("removed from a group", func(t *testing.T) {
		d.RemoveMember(t, innerDN, userDN)
		acct, err := dir.Lookup(ctx, user)
		if err != nil || !sameFold(acct.Groups, []string{"Domain Users"}) {
			t.Fatalf("after removal: %+v %v", acct, err)
		}
	})
	t.Run("wrong service password", func(t *testing.T) {
		bad := newDirectory(t, d, func(c *Config) { c.BindPassword = "wrong" })
		if _, err := bad.Authenticate(ctx, user, "Corr3ct-Horse!"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "service account") {
			t.Fatalf("wrong service password: %v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		bad := newDirectory(t, d, func(c *Config) { c.CAFile = "" })
		if err := bad.Check(ctx); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("unknown CA: %v", err)
		}
	})
}

func TestDirectoryDown(t *testing.T) {
	dir, err := New(Config{URL: "ldap://127.0.0.1:1", BindDN: "cn=x", BindPassword: "y", BaseDN: "DC=example,DC=com"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dir.Authenticate(t.Context(), "alice", "pw")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "ldap://127.0.0.1:1") {
		t.Fatalf("directory down: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{URL: "ldaps://dc.example.com", BindDN: "cn=x", BindPassword: "y", BaseDN: "DC=example,DC=com"}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"scheme":       {func(c *Config) { c.URL = "http://dc" }, "ldaps://host:636"},
		"no bind":      {func(c *Config) { c.BindPassword = "" }, "bindDN and its password"},
		"no base":      {func(c *Config) { c.BaseDN = "" }, "baseDN is required"},
		"bad base":     {func(c *Config) { c.BaseDN = "not a dn" }, "baseDN"},
		"filter":       {func(c *Config) { c.UserFilter = "(uid=x)" }, "must contain {username}"},
		"broken":       {func(c *Config) { c.UserFilter = "(uid={username}" }, "userFilter"},
		"group filter": {func(c *Config) { c.GroupFilter = "(member=x)" }, "must contain {dn}"},
		"ca missing":   {func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "caFile"},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if _, err := New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}

func TestDomainSID(t *testing.T) {
	// S-1-5-21-3811122971-943994414-1460985711-1104
	b, _ := hex.DecodeString("010500000000000515000000" + "1b1f29e3" + "2e364438" + "6fdf1457" + "50040000")
	got, ok := domainSID(b)
	if !ok || got != "S-1-5-21-3811122971-943994414-1460985711" {
		t.Fatalf("domainSID = %q %v", got, ok)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 5, 0, 0, 0, 0, 0, 5}, {1, 1, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0}} {
		if _, ok := domainSID(bad); ok {
			t.Fatalf("domainSID(%x) accepted", bad)
		}
	}
}

// FuzzUserFilter: whatever the name, the filled-in filter parses and
// still says exactly "sAMAccountName equals that name": no name can add a
// clause, a wildcard or a second condition (LDAP injection).
func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "a)(uid=*", "*)(|(objectClass=*", "\\2a", "é", "\x00", "a(b)c\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		filter := UserFilter("(sAMAccountName={username})", name)
		p, err := ldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("filter for %q does not parse: %v (%s)", name, err, filter)
		}
		if p.Tag != ldap.FilterEqualityMatch || len(p.Children) != 2 {
			t.Fatalf("filter for %q is not one equality: %s", name, filter)
		}
		if got := p.Children[1].Data.String(); got != name {
			t.Fatalf("filter for %q compares with %q", name, got)
		}
	})
}

// sameFold compares two lists of names ignoring case and order.
func sameFold(a, b []string) bool {
	a, b = lowerSorted(a), lowerSorted(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func lowerSorted(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	slices.Sort(out)
	return out
}
