package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite is the store on a SQL database: the embedded SQLite file
// (OpenSQLite) or a PostgreSQL server (OpenPostgres). The queries are the
// same; sqlDB adapts them to the database's dialect.
type SQLite struct {
	db *sqlDB
	// clock stamps created_at and updated_at; see SetClock.
	clock func() time.Time
	// dsn is the PostgreSQL server's, for LISTEN; "" for SQLite.
	dsn string
}

var sqliteDialect = &dialect{name: "sqlite", migrations: sqliteMigrations,
	conflict: func(err error) bool {
		var se *sqlite.Error
		if errors.As(err, &se) {
			c := se.Code()
			return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
		}
		return false
	},
	missing: func(err error) bool {
		var se *sqlite.Error
		return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
}

// OpenSQLite opens (creating if needed) the database at path and brings
// its schema up to date.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &SQLite{db: &sqlDB{DB: db, d: sqliteDialect}, clock: time.Now}
	if err := migrate(ctx, s.db, sqliteMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// privateFiles makes the database file (it holds the ticket signing key
// and password hashes) readable by its owner only: created 0600 when it
// is new (SQLite gives its -wal and -shm files the same mode), tightened
// to 0600 when an older version left it, or its journal, readable by
// others.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}

// SetGateway names this gateway in the audit rows it writes (several
// gateways share a PostgreSQL store).
func (s *SQLite) SetGateway(name string) { s.db.gateway = name }

// SetClock makes the store stamp the rows it creates and changes with now
// instead of time.Now (the gateway passes its own clock, so every time it
// shows comes from one source). Call it before using the store.
func (s *SQLite) SetClock(now func() time.Time) { s.clock = now }

// now is the store clock in the stored form (microseconds).
func (s *SQLite) now() int64 { return s.clock().UnixMicro() }

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// sqliteMigrations are applied in order, each once; never edit one that
// has shipped, append a new one.
var sqliteMigrations = []string{
	// 1: the initial schema.
	`CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);
	CREATE TABLE environments (
		name       TEXT PRIMARY KEY COLLATE NOCASE,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE groups (
		name        TEXT NOT NULL COLLATE NOCASE,
		environment TEXT NOT NULL COLLATE NOCASE REFERENCES environments(name) ON UPDATE CASCADE,
		created_at  INTEGER NOT NULL,
		PRIMARY KEY (name, environment)
	);
	CREATE TABLE users (
		username      TEXT PRIMARY KEY COLLATE NOCASE,
		password_hash TEXT NOT NULL,
		disabled      INTEGER NOT NULL DEFAULT 0,
		created_at    INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL
	);
	CREATE TABLE memberships (
		username    TEXT NOT NULL COLLATE NOCASE REFERENCES users(username) ON DELETE CASCADE,
		group_name  TEXT NOT NULL COLLATE NOCASE,
		environment TEXT NOT NULL COLLATE NOCASE,
		PRIMARY KEY (username, group_name, environment),
		FOREIGN KEY (group_name, environment) REFERENCES groups(name, environment) ON DELETE CASCADE
	);
	CREATE TABLE tunnels (
		context        TEXT PRIMARY KEY COLLATE NOCASE,
		socket_address TEXT NOT NULL,
		user_groups    TEXT NOT NULL,
		local_port     INTEGER NOT NULL DEFAULT 0,
		description    TEXT NOT NULL DEFAULT '',
		created_at     INTEGER NOT NULL,
		updated_at     INTEGER NOT NULL
	);
	CREATE TABLE sessions (
		id         TEXT PRIMARY KEY,
		username   TEXT NOT NULL COLLATE NOCASE,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		revoked_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX sessions_username ON sessions(username);
	CREATE TABLE audit (
		id      INTEGER PRIMARY KEY AUTOINCREMENT,
		time    INTEGER NOT NULL,
		actor   TEXT NOT NULL COLLATE NOCASE,
		kind    TEXT NOT NULL,
		target  TEXT NOT NULL COLLATE NOCASE,
		outcome TEXT NOT NULL,
		details TEXT NOT NULL DEFAULT '{}'
	);
	CREATE INDEX audit_actor ON audit(actor, id);
	CREATE INDEX audit_target ON audit(target, id);`,
	// 2: directory accounts, second factors, API tokens.
	`ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT '';
	ALTER TABLE users ADD COLUMN directory_groups TEXT NOT NULL DEFAULT '';
	ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
	ALTER TABLE users ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
	ALTER TABLE sessions ADD COLUMN name TEXT NOT NULL DEFAULT '';
	ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
	ALTER TABLE sessions ADD COLUMN created_by TEXT NOT NULL DEFAULT '';`,
	// 3: the gateway that wrote each audit row.
	`ALTER TABLE audit ADD COLUMN gateway TEXT NOT NULL DEFAULT '';`,
	// 4: failed sign-ins, counted across the gateways sharing the store.
	`CREATE TABLE signin_failures (
		account TEXT NOT NULL COLLATE NOCASE,
		at      INTEGER NOT NULL
	);
	CREATE INDEX signin_failures_account ON signin_failures(account, at);`,
}

// migrate applies the migrations not yet recorded in schema_migrations.
func migrate(ctx context.Context, db *sqlDB, migrations []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: the store's schema is version %d, newer than this gateway knows (%d): upgrade the gateway", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := inTx(ctx, db, func(tx *sqlTx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", v, err)
		}
	}
	return nil
}

