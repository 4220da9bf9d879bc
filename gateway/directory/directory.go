// Package directory signs users in against an LDAP directory, Active
// Directory first: it finds the account with a service bind, checks that
// it is enabled, proves the password with a bind as the account, and reads
// the groups it belongs to, nested ones included (AD's
// LDAP_MATCHING_RULE_IN_CHAIN) and its primary group ("Domain Users").
//
// Each operation opens its own connection and closes it: sign-ins are rare
// next to tunnel traffic, and a fresh connection never carries a bind
// from an earlier user.
package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Sentinel errors for errors.Is.
var (
	// ErrBadCredentials: the password is wrong (or the name unknown).
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrNoSuchUser: the directory has no account of that name.
	ErrNoSuchUser = errors.New("no such account in the directory")
	// ErrDisabled: the account exists but is disabled or locked.
	ErrDisabled = errors.New("the account is disabled in the directory")
	// ErrUnavailable: the directory cannot be reached or refused the
	// service account.
	ErrUnavailable = errors.New("the directory is not available")
)

// InChainRule is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: a group
// filter with it matches nested memberships too.
const InChainRule = "1.2.840.113556.1.4.1941"

// Defaults for an Active Directory.
const (
	DefaultUserFilter   = "(&(objectClass=user)(objectCategory=person)(sAMAccountName={username}))"
	DefaultNestedFilter = "(&(objectClass=group)(member:" + InChainRule + ":={dn}))"
	DefaultDirectFilter = "(&(objectClass=group)(member={dn}))"
	DefaultUserAttr     = "sAMAccountName"
	DefaultGroupAttr    = "cn"
	DefaultTimeout      = 10 * time.Second
)

// Config says where the directory is and how to read it. Every field
// documents what its zero value means.
type Config struct {
	// URL is ldaps://host[:636] or ldap://host[:389]; required.
	URL string
	// StartTLS upgrades an ldap:// connection before anything is sent;
	// false sends ldap:// in the clear (only sensible on loopback).
	StartTLS bool
	// CAFile is a PEM bundle to verify the directory's certificate; ""
	// means the system's roots.
	CAFile string
	// ServerName is the name the certificate must carry; "" means the
	// URL's host.
	ServerName string
	// BindDN and BindPassword are the service account that searches;
	// both required (anonymous search is refused by AD anyway).
	BindDN, BindPassword string
	// BaseDN is where users (and groups) are searched; required.
	BaseDN string
	// UserFilter finds an account; {username} is replaced by the escaped
	// name. "" means DefaultUserFilter.
	UserFilter string
	// UserAttr holds the account name; "" means sAMAccountName.
	UserAttr string
	// GroupBaseDN is where groups are searched; "" means BaseDN.
	GroupBaseDN string
	// GroupFilter finds the groups of an account; {dn} is replaced by the
	// account's escaped DN. "" means DefaultNestedFilter, or
	// DefaultDirectFilter when DirectGroupsOnly.
	GroupFilter string
	// DirectGroupsOnly reads only direct memberships (directories without
	// the in-chain rule, such as OpenLDAP).
	DirectGroupsOnly bool
	// GroupAttr holds a group's name; "" means cn.
	GroupAttr string
	// Timeout bounds each operation; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Account is what the directory says about a user.
type Account struct {
	// Username is the account name as the directory writes it.
	Username string
	DN       string
	// Groups are the names of the groups the account is in, nested and
	// primary ones included, sorted.
	Groups []string
}

// Directory reads accounts from one LDAP directory.
type Directory struct {
	cfg Config
	tls *tls.Config
}

// New checks cfg and returns a Directory. It does not connect.
func New(cfg Config) (*Directory, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, fmt.Errorf("directory: url %q: write it as ldaps://host:636 or ldap://host:389", cfg.URL)
	}
	if cfg.BindDN == "" || cfg.BindPassword == "" {
		return nil, errors.New("directory: bindDN and its password are required (the service account that searches)")
	}
	if cfg.BaseDN == "" {
		return nil, errors.New("directory: baseDN is required")
	}
	if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("directory: baseDN %q: %w", cfg.BaseDN, err)
	}
	if cfg.UserFilter == "" {
		cfg.UserFilter = DefaultUserFilter
	}
	if cfg.UserAttr == "" {
		cfg.UserAttr = DefaultUserAttr
	}
	if cfg.GroupBaseDN == "" {
		cfg.GroupBaseDN = cfg.BaseDN
	}
	if cfg.GroupFilter == "" {
		cfg.GroupFilter = DefaultNestedFilter
		if cfg.DirectGroupsOnly {
			cfg.GroupFilter = DefaultDirectFilter
		}
	}
	if cfg.GroupAttr == "" {
		cfg.GroupAttr = DefaultGroupAttr
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if !strings.Contains(cfg.UserFilter, "{username}") {
		return nil, fmt.Errorf("directory: userFilter %q must contain {username}", cfg.UserFilter)
	}
	if _, err := ldap.CompileFilter(UserFilter(cfg.UserFilter, "x")); err != nil {
		return nil, fmt.Errorf("directory: userFilter %q: %w", cfg.UserFilter, err)
	}
	if !strings.Contains(cfg.GroupFilter, "{dn}") {
		return nil, fmt.Errorf("directory: groupFilter %q must contain {dn}", cfg.GroupFilter)
	}
	if _, err := ldap.CompileFilter(GroupFilter(cfg.GroupFilter, "CN=x,DC=y")); err != nil {
		return nil, fmt.Errorf("directory: groupFilter %q: %w", cfg.GroupFilter, err)
	}
	d := &Directory{cfg: cfg}
	host := u.Hostname()
	if cfg.ServerName != "" {
		host = cfg.ServerName
	}
	d.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("directory: caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("directory: caFile %s holds no PEM certificate", cfg.CAFile)
		}
		d.tls.RootCAs = pool
	}
	return d, nil
}

