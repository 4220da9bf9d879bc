// Package pgtest gives tests the private PostgreSQL server scripts/test
// starts (PORTHOLE_TEST_POSTGRES and the PORTHOLE_TEST_DB_* credentials),
// with a schema of each test's own so tests never see each other's rows.
package pgtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// DSN is the test server's address as a postgres:// DSN; without the
// server the test is skipped, or fails under PORTHOLE_REQUIRE_DB=1.
func DSN(t testing.TB) string {
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

// Schema makes a new empty schema, dropped when the test ends, and
// returns the DSN that works in it.
func Schema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatalf("create a test schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	return dsn + "&search_path=" + schema
}
