package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/internal/pgtest"
)

// openPostgres opens a store in a schema of its own on the test server
// (internal/pgtest), dropped when the test ends.
func openPostgres(t testing.TB) *SQLite {
	t.Helper()
	s, err := OpenPostgres(context.Background(), pgtest.Schema(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgres(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return openPostgres(t) })
}

func TestPostgresNamesIgnoreCase(t *testing.T) {
	s := openPostgres(t)
	ctx := t.Context()
	if err := s.CreateEnvironment(ctx, "Prod"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(ctx, "PROD"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("PROD beside Prod: %v", err)
	}
	if err := s.CreateGroup(ctx, "DBA", "prod"); err != nil {
		t.Fatalf("a group in prod (Prod): %v", err)
	}
	if err := s.CreateUser(ctx, User{Username: "Alice", PasswordHash: "h", Groups: []GroupRef{{Name: "dba", Environment: "PROD"}}}); err != nil {
		t.Fatal(err)
	}
	u, err := s.User(ctx, "ALICE")
	if err != nil || u.Username != "Alice" || len(u.Groups) != 1 || u.Groups[0].Name != "DBA" {
		t.Fatalf("user read back as %+v %v", u, err)
	}
}

func TestPostgresConcurrentFirstStart(t *testing.T) {
	dsn := pgtest.Schema(t)
	// Three gateways start at once on an empty database: one migrates,
	// the others wait and find it done.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := OpenPostgres(context.Background(), dsn, "")
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("concurrent first start: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a first start hung")
		}
	}
}

func TestPostgresDSNErrors(t *testing.T) {
	for _, dsn := range []string{"mysql://x", "not a url", "sqlite:/tmp/x"} {
		if _, err := OpenPostgres(t.Context(), dsn, ""); err == nil || !strings.Contains(err.Error(), "postgres://USER@HOST") {
			t.Fatalf("%q: %v", dsn, err)
		}
	}
	if _, err := OpenPostgres(t.Context(), "postgres://u:secret@127.0.0.1:1/db", ""); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("an unreachable server: %v (the password must not be shown)", err)
	}
}
