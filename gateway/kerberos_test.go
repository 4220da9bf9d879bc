package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/porthole/porthole/internal/adtest"
	"github.com/porthole/porthole/wire"
)

// kerberosRequest makes a sign-in request carrying a Kerberos ticket for
// user, got from the test domain's KDC with the password (as kinit
// would).
func kerberosRequest(t *testing.T, g *testGW, d *adtest.Domain, user, password string) *http.Request {
	t.Helper()
	kc, err := config.Load(d.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewWithPassword(user, d.Realm, password, kc, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("kerberos login of %s: %v", user, err)
	}
	defer cl.Destroy()
	req, _ := http.NewRequest("POST", g.URL+wire.KerberosLoginPath, nil)
	if err := spnego.SetSPNEGOHeader(cl, req, "HTTP/localhost"); err != nil {
		t.Fatal(err)
	}
	return req
}

func send(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func kerberosLogin(t *testing.T, g *testGW, d *adtest.Domain, user, password string) (int, []byte) {
	t.Helper()
	return send(t, kerberosRequest(t, g, d, user, password))
}

func TestKerberosSignIn(t *testing.T) {
	d := adtest.Get(t)
	user, off := adtest.Name("k"), adtest.Name("k")
	userDN := d.AddUser(t, user, "Kerb3ros-Pass!")
	offDN := d.AddUser(t, off, "Kerb3ros-Pass!")
	grp := adtest.Name("krb")
	grpDN := d.AddGroup(t, grp)
	d.AddMember(t, grpDN, userDN)
	g := startGateway(t, func(c *Config) {
		c.Directory = directoryConfig(d)
		c.Kerberos = &KerberosConfig{Keytab: d.Keytab}
	})
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/environments", admin, map[string]string{"name": "PORTHOLE"})
	g.mustCall(201, "POST", "/api/v1/admin/groups", admin, map[string]string{"name": grp, "environment": "PORTHOLE"})

	status, data := kerberosLogin(t, g, d, user, "Kerb3ros-Pass!")
	var resp LoginResponse
	json.Unmarshal(data, &resp)
	if status != 200 || !strings.EqualFold(resp.User, user) || len(resp.Groups) != 1 || !strings.EqualFold(resp.Groups[0], grp+"@PORTHOLE") {
		t.Fatalf("kerberos sign-in: %d %s", status, data)
	}
	g.mustCall(200, "GET", "/api/v1/me", resp.Ticket, nil)

	// The Kerberos ticket is good but an administrator disabled the
	// account in Porthole: refused.
	g.mustCall(200, "PUT", "/api/v1/admin/users/"+user, admin, map[string]bool{"disabled": true})
	if status, data := kerberosLogin(t, g, d, user, "Kerb3ros-Pass!"); status != 403 || !strings.Contains(string(data), "disabled") {
		t.Fatalf("an account disabled in Porthole: %d %s", status, data)
	}
	// Another directory account, disabled in the directory after it got
	// its Kerberos ticket: the gateway reads the directory and refuses.
	req := kerberosRequest(t, g, d, off, "Kerb3ros-Pass!")
	d.Disable(t, offDN)
	if status, data := send(t, req); status != 403 || !strings.Contains(string(data), "disabled in the directory") {
		t.Fatalf("an account disabled in the directory: %d %s", status, data)
	}
	// No token: 401 with the challenge, as browsers and SSPI expect.
	status, data, h := g.call("POST", wire.KerberosLoginPath, "", nil)
	if status != 401 || h.Get("WWW-Authenticate") != "Negotiate" {
		t.Fatalf("no token: %d %v %s", status, h, data)
	}
	// Garbage is a clear 401, not a crash.
	req, _ = http.NewRequest("POST", g.URL+wire.KerberosLoginPath, nil)
	req.Header.Set("Authorization", "Negotiate YWJj")
	r, err := http.DefaultClient.Do(req)
	if err != nil || r.StatusCode != 401 {
		t.Fatalf("garbage token: %v %v", r, err)
	}
	r.Body.Close()
}

func TestKerberosNotConfigured(t *testing.T) {
	g := startGateway(t)
	status, data, _ := g.call("POST", wire.KerberosLoginPath, "", nil)
	if status != 404 || !strings.Contains(string(data), "not configured") {
		t.Fatalf("%d %s", status, data)
	}
}
