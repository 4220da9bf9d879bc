package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/internal/pgtest"

	"github.com/porthole/porthole/wire"
)

// postgresStore is a store DSN in a schema of the test's own on the
// PostgreSQL server scripts/test starts.
func postgresStore(t testing.TB) string { return pgtest.Schema(t) }

// TestGatewaysSharePostgres: two gateways on one PostgreSQL. A sign-in on
// one works on the other, a tunnel made on one opens on the other, and a
// revocation on one closes the tunnel live on the other through the
// change feed (LISTEN/NOTIFY: the poll is turned off here).
func TestGatewaysSharePostgres(t *testing.T) {
	dsn := postgresStore(t)
	defer func(p time.Duration) { recheckPeriod = p }(recheckPeriod)
	recheckPeriod = time.Hour // only the change feed can deliver changes
	a := startGateway(t, func(c *Config) { c.Store = dsn; c.Name = "gw-a" })
	b := startGateway(t, func(c *Config) { c.Store = dsn; c.Name = "gw-b" })
	admin := a.admin()
	b.mustCall(200, "GET", "/api/v1/me", admin, nil)

	a.addUser(admin, "alice", "dba@Prod")
	a.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "db", SocketAddress: echoServer(t), UserGroups: "dba@Prod"})
	alice := b.login("alice", "alice-password")
	c := b.openStream("db", alice)
	c.Write([]byte("across gateways"))
	buf := make([]byte, len("across gateways"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ACROSS GATEWAYS" {
		t.Fatalf("through gateway b: %q %v", buf, err)
	}
	errc := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, c); errc <- err }()

	start := time.Now()
	a.mustCall(200, "PUT", "/api/v1/admin/users/alice", admin, map[string]bool{"disabled": true})
	select {
	case err := <-errc:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseUnauthorized {
			t.Fatalf("the tunnel on b ended with %v, want the revocation", err)
		}
		t.Logf("revocation on a closed the tunnel on b after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("a revocation on gateway a did not reach the live tunnel on gateway b")
	}
	if status, _, _ := b.call("GET", "/api/v1/tunnels", alice, nil); status != 401 {
		t.Fatalf("alice's ticket on b after she was disabled on a: %d", status)
	}
	// Each audit row names the gateway that wrote it.
	var events []AuditEvent
	json.Unmarshal(a.mustCall(200, "GET", "/api/v1/admin/audit?limit=1000", admin, nil), &events)
	wrote := map[string]string{}
	for _, e := range events {
		wrote[e.Kind] = e.Gateway
	}
	if wrote["tunnel.open"] != "gw-b" || wrote["user.update"] != "gw-a" || wrote["tunnel.create"] != "gw-a" {
		t.Fatalf("audit rows by gateway: %v", wrote)
	}
	if !strings.Contains(b.cfg.StoreName(), "postgres://") || strings.Contains(b.cfg.StoreName(), os.Getenv("PORTHOLE_TEST_DB_PASSWORD")) {
		t.Fatalf("store name %q", b.cfg.StoreName())
	}
}

