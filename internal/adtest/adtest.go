// Package adtest gives tests the private Samba Active Directory domain
// controller that scripts/test starts (scripts/lib/directory.sh), and
// makes the accounts and groups a test needs in it, each with a name of
// its own so tests never see each other's.
package adtest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
)

// Domain is the running test domain.
type Domain struct {
	URL, CAFile, BaseDN, Realm string
	// Domain is the NetBIOS name, "PORTHOLE".
	Domain                 string
	AdminDN, AdminPassword string
	// BindDN and BindPassword are the gateway's service account, which
	// owns the SPN HTTP/localhost whose keys are in Keytab.
	BindDN, BindPassword string
	Keytab, Krb5Conf     string
	// SMBConf is the domain controller's smb.conf (for Samba's ntlm_auth).
	SMBConf string
	tls     *tls.Config
	usersDN string
}

// Get returns the domain from PORTHOLE_TEST_AD_*; without it the test is
// skipped, or fails under PORTHOLE_REQUIRE_AD=1 (scripts/test sets it).
func Get(t testing.TB) *Domain {
	t.Helper()
	url := os.Getenv("PORTHOLE_TEST_AD_URL")
	if url == "" {
		if os.Getenv("PORTHOLE_REQUIRE_AD") != "" {
			t.Fatal("PORTHOLE_REQUIRE_AD is set but PORTHOLE_TEST_AD_URL is not: scripts/test starts the Samba domain controller")
		}
		t.Skip("no test Active Directory (PORTHOLE_TEST_AD_URL): scripts/test starts one")
	}
	d := &Domain{URL: url, CAFile: os.Getenv("PORTHOLE_TEST_AD_CA"), BaseDN: os.Getenv("PORTHOLE_TEST_AD_BASE"),
		Realm: os.Getenv("PORTHOLE_TEST_AD_REALM"), AdminDN: os.Getenv("PORTHOLE_TEST_AD_ADMIN"),
		AdminPassword: os.Getenv("PORTHOLE_TEST_AD_ADMIN_PASSWORD"), BindDN: os.Getenv("PORTHOLE_TEST_AD_BIND"),
		BindPassword: os.Getenv("PORTHOLE_TEST_AD_BIND_PASSWORD"), Keytab: os.Getenv("PORTHOLE_TEST_KEYTAB"),
		Krb5Conf: os.Getenv("PORTHOLE_TEST_KRB5_CONF"), SMBConf: os.Getenv("PORTHOLE_TEST_AD_SMBCONF"), Domain: "PORTHOLE"}
	d.usersDN = "CN=Users," + d.BaseDN
	pem, err := os.ReadFile(d.CAFile)
	if err != nil {
		t.Fatalf("test AD CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return d
}

func (d *Domain) admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(d.URL, ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		t.Fatalf("connect to the test AD: %v", err)
	}
	if err := c.Bind(d.AdminDN, d.AdminPassword); err != nil {
		c.Close()
		t.Fatalf("bind to the test AD as Administrator: %v", err)
	}
	return c
}

// Name returns a fresh name with prefix (at most 20 characters, AD's
// limit for account names).
func Name(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	n := prefix + hex.EncodeToString(b)
	if len(n) > 20 {
		n = n[len(n)-20:]
	}
	return n
}

// UserDN is the DN of an account made by AddUser.
func (d *Domain) UserDN(name string) string { return "CN=" + ldap.EscapeDN(name) + "," + d.usersDN }

// GroupDN is the DN of a group made by AddGroup.
func (d *Domain) GroupDN(name string) string { return d.UserDN(name) }

// AddUser creates an enabled account with a password and removes it when
// the test ends.
func (d *Domain) AddUser(t testing.TB, name, password string) string {
	t.Helper()
	c := d.admin(t)
	defer c.Close()
	dn := d.UserDN(name)
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{name})
	add.Attribute("userPrincipalName", []string{name + "@" + strings.ToLower(d.Realm)})
	add.Attribute("unicodePwd", []string{unicodePwd(password)})
	add.Attribute("userAccountControl", []string{"512"}) // a normal, enabled account
	if err := c.Add(add); err != nil {
		t.Fatalf("add AD user %s: %v", name, err)
	}
	t.Cleanup(func() { d.remove(dn) })
	return dn
}

// AddGroup creates a global security group and removes it when the test
// ends.
func (d *Domain) AddGroup(t testing.TB, name string) string {
	t.Helper()
	c := d.admin(t)
	defer c.Close()
	dn := d.GroupDN(name)
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "group"})
	add.Attribute("sAMAccountName", []string{name})
	if err := c.Add(add); err != nil {
		t.Fatalf("add AD group %s: %v", name, err)
	}
	t.Cleanup(func() { d.remove(dn) })
	return dn
}

func (d *Domain) remove(dn string) {
	c, err := ldap.DialURL(d.URL, ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		return
	}
	defer c.Close()
	if c.Bind(d.AdminDN, d.AdminPassword) == nil {
		c.Del(ldap.NewDelRequest(dn, nil))
	}
}

// AddMember puts memberDN (an account or a group) into group.
func (d *Domain) AddMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	d.modify(t, groupDN, func(m *ldap.ModifyRequest) { m.Add("member", []string{memberDN}) })
}

// RemoveMember takes memberDN out of group.
func (d *Domain) RemoveMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	d.modify(t, groupDN, func(m *ldap.ModifyRequest) { m.Delete("member", []string{memberDN}) })
}

// Disable disables an account (userAccountControl ACCOUNTDISABLE).
func (d *Domain) Disable(t testing.TB, dn string) {
	t.Helper()
	d.modify(t, dn, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{"514"}) })
}

func (d *Domain) modify(t testing.TB, dn string, f func(*ldap.ModifyRequest)) {
	t.Helper()
	c := d.admin(t)
	defer c.Close()
	m := ldap.NewModifyRequest(dn, nil)
	f(m)
	if err := c.Modify(m); err != nil {
		t.Fatalf("modify %s in the test AD: %v", dn, err)
	}
}

// unicodePwd encodes a password as AD wants it set: the quoted password
// in UTF-16LE.
func unicodePwd(pw string) string {
	u := utf16.Encode([]rune("\"" + pw + "\""))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

// Kinit gets a Kerberos ticket for user with Debian's MIT kinit, as a user
// on a domain-joined Linux machine would, into a ticket cache of the
// test's own, and points KRB5_CONFIG and KRB5CCNAME at it for the rest of
// the test.
func (d *Domain) Kinit(t *testing.T, user, password string) {
	t.Helper()
	kinit, err := exec.LookPath("kinit")
	if err != nil {
		t.Fatal("kinit is missing (Debian's krb5-user): scripts/test installs it")
	}
	cache := "FILE:" + filepath.Join(t.TempDir(), "krb5cc")
	t.Setenv("KRB5_CONFIG", d.Krb5Conf)
	t.Setenv("KRB5CCNAME", cache)
	cmd := exec.Command(kinit, user+"@"+d.Realm)
	cmd.Stdin = strings.NewReader(password + "\n")
	cmd.Env = append(os.Environ(), "KRB5_CONFIG="+d.Krb5Conf, "KRB5CCNAME="+cache)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kinit %s: %v %s", user, err, b)
	}
}