// inTx runs f in a transaction, with the audit events ctx carries (see
// WithEvents): the change and its record commit together.
func inTx(ctx context.Context, db *sqlDB, f func(*sqlTx) error) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := appendEvents(ctx, tx, TakeEvents(ctx)); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func toTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func fromTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// mapErr turns constraint violations into ErrConflict.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	for _, d := range dialects {
		switch {
		case d.conflict(err):
			return fmt.Errorf("%s: %w", what, ErrConflict)
		case d.missing(err):
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// execTx runs one statement in a transaction (so the audit events ctx
// carries commit with it); check, when given, judges its result inside
// the transaction, so a statement that changed nothing records nothing.
func (s *SQLite) execTx(ctx context.Context, what string, check func(sql.Result, error, string) error, query string, args ...any) error {
	return inTx(ctx, s.db, func(tx *sqlTx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if check != nil {
			return check(res, err, what)
		}
		return mapErr(err, what)
	})
}

func expectOne(res sql.Result, err error, what string) error {
	if err != nil {
		return mapErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// Setting implements Store.
func (s *SQLite) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("setting %q: %w", key, ErrNotFound)
	}
	return v, err
}

// SetSettingIfAbsent implements Store.
func (s *SQLite) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING`, key, value); err != nil {
		return "", fmt.Errorf("setting %q: %w", key, err)
	}
	return s.Setting(ctx, key)
}

// SetSetting implements Store.
func (s *SQLite) SetSetting(ctx context.Context, key, value string) error {
	return s.execTx(ctx, "set setting "+key, nil, `INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
}

// Environments implements Store.
func (s *SQLite) Environments(ctx context.Context) ([]Environment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, created_at FROM environments ORDER BY name COLLATE NOCASE`)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	defer rows.Close()
	var out []Environment
	for rows.Next() {
		var e Environment
		var at int64
		if err := rows.Scan(&e.Name, &at); err != nil {
			return nil, err
		}
		e.CreatedAt = toTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CreateEnvironment implements Store.
func (s *SQLite) CreateEnvironment(ctx context.Context, name string) error {
	return s.execTx(ctx, fmt.Sprintf("create environment %q", name), nil, `INSERT INTO environments(name, created_at) VALUES (?, ?)`, name, s.now())
}

// DeleteEnvironment implements Store.
func (s *SQLite) DeleteEnvironment(ctx context.Context, name string) error {
	what := fmt.Sprintf("delete environment %q", name)
	return inTx(ctx, s.db, func(tx *sqlTx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM groups WHERE environment = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n > 0 {
			return fmt.Errorf("%s: it still has %d group(s): %w", what, n, ErrConflict)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM environments WHERE name = ?`, name)
		return expectOne(res, err, what)
	})
}

