package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/internal/duration"
	"github.com/porthole/porthole/internal/jsonpos"
	"github.com/porthole/porthole/internal/winsvc"
)

// Config is the gateway's static configuration: the JSON file given with
// --config, plus flags. Every field documents what its zero value means.
type Config struct {
	// Listen is the address to serve on; "" means ":8080".
	Listen string `json:"listen,omitempty"`
	// TLSCert and TLSKey are PEM files; both empty means plain HTTP.
	TLSCert string `json:"tlsCert,omitempty"`
	TLSKey  string `json:"tlsKey,omitempty"`
	// DataDir holds the embedded store; "" means DefaultDataDir().
	DataDir string `json:"dataDir,omitempty"`
	// Store is the store DSN: "" or "sqlite:PATH" for the embedded SQLite
	// store ("" puts it in DataDir/porthole.db), or
	// "postgres://USER@HOST:5432/DB" for PostgreSQL, which several
	// gateways share.
	Store string `json:"store,omitempty"`
	// StorePasswordFile holds the PostgreSQL password when the DSN has
	// none; "" means $PGPASSWORD (or none).
	StorePasswordFile string `json:"storePasswordFile,omitempty"`
	// TicketLifetime is how long a ticket is valid; 0 means 24h.
	TicketLifetime Duration `json:"ticketLifetime,omitempty"`
	// SocketBufferSize sets SO_RCVBUF and SO_SNDBUF on target connections,
	// in bytes (a number or a numeric string, as in the seed's
	// webSocketsProxy section); 0 means the store's imported value, or the
	// operating system's default.
	SocketBufferSize FlexInt `json:"socketBufferSize,omitempty"`
	// DialTimeout bounds connecting to a tunnel's target; 0 means 10s.
	DialTimeout Duration `json:"dialTimeout,omitempty"`
	// SessionResumeLimit is how long a client's tunnel session (one
	// WebSocket carrying all its connections) is kept after its WebSocket
	// dropped, waiting for the client to resume it (a laptop's sleep, a
	// network change); its connections end after that. 0 means 10 minutes.
	SessionResumeLimit Duration `json:"sessionResumeLimit,omitempty"`
	// MetricsAdminOnly restricts /metrics to administrators; false serves
	// it to anyone who can reach the gateway.
	MetricsAdminOnly bool `json:"metricsAdminOnly,omitempty"`
	// AuditMaxAge is how long audit events are kept; 0 means 90 days.
	AuditMaxAge Duration `json:"auditMaxAge,omitempty"`
	// AuditMaxEvents is how many audit events are kept at most (the oldest
	// go first); 0 means 1,000,000 (a few hundred MB).
	AuditMaxEvents int `json:"auditMaxEvents,omitempty"`
	// DenyTargets are addresses no tunnel may lead to: CIDR ranges,
	// addresses or address:port. Absent means DefaultDenyTargets; an empty
	// list denies only the gateway's own port (always denied).
	DenyTargets []string `json:"denyTargets,omitempty"`

	// TLSPKCS12 is a PKCS#12 (.p12/.pfx) file with the certificate, its
	// chain and key, instead of TLSCert and TLSKey; "" means none. Its
	// password comes from TLSPKCS12PasswordFile or the environment
	// variable TLSPKCS12PasswordEnv (neither: no password).
	TLSPKCS12             string `json:"tlsPKCS12,omitempty"`
	TLSPKCS12PasswordFile string `json:"tlsPKCS12PasswordFile,omitempty"`
	TLSPKCS12PasswordEnv  string `json:"tlsPKCS12PasswordEnv,omitempty"`
	// Directory signs users in against LDAP / Active Directory; absent
	// means local accounts only.
	Directory *DirectoryConfig `json:"directory,omitempty"`
	// Kerberos enables single sign-on with the Windows (or kinit) login;
	// absent means none.
	Kerberos *KerberosConfig `json:"kerberos,omitempty"`
	// Name is this gateway's name in the audit log (several gateways share
	// a PostgreSQL store); "" means HOST:PORT of the machine and the
	// listen address.
	Name string `json:"name,omitempty"`
	// RequireAdminTOTP refuses administrators (admin@ROOT) who have no
	// second factor; false leaves the second factor optional for all.
	RequireAdminTOTP bool `json:"requireAdminTOTP,omitempty"`

	// Fields below are not read from the file: tests and main set them.

	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
	// Now is the clock; nil means time.Now.
	Now func() time.Time `json:"-"`
	// Dial connects to targets; nil means a net.Dialer that refuses the
	// DenyTargets after resolving names.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error) `json:"-"`
	// Audit receives audit events; nil means the store and the log.
	Audit Audit `json:"-"`
	// AdminPassword is the first administrator's password on an empty
	// store; "" means $PORTHOLE_ADMIN_PASSWORD or a generated one.
	AdminPassword string `json:"-"`
	// Announce receives the one-time message with a generated admin
	// password; nil means os.Stderr.
	Announce io.Writer `json:"-"`
	// PasswordCost overrides the password hashing cost (tests); nil means
	// the default argon2id parameters.
	PasswordCost *HashParams `json:"-"`
	// HashConcurrency is how many password hashes may run at once; 0
	// means one per CPU core.
	HashConcurrency int `json:"-"`
	// Keepalive overrides the tunnel keepalive (tests); zero means wire's.
	PingPeriod, PongWait time.Duration `json:"-"`
}

