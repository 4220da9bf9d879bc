package e2e

import (
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/porthole/porthole/connstr"
)

// TestODBC queries the private PostgreSQL and MariaDB servers through
// `porthole open` with unixODBC's isql and Debian's ODBC drivers
// (odbc-postgresql, odbc-mariadb), using the very connection strings
// Porthole shows for the tunnel's port, and compares every answer with
// the same query over a direct connection.
func TestODBC(t *testing.T) {
	if _, err := exec.LookPath("isql"); err != nil {
		t.Fatal("isql is missing (Debian's unixodbc): scripts/test installs it")
	}
	for _, tc := range []struct {
		name, env string
		kind      connstr.Kind
		label     string
		setup     []string
		queries   []string
	}{
		{"postgresql", "PORTHOLE_TEST_POSTGRES", connstr.PostgreSQL, "ODBC",
			[]string{"DROP TABLE IF EXISTS odbc_orders", "CREATE TABLE odbc_orders (id int primary key, item text, qty int)",
				"INSERT INTO odbc_orders SELECT g, 'item-' || g, g % 7 FROM generate_series(1, 2000) g"},
			[]string{"SELECT count(*), sum(qty) FROM odbc_orders", "SELECT item FROM odbc_orders WHERE id = 1234",
				"SELECT md5(string_agg(item, ',' ORDER BY id)) FROM odbc_orders"}},
		{"mariadb", "PORTHOLE_TEST_MYSQL", connstr.MySQL, "ODBC (MariaDB driver)",
			[]string{"DROP TABLE IF EXISTS odbc_orders", "CREATE TABLE odbc_orders (id INT PRIMARY KEY, item VARCHAR(64), qty INT)",
				"INSERT INTO odbc_orders SELECT seq, CONCAT('item-', seq), seq % 7 FROM seq_1_to_2000"},
			[]string{"SELECT COUNT(*), SUM(qty) FROM odbc_orders", "SELECT item FROM odbc_orders WHERE id = 1234",
				"SELECT MD5(GROUP_CONCAT(item ORDER BY id SEPARATOR ',')) FROM odbc_orders"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, user, password, db := dbEnv(t, tc.env)
			o, _, port := dbTunnel(t, tc.name, addr)
			shown := ""
			for _, e := range connstr.For(tc.kind, atoi(t, port)) {
				if e.Label == tc.label {
					shown = e.Text
				}
			}
			if shown == "" {
				t.Fatalf("Porthole shows no %q string for %s", tc.label, tc.name)
			}
			fill := strings.NewReplacer("DATABASE", db, "USER", user, "PASSWORD", password)
			via := fill.Replace(shown)
			dhost, dport, _ := net.SplitHostPort(addr)
			direct := strings.NewReplacer("Server=localhost", "Server="+dhost, "Server=127.0.0.1", "Server="+dhost, "Port="+port, "Port="+dport).Replace(via)
			if direct == via {
				t.Fatalf("could not point %q at the server directly", via)
			}
			for _, q := range tc.setup {
				isql(t, via, q)
			}
			for _, q := range tc.queries {
				got, want := isql(t, via, q), isql(t, direct, q)
				if got != want || got == "" {
					t.Fatalf("%s: through the tunnel %q, direct %q", q, got, want)
				}
			}
			if got := isql(t, via, tc.queries[0]); got != "2000|6000" {
				t.Fatalf("count/sum through the tunnel: %q", got)
			}
			o.interrupt(t)
		})
	}
}

// isql runs one statement with unixODBC's isql over a DSN-less
// connection string (SQLDriverConnect) and returns its rows, "|"-joined.
func isql(t *testing.T, conn, sql string) string {
	t.Helper()
	cmd := exec.Command("isql", "-k", "-b", "-d|", "-v", conn)
	cmd.Stdin = strings.NewReader(sql + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "[ISQL]ERROR") {
		t.Fatalf("isql %q with %q: %v\n%s", sql, conn, err, out)
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "SQLRowCount") {
			rows = append(rows, line)
		}
	}
	return strings.Join(rows, "\n")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a port: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