// Groups implements Store.
func (s *SQLite) Groups(ctx context.Context) ([]Group, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT g.name, e.name, g.created_at FROM groups g JOIN environments e ON e.name = g.environment ORDER BY e.name COLLATE NOCASE, g.name COLLATE NOCASE`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		var at int64
		if err := rows.Scan(&g.Name, &g.Environment, &at); err != nil {
			return nil, err
		}
		g.CreatedAt = toTime(at)
		out = append(out, g)
	}
	return out, rows.Err()
}

// CreateGroup implements Store.
func (s *SQLite) CreateGroup(ctx context.Context, name, env string) error {
	what := fmt.Sprintf("create group %q", name+"@"+env)
	return inTx(ctx, s.db, func(tx *sqlTx) error {
		var canonical string
		err := tx.QueryRowContext(ctx, `SELECT name FROM environments WHERE name = ?`, env).Scan(&canonical)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: environment %q: %w", what, env, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO groups(name, environment, created_at) VALUES (?, ?, ?)`, name, canonical, s.now())
		return mapErr(err, what)
	})
}

// DeleteGroup implements Store.
func (s *SQLite) DeleteGroup(ctx context.Context, name, env string) error {
	return s.execTx(ctx, fmt.Sprintf("delete group %q", name+"@"+env), expectOne, `DELETE FROM groups WHERE name = ? AND environment = ?`, name, env)
}

const userCols = `username, password_hash, disabled, created_at, updated_at, source, directory_groups, totp_secret`

func scanUser(sc interface{ Scan(...any) error }) (User, error) {
	var u User
	var dis int
	var c, up int64
	var dg string
	if err := sc.Scan(&u.Username, &u.PasswordHash, &dis, &c, &up, &u.Source, &dg, &u.TOTPSecret); err != nil {
		return User{}, err
	}
	u.Disabled, u.CreatedAt, u.UpdatedAt = dis != 0, toTime(c), toTime(up)
	u.DirectoryGroups = splitList(dg)
	return u, nil
}

// splitList reads a list stored as lines.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Users implements Store.
func (s *SQLite) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY username COLLATE NOCASE`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []User
	idx := map[string]int{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		idx[strings.ToLower(u.Username)] = len(out)
		out = append(out, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	mrows, err := s.db.QueryContext(ctx, `SELECT m.username, g.name, g.environment FROM memberships m JOIN groups g ON g.name = m.group_name AND g.environment = m.environment ORDER BY g.environment COLLATE NOCASE, g.name COLLATE NOCASE`)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var user string
		var g GroupRef
		if err := mrows.Scan(&user, &g.Name, &g.Environment); err != nil {
			return nil, err
		}
		if i, ok := idx[strings.ToLower(user)]; ok {
			out[i].Groups = append(out[i].Groups, g)
		}
	}
	return out, mrows.Err()
}

// User implements Store.
func (s *SQLite) User(ctx context.Context, username string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT g.name, g.environment FROM memberships m JOIN groups g ON g.name = m.group_name AND g.environment = m.environment WHERE m.username = ? ORDER BY g.environment COLLATE NOCASE, g.name COLLATE NOCASE`, username)
	if err != nil {
		return User{}, fmt.Errorf("user %q groups: %w", username, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g GroupRef
		if err := rows.Scan(&g.Name, &g.Environment); err != nil {
			return User{}, err
		}
		u.Groups = append(u.Groups, g)
	}
	return u, rows.Err()
}

func setMemberships(ctx context.Context, tx *sqlTx, username string, groups []GroupRef) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE username = ?`, username); err != nil {
		return err
	}
	for _, g := range groups {
		_, err := tx.ExecContext(ctx, `INSERT INTO memberships(username, group_name, environment) SELECT ?, name, environment FROM groups WHERE name = ? AND environment = ? ON CONFLICT DO NOTHING`, username, g.Name, g.Environment)
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM groups WHERE name = ? AND environment = ?`, g.Name, g.Environment).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("group %q: %w", g.Name+"@"+g.Environment, ErrNotFound)
		}
	}
	return nil
}

