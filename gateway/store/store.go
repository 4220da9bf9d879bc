// Package store keeps the gateway's state: environments, groups, users and
// their memberships, tunnels, sessions, audit events and settings. Handlers
// see only the Store interface; SQLite (embedded, on disk) implements it
// here, and a PostgreSQL backend for several gateways can implement it
// without touching them.
//
// Names (environments, groups, users, contexts) are unique regardless of
// case; lookups ignore case and return the name as first written.
package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Sentinel errors for errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Environment is a namespace of groups; ROOT always exists.
type Environment struct {
	Name      string
	CreatedAt time.Time
}

// Group is a group in one environment, written Name@Environment.
type Group struct {
	Name        string
	Environment string
	CreatedAt   time.Time
}

// User is a person who signs in.
type User struct {
	Username string
	// PasswordHash is "" for directory accounts (their password is the
	// directory's).
	PasswordHash string
	Disabled     bool
	// Source is where the account comes from: "" for a local account,
	// SourceDirectory for one the directory (LDAP/AD) provides.
	Source string
	// DirectoryGroups are the directory groups the account was in when
	// last read (directory accounts only), for the portal.
	DirectoryGroups []string
	// TOTPSecret is the base32 second-factor secret; "" means none.
	TOTPSecret string
	// Groups are the memberships, as "Name@Environment" pairs.
	Groups    []GroupRef
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SourceDirectory marks an account the directory provides.
const SourceDirectory = "directory"

// GroupRef names a group.
type GroupRef struct {
	Name        string
	Environment string
}

// Tunnel maps a context to a TCP socket address for some user groups.
type Tunnel struct {
	Context       string
	SocketAddress string
	UserGroups    string
	LocalPort     int // 0: none suggested
	Description   string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Session is one sign-in; tickets name it.
type Session struct {
	ID        string
	Username  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// RevokedAt is zero while the session is live.
	RevokedAt time.Time
	// Kind is "" for a sign-in, KindToken for an API token.
	Kind string
	// Name is an API token's name.
	Name string
	// Scope lists the tunnels an API token may open ("*" for all the
	// user's); empty for sign-ins.
	Scope []string
	// CreatedBy is who made an API token.
	CreatedBy string
}

// KindToken marks a session that is an API token.
const KindToken = "token"

// SessionFilter selects live sessions.
type SessionFilter struct {
	LiveAt   time.Time // sessions not revoked and expiring after this
	Kind     *string   // nil for any kind
	Username string    // "" for any user
}

// Event is one audit record.
type Event struct {
	ID      int64
	Time    time.Time
	Actor   string // user name, "" for anonymous, "system" for the gateway
	Kind    string // e.g. "tunnel.create", "tunnel.open", "auth.login_failed"
	Target  string // what it is about: a context, user name, group, ...
	Outcome string // "ok", "denied", "error"
	// Details is a JSON object (before/after, bytes, reason, ...).
	Details []byte
	// Gateway is the gateway that wrote it ("" means the store's own,
	// see SQLite.SetGateway).
	Gateway string
}

// EventFilter selects audit events, newest first.
type EventFilter struct {
	Actor    string // exact, case-insensitive; "" for any
	Target   string // exact, case-insensitive; "" for any
	Kind     string // exact or prefix ending in "." ("tunnel."); "" for any
	BeforeID int64  // only events with a smaller id; 0 for the newest
	Limit    int    // at most this many; 0 means 100
}

// Store is what the gateway keeps. Methods return errors wrapping
// ErrNotFound or ErrConflict where those apply.
type Store interface {
	// Setting returns a stored setting, or ErrNotFound.
	Setting(ctx context.Context, key string) (string, error)
	// SetSettingIfAbsent stores value unless key is set, and returns the
	// value now stored (so concurrent first starts agree).
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)
	SetSetting(ctx context.Context, key, value string) error
	// SettingsWithPrefix returns the settings whose keys start with prefix.
	SettingsWithPrefix(ctx context.Context, prefix string) (map[string]string, error)
	DeleteSetting(ctx context.Context, key string) error

	Environments(ctx context.Context) ([]Environment, error)
	CreateEnvironment(ctx context.Context, name string) error
	// DeleteEnvironment deletes an environment that has no groups left.
	DeleteEnvironment(ctx context.Context, name string) error

	Groups(ctx context.Context) ([]Group, error)
	CreateGroup(ctx context.Context, name, env string) error
	// DeleteGroup deletes a group and its memberships.
	DeleteGroup(ctx context.Context, name, env string) error

	Users(ctx context.Context) ([]User, error)
	User(ctx context.Context, username string) (User, error)
	CreateUser(ctx context.Context, u User) error
	// UpdateUser replaces the password hash, disabled flag, source,
	// directory groups, second-factor secret and groups.
	UpdateUser(ctx context.Context, u User) error
	// UseTOTPStep records that a user's second-factor code for time step
	// step was used; it fails with ErrConflict unless step is later than
	// any used before (so a code works once).
	UseTOTPStep(ctx context.Context, username string, step int64) error
	DeleteUser(ctx context.Context, username string) error

	Tunnels(ctx context.Context) ([]Tunnel, error)
	Tunnel(ctx context.Context, context string) (Tunnel, error)
	CreateTunnel(ctx context.Context, t Tunnel) error
	// UpdateTunnel replaces the tunnel named oldContext with t (whose
	// context may differ).
	UpdateTunnel(ctx context.Context, oldContext string, t Tunnel) error
	DeleteTunnel(ctx context.Context, context string) error
	// PutTunnels creates or replaces each tunnel (matched by context) and
	// appends the audit events that record it, in one transaction: all of
	// it is stored or none.
	PutTunnels(ctx context.Context, ts []Tunnel, events []Event) error

	CreateSession(ctx context.Context, s Session) error
	Session(ctx context.Context, id string) (Session, error)
	ExtendSession(ctx context.Context, id string, expiresAt time.Time) error
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeUserSessions revokes every live session of a user but the one
	// named except ("" for none) and returns their ids.
	RevokeUserSessions(ctx context.Context, username, except string, at time.Time) ([]string, error)
	// Sessions lists live sessions, oldest first.
	Sessions(ctx context.Context, f SessionFilter) ([]Session, error)
	// DeleteExpiredSessions removes sessions that expired before t.
	DeleteExpiredSessions(ctx context.Context, t time.Time) error

	// RecordSignInFailure counts a failed sign-in for account, for every
	// gateway sharing the store; SignInFailures counts them since a time;
	// PruneSignInFailures forgets those before one.
	RecordSignInFailure(ctx context.Context, account string, at time.Time) error
	SignInFailures(ctx context.Context, account string, since time.Time) (int, error)
	PruneSignInFailures(ctx context.Context, before time.Time) error

	AppendEvent(ctx context.Context, e Event) (int64, error)
	// AppendEvents appends events in one transaction: all or none.
	AppendEvents(ctx context.Context, events []Event) error
	// PruneEvents deletes events older than before and all but the newest
	// keep, and returns how many it deleted.
	PruneEvents(ctx context.Context, before time.Time, keep int) (int64, error)
	Events(ctx context.Context, f EventFilter) ([]Event, error)

	Close() error
}

// ChangeFeed is what a store that several gateways share adds: a change
// one gateway announces reaches the others at once (SQLite's gateways,
// on one host, poll instead).
type ChangeFeed interface {
	// Announce tells every gateway following the store that access
	// changed (a message "").
	Announce(ctx context.Context) error
	// Send sends every gateway following the store a message.
	Send(ctx context.Context, msg string) error
	// Follow calls f with each message until ctx is done, and with ""
	// once after a lost connection is restored.
	Follow(ctx context.Context, f func(msg string)) error
}

// eventsKey carries the audit events of a change in a context.
type eventsKey struct{}

// pendingEvents are audit events waiting for the write they record.
type pendingEvents struct {
	events []Event
	used   atomic.Bool
}

// WithEvents returns ctx carrying audit events for the next write made
// with it: the store appends them in that write's own transaction, so the
// change and its record are stored together or not at all. They are
// written once, whatever else later uses ctx.
func WithEvents(ctx context.Context, events ...Event) context.Context {
	return context.WithValue(ctx, eventsKey{}, &pendingEvents{events: events})
}

// TakeEvents returns the events ctx carries that no write has stored yet
// (for Store implementations).
func TakeEvents(ctx context.Context) []Event {
	p, ok := ctx.Value(eventsKey{}).(*pendingEvents)
	if !ok || p.used.Swap(true) {
		return nil
	}
	return p.events
}
