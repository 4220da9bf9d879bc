package e2e

import (
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/gatewaytest"
)

// TestTokenInAScript: a shell script signs in with an API token an
// administrator made (the real porthole binary, no password, no
// prompt), lists and opens the tunnel the token allows, and is refused
// once the token is revoked.
func TestTokenInAScript(t *testing.T) {
	g := startGatewayProc(t)
	g.admin(t, "tunnel", "add", "echo", gatewaytest.UpperEcho(t), "--groups", "admin@ROOT")
	g.admin(t, "tunnel", "add", "other", gatewaytest.UpperEcho(t), "--groups", "admin@ROOT")
	admin := loginAPI(t, g, "admin", "admin-password")
	status, b := apiCall(t, g, "POST", "/api/v1/admin/tokens", admin, map[string]any{"name": "nightly export", "tunnels": []string{"echo"}, "expiresIn": "24h"})
	if status != 201 {
		t.Fatalf("make a token: %d %s", status, b)
	}
	var tok struct{ ID, Token string }
	json.Unmarshal(b, &tok)

	c := newClient(t)
	script := `set -e
printf '%s\n' "$PORTHOLE_TOKEN" | porthole login --gateway "$GATEWAY" --token-stdin
porthole list`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(c.env, "PATH="+binaries(t)+":/usr/bin:/bin", "PORTHOLE_TOKEN="+tok.Token, "GATEWAY="+g.url)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "echo") || strings.Contains(string(out), "other") {
		t.Fatalf("the script: %v\n%s", err, out)
	}
	p := c.open(t, "echo:0")
	conn, err := net.Dial("tcp", p.addrs["echo"])
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte("from a script"))
	buf := make([]byte, len("from a script"))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "FROM A SCRIPT" {
		t.Fatalf("through the tunnel: %q %v", buf, err)
	}
	conn.Close()
	p.interrupt(t)

	if status, b := apiCall(t, g, "DELETE", "/api/v1/admin/tokens/"+tok.ID, admin, nil); status != 204 {
		t.Fatalf("revoke: %d %s", status, b)
	}
	out2, err := c.run(t, "", "list")
	if err == nil || !strings.Contains(out2, "porthole login") {
		t.Fatalf("list after the token was revoked: %v\n%s", err, out2)
	}
}