// CreateUser implements Store.
func (s *SQLite) CreateUser(ctx context.Context, u User) error {
	what := fmt.Sprintf("create user %q", u.Username)
	return inTx(ctx, s.db, func(tx *sqlTx) error {
		t := s.now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO users(username, password_hash, disabled, created_at, updated_at, source, directory_groups, totp_secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			u.Username, u.PasswordHash, boolInt(u.Disabled), t, t, u.Source, strings.Join(u.DirectoryGroups, "\n"), u.TOTPSecret); err != nil {
			return mapErr(err, what)
		}
		if err := setMemberships(ctx, tx, u.Username, u.Groups); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// UpdateUser implements Store.
func (s *SQLite) UpdateUser(ctx context.Context, u User) error {
	what := fmt.Sprintf("update user %q", u.Username)
	return inTx(ctx, s.db, func(tx *sqlTx) error {
		// A new second-factor secret starts its replay counter afresh.
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, disabled = ?, updated_at = ?, source = ?, directory_groups = ?,
			totp_step = CASE WHEN totp_secret = ? THEN totp_step ELSE 0 END, totp_secret = ? WHERE username = ?`,
			u.PasswordHash, boolInt(u.Disabled), s.now(), u.Source, strings.Join(u.DirectoryGroups, "\n"), u.TOTPSecret, u.TOTPSecret, u.Username)
		if err := expectOne(res, err, what); err != nil {
			return err
		}
		if err := setMemberships(ctx, tx, u.Username, u.Groups); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// DeleteUser implements Store.
func (s *SQLite) DeleteUser(ctx context.Context, username string) error {
	return s.execTx(ctx, fmt.Sprintf("delete user %q", username), expectOne, `DELETE FROM users WHERE username = ?`, username)
}

const tunnelCols = `context, socket_address, user_groups, local_port, description, created_at, updated_at`

func scanTunnel(sc interface{ Scan(...any) error }) (Tunnel, error) {
	var t Tunnel
	var c, u int64
	if err := sc.Scan(&t.Context, &t.SocketAddress, &t.UserGroups, &t.LocalPort, &t.Description, &c, &u); err != nil {
		return Tunnel{}, err
	}
	t.CreatedAt, t.UpdatedAt = toTime(c), toTime(u)
	return t, nil
}

// Tunnels implements Store.
func (s *SQLite) Tunnels(ctx context.Context) ([]Tunnel, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tunnelCols+` FROM tunnels ORDER BY context COLLATE NOCASE`)
	if err != nil {
		return nil, fmt.Errorf("list tunnels: %w", err)
	}
	defer rows.Close()
	var out []Tunnel
	for rows.Next() {
		t, err := scanTunnel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Tunnel implements Store.
func (s *SQLite) Tunnel(ctx context.Context, context string) (Tunnel, error) {
	t, err := scanTunnel(s.db.QueryRowContext(ctx, `SELECT `+tunnelCols+` FROM tunnels WHERE context = ?`, context))
	if errors.Is(err, sql.ErrNoRows) {
		return Tunnel{}, fmt.Errorf("tunnel %q: %w", context, ErrNotFound)
	}
	if err != nil {
		return Tunnel{}, fmt.Errorf("tunnel %q: %w", context, err)
	}
	return t, nil
}

// CreateTunnel implements Store.
func (s *SQLite) CreateTunnel(ctx context.Context, t Tunnel) error {
	n := s.now()
	return s.execTx(ctx, fmt.Sprintf("create tunnel %q", t.Context), nil, `INSERT INTO tunnels(`+tunnelCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.Context, t.SocketAddress, t.UserGroups, t.LocalPort, t.Description, n, n)
}

// UpdateTunnel implements Store.
func (s *SQLite) UpdateTunnel(ctx context.Context, oldContext string, t Tunnel) error {
	return s.execTx(ctx, fmt.Sprintf("update tunnel %q", oldContext), expectOne, `UPDATE tunnels SET context = ?, socket_address = ?, user_groups = ?, local_port = ?, description = ?, updated_at = ? WHERE context = ?`,
		t.Context, t.SocketAddress, t.UserGroups, t.LocalPort, t.Description, s.now(), oldContext)
}

// DeleteTunnel implements Store.
func (s *SQLite) DeleteTunnel(ctx context.Context, context string) error {
	return s.execTx(ctx, fmt.Sprintf("delete tunnel %q", context), expectOne, `DELETE FROM tunnels WHERE context = ?`, context)
}

// PutTunnels implements Store.
func (s *SQLite) PutTunnels(ctx context.Context, ts []Tunnel, events []Event) error {
	return inTx(ctx, s.db, func(tx *sqlTx) error {
		if err := appendEvents(ctx, tx, events); err != nil {
			return err
		}
		n := s.now()
		for _, t := range ts {
			_, err := tx.ExecContext(ctx, `INSERT INTO tunnels(`+tunnelCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT(context) DO UPDATE SET socket_address = excluded.socket_address, user_groups = excluded.user_groups,
				local_port = excluded.local_port, description = excluded.description, updated_at = excluded.updated_at`,
				t.Context, t.SocketAddress, t.UserGroups, t.LocalPort, t.Description, n, n)
			if err != nil {
				return mapErr(err, fmt.Sprintf("put tunnel %q", t.Context))
			}
		}
		return nil
	})
}

// CreateSession implements Store.
func (s *SQLite) CreateSession(ctx context.Context, se Session) error {
	return s.execTx(ctx, "create session", nil, `INSERT INTO sessions(id, username, created_at, expires_at, kind, name, scope, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		se.ID, se.Username, fromTime(se.CreatedAt), fromTime(se.ExpiresAt), se.Kind, se.Name, strings.Join(se.Scope, "\n"), se.CreatedBy)
}

const sessionCols = `id, username, created_at, expires_at, revoked_at, kind, name, scope, created_by`

func scanSession(sc interface{ Scan(...any) error }) (Session, error) {
	var se Session
	var c, e, r int64
	var scope string
	if err := sc.Scan(&se.ID, &se.Username, &c, &e, &r, &se.Kind, &se.Name, &scope, &se.CreatedBy); err != nil {
		return Session{}, err
	}
	se.CreatedAt, se.ExpiresAt, se.RevokedAt = toTime(c), toTime(e), toTime(r)
	se.Scope = splitList(scope)
	return se, nil
}

// Sessions implements Store.
func (s *SQLite) Sessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	q := `SELECT ` + sessionCols + ` FROM sessions WHERE expires_at > ? AND revoked_at = 0`
	args := []any{fromTime(f.LiveAt)}
	if f.Kind != nil {
		q += ` AND kind = ?`
		args = append(args, *f.Kind)
	}
	if f.Username != "" {
		q += ` AND username = ?`
		args = append(args, f.Username)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		se, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, se)
	}
	return out, rows.Err()
}

// UseTOTPStep implements Store.
func (s *SQLite) UseTOTPStep(ctx context.Context, username string, step int64) error {
	return s.execTx(ctx, fmt.Sprintf("second factor of %q", username), func(res sql.Result, err error, what string) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%s: code already used: %w", what, ErrConflict)
		}
		return nil
	}, `UPDATE users SET totp_step = ? WHERE username = ? AND totp_step < ?`, step, username, step)
}

// Session implements Store.
func (s *SQLite) Session(ctx context.Context, id string) (Session, error) {
	se, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	return se, nil
}

// ExtendSession implements Store.
func (s *SQLite) ExtendSession(ctx context.Context, id string, expiresAt time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET expires_at = ? WHERE id = ? AND revoked_at = 0`, fromTime(expiresAt), id)
	return expectOne(res, err, "extend session")
}

// RevokeSession implements Store.
func (s *SQLite) RevokeSession(ctx context.Context, id string, at time.Time) error {
	return s.execTx(ctx, "revoke session", nil, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, fromTime(at), id)
}

// RevokeUserSessions implements Store.
func (s *SQLite) RevokeUserSessions(ctx context.Context, username, except string, at time.Time) ([]string, error) {
	var ids []string
	err := inTx(ctx, s.db, func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM sessions WHERE username = ? AND revoked_at = 0 AND id <> ?`, username, except)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE username = ? AND revoked_at = 0 AND id <> ?`, fromTime(at), username, except)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke sessions of %q: %w", username, err)
	}
	return ids, nil
}

// DeleteExpiredSessions implements Store.
func (s *SQLite) DeleteExpiredSessions(ctx context.Context, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < ?`, fromTime(t))
	return mapErr(err, "delete expired sessions")
}

// AppendEvent implements Store.
func (s *SQLite) AppendEvent(ctx context.Context, e Event) (int64, error) {
	details := string(e.Details)
	if details == "" {
		details = "{}"
	}
	var id int64
	if e.Gateway == "" {
		e.Gateway = s.db.gateway
	}
	err := s.db.QueryRowContext(ctx, `INSERT INTO audit(time, actor, kind, target, outcome, details, gateway) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		fromTime(e.Time), e.Actor, e.Kind, e.Target, e.Outcome, details, e.Gateway).Scan(&id)
	if err != nil {
		return 0, mapErr(err, "append audit event")
	}
	return id, nil
}

// AppendEvents implements Store.
func (s *SQLite) AppendEvents(ctx context.Context, events []Event) error {
	return inTx(ctx, s.db, func(tx *sqlTx) error { return appendEvents(ctx, tx, events) })
}

func appendEvents(ctx context.Context, tx *sqlTx, events []Event) error {
	// One multi-row INSERT per chunk: a burst of tunnel events costs a few
	// round trips, not one per event (it matters on PostgreSQL).
	const chunk = 200
	for len(events) > 0 {
		n := min(len(events), chunk)
		var q strings.Builder
		q.WriteString(`INSERT INTO audit(time, actor, kind, target, outcome, details, gateway) VALUES `)
		args := make([]any, 0, 7*n)
		for i, e := range events[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			details := string(e.Details)
			if details == "" {
				details = "{}"
			}
			gw := e.Gateway
			if gw == "" {
				gw = tx.gateway
			}
			args = append(args, fromTime(e.Time), e.Actor, e.Kind, e.Target, e.Outcome, details, gw)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return mapErr(err, "append audit events")
		}
		events = events[n:]
	}
	return nil
}

// PruneEvents implements Store.
func (s *SQLite) PruneEvents(ctx context.Context, before time.Time, keep int) (int64, error) {
	var n int64
	err := inTx(ctx, s.db, func(tx *sqlTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE time < ?`, fromTime(before))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)`, keep)
		if err != nil {
			return err
		}
		m, _ := res.RowsAffected()
		n += m
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit events: %w", err)
	}
	return n, nil
}

// Events implements Store.
func (s *SQLite) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	var where []string
	var args []any
	if f.Actor != "" {
		where = append(where, "actor = ?")
		args = append(args, f.Actor)
	}
	if f.Target != "" {
		where = append(where, "target = ?")
		args = append(args, f.Target)
	}
	if f.Kind != "" {
		if strings.HasSuffix(f.Kind, ".") {
			where = append(where, "substr(kind, 1, ?) = ?")
			args = append(args, len(f.Kind), f.Kind)
		} else {
			where = append(where, "kind = ?")
			args = append(args, f.Kind)
		}
	}
	if f.BeforeID > 0 {
		where = append(where, "id < ?")
		args = append(args, f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT id, time, actor, kind, target, outcome, details, gateway FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		var details string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Kind, &e.Target, &e.Outcome, &details, &e.Gateway); err != nil {
			return nil, err
		}
		e.Time, e.Details = toTime(at), []byte(details)
		out = append(out, e)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RecordSignInFailure implements Store.
func (s *SQLite) RecordSignInFailure(ctx context.Context, account string, at time.Time) error {
	return s.execTx(ctx, "record a failed sign-in", nil, `INSERT INTO signin_failures(account, at) VALUES (?, ?)`, account, fromTime(at))
}

// SignInFailures implements Store.
func (s *SQLite) SignInFailures(ctx context.Context, account string, since time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM signin_failures WHERE account = ? AND at > ?`, account, fromTime(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count failed sign-ins: %w", err)
	}
	return n, nil
}

// PruneSignInFailures implements Store.
func (s *SQLite) PruneSignInFailures(ctx context.Context, before time.Time) error {
	return s.execTx(ctx, "prune failed sign-ins", nil, `DELETE FROM signin_failures WHERE at < ?`, fromTime(before))
}

// SettingsWithPrefix implements Store.
func (s *SQLite) SettingsWithPrefix(ctx context.Context, prefix string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, value FROM settings WHERE substr(key, 1, ?) = ?`, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("settings %s*: %w", prefix, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// DeleteSetting implements Store.
func (s *SQLite) DeleteSetting(ctx context.Context, key string) error {
	return s.execTx(ctx, "delete setting "+key, nil, `DELETE FROM settings WHERE key = ?`, key)
}
