package app

import (
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"github.com/pquerna/otp/totp"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/internal/adtest"
)

func TestSignInWithSecondFactor(t *testing.T) {
	gw, dir := setup(t)
	ctx := t.Context()
	if _, err := gw.CreateUser(ctx, "test", gateway.UserSpec{Username: "dana", Password: "dana-password"}); err != nil {
		t.Fatal(err)
	}
	const secret = "JBSWY3DPEHPK3PXP"
	if err := gw.SetSecondFactor(ctx, "test", "dana", secret); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, gw, dir)
	h.ui.Start()
	f := h.ui.signIn
	if f.codeForm.Visible() {
		t.Fatal("the code field shows before the gateway asks for it")
	}
	h.signIn(gw.URL, "dana", "dana-password")
	h.pump("the code field", func() bool { return f.codeForm.Visible() && !f.button.Disabled() })
	if got := f.errLabel.Text; got != "Enter the code from your authenticator app." {
		t.Fatalf("message %q", got)
	}
	if f.password.Text != "dana-password" {
		t.Fatal("the password was cleared: the user would type it again")
	}
	test.Type(f.code, "000000")
	test.Tap(f.button)
	h.pump("wrong code", func() bool { return strings.Contains(f.errLabel.Text, "Wrong code") && !f.button.Disabled() })
	h.signIn(gw.URL, "dana", "dana-password")
	h.pump("the code field again", func() bool { return f.codeForm.Visible() && !f.button.Disabled() })
	code, _ := totp.GenerateCode(secret, time.Now())
	test.Type(f.code, code)
	test.Tap(f.button)
	h.pump("the tunnel list", h.onTunnels)
}

// TestSignInWithKerberos taps the single sign-on button with a ticket
// Debian's kinit got from the test domain's KDC (Samba AD).
func TestSignInWithKerberos(t *testing.T) {
	d := adtest.Get(t)
	user := adtest.Name("t")
	d.AddUser(t, user, "Tray-Passw0rd!")
	gw := gatewaytest.Start(t, func(c *gateway.Config) {
		c.Directory = &gateway.DirectoryConfig{URL: d.URL, CAFile: d.CAFile, ServerName: "127.0.0.1", BindDN: d.BindDN,
			BindPassword: d.BindPassword, BaseDN: d.BaseDN}
		c.Kerberos = &gateway.KerberosConfig{Keytab: d.Keytab}
	})
	d.Kinit(t, user, "Tray-Passw0rd!")
	h := newHarness(t, gw, t.TempDir())
	h.ui.Start()
	f := h.ui.signIn
	url := strings.Replace(gw.URL, "127.0.0.1", "localhost", 1) // SPN HTTP/localhost
	f.gateway.SetText("")
	test.Type(f.gateway, url)
	test.Tap(f.sso)
	h.pump("the tunnel list", h.onTunnels)
	if _, u := h.svc.Identity(); !strings.EqualFold(u, user) {
		t.Fatalf("signed in as %q, want %q", u, user)
	}
}
