package cli

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/internal/adtest"
)

func TestLoginWithAPIToken(t *testing.T) {
	url, gw := startGateway(t)
	ctx := t.Context()
	if _, err := gw.CreateTunnel(ctx, "test", gateway.TunnelSpec{Context: "other", SocketAddress: gatewaytest.UpperEcho(t)}); err != nil {
		t.Fatal(err)
	}
	tok, err := gw.CreateToken(ctx, "admin", gateway.TokenSpec{Name: "ci job", User: "admin", Tunnels: []string{"echo"}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t)
	if out, err := r.run(ctx, "not-a-token\n", "login", "--gateway", url, "--token-stdin"); err == nil || !strings.Contains(out+err.Error(), "ticket is not valid") {
		t.Fatalf("a bad token: %v %s", err, out)
	}
	if out, err := r.run(ctx, "", "login", "--gateway", url, "--token-stdin"); err == nil || !strings.Contains(err.Error(), "API token") {
		t.Fatalf("no token: %v %s", err, out)
	}
	out, err := r.run(ctx, tok.Token+"\n", "login", "--gateway", url, "--token-stdin")
	if err != nil || !strings.Contains(out, "as admin") {
		t.Fatalf("login with the token: %v %s", err, out)
	}
	out, err = r.run(ctx, "", "list")
	if err != nil || !strings.Contains(out, "echo") || strings.Contains(out, "other") {
		t.Fatalf("list with a token scoped to echo: %v\n%s", err, out)
	}
	addrs, _ := r.startOpen("echo:0")
	if got, err := echoThrough(addrs[0], "script"); err != nil || got != "SCRIPT" {
		t.Fatalf("through the tunnel with the token: %q %v", got, err)
	}
	// Signing out forgets the token here; it stays valid on the gateway.
	if out, err := r.run(ctx, "", "logout"); err != nil {
		t.Fatalf("logout: %v %s", err, out)
	}
	r2 := newRunner(t)
	if out, err := r2.run(ctx, tok.Token+"\n", "login", "--gateway", url, "--token-stdin"); err != nil {
		t.Fatalf("the token after a logout elsewhere: %v %s", err, out)
	}
	if out, err := r.run(ctx, "x", "login", "--gateway", url, "--token-stdin", "--sso"); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Fatalf("two ways at once: %v %s", err, out)
	}
}

func TestLoginWithSecondFactor(t *testing.T) {
	url, gw := startGateway(t)
	ctx := t.Context()
	if _, err := gw.CreateUser(ctx, "test", gateway.UserSpec{Username: "carol", Password: "carol-password"}); err != nil {
		t.Fatal(err)
	}
	key := "JBSWY3DPEHPK3PXP"
	if err := gw.SetSecondFactor(ctx, "test", "carol", key); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t)
	out, err := r.run(ctx, "carol-password\n", "login", "--gateway", url, "--user", "carol", "--password-stdin")
	if err == nil || !strings.Contains(err.Error(), "--otp CODE") {
		t.Fatalf("no code: %v %s", err, out)
	}
	if out, err := r.run(ctx, "carol-password\n", "login", "--gateway", url, "--user", "carol", "--password-stdin", "--otp", "123456"); err == nil || !strings.Contains(err.Error(), "wrong code") {
		t.Fatalf("wrong code: %v %s", err, out)
	}
	code, _ := totp.GenerateCode(key, time.Now())
	if out, err := r.run(ctx, "carol-password\n", "login", "--gateway", url, "--user", "carol", "--password-stdin", "--otp", code); err != nil {
		t.Fatalf("with the code: %v %s", err, out)
	}
}

// TestLoginSSO signs in with a Kerberos ticket that Debian's MIT kinit got
// from the test domain's KDC (Samba AD, scripts/lib/directory.sh), as a
// user on a domain-joined Linux machine would.
func TestLoginSSO(t *testing.T) {
	d := adtest.Get(t)
	user := adtest.Name("s")
	d.AddUser(t, user, "Sso-Passw0rd!")
	gw := gatewaytest.Start(t, func(c *gateway.Config) {
		c.Directory = &gateway.DirectoryConfig{URL: d.URL, CAFile: d.CAFile, ServerName: "127.0.0.1", BindDN: d.BindDN,
			BindPassword: d.BindPassword, BaseDN: d.BaseDN}
		c.Kerberos = &gateway.KerberosConfig{Keytab: d.Keytab}
	})
	// The gateway's address by name, so the default SPN is HTTP/localhost.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(gw.URL, "http://"))
	url := "http://localhost:" + port

	t.Setenv("KRB5_CONFIG", d.Krb5Conf)
	t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "no-ticket-yet"))
	r := newRunner(t)
	out, err := r.run(t.Context(), "", "login", "--gateway", url, "--sso")
	if err == nil || !strings.Contains(err.Error(), "run kinit first") {
		t.Fatalf("--sso without a ticket: %v %s", err, out)
	}
	d.Kinit(t, user, "Sso-Passw0rd!")
	out, err = r.run(t.Context(), "", "login", "--gateway", url, "--sso")
	if err != nil || !strings.Contains(strings.ToLower(out), "as "+user) {
		t.Fatalf("--sso with a kinit ticket: %v %s", err, out)
	}
	out, err = r.run(t.Context(), "", "status")
	if err != nil || !strings.Contains(strings.ToLower(out), user) {
		t.Fatalf("status after --sso: %v %s", err, out)
	}
	// A wrong service principal is a clear error.
	if out, err := r.run(t.Context(), "", "login", "--gateway", url, "--sso", "--spn", "HTTP/nowhere.example"); err == nil || !strings.Contains(err.Error(), "HTTP/nowhere.example") {
		t.Fatalf("unknown SPN: %v %s", err, out)
	}
}