// URL is the directory's address, for messages.
func (d *Directory) URL() string { return d.cfg.URL }

// UserFilter fills a user filter template with an escaped user name, so
// that no name can change the filter's structure (LDAP injection).
func UserFilter(template, username string) string {
	return strings.ReplaceAll(template, "{username}", ldap.EscapeFilter(username))
}

// GroupFilter fills a group filter template with an escaped DN.
func GroupFilter(template, dn string) string {
	return strings.ReplaceAll(template, "{dn}", ldap.EscapeFilter(dn))
}

// dial opens a secured connection to the directory, not yet bound.
func (d *Directory) dial(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{Timeout: d.cfg.Timeout}
	if dl, ok := ctx.Deadline(); ok {
		dialer.Deadline = dl
	}
	c, err := ldap.DialURL(d.cfg.URL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(d.tls))
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrUnavailable, d.cfg.URL, err)
	}
	c.SetTimeout(d.cfg.Timeout)
	if d.cfg.StartTLS && strings.HasPrefix(d.cfg.URL, "ldap://") {
		if err := c.StartTLS(d.tls); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: StartTLS with %s: %v", ErrUnavailable, d.cfg.URL, err)
		}
	}
	return c, nil
}

// connect dials the directory and binds as the service account.
func (d *Directory) connect(ctx context.Context) (*ldap.Conn, error) {
	c, err := d.dial(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(d.cfg.BindDN, d.cfg.BindPassword); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: the service account %q cannot sign in to %s: %v", ErrUnavailable, d.cfg.BindDN, d.cfg.URL, err)
	}
	return c, nil
}

// Authenticate proves username's password and returns the account with
// its groups. A wrong password, an unknown name and an empty password are
// all ErrBadCredentials (wrapped with ErrNoSuchUser for an unknown name);
// a disabled account is ErrDisabled; a directory that does not answer is
// ErrUnavailable.
func (d *Directory) Authenticate(ctx context.Context, username, password string) (Account, error) {
	if password == "" {
		// A simple bind without a password is an anonymous bind, which
		// many servers accept: never let it count as a sign-in.
		return Account{}, ErrBadCredentials
	}
	c, err := d.connect(ctx)
	if err != nil {
		return Account{}, err
	}
	defer c.Close()
	acct, err := d.find(c, username)
	if err != nil {
		return Account{}, err
	}
	// The password is proved on a connection of its own, so the service
	// account's bind stays on the searching one.
	uc, err := d.dial(ctx)
	if err != nil {
		return Account{}, err
	}
	defer uc.Close()
	if err := uc.Bind(acct.DN, password); err != nil {
		return Account{}, bindError(err)
	}
	return acct, nil
}

// bindError maps a failed bind as a user: Active Directory says why in
// the diagnostic ("data 52e" wrong password, "data 533" disabled, "data
// 775" locked out, "data 701"/"532" expired).
func bindError(err error) error {
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	msg := err.Error()
	for _, code := range []string{"data 533", "data 775", "data 701", "data 532"} {
		if strings.Contains(msg, code) {
			return fmt.Errorf("%w (%s)", ErrDisabled, code)
		}
	}
	return ErrBadCredentials
}

