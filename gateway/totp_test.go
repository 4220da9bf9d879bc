package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole/porthole/wire"
	"github.com/pquerna/otp/totp"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSecondFactor(t *testing.T) {
	clock := &testClock{t: time.Now()}
	g := startGateway(t, func(c *Config) { c.Now = clock.Now })
	admin := g.admin()
	alice := g.addUser(admin, "alice", "dev@Prod")
	login := func(otp string) (int, []byte) {
		status, data, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password", "otp": otp})
		return status, data
	}

	var setup SecondFactorSetup
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/second-factor", alice, nil), &setup)
	if setup.Secret == "" || !strings.HasPrefix(setup.URL, "otpauth://totp/Porthole:alice?") {
		t.Fatalf("setup %+v", setup)
	}
	// Until confirmed, nothing changes.
	if status, _ := login(""); status != 200 {
		t.Fatalf("sign-in before the setup was confirmed: %d", status)
	}
	status, data, _ := g.call("POST", "/api/v1/second-factor/confirm", alice, map[string]string{"code": "000000"})
	if status != 400 || !strings.Contains(string(data), "wrong code") {
		t.Fatalf("confirming with a wrong code: %d %s", status, data)
	}
	code, _ := totp.GenerateCode(setup.Secret, clock.Now())
	g.mustCall(200, "POST", "/api/v1/second-factor/confirm", alice, map[string]string{"code": code})

	status, data = login("")
	if e := errBody(t, data); status != 401 || e.Fields["otp"] != "is required" {
		t.Fatalf("sign-in without a code: %d %s", status, data)
	}
	if status, data := login(code); status != 401 || !strings.Contains(string(data), "used already") {
		t.Fatalf("the confirming code used again: %d %s", status, data)
	}
	clock.Add(30 * time.Second)
	code, _ = totp.GenerateCode(setup.Secret, clock.Now())
	if status, data := login(code); status != 200 {
		t.Fatalf("sign-in with the current code: %d %s", status, data)
	}
	if status, _ := login(code); status != 401 {
		t.Fatalf("a code worked twice: %d", status)
	}
	clock.Add(30 * time.Second)
	old, _ := totp.GenerateCode(setup.Secret, clock.Now().Add(-5*time.Minute))
	if status, data := login(old); status != 401 || !strings.Contains(string(data), "wrong code") {
		t.Fatalf("a five-minute-old code: %d %s", status, data)
	}
	var u UserInfo
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/users/alice", admin, nil), &u)
	if !u.SecondFactor {
		t.Fatal("the admin API does not show the second factor")
	}
	// An administrator removes it (a lost phone).
	g.mustCall(200, "PUT", "/api/v1/admin/users/alice", admin, map[string]bool{"secondFactor": false})
	if status, _ := login(""); status != 200 {
		t.Fatalf("sign-in after the second factor was removed: %d", status)
	}
	if n := g.auditedCount("user.second_factor"); n != 1 {
		t.Fatalf("second-factor changes audited: %d", n)
	}
}

func TestAdminsMustUseASecondFactor(t *testing.T) {
	data := t.TempDir()
	g := startGateway(t, func(c *Config) { c.RequireAdminTOTP = true; c.DataDir = data })
	status, body, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": adminPassword})
	if status != 403 || !strings.Contains(string(body), "porthole-gateway user totp admin") {
		t.Fatalf("admin without a second factor: %d %s", status, body)
	}
	// The offline command sets one up and prints the secret.
	var out, errOut bytes.Buffer
	g.Close()
	err := Run(t.Context(), []string{"user", "totp", "admin", "--data", data}, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("user totp: %v %s", err, errOut.String())
	}
	secret := ""
	for _, line := range strings.Split(out.String(), "\n") {
		if s, ok := strings.CutPrefix(line, "secret: "); ok {
			secret = strings.TrimSpace(s)
		}
	}
	if secret == "" {
		t.Fatalf("no secret printed: %s", out.String())
	}
	g2 := startGateway(t, func(c *Config) { c.RequireAdminTOTP = true; c.DataDir = data })
	code, _ := totp.GenerateCode(secret, time.Now())
	g2.mustCall(200, "POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": adminPassword, "otp": code})
}

// TestSignInErrorCodes: refusals carry a code for programs, so clients
// never match English messages.
func TestSignInErrorCodes(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	g.addUser(admin, "erin", "dev@Prod")
	if err := g.SetSecondFactor(t.Context(), "test", "erin", "JBSWY3DPEHPK3PXP"); err != nil {
		t.Fatal(err)
	}
	g.addUser(admin, "frank", "dev@Prod")
	g.mustCall(200, "PUT", "/api/v1/admin/users/frank", admin, map[string]bool{"disabled": true})
	for _, tc := range []struct {
		user, password, otp string
		status              int
		code                string
	}{
		{"admin", "wrong-password", "", 401, wire.CodeWrongCredentials},
		{"nobody", "whatever-pw", "", 401, wire.CodeWrongCredentials},
		{"erin", "erin-password", "", 401, wire.CodeOTPRequired},
		{"erin", "erin-password", "000000", 401, wire.CodeOTPWrong},
		{"frank", "frank-password", "", 403, wire.CodeAccountDisabled},
	} {
		status, data, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": tc.user, "password": tc.password, "otp": tc.otp})
		if e := errBody(t, data); status != tc.status || e.Code != tc.code {
			t.Fatalf("%s: %d %s, want %d with code %s", tc.user, status, data, tc.status, tc.code)
		}
	}
	for range 10 {
		g.call("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": "wrong-password"})
	}
	status, data, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": "wrong-password"})
	if e := errBody(t, data); status != 429 || e.Code != wire.CodeRateLimited {
		t.Fatalf("rate limited: %d %s", status, data)
	}
}
