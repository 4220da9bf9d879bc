package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// openSQLite opens a store in a fresh file on disk.
func openSQLite(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "porthole.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return openSQLite(t) })
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "porthole.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(t.Context(), "ROOT"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSQLite(t.Context(), path) // migrations must not run twice
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	envs, err := s.Environments(t.Context())
	if err != nil || len(envs) != 1 || envs[0].Name != "ROOT" {
		t.Fatalf("after reopen: %v %v", envs, err)
	}
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	s := openSQLite(t)
	if _, err := s.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	err := migrate(t.Context(), s.db, sqliteMigrations)
	if err == nil {
		t.Fatal("a schema newer than the code was accepted")
	}
}

// testStore is the behaviour every Store backend must have.
func testStore(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run("sign-in failures", func(t *testing.T) {
		s := open(t)
		now := time.Now()
		for i := range 3 {
			if err := s.RecordSignInFailure(ctx, "alice", now.Add(time.Duration(-i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.SignInFailures(ctx, "ALICE", now.Add(-90*time.Second)); err != nil || n != 2 {
			t.Fatalf("failures in the last 90 s: %d %v, want 2", n, err)
		}
		if err := s.PruneSignInFailures(ctx, now.Add(-30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.SignInFailures(ctx, "alice", now.Add(-time.Hour)); n != 1 {
			t.Fatalf("after pruning: %d, want 1", n)
		}
	})
	t.Run("settings", func(t *testing.T) {
		s := open(t)
		if _, err := s.Setting(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing setting: %v", err)
		}
		v, err := s.SetSettingIfAbsent(ctx, "k", "first")
		if err != nil || v != "first" {
			t.Fatalf("set: %q %v", v, err)
		}
		if v, _ := s.SetSettingIfAbsent(ctx, "k", "second"); v != "first" {
			t.Fatalf("SetSettingIfAbsent overwrote: %q", v)
		}
		if err := s.SetSetting(ctx, "k", "third"); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.Setting(ctx, "k"); v != "third" {
			t.Fatalf("got %q", v)
		}
	})
	t.Run("identities", func(t *testing.T) {
		s := open(t)
		must(t, s.CreateEnvironment(ctx, "ROOT"))
		if err := s.CreateEnvironment(ctx, "root"); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate env (case): %v", err)
		}
		must(t, s.CreateGroup(ctx, "admin", "root")) // environment matched without case
		if err := s.CreateGroup(ctx, "Admin", "ROOT"); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate group: %v", err)
		}
		if err := s.CreateGroup(ctx, "x", "Nowhere"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("group in missing env: %v", err)
		}
		gs, _ := s.Groups(ctx)
		if len(gs) != 1 || gs[0].Environment != "ROOT" {
			t.Fatalf("groups: %+v", gs)
		}
		must(t, s.CreateUser(ctx, User{Username: "alice", PasswordHash: "h", Groups: []GroupRef{{"ADMIN", "root"}}}))
		if err := s.CreateUser(ctx, User{Username: "Alice", PasswordHash: "h"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate user: %v", err)
		}
		if err := s.CreateUser(ctx, User{Username: "bob", PasswordHash: "h", Groups: []GroupRef{{"ghosts", "ROOT"}}}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("user in missing group: %v", err)
		}
		if _, err := s.User(ctx, "bob"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("failed create left a user behind: %v", err)
		}
		u, err := s.User(ctx, "ALICE")
		if err != nil || u.Username != "alice" || len(u.Groups) != 1 || u.Groups[0] != (GroupRef{"admin", "ROOT"}) {
			t.Fatalf("user: %+v %v", u, err)
		}
		u.Disabled = true
		u.Groups = nil
		must(t, s.UpdateUser(ctx, u))
		u, _ = s.User(ctx, "alice")
		if !u.Disabled || len(u.Groups) != 0 {
			t.Fatalf("after update: %+v", u)
		}
		u.Groups = []GroupRef{{"admin", "ROOT"}}
		must(t, s.UpdateUser(ctx, u))
		if err := s.DeleteEnvironment(ctx, "ROOT"); !errors.Is(err, ErrConflict) {
			t.Fatalf("deleting an env with groups: %v", err)
		}
		must(t, s.DeleteGroup(ctx, "Admin", "ROOT"))
		u, _ = s.User(ctx, "alice")
		if len(u.Groups) != 0 {
			t.Fatalf("membership survived group deletion: %+v", u.Groups)
		}
		must(t, s.DeleteEnvironment(ctx, "ROOT"))
		must(t, s.DeleteUser(ctx, "alice"))
		if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("double delete: %v", err)
		}
	})
	t.Run("users list", func(t *testing.T) {
		s := open(t)
		must(t, s.CreateEnvironment(ctx, "ROOT"))
		must(t, s.CreateGroup(ctx, "admin", "ROOT"))
		must(t, s.CreateGroup(ctx, "users", "ROOT"))
		must(t, s.CreateUser(ctx, User{Username: "b", PasswordHash: "h", Groups: []GroupRef{{"users", "ROOT"}}}))
		must(t, s.CreateUser(ctx, User{Username: "a", PasswordHash: "h", Groups: []GroupRef{{"admin", "ROOT"}, {"users", "ROOT"}}}))
		us, err := s.Users(ctx)
		if err != nil || len(us) != 2 || us[0].Username != "a" || len(us[0].Groups) != 2 || len(us[1].Groups) != 1 {
			t.Fatalf("users: %+v %v", us, err)
		}
	})
	t.Run("tunnels", func(t *testing.T) {
		s := open(t)
		tun := Tunnel{Context: "MySQL", SocketAddress: "db:3306", UserGroups: ".*@.*", LocalPort: 13306, Description: "orders"}
		must(t, s.CreateTunnel(ctx, tun))
		if err := s.CreateTunnel(ctx, Tunnel{Context: "mysql", SocketAddress: "x:1", UserGroups: ".*@.*"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate context: %v", err)
		}
		got, err := s.Tunnel(ctx, "mysql")
		if err != nil || got.Context != "MySQL" || got.LocalPort != 13306 || got.CreatedAt.IsZero() {
			t.Fatalf("tunnel: %+v %v", got, err)
		}
		tun.Context = "orders"
		must(t, s.UpdateTunnel(ctx, "mysql", tun))
		if _, err := s.Tunnel(ctx, "mysql"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old context still there: %v", err)
		}
		must(t, s.CreateTunnel(ctx, Tunnel{Context: "pg", SocketAddress: "db:5432", UserGroups: ".*@.*"}))
		if err := s.UpdateTunnel(ctx, "orders", Tunnel{Context: "PG", SocketAddress: "x:1", UserGroups: ".*@.*"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("rename onto a taken context: %v", err)
		}
		// PutTunnels is all or nothing.
		err = s.PutTunnels(ctx, []Tunnel{{Context: "new", SocketAddress: "n:1", UserGroups: ".*@.*"}, {Context: "pg", SocketAddress: "db:6543", UserGroups: ".*@.*"}}, nil)
		must(t, err)
		ts, _ := s.Tunnels(ctx)
		if len(ts) != 3 {
			t.Fatalf("tunnels: %+v", ts)
		}
		pg, _ := s.Tunnel(ctx, "pg")
		if pg.SocketAddress != "db:6543" {
			t.Fatalf("put did not replace: %+v", pg)
		}
		// With their audit events, in the same transaction.
		must(t, s.PutTunnels(ctx, []Tunnel{{Context: "audited", SocketAddress: "a:1", UserGroups: ".*@.*"}}, []Event{{Time: time.Now(), Actor: "a", Kind: "tunnel.create", Target: "audited", Outcome: "ok"}}))
		if evs, _ := s.Events(ctx, EventFilter{Target: "audited"}); len(evs) != 1 {
			t.Fatalf("put with events: %+v", evs)
		}
		must(t, s.AppendEvents(ctx, []Event{{Time: time.Now(), Actor: "a", Kind: "k", Target: "batch", Outcome: "ok"}, {Time: time.Now(), Actor: "a", Kind: "k", Target: "batch", Outcome: "ok"}}))
		if evs, _ := s.Events(ctx, EventFilter{Target: "batch"}); len(evs) != 2 {
			t.Fatalf("append events: %+v", evs)
		}
		must(t, s.DeleteTunnel(ctx, "ORDERS"))
		if err := s.DeleteTunnel(ctx, "orders"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("double delete: %v", err)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		s := open(t)
		t0 := time.Now().UTC().Truncate(time.Microsecond)
		must(t, s.CreateSession(ctx, Session{ID: "s1", Username: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
		must(t, s.CreateSession(ctx, Session{ID: "s2", Username: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
		must(t, s.CreateSession(ctx, Session{ID: "s3", Username: "bob", CreatedAt: t0, ExpiresAt: t0.Add(-time.Hour)}))
		must(t, s.ExtendSession(ctx, "s1", t0.Add(2*time.Hour)))
		se, err := s.Session(ctx, "s1")
		if err != nil || !se.ExpiresAt.Equal(t0.Add(2*time.Hour)) || !se.RevokedAt.IsZero() {
			t.Fatalf("session: %+v %v", se, err)
		}
		must(t, s.RevokeSession(ctx, "s1", t0))
		if err := s.ExtendSession(ctx, "s1", t0.Add(3*time.Hour)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("extended a revoked session: %v", err)
		}
		must(t, s.CreateSession(ctx, Session{ID: "s4", Username: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
		ids, err := s.RevokeUserSessions(ctx, "ALICE", "s4", t0)
		if err != nil || len(ids) != 1 || ids[0] != "s2" {
			t.Fatalf("revoke user sessions but s4: %v %v", ids, err)
		}
		if se, err := s.Session(ctx, "s4"); err != nil || !se.RevokedAt.IsZero() {
			t.Fatalf("the kept session was revoked: %+v %v", se, err)
		}
		ids, err = s.RevokeUserSessions(ctx, "alice", "", t0)
		if err != nil || len(ids) != 1 || ids[0] != "s4" {
			t.Fatalf("revoke every user session: %v %v", ids, err)
		}
		must(t, s.DeleteExpiredSessions(ctx, t0))
		if _, err := s.Session(ctx, "s3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired session kept: %v", err)
		}
	})
	t.Run("prune audit", func(t *testing.T) {
		s := open(t)
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 10 {
			_, err := s.AppendEvent(ctx, Event{Time: t0.Add(time.Duration(i) * time.Hour), Actor: "a", Kind: "k", Target: fmt.Sprint(i), Outcome: "ok"})
			must(t, err)
		}
		n, err := s.PruneEvents(ctx, t0.Add(2*time.Hour), 100) // by age: 0 and 1 go
		if err != nil || n != 2 {
			t.Fatalf("prune by age: %d %v", n, err)
		}
		n, err = s.PruneEvents(ctx, t0, 5) // by number: the 3 oldest of 8 go
		if err != nil || n != 3 {
			t.Fatalf("prune by number: %d %v", n, err)
		}
		evs, _ := s.Events(ctx, EventFilter{Limit: 100})
		if len(evs) != 5 || evs[0].Target != "9" || evs[4].Target != "5" {
			t.Fatalf("left %+v", evs)
		}
	})
	t.Run("audit", func(t *testing.T) {
		s := open(t)
		for i, e := range []Event{
			{Actor: "admin", Kind: "tunnel.create", Target: "mysql", Outcome: "ok", Details: []byte(`{"after":{}}`)},
			{Actor: "alice", Kind: "tunnel.open", Target: "mysql", Outcome: "ok"},
			{Actor: "bob", Kind: "tunnel.denied", Target: "mysql", Outcome: "denied"},
			{Actor: "admin", Kind: "user.create", Target: "bob", Outcome: "ok"},
		} {
			e.Time = time.Now()
			id, err := s.AppendEvent(ctx, e)
			if err != nil || id != int64(i+1) {
				t.Fatalf("append: %d %v", id, err)
			}
		}
		all, _ := s.Events(ctx, EventFilter{})
		if len(all) != 4 || all[0].Kind != "user.create" || string(all[3].Details) != `{"after":{}}` || string(all[1].Details) != "{}" {
			t.Fatalf("newest first: %+v", all)
		}
		check := func(f EventFilter, want ...int64) {
			t.Helper()
			got, err := s.Events(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if len(ids) != len(want) {
				t.Fatalf("filter %+v: ids %v, want %v", f, ids, want)
			}
			for i := range ids {
				if ids[i] != want[i] {
					t.Fatalf("filter %+v: ids %v, want %v", f, ids, want)
				}
			}
		}
		check(EventFilter{Actor: "ADMIN"}, 4, 1)
		check(EventFilter{Target: "mysql"}, 3, 2, 1)
		check(EventFilter{Kind: "tunnel."}, 3, 2, 1)
		check(EventFilter{Kind: "tunnel.open"}, 2)
		check(EventFilter{Limit: 2}, 4, 3)
		check(EventFilter{Limit: 2, BeforeID: 3}, 2, 1)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The store stamps rows with the clock it is given, so the gateway's
// clock (a fixed one in tests) is the only source of the times it shows.
func TestSQLiteUsesItsClock(t *testing.T) {
	s := openSQLite(t)
	at := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return at })
	ctx := t.Context()
	must(t, s.CreateEnvironment(ctx, "Prod"))
	must(t, s.CreateTunnel(ctx, Tunnel{Context: "mysql", SocketAddress: "db:3306", UserGroups: ".*@.*"}))
	envs, err := s.Environments(ctx)
	if err != nil || len(envs) != 1 || !envs[0].CreatedAt.Equal(at) {
		t.Fatalf("environment created at %v (%v), want %v", envs, err, at)
	}
	at = at.Add(time.Hour)
	must(t, s.UpdateTunnel(ctx, "mysql", Tunnel{Context: "mysql", SocketAddress: "db:3307", UserGroups: ".*@.*"}))
	tn, err := s.Tunnel(ctx, "mysql")
	if err != nil || !tn.CreatedAt.Equal(at.Add(-time.Hour)) || !tn.UpdatedAt.Equal(at) {
		t.Fatalf("tunnel times %v / %v (%v)", tn.CreatedAt, tn.UpdatedAt, err)
	}
}

// The store holds the signing key and password hashes: only its owner
// may read it, also its WAL, and an older readable file is tightened.
func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "porthole.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.CreateEnvironment(t.Context(), "ROOT"))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), m)
		}
	}
	s.Close()
	must(t, os.Chmod(path, 0o644))
	s, err = OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("a readable store was left %o", fi.Mode().Perm())
	}
}

// The audit events a context carries commit with the change they record:
// a change that fails (or finds nothing) stores no event, an event that
// cannot be stored undoes its change, and each is stored once.
func TestSQLiteEventsCommitWithTheChange(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	if _, err := s.db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.kind = 'refused' BEGIN SELECT RAISE(ABORT, 'audit refused'); END`); err != nil {
		t.Fatal(err)
	}
	ev := func(kind, target string) Event {
		return Event{Time: time.Now(), Actor: "admin", Kind: kind, Target: target, Outcome: "ok"}
	}
	count := func() int {
		evs, err := s.Events(ctx, EventFilter{Limit: 100})
		must(t, err)
		return len(evs)
	}
	if err := s.CreateTunnel(WithEvents(ctx, ev("refused", "a")), Tunnel{Context: "a", SocketAddress: "a:1", UserGroups: ".*@.*"}); err == nil {
		t.Fatal("the change was stored although its audit event was refused")
	}
	if _, err := s.Tunnel(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the tunnel exists without its audit event: %v", err)
	}
	if err := s.UpdateTunnel(WithEvents(ctx, ev("tunnel.update", "missing")), "missing", Tunnel{Context: "missing", SocketAddress: "m:1", UserGroups: ".*@.*"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing tunnel: %v", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d events for changes that did not happen", n)
	}
	once := WithEvents(ctx, ev("tunnel.create", "b"))
	must(t, s.CreateTunnel(once, Tunnel{Context: "b", SocketAddress: "b:1", UserGroups: ".*@.*"}))
	must(t, s.CreateEnvironment(once, "Prod"))
	if n := count(); n != 1 {
		t.Fatalf("%d events, want the one the context carried, once", n)
	}
}

func TestSQLiteDirectoryAccountsTokensAndSecondFactor(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateEnvironment(ctx, "PDT"))
	must(s.CreateGroup(ctx, "DBA", "PDT"))
	u := User{Username: "alice", Source: SourceDirectory, DirectoryGroups: []string{"DBA", "Domain Users"},
		Groups: []GroupRef{{Name: "DBA", Environment: "PDT"}}}
	must(s.CreateUser(ctx, u))
	got, err := s.User(ctx, "ALICE")
	must(err)
	if got.Source != SourceDirectory || fmt.Sprint(got.DirectoryGroups) != "[DBA Domain Users]" || got.PasswordHash != "" {
		t.Fatalf("directory account read back as %+v", got)
	}

	// A second-factor code works once, and only codes of later steps work.
	got.TOTPSecret = "JBSWY3DPEHPK3PXP"
	must(s.UpdateUser(ctx, got))
	must(s.UseTOTPStep(ctx, "alice", 100))
	if err := s.UseTOTPStep(ctx, "alice", 100); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same step twice: %v, want ErrConflict", err)
	}
	if err := s.UseTOTPStep(ctx, "alice", 99); !errors.Is(err, ErrConflict) {
		t.Fatalf("an earlier step: %v, want ErrConflict", err)
	}
	// A new secret starts over.
	got.TOTPSecret = "KRSXG5CTMVRXEZLU"
	must(s.UpdateUser(ctx, got))
	must(s.UseTOTPStep(ctx, "alice", 50))

	now := time.Now().UTC().Truncate(time.Microsecond)
	must(s.CreateSession(ctx, Session{ID: "s1", Username: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	must(s.CreateSession(ctx, Session{ID: "t1", Username: "alice", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
		Kind: KindToken, Name: "nightly export", Scope: []string{"mysql", "pg"}, CreatedBy: "admin"}))
	must(s.CreateSession(ctx, Session{ID: "t2", Username: "alice", CreatedAt: now, ExpiresAt: now.Add(-time.Minute), Kind: KindToken, Name: "old"}))
	token := KindToken
	live, err := s.Sessions(ctx, SessionFilter{LiveAt: now, Kind: &token})
	must(err)
	if len(live) != 1 || live[0].ID != "t1" || fmt.Sprint(live[0].Scope) != "[mysql pg]" || live[0].Name != "nightly export" || live[0].CreatedBy != "admin" {
		t.Fatalf("live tokens: %+v", live)
	}
	all, err := s.Sessions(ctx, SessionFilter{LiveAt: now, Username: "ALICE"})
	must(err)
	if len(all) != 2 {
		t.Fatalf("live sessions of alice: %+v", all)
	}
	must(s.RevokeSession(ctx, "t1", now))
	if live, _ := s.Sessions(ctx, SessionFilter{LiveAt: now, Kind: &token}); len(live) != 0 {
		t.Fatalf("a revoked token is still listed: %+v", live)
	}
}
