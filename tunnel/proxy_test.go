package tunnel

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/internal/adtest"
	"github.com/porthole/porthole/internal/squidtest"
)

// proxied is a gateway reached by name through squid (a name, because
// clients never send loopback addresses to a proxy); the proxy settings
// are the environment's, as users set them.
func proxied(t *testing.T, o squidtest.Options, proxyURL func(port int) string) (*env, *squidtest.Proxy, string) {
	t.Helper()
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	o.Hosts = map[string]string{"gateway.porthole.test": "127.0.0.1"}
	p := squidtest.Start(t, o)
	t.Setenv("HTTP_PROXY", proxyURL(p.Port))
	t.Setenv("HTTPS_PROXY", proxyURL(p.Port))
	t.Setenv("NO_PROXY", "")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.url, "http://"))
	return e, p, "http://gateway.porthole.test:" + port
}

// throughProxy signs in and carries a round trip through the proxy.
func throughProxy(t *testing.T, gw string) error {
	t.Helper()
	c, err := NewClient(gw, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Login(t.Context(), "admin", "admin-password"); err != nil {
		return err
	}
	m := newManager(t, c, nil)
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		return err
	}
	got, err := roundTrip(t, f.Addr().String(), "through the proxy")
	if err != nil || got != "THROUGH THE PROXY" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	// squid logs a CONNECT when it ends.
	m.Close()
	return nil
}

// logged waits for squid to log what the test looks for.
func logged(t *testing.T, p *squidtest.Proxy, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := p.AccessLog()
		if strings.Contains(strings.ToLower(log), strings.ToLower(want)) || time.Now().After(deadline) {
			return log
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestProxyBasic(t *testing.T) {
	_, p, gw := proxied(t, squidtest.Options{Basic: map[string]string{"alice": "Proxy-Pass1"}},
		func(port int) string { return fmt.Sprintf("http://alice:Proxy-Pass1@127.0.0.1:%d", port) })
	if err := throughProxy(t, gw); err != nil {
		t.Fatal(err)
	}
	if log := logged(t, p, " alice "); !strings.Contains(log, "CONNECT gateway.porthole.test:") || !strings.Contains(log, " alice ") {
		t.Fatalf("squid did not carry alice's CONNECT:\n%s", log)
	}
}

func TestProxyBasicFromEnvironmentVariables(t *testing.T) {
	_, p, gw := proxied(t, squidtest.Options{Basic: map[string]string{"bob": "Bobs-Pass1"}},
		func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) })
	t.Setenv("PORTHOLE_PROXY_USER", "bob")
	t.Setenv("PORTHOLE_PROXY_PASSWORD", "Bobs-Pass1")
	if err := throughProxy(t, gw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged(t, p, " bob "), " bob ") {
		t.Fatalf("squid did not see bob:\n%s", p.AccessLog())
	}
}

func TestProxyRefusals(t *testing.T) {
	_, _, gw := proxied(t, squidtest.Options{Basic: map[string]string{"alice": "Proxy-Pass1"}},
		func(port int) string { return fmt.Sprintf("http://alice:wrong@127.0.0.1:%d", port) })
	err := throughProxy(t, gw)
	var pe *ProxyError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "407") || !strings.Contains(err.Error(), "did not accept the sign-in") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("a wrong proxy password: %v", err)
	}
	t.Setenv("HTTP_PROXY", strings.Replace(pe.Proxy, "alice:xxxxx@", "", 1))
	err = throughProxy(t, gw)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "asks for a sign-in (Basic)") || !strings.Contains(err.Error(), "PORTHOLE_PROXY_USER") {
		t.Fatalf("no proxy credentials: %v", err)
	}
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	if err := throughProxy(t, gw); err == nil || !strings.Contains(err.Error(), "cannot reach the proxy http://127.0.0.1:1") {
		t.Fatalf("a proxy that is not there: %v", err)
	}
}

// TestProxyNTLM: NTLM with a domain account's user and password (a Linux
// client; Windows answers with the logon through SSPI), checked by the
// test domain controller through Samba's ntlm_auth.
func TestProxyNTLM(t *testing.T) {
	d := adtest.Get(t)
	user := adtest.Name("nt")
	d.AddUser(t, user, "Proxy-Ntlm-Pass1")
	_, p, gw := proxied(t, squidtest.Options{SMBConf: d.SMBConf},
		func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) })
	t.Setenv("PORTHOLE_PROXY_USER", d.Domain+`\`+user)
	t.Setenv("PORTHOLE_PROXY_PASSWORD", "Proxy-Ntlm-Pass1")
	if err := throughProxy(t, gw); err != nil {
		t.Fatalf("%v\n%s", err, p.CacheLog())
	}
	if log := logged(t, p, user); !strings.Contains(strings.ToLower(log), strings.ToLower(user)) {
		t.Fatalf("squid did not see %s's NTLM sign-in:\n%s", user, log)
	}
	t.Setenv("PORTHOLE_PROXY_PASSWORD", "Wrong-Pass1")
	err := throughProxy(t, gw)
	var pe *ProxyError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "did not accept the sign-in (NTLM)") {
		t.Fatalf("a wrong NTLM password: %v", err)
	}
}

func TestProxyNegotiate(t *testing.T) {
	d := adtest.Get(t)
	user := adtest.Name("px")
	d.AddUser(t, user, "Proxy-Krb5-Pass1")
	_, p, gw := proxied(t, squidtest.Options{Keytab: d.Keytab, Principal: "HTTP/localhost@" + d.Realm, KRB5Config: d.Krb5Conf},
		// By name, so the proxy's principal is HTTP/localhost.
		func(port int) string { return fmt.Sprintf("http://localhost:%d", port) })
	d.Kinit(t, user, "Proxy-Krb5-Pass1")
	if err := throughProxy(t, gw); err != nil {
		t.Fatalf("%v\n%s", err, p.CacheLog())
	}
	if log := logged(t, p, user); !strings.Contains(strings.ToLower(log), strings.ToLower(user)) {
		t.Fatalf("squid did not see %s's Kerberos sign-in:\n%s", user, log)
	}
}
