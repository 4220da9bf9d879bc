package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/porthole/porthole/wire"
)

// writePKCS12 writes a .p12 with a new self-signed certificate for
// 127.0.0.1 named cn, and returns the certificate.
func writePKCS12(t *testing.T, path, cn, password string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	data, err := pkcs12.Modern.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	// Written beside and renamed over, as certificate tools do.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return cert
}

// servedName is the common name of the certificate the gateway presents.
func servedName(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestPKCS12CertificateAndReload(t *testing.T) {
	dir := t.TempDir()
	p12, pwFile := filepath.Join(dir, "gateway.p12"), filepath.Join(dir, "p12-password")
	os.WriteFile(pwFile, []byte("p12-secret\n"), 0o600)
	first := writePKCS12(t, p12, "first", "p12-secret")
	defer func(d time.Duration) { certSettle = d }(certSettle)
	certSettle = 50 * time.Millisecond
	g := startGateway(t, func(c *Config) { c.TLSPKCS12, c.TLSPKCS12PasswordFile = p12, pwFile })
	addr := strings.TrimPrefix(g.URL, "http://")
	if got := servedName(t, addr); got != "first" {
		t.Fatalf("serves %q, want the PKCS#12 certificate", got)
	}

	// A live tunnel over wss:// with the first certificate.
	pool := x509.NewCertPool()
	pool.AddCert(first)
	g.URL = "https://" + addr
	g.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	admin := g.admin()
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "echo", SocketAddress: echoServer(t)})
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, Subprotocols: []string{wire.Subprotocol}}
	ws, _, err := d.Dial("wss://"+addr+wire.ProxyPath+"echo", map[string][]string{"Authorization": {"Bearer " + admin}})
	if err != nil {
		t.Fatal(err)
	}
	c := wire.NewConn(ws, wire.Options{HalfClose: true})
	defer c.Close()
	echo := func(msg string) {
		t.Helper()
		c.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != strings.ToUpper(msg) {
			t.Fatalf("echo %q: %q %v", msg, buf, err)
		}
	}
	echo("before")

	// The file changes: new handshakes get the new certificate, the live
	// tunnel carries on.
	writePKCS12(t, p12, "second", "p12-secret")
	waitFor(t, 5*time.Second, "the new certificate", func() bool { return servedName(t, addr) == "second" })
	echo("after")

	// A bundle that does not open (wrong password) keeps the one in use.
	writePKCS12(t, p12, "third", "another-password")
	if err := g.ReloadCertificate(); err == nil || !strings.Contains(err.Error(), "password is wrong") {
		t.Fatalf("reload with a wrong password: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // the watcher's own attempt fails too
	if got := servedName(t, addr); got != "second" {
		t.Fatalf("after a failed reload the gateway serves %q, want the last good one", got)
	}
	echo("still")
}

func TestPKCS12Errors(t *testing.T) {
	dir := t.TempDir()
	p12 := filepath.Join(dir, "gateway.p12")
	writePKCS12(t, p12, "x", "right")
	t.Setenv("PORTHOLE_TEST_P12", "wrong")
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"wrong password from env": {Config{TLSPKCS12: p12, TLSPKCS12PasswordEnv: "PORTHOLE_TEST_P12"}, "the password is wrong (it comes from $PORTHOLE_TEST_P12)"},
		"no password given":       {Config{TLSPKCS12: p12}, "set tlsPKCS12PasswordFile or tlsPKCS12PasswordEnv"},
		"env not set":             {Config{TLSPKCS12: p12, TLSPKCS12PasswordEnv: "PORTHOLE_TEST_UNSET"}, "is not set"},
		"missing file":            {Config{TLSPKCS12: filepath.Join(dir, "nope.p12")}, "no such file"},
		"not PKCS#12":             {Config{TLSPKCS12: filepath.Join(dir, "garbage")}, "load PKCS#12"},
		"both kinds":              {Config{TLSPKCS12: p12, TLSCert: "c", TLSKey: "k"}, "not both"},
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "garbage"), []byte("not a bundle"), 0o600)
			cfg := tc.cfg
			cfg.DataDir = t.TempDir()
			cfg.Announce = io.Discard
			_, err := New(t.Context(), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "porthole.db")); err == nil {
				t.Fatal("a gateway that cannot load its certificate created its store")
			}
		})
	}
}