// TestMigrateToPostgres fills a SQLite store through a gateway, copies it
// with porthole-gateway migrate, and starts a gateway on the copy: the
// old ticket still works, passwords, tunnels, memberships and the audit
// log came along, and a second copy into the same database is refused.
func TestMigrateToPostgres(t *testing.T) {
	dsn := postgresStore(t)
	data := t.TempDir()
	g := startGateway(t, func(c *Config) { c.DataDir = data })
	admin := g.admin()
	g.addUser(admin, "alice", "dba@Prod")
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "db", SocketAddress: echoServer(t), UserGroups: "dba@Prod", LocalPort: 13306})
	aliceTicket := g.login("alice", "alice-password")
	var before []AuditEvent
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/audit?limit=1000", admin, nil), &before)
	g.Close()

	var out, errOut bytes.Buffer
	if err := Run(t.Context(), []string{"migrate", "--data", data, "--to", dsn}, IO{Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatalf("migrate: %v %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "users        2") || !strings.Contains(out.String(), "tunnels      1") || strings.Contains(out.String(), os.Getenv("PORTHOLE_TEST_DB_PASSWORD")) {
		t.Fatalf("migrate said:\n%s", out.String())
	}
	p := startGateway(t, func(c *Config) { c.Store = dsn })
	p.mustCall(200, "GET", "/api/v1/me", aliceTicket, nil) // the ticket key came along
	p.login("alice", "alice-password")
	var tunnels []UserTunnel
	json.Unmarshal(p.mustCall(200, "GET", "/api/v1/tunnels", aliceTicket, nil), &tunnels)
	if len(tunnels) != 1 || tunnels[0].Context != "db" || tunnels[0].LocalPort != 13306 {
		t.Fatalf("tunnels on the copy: %+v", tunnels)
	}
	var after []AuditEvent
	json.Unmarshal(p.mustCall(200, "GET", "/api/v1/admin/audit?limit=1000", admin, nil), &after)
	if len(after) < len(before) || len(before) == 0 {
		t.Fatalf("audit: %d events before, %d on the copy", len(before), len(after))
	}
	err := Run(t.Context(), []string{"migrate", "--data", data, "--to", dsn}, IO{Stdout: &out, Stderr: &errOut})
	if err == nil || !strings.Contains(err.Error(), "already holds a Porthole store") {
		t.Fatalf("a second migrate into the same database: %v", err)
	}
}

// TestRotateTicketKey: a rotation on one gateway signs new tickets with
// the new key on every gateway, and the tickets and tokens made before
// stay valid.
func TestRotateTicketKey(t *testing.T) {
	dsn := postgresStore(t)
	a := startGateway(t, func(c *Config) { c.Store = dsn })
	b := startGateway(t, func(c *Config) { c.Store = dsn })
	before := a.admin()
	oldSigner := a.signer.Load()
	if err := a.RotateTicketKey(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	after := a.admin()
	if _, err := oldSigner.Verify(after, time.Now()); err == nil {
		t.Fatal("a ticket made after the rotation verifies with the old key alone: not rotated")
	}
	for name, g := range map[string]*testGW{"a": a, "b": b} {
		waitFor(t, 10*time.Second, "gateway "+name+" to take the new key", func() bool {
			status, _, _ := g.call("GET", "/api/v1/me", after, nil)
			return status == 200
		})
		g.mustCall(200, "GET", "/api/v1/me", before, nil) // no one signed out
	}
	if n := a.auditedCount("ticket_key.rotate"); n != 1 {
		t.Fatalf("rotation audited %d times", n)
	}
}

// TestSignInLimitSharedAcrossGateways: wrong passwords for one account
// spread over two gateways (from different addresses, so no per-address
// limit applies) meet one per-account limit.
func TestSignInLimitSharedAcrossGateways(t *testing.T) {
	dsn := postgresStore(t)
	a := startGateway(t, func(c *Config) { c.Store = dsn })
	b := startGateway(t, func(c *Config) { c.Store = dsn })
	for i := range sharedAccountLimit {
		g := a
		if i%2 == 1 {
			g = b
		}
		_, err := g.signIn(t.Context(), credentials{username: "admin", password: "guess-guess"}, fmt.Sprintf("10.77.%d.%d", i, i))
		var he *Error
		if !errors.As(err, &he) || he.Status != 401 {
			t.Fatalf("guess %d: %v, want 401", i, err)
		}
	}
	// Each gateway saw only half of them, yet both refuse now, even the
	// right password, until the window passes.
	for name, g := range map[string]*testGW{"a": a, "b": b} {
		_, err := g.signIn(t.Context(), credentials{username: "admin", password: adminPassword}, "10.99.0.1")
		var he *Error
		if !errors.As(err, &he) || he.Status != 429 {
			t.Fatalf("gateway %s after %d guesses spread over two: %v, want 429", name, sharedAccountLimit, err)
		}
	}
}

// TestLiveConnectionsAcrossGateways: the portal of gateway A lists a
// connection that gateway B carries, and A's Disconnect closes it on B.
func TestLiveConnectionsAcrossGateways(t *testing.T) {
	dsn := postgresStore(t)
	a := startGateway(t, func(c *Config) { c.Store = dsn; c.Name = "gw-a" })
	b := startGateway(t, func(c *Config) { c.Store = dsn; c.Name = "gw-b" })
	admin := a.admin()
	a.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "db", SocketAddress: echoServer(t)})
	c := b.openStream("db", admin)
	errc := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, c); errc <- err }()
	var seen []liveView
	waitFor(t, 10*time.Second, "gateway a to list b's connection", func() bool {
		seen = a.LiveConnections(t.Context(), "db")
		return len(seen) == 1 && seen[0].Gateway == "gw-b"
	})
	if err := a.DisconnectAnywhere(t.Context(), "admin", seen[0].Gateway, seen[0].ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseDisconnected {
			t.Fatalf("the connection on b ended with %v, want disconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a's Disconnect did not close the connection on b")
	}
	waitFor(t, 10*time.Second, "the list to drop it", func() bool { return len(a.LiveConnections(t.Context(), "db")) == 0 })
	var events []AuditEvent
	json.Unmarshal(a.mustCall(200, "GET", "/api/v1/admin/audit?kind=connection.disconnect", admin, nil), &events)
	if len(events) != 1 || events[0].Actor != "admin" || events[0].Gateway != "gw-b" {
		t.Fatalf("disconnect audit: %+v", events)
	}
}

