package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"software.sslmate.com/src/go-pkcs12"
)

// certLoader holds the gateway's TLS certificate, from PEM files or a
// PKCS#12 bundle, and loads it again on Reload (SIGHUP) or when its files
// change. A reload that fails keeps the certificate that works, and says
// why; connections already open, live tunnels among them, are never
// touched: only new handshakes see the new certificate.
type certLoader struct {
	cfg Config
	log *slog.Logger

	// mu guards cert and loaded.
	mu     sync.RWMutex
	cert   *tls.Certificate
	loaded time.Time
}

// newCertLoader loads the configured certificate, or returns nil when the
// gateway serves plain HTTP.
func newCertLoader(cfg Config) (*certLoader, error) {
	if cfg.TLSCert == "" && cfg.TLSPKCS12 == "" {
		return nil, nil
	}
	c := &certLoader{cfg: cfg, log: cfg.Logger}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.cert, c.loaded = cert, time.Now()
	return c, nil
}

// files are what the certificate is read from.
func (c *certLoader) files() []string {
	if c.cfg.TLSPKCS12 != "" {
		return []string{c.cfg.TLSPKCS12}
	}
	return []string{c.cfg.TLSCert, c.cfg.TLSKey}
}

func (c *certLoader) load() (*tls.Certificate, error) {
	if c.cfg.TLSPKCS12 == "" {
		cert, err := tls.LoadX509KeyPair(c.cfg.TLSCert, c.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", c.cfg.TLSCert, c.cfg.TLSKey, err)
		}
		return &cert, nil
	}
	return loadPKCS12(c.cfg.TLSPKCS12, c.cfg.TLSPKCS12PasswordFile, c.cfg.TLSPKCS12PasswordEnv)
}

// loadPKCS12 reads a .p12/.pfx bundle: the key, its certificate and the
// chain. Its password comes from passwordFile, else the environment
// variable passwordEnv, else it has none.
func loadPKCS12(path, passwordFile, passwordEnv string) (*tls.Certificate, error) {
	password := ""
	switch {
	case passwordFile != "":
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("tlsPKCS12PasswordFile: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	case passwordEnv != "":
		v, ok := os.LookupEnv(passwordEnv)
		if !ok {
			return nil, fmt.Errorf("tlsPKCS12PasswordEnv: $%s is not set", passwordEnv)
		}
		password = v
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load PKCS#12 %s: %w", path, err)
	}
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		return nil, fmt.Errorf("load PKCS#12 %s: the password is wrong (it comes from %s)", path, passwordSource(passwordFile, passwordEnv))
	}
	if err != nil {
		return nil, fmt.Errorf("load PKCS#12 %s: %w", path, err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	// The key must belong to the certificate.
	if err := matchKey(leaf, key); err != nil {
		return nil, fmt.Errorf("load PKCS#12 %s: %w", path, err)
	}
	return cert, nil
}

func passwordSource(file, env string) string {
	switch {
	case file != "":
		return "tlsPKCS12PasswordFile " + file
	case env != "":
		return "$" + env
	}
	return "nowhere: set tlsPKCS12PasswordFile or tlsPKCS12PasswordEnv"
}

// matchKey checks that key is the private key of cert.
func matchKey(cert *x509.Certificate, key any) error {
	type publicKeyer interface{ Public() crypto.PublicKey }
	pk, ok := key.(publicKeyer)
	if !ok {
		return errors.New("the private key is of a kind TLS cannot use")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := pk.Public().(equaler); !ok || !eq.Equal(cert.PublicKey) {
		return errors.New("the private key does not belong to the certificate")
	}
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (c *certLoader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert, nil
}

// Reload reads the certificate again. On failure the one in use stays.
func (c *certLoader) Reload() error {
	cert, err := c.load()
	if err != nil {
		c.log.Error("TLS certificate not reloaded: the one in use stays", "err", err)
		return err
	}
	c.mu.Lock()
	c.cert, c.loaded = cert, time.Now()
	c.mu.Unlock()
	if cert.Leaf != nil {
		c.log.Info("TLS certificate reloaded", "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	} else {
		c.log.Info("TLS certificate reloaded")
	}
	return nil
}

// watch reloads the certificate when its files change (written in place
// or replaced by a rename, as certificate tools do) until ctx is done.
// Bursts of events within a moment are one reload.
func (c *certLoader) watch(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		c.log.Warn("cannot watch the TLS certificate files; reload with SIGHUP", "err", err)
		return
	}
	defer w.Close()
	dirs := map[string]bool{}
	names := map[string]bool{}
	for _, f := range c.files() {
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		names[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			c.log.Warn("cannot watch the TLS certificate folder; reload with SIGHUP", "dir", d, "err", err)
		}
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if names[filepath.Clean(ev.Name)] && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				timer = time.After(certSettle)
			}
		case <-w.Errors:
		case <-timer:
			timer = nil
			c.Reload()
		}
	}
}

// certSettle is how long the watcher waits after a change before it
// reloads, so a key and a certificate written one after the other are
// read together.
var certSettle = 300 * time.Millisecond
