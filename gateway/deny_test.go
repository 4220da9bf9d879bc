package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/porthole/porthole/wire"
)

// Tunnels cannot lead to cloud metadata addresses or loop into the
// gateway itself; the configuration can change the list.
func TestDenyTargets(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	_, port, _ := strings.Cut(strings.TrimPrefix(g.URL, "http://"), ":")
	for addr, want := range map[string]string{
		"169.254.169.254:80": "169.254.169.254 is in 169.254.0.0/16",
		"[fe80::1]:5432":     "fe80::1 is in fe80::/10",
		"127.0.0.1:" + port:  "127.0.0.1:" + port + " is the gateway's own port",
		"[fd00:ec2::254]:80": "fd00:ec2::254 is in fd00:ec2::254/128",
	} {
		e := errBody(t, g.mustCall(400, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "t", SocketAddress: addr}))
		if !strings.Contains(e.Fields["socketAddress"], want) {
			t.Errorf("%s: %+v, want %q", addr, e, want)
		}
	}
	// A name is checked after it resolves: localhost is the gateway.
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "loop", SocketAddress: "localhost:" + port})
	ws, resp, err := g.dialTunnel("loop", admin, nil)
	if err == nil {
		ws.Close()
		t.Fatal("a tunnel into the gateway itself was opened")
	}
	body := errBodyResp(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body.Error, "is the gateway's own port") {
		t.Fatalf("loop: %d %+v", resp.StatusCode, body)
	}
	// Other targets work as before.
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "fine", SocketAddress: echoServer(t)})
	g.openStream("fine", admin).Close()

	// An administrator who needs a link-local target says so.
	g2 := startGateway(t, func(c *Config) { c.DenyTargets = []string{"10.0.0.0/8", "192.0.2.7:25"} })
	admin2 := g2.admin()
	g2.mustCall(201, "POST", "/api/v1/admin/tunnels", admin2, TunnelSpec{Context: "meta", SocketAddress: "169.254.169.254:80"})
	for addr, want := range map[string]string{"10.1.2.3:5432": "10.0.0.0/8", "192.0.2.7:25": "192.0.2.7:25 is in the gateway's denyTargets"} {
		e := errBody(t, g2.mustCall(400, "POST", "/api/v1/admin/tunnels", admin2, TunnelSpec{Context: "x", SocketAddress: addr}))
		if !strings.Contains(e.Fields["socketAddress"], want) {
			t.Errorf("%s: %+v", addr, e)
		}
	}
	g2.mustCall(201, "POST", "/api/v1/admin/tunnels", admin2, TunnelSpec{Context: "smtp2", SocketAddress: "192.0.2.7:26"})
}

func TestDenyTargetsConfig(t *testing.T) {
	c := Config{DataDir: t.TempDir(), DenyTargets: []string{"not an address"}}
	if err := c.CheckAndSetDefaults(); err == nil || !strings.Contains(err.Error(), `"not an address"`) {
		t.Fatalf("a bad entry: %v", err)
	}
}

// errBodyResp decodes the JSON error of a refused upgrade.
func errBodyResp(t *testing.T, resp *http.Response) wire.Error {
	t.Helper()
	if resp == nil {
		t.Fatal("no response")
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return errBody(t, b)
}