// Lookup reads an account and its groups without its password: for a
// Kerberos sign-in (the ticket proved who it is) and the periodic
// re-check of signed-in users.
func (d *Directory) Lookup(ctx context.Context, username string) (Account, error) {
	c, err := d.connect(ctx)
	if err != nil {
		return Account{}, err
	}
	defer c.Close()
	return d.find(c, username)
}

// Check connects and binds as the service account: the directory is
// reachable and the configuration works.
func (d *Directory) Check(ctx context.Context) error {
	c, err := d.connect(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

// accountDisable is userAccountControl's ACCOUNTDISABLE bit; lockoutTime
// non-zero means locked out.
const accountDisable = 0x2

func (d *Directory) find(c *ldap.Conn, username string) (Account, error) {
	if username == "" || strings.ContainsRune(username, 0) {
		return Account{}, fmt.Errorf("%w: %w", ErrBadCredentials, ErrNoSuchUser)
	}
	res, err := c.Search(ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, int(d.cfg.Timeout/time.Second), false,
		UserFilter(d.cfg.UserFilter, username),
		[]string{d.cfg.UserAttr, "userAccountControl", "lockoutTime", "accountExpires", "primaryGroupID", "objectSid"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return Account{}, fmt.Errorf("%w: search %s: %v", ErrUnavailable, d.cfg.URL, err)
	}
	if res == nil || len(res.Entries) == 0 {
		return Account{}, fmt.Errorf("%w: %w", ErrBadCredentials, ErrNoSuchUser)
	}
	if len(res.Entries) > 1 {
		return Account{}, fmt.Errorf("%w: the user filter matches more than one account for %q", ErrUnavailable, username)
	}
	e := res.Entries[0]
	acct := Account{Username: e.GetAttributeValue(d.cfg.UserAttr), DN: e.DN}
	if acct.Username == "" {
		acct.Username = username
	}
	if uac, err := strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64); err == nil && uac&accountDisable != 0 {
		return Account{}, ErrDisabled
	}
	if lt, err := strconv.ParseInt(e.GetAttributeValue("lockoutTime"), 10, 64); err == nil && lt != 0 {
		return Account{}, fmt.Errorf("%w (locked out)", ErrDisabled)
	}
	if ae, err := strconv.ParseInt(e.GetAttributeValue("accountExpires"), 10, 64); err == nil && ae != 0 && ae != 1<<63-1 {
		if fileTime(ae).Before(time.Now()) {
			return Account{}, fmt.Errorf("%w (expired)", ErrDisabled)
		}
	}
	groups, err := c.Search(ldap.NewSearchRequest(d.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, int(d.cfg.Timeout/time.Second), false,
		GroupFilter(d.cfg.GroupFilter, e.DN), []string{d.cfg.GroupAttr}, nil))
	if err != nil {
		return Account{}, fmt.Errorf("%w: read the groups of %q: %v", ErrUnavailable, acct.Username, err)
	}
	for _, g := range groups.Entries {
		if n := g.GetAttributeValue(d.cfg.GroupAttr); n != "" {
			acct.Groups = append(acct.Groups, n)
		}
	}
	// AD keeps the primary group ("Domain Users") out of member: find it
	// by its SID, the account's domain SID plus primaryGroupID.
	if rid := e.GetAttributeValue("primaryGroupID"); rid != "" {
		if sid, ok := domainSID(e.GetRawAttributeValue("objectSid")); ok {
			pg, err := c.Search(ldap.NewSearchRequest(d.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, int(d.cfg.Timeout/time.Second), false,
				"(objectSid="+ldap.EscapeFilter(sid+"-"+rid)+")", []string{d.cfg.GroupAttr}, nil))
			if err == nil && len(pg.Entries) == 1 {
				if n := pg.Entries[0].GetAttributeValue(d.cfg.GroupAttr); n != "" {
					acct.Groups = append(acct.Groups, n)
				}
			}
		}
	}
	slices.SortFunc(acct.Groups, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	acct.Groups = slices.CompactFunc(acct.Groups, strings.EqualFold)
	return acct, nil
}

// fileTime converts a Windows FILETIME (100 ns since 1601).
func fileTime(ft int64) time.Time {
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns
	return time.Unix(0, (ft-epochDiff)*100)
}

// domainSID returns the SID without its last part (the account's RID),
// written S-1-5-21-..., from a binary objectSid.
func domainSID(b []byte) (string, bool) {
	if len(b) < 8 {
		return "", false
	}
	n := int(b[1])
	if n < 2 || len(b) != 8+4*n {
		return "", false
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", b[0], auth)
	for i := 0; i < n-1; i++ {
		fmt.Fprintf(&sb, "-%d", binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return sb.String(), true
}
