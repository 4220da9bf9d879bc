package e2e

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// dbEnv returns the address of a database server scripts/test started,
// and its credentials. Outside scripts/test the tests skip, saying how to
// run them; under it (PORTHOLE_REQUIRE_DB=1) a missing server fails.
func dbEnv(t *testing.T, name string) (addr, user, password, db string) {
	t.Helper()
	addr = os.Getenv(name)
	if addr == "" {
		if os.Getenv("PORTHOLE_REQUIRE_DB") != "" {
			t.Fatalf("%s is not set although scripts/test should have started the server", name)
		}
		t.Skipf("%s is not set: run scripts/test, which starts PostgreSQL and MariaDB", name)
	}
	return addr, os.Getenv("PORTHOLE_TEST_DB_USER"), os.Getenv("PORTHOLE_TEST_DB_PASSWORD"), os.Getenv("PORTHOLE_TEST_DB_NAME")
}

// dbTunnel starts a gateway process with a tunnel to addr and opens it
// with the CLI; it returns the local host and port.
func dbTunnel(t *testing.T, context, addr string) (*openProc, string, string) {
	g := startGatewayProc(t)
	g.admin(t, "tunnel", "add", context, addr, "--groups", "admin@ROOT")
	c := newClient(t)
	c.login(t, g, "admin", "admin-password")
	o := c.open(t, context+":0")
	host, port, _ := net.SplitHostPort(o.addrs[context])
	return o, host, port
}

func runClient(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPsql runs real queries with Debian's psql through `porthole open`
// and compares them with the same queries made directly.
func TestPsql(t *testing.T) {
	addr, user, password, db := dbEnv(t, "PORTHOLE_TEST_POSTGRES")
	o, host, port := dbTunnel(t, "pg", addr)
	dhost, dport, _ := net.SplitHostPort(addr)
	env := []string{"PGPASSWORD=" + password, "PGCONNECT_TIMEOUT=10"}
	psql := func(h, p string, sql string) string {
		return runClient(t, env, "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", h, "-p", p, "-U", user, "-d", db, "-c", sql)
	}
	psql(host, port, "DROP TABLE IF EXISTS orders; CREATE TABLE orders (id int primary key, item text, qty int)")
	psql(host, port, "INSERT INTO orders SELECT g, 'item-' || g, g % 7 FROM generate_series(1, 5000) g")
	queries := []string{
		"SELECT count(*), sum(qty) FROM orders",
		"SELECT item FROM orders WHERE id = 4242",
		// A large result: about 2 MB through the tunnel.
		"SELECT md5(string_agg(repeat(item, 40), ',' ORDER BY id)) FROM orders",
		"SELECT string_agg(repeat(md5(g::text), 8), '') IS NOT NULL FROM generate_series(1, 8000) g",
	}
	for _, q := range queries {
		via, direct := psql(host, port, q), psql(dhost, dport, q)
		if via != direct || via == "" {
			t.Fatalf("%s: through the tunnel %q, direct %q", q, via, direct)
		}
	}
	if got := psql(host, port, "SELECT count(*), sum(qty) FROM orders"); got != "5000|14997" {
		t.Fatalf("count/sum = %q", got)
	}
	o.interrupt(t)
}

// TestMysql runs real queries with Debian's mysql client (MariaDB) through
// `porthole open`.
func TestMysql(t *testing.T) {
	addr, user, password, db := dbEnv(t, "PORTHOLE_TEST_MYSQL")
	o, host, port := dbTunnel(t, "mysql", addr)
	dhost, dport, _ := net.SplitHostPort(addr)
	mysql := func(h, p, sql string) string {
		return runClient(t, []string{"MYSQL_PWD=" + password}, "mysql", "--no-defaults", "--protocol=TCP", "-h", h, "-P", p,
			"-u", user, "-D", db, "-N", "-B", "--connect-timeout=10", "-e", sql)
	}
	mysql(host, port, "DROP TABLE IF EXISTS orders; CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(64), qty INT)")
	mysql(host, port, "SET SESSION max_recursive_iterations = 10000; INSERT INTO orders WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM seq WHERE n < 5000) SELECT n, CONCAT('item-', n), n % 7 FROM seq")
	for _, q := range []string{
		"SELECT COUNT(*), SUM(qty) FROM orders",
		"SELECT item FROM orders WHERE id = 4242",
		"SELECT MD5(GROUP_CONCAT(REPEAT(item, 40) ORDER BY id SEPARATOR ',')) FROM orders",
	} {
		via, direct := mysql(host, port, q), mysql(dhost, dport, q)
		if via != direct || via == "" {
			t.Fatalf("%s: through the tunnel %q, direct %q", q, via, direct)
		}
	}
	if got := mysql(host, port, "SELECT COUNT(*), SUM(qty) FROM orders"); got != "5000\t14997" {
		t.Fatalf("count/sum = %q", got)
	}
	o.interrupt(t)
}
