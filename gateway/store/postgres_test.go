package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// postgresDSN is the private PostgreSQL server scripts/test starts
// (PORTHOLE_TEST_POSTGRES); without it the test is skipped, or fails under
// PORTHOLE_REQUIRE_DB=1.
func postgresDSN(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("PORTHOLE_TEST_POSTGRES")
	if addr == "" {
		if os.Getenv("PORTHOLE_REQUIRE_DB") != "" {
			t.Fatal("PORTHOLE_TEST_POSTGRES is not set although scripts/test should have started PostgreSQL")
		}
		t.Skip("PORTHOLE_TEST_POSTGRES is not set: run scripts/test, which starts PostgreSQL")
	}
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", os.Getenv("PORTHOLE_TEST_DB_USER"), os.Getenv("PORTHOLE_TEST_DB_PASSWORD"),
		addr, os.Getenv("PORTHOLE_TEST_DB_NAME"))
}

// openPostgres opens a store in a schema of its own on the test server,
// dropped when the test ends.
func openPostgres(t testing.TB) *SQLite {
	t.Helper()
	dsn := postgresDSN(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	s, err := OpenPostgres(context.Background(), dsn+"&search_path="+schema, "")
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
	dsn := postgresDSN(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	admin.Exec("CREATE SCHEMA " + schema)
	defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	// Three gateways start at once on an empty database: one migrates,
	// the others wait and find it done.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := OpenPostgres(context.Background(), dsn+"&search_path="+schema, "")
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