// DefaultDataDir is where the gateway keeps its store when not told:
// $PORTHOLE_DATA_DIR, else /var/lib/porthole for root on Unix,
// %ProgramData%\Porthole on Windows, else the user's data folder.
func DefaultDataDir() string {
	if d := os.Getenv("PORTHOLE_DATA_DIR"); d != "" {
		return d
	}
	if d := winsvc.DataDir(); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/porthole"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "porthole")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "porthole")
	}
	return "porthole-data"
}

// CheckAndSetDefaults validates cfg and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: tlsCert and tlsKey must be given together")
	}
	if c.TLSPKCS12 != "" && c.TLSCert != "" {
		return errors.New("config: give either tlsPKCS12 or tlsCert and tlsKey, not both")
	}
	if c.TLSPKCS12 == "" && (c.TLSPKCS12PasswordFile != "" || c.TLSPKCS12PasswordEnv != "") {
		return errors.New("config: tlsPKCS12PasswordFile/Env given without tlsPKCS12")
	}
	if c.Directory != nil {
		if err := c.Directory.checkAndSetDefaults(); err != nil {
			return fmt.Errorf("config: directory: %w", err)
		}
	}
	if c.Kerberos != nil && c.Kerberos.Keytab == "" {
		return errors.New("config: kerberos: keytab is required")
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.TicketLifetime == 0 {
		c.TicketLifetime = Duration(24 * time.Hour)
	}
	if c.TicketLifetime < Duration(time.Minute) {
		return fmt.Errorf("config: ticketLifetime %s is shorter than a minute", time.Duration(c.TicketLifetime))
	}
	if c.SessionResumeLimit == 0 {
		c.SessionResumeLimit = Duration(10 * time.Minute)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = Duration(10 * time.Second)
	}
	if c.SocketBufferSize < 0 {
		return fmt.Errorf("config: socketBufferSize %d is negative", c.SocketBufferSize)
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "sqlite:") && !c.IsPostgres() {
		return fmt.Errorf("config: store %q: write sqlite:PATH or postgres://USER@HOST:5432/DATABASE", c.Store)
	}
	if c.StorePasswordFile != "" && !c.IsPostgres() {
		return errors.New("config: storePasswordFile is for a postgres:// store")
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(c.Listen)
		c.Name = host + ":" + port
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AuditMaxAge == 0 {
		c.AuditMaxAge = Duration(90 * 24 * time.Hour)
	}
	if c.AuditMaxAge < Duration(time.Hour) {
		return fmt.Errorf("config: auditMaxAge %s is shorter than an hour", time.Duration(c.AuditMaxAge))
	}
	if c.AuditMaxEvents == 0 {
		c.AuditMaxEvents = 1_000_000
	}
	if c.AuditMaxEvents < 1000 {
		return fmt.Errorf("config: auditMaxEvents %d is fewer than 1000", c.AuditMaxEvents)
	}
	if c.DenyTargets == nil {
		c.DenyTargets = DefaultDenyTargets
	}
	if _, err := parseDenyList(c.DenyTargets); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.Announce == nil {
		c.Announce = os.Stderr
	}
	return nil
}

// DirectoryConfig is the "directory" section: where the LDAP / Active
// Directory server is, the service account that searches it, and how its
// groups become Porthole groups.
type DirectoryConfig struct {
	// URL is ldaps://host[:636] or ldap://host[:389]; required.
	URL string `json:"url"`
	// StartTLS upgrades an ldap:// URL to TLS first.
	StartTLS bool `json:"startTLS,omitempty"`
	// CAFile verifies the server's certificate; "" means system roots.
	CAFile string `json:"caFile,omitempty"`
	// ServerName is the name the server's certificate must carry; ""
	// means the URL's host.
	ServerName string `json:"serverName,omitempty"`
	// BindDN is the service account (a DN or user@domain); required.
	BindDN string `json:"bindDN"`
	// BindPasswordFile or BindPasswordEnv holds its password; one is
	// required.
	BindPasswordFile string `json:"bindPasswordFile,omitempty"`
	BindPasswordEnv  string `json:"bindPasswordEnv,omitempty"`
	// BaseDN is where accounts and groups are searched; required.
	BaseDN string `json:"baseDN"`
	// UserFilter finds an account by {username}; "" means AD's
	// sAMAccountName filter.
	UserFilter string `json:"userFilter,omitempty"`
	// UserAttr holds account names; "" means sAMAccountName.
	UserAttr string `json:"userAttr,omitempty"`
	// GroupBaseDN is where groups are searched; "" means BaseDN.
	GroupBaseDN string `json:"groupBaseDN,omitempty"`
	// GroupFilter finds an account's groups by {dn}; "" means nested
	// groups via 1.2.840.113556.1.4.1941 (direct ones with
	// directGroupsOnly).
	GroupFilter      string `json:"groupFilter,omitempty"`
	DirectGroupsOnly bool   `json:"directGroupsOnly,omitempty"`
	// GroupAttr holds group names; "" means cn.
	GroupAttr string `json:"groupAttr,omitempty"`
	// Domain is the environment directory groups belong to: a directory
	// group G is the Porthole group G@Domain when that group exists. ""
	// means the first DC= of BaseDN in capitals (DC=pdt,DC=local: PDT).
	Domain string `json:"domain,omitempty"`
	// RecheckPeriod is how often signed-in directory users are read
	// again; a disabled account or a lost group ends their sessions and
	// tunnels. 0 means 5 minutes.
	RecheckPeriod Duration `json:"recheckPeriod,omitempty"`
	// Timeout bounds each directory operation; 0 means 10s.
	Timeout Duration `json:"timeout,omitempty"`

	// BindPassword is the password itself (tests); "" means read it from
	// BindPasswordFile or BindPasswordEnv.
	BindPassword string `json:"-"`
}

func (c *DirectoryConfig) checkAndSetDefaults() error {
	if c.BindPassword == "" {
		switch {
		case c.BindPasswordFile != "":
			b, err := os.ReadFile(c.BindPasswordFile)
			if err != nil {
				return fmt.Errorf("bindPasswordFile: %w", err)
			}
			c.BindPassword = strings.TrimRight(string(b), "\r\n")
		case c.BindPasswordEnv != "":
			c.BindPassword = os.Getenv(c.BindPasswordEnv)
			if c.BindPassword == "" {
				return fmt.Errorf("bindPasswordEnv: $%s is empty or not set", c.BindPasswordEnv)
			}
		default:
			return errors.New("bindPasswordFile or bindPasswordEnv is required (the service account's password)")
		}
	}
	if c.Domain == "" {
		for _, part := range strings.Split(c.BaseDN, ",") {
			if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok && strings.EqualFold(k, "DC") {
				c.Domain = strings.ToUpper(strings.TrimSpace(v))
				break
			}
		}
	}
	if c.Domain == "" {
		return fmt.Errorf("domain: baseDN %q has no DC= part to name the environment after: set domain", c.BaseDN)
	}
	if c.RecheckPeriod == 0 {
		c.RecheckPeriod = Duration(5 * time.Minute)
	}
	if c.RecheckPeriod < 0 {
		return errors.New("recheckPeriod must be positive")
	}
	return nil
}

// KerberosConfig is the "kerberos" section: single sign-on with
// "Authorization: Negotiate" (SPNEGO).
type KerberosConfig struct {
	// Keytab holds the keys of the gateway's service principal
	// (HTTP/gateway.host@REALM); required.
	Keytab string `json:"keytab"`
	// ServicePrincipal is the principal tickets must be for, such as
	// "HTTP/porthole.corp.example"; "" accepts any principal in the keytab.
	ServicePrincipal string `json:"servicePrincipal,omitempty"`
}

// IsPostgres says whether the store is a PostgreSQL server.
func (c *Config) IsPostgres() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

// StoreName is the store for messages: the SQLite file, or the
// PostgreSQL DSN without its password.
func (c *Config) StoreName() string {
	if c.IsPostgres() {
		return store.Redact(c.Store)
	}
	return c.StorePath()
}

// StorePath is the SQLite file the config names.
func (c *Config) StorePath() string {
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok {
		return p
	}
	return filepath.Join(c.DataDir, "porthole.db")
}

// LoadConfig reads a JSON config file. Unknown fields are errors, so a typo
// does not silently fall back to a default.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, jsonpos.Describe(b, err))
	}
	return c, nil
}

// Duration is a time.Duration written in JSON as "90s"/"24h" or a number of
// seconds (one type for the gateway's and the launcher's files).
type Duration = duration.Duration

// FlexInt is an integer that JSON may write as a number or a numeric
// string, as the seed's configuration does ("socketPort": "234").
type FlexInt int

// UnmarshalJSON implements json.Unmarshaler.
func (n *FlexInt) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		*n = FlexInt(v)
		return nil
	}
	var v json.Number
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("must be a number or a numeric string")
	}
	i, err := strconv.Atoi(v.String())
	if err != nil {
		return fmt.Errorf("%s is not a whole number", v)
	}
	*n = FlexInt(i)
	return nil
}