// TestEveryRevocationReachesOtherGateways: each kind of revocation made
// on gateway A closes the live tunnel on gateway B through the change feed
// alone (the poll is off).
func TestEveryRevocationReachesOtherGateways(t *testing.T) {
	dsn := postgresStore(t)
	defer func(p time.Duration) { recheckPeriod = p }(recheckPeriod)
	recheckPeriod = time.Hour
	a := startGateway(t, func(c *Config) { c.Store = dsn; c.Name = "gw-a" })
	b := startGateway(t, func(c *Config) { c.Store = dsn; c.Name = "gw-b" })
	admin := a.admin()
	echo := echoServer(t)
	for i, tc := range []struct {
		name   string
		revoke func(user, ticket, tunnel string)
	}{
		{"sign-out", func(user, ticket, tunnel string) { a.mustCall(200, "POST", "/api/v1/logout", ticket, nil) }},
		{"group removal", func(user, ticket, tunnel string) {
			a.mustCall(200, "PUT", "/api/v1/admin/users/"+user, admin, map[string][]string{"groups": {}})
		}},
		{"tunnel change", func(user, ticket, tunnel string) {
			a.mustCall(200, "PUT", "/api/v1/admin/tunnels/"+tunnel, admin, map[string]string{"userGroups": "admin@ROOT"})
		}},
		{"tunnel delete", func(user, ticket, tunnel string) {
			a.mustCall(204, "DELETE", "/api/v1/admin/tunnels/"+tunnel, admin, nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, tunnel := fmt.Sprintf("user%d", i), fmt.Sprintf("db%d", i)
			a.addUser(admin, user, "dba@Prod")
			a.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: tunnel, SocketAddress: echo, UserGroups: "dba@Prod"})
			ticket := b.login(user, user+"-password")
			c := b.openStream(tunnel, ticket)
			errc := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, c); errc <- err }()
			tc.revoke(user, ticket, tunnel)
			select {
			case err := <-errc:
				var ce *wire.CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("the tunnel on b ended with %v, want a close with a reason", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s on gateway a did not reach the live tunnel on gateway b", tc.name)
			}
		})
	}
}

// TestSignInAddressLimitSharedAcrossGateways: one address guessing many
// accounts over two gateways meets one per-address limit.
func TestSignInAddressLimitSharedAcrossGateways(t *testing.T) {
	dsn := postgresStore(t)
	a := startGateway(t, func(c *Config) { c.Store = dsn })
	b := startGateway(t, func(c *Config) { c.Store = dsn })
	for i := range sharedAddrLimit {
		g := a
		if i%2 == 1 {
			g = b
		}
		// A different account each time, so no per-account limit applies.
		g.signIn(t.Context(), credentials{username: fmt.Sprintf("nobody%d", i), password: "guess-guess"}, "10.55.0.1")
	}
	_, err := b.signIn(t.Context(), credentials{username: "admin", password: adminPassword}, "10.55.0.1")
	var he *Error
	if !errors.As(err, &he) || he.Status != 429 {
		t.Fatalf("after %d guesses from one address spread over two gateways: %v, want 429", sharedAddrLimit, err)
	}
	if _, err := b.signIn(t.Context(), credentials{username: "admin", password: adminPassword}, "10.55.0.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}
