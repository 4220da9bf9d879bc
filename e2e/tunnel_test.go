package e2e

import (
	"encoding/json"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/gatewaytest"
)

// TestProcesses runs the gateway and the CLI as real processes: sign in,
// open a tunnel, move data with half-close, revoke a user while their
// tunnel is live, read the audit trail, and Ctrl-C.
func TestProcesses(t *testing.T) {
	g := startGatewayProc(t)
	target := gatewaytest.UpperAfterEOF(t)
	// Offline commands change the running gateway's store; they apply at once.
	g.admin(t, "group", "add", "staff@Prod")
	g.adminIn(t, "alice-password\n", "user", "add", "alice", "--group", "staff@Prod", "--password-stdin")
	out := g.admin(t, "tunnel", "add", "echo", target, "--groups", "staff@Prod;admin@ROOT", "--description", "upper-casing echo")
	if !strings.Contains(out, "created tunnel echo") {
		t.Fatalf("tunnel add: %s", out)
	}

	admin := newClient(t)
	admin.login(t, g, "admin", "admin-password")
	list, err := admin.run(t, "", "list")
	if err != nil || !strings.Contains(list, "upper-casing echo") {
		t.Fatalf("list: %v %s", err, list)
	}
	o := admin.open(t, "echo:0")
	got := roundTrip(t, o.addrs["echo"], "hello through two processes")
	if got != "HELLO THROUGH TWO PROCESSES" {
		t.Fatalf("got %q", got)
	}

	// alice's live tunnel closes when an administrator disables her, and
	// her CLI says why.
	a := newClient(t)
	a.login(t, g, "alice", "alice-password")
	ao := a.open(t, "echo:0")
	live, err := net.Dial("tcp", ao.addrs["echo"])
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	live.Write([]byte("pending"))
	// Wait until the gateway carries it (the audit says it opened).
	adminTicket := loginAPI(t, g, "admin", "admin-password")
	waitAudit(t, g, adminTicket, "tunnel.open", "alice")
	start := time.Now()
	if status, b := apiCall(t, g, "PUT", "/api/v1/admin/users/alice", adminTicket, map[string]any{"disabled": true}); status != 200 {
		t.Fatalf("disable: %d %s", status, b)
	}
	live.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(live); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("alice's connection was not closed within 5 s: %v", err)
	}
	t.Logf("alice's live connection closed %s after she was disabled", time.Since(start).Round(time.Millisecond))
	ao.out.wait(t, regexp.MustCompile(`the gateway closed the connection: your account was disabled`), 5*time.Second)
	// New connections are refused with the reason, not a silent close.
	c2, err := net.Dial("tcp", ao.addrs["echo"])
	if err == nil {
		c2.Close()
	}
	ao.out.wait(t, regexp.MustCompile(`refused the connection: your account is disabled`), 5*time.Second)

	ev := waitAudit(t, g, adminTicket, "tunnel.close", "alice")
	if ev["outcome"] != "error" || !strings.Contains(ev["details"].(map[string]any)["error"].(string), "disabled") {
		t.Fatalf("close audit: %v", ev)
	}
	ao.interrupt(t)

	// SIGTERM: the gateway stops accepting, closes live tunnels with a
	// reason, and exits.
	held, err := net.Dial("tcp", o.addrs["echo"])
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.Write([]byte("x"))
	waitAuditN(t, g, adminTicket, "tunnel.open", "admin", 2)
	start = time.Now()
	g.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- g.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("gateway exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not exit on SIGTERM")
	}
	t.Logf("gateway exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	o.out.wait(t, regexp.MustCompile(`gateway shutting down`), 5*time.Second)
	o.interrupt(t)
}

func roundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(msg))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitAudit waits for an audit event of kind by actor and returns it.
func waitAudit(t *testing.T, g *gatewayProc, ticket, kind, actor string) map[string]any {
	t.Helper()
	return waitAuditN(t, g, ticket, kind, actor, 1)
}

// waitAuditN waits until there are n events of kind by actor and returns
// the newest.
func waitAuditN(t *testing.T, g *gatewayProc, ticket, kind, actor string, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, b := apiCall(t, g, "GET", "/api/v1/admin/audit?kind="+kind+"&actor="+actor, ticket, nil)
		var evs []map[string]any
		json.Unmarshal(b, &evs)
		if status == 200 && len(evs) >= n {
			return evs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event by %s: %d %s", kind, actor, status, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
