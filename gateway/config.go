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
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/porthole/porthole/internal/jsonpos"
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
	// store ("" puts it in DataDir/porthole.db).
	Store string `json:"store,omitempty"`
	// TicketLifetime is how long a ticket is valid; 0 means 24h.
	TicketLifetime Duration `json:"ticketLifetime,omitempty"`
	// SocketBufferSize sets SO_RCVBUF and SO_SNDBUF on target connections,
	// in bytes (a number or a numeric string, as in the seed's
	// webSocketsProxy section); 0 means the store's imported value, or the
	// operating system's default.
	SocketBufferSize FlexInt `json:"socketBufferSize,omitempty"`
	// DialTimeout bounds connecting to a tunnel's target; 0 means 10s.
	DialTimeout Duration `json:"dialTimeout,omitempty"`
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
	if runtime.GOOS == "windows" {
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "Porthole")
		}
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
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.TicketLifetime == 0 {
		c.TicketLifetime = Duration(24 * time.Hour)
	}
	if c.TicketLifetime < Duration(time.Minute) {
		return fmt.Errorf("config: ticketLifetime %s is shorter than a minute", time.Duration(c.TicketLifetime))
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = Duration(10 * time.Second)
	}
	if c.SocketBufferSize < 0 {
		return fmt.Errorf("config: socketBufferSize %d is negative", c.SocketBufferSize)
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "sqlite:") {
		return fmt.Errorf("config: store %q: only sqlite:PATH is supported", c.Store)
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
// seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: write it like \"90s\" or \"24h\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"24h\" or a number of seconds")
	}
	*d = Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

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
