// Package gatewaytest gives tests of Porthole's clients a real gateway and real
// TCP targets on 127.0.0.1: an in-process gateway over a SQLite store in a
// temporary folder, and small echo servers.
package gatewaytest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/internal/testcert"
)

// AdminPassword is the administrator's password on every test gateway.
const AdminPassword = "admin-password"

// Gateway is a running in-process gateway.
type Gateway struct {
	*gateway.Server
	// URL is its base URL, http:// or https://.
	URL string
}

// Start runs a gateway on a loopback port until the test ends. mods may
// change the config (TLS, clock, ...).
func Start(t testing.TB, mods ...func(*gateway.Config)) *Gateway {
	t.Helper()
	cfg := gateway.Config{DataDir: t.TempDir(), AdminPassword: AdminPassword, Logger: slog.New(slog.DiscardHandler),
		PasswordCost: &gateway.HashParams{Memory: 1024, Time: 1, Threads: 1}, Announce: io.Discard}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := gateway.New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
		s.Close()
	})
	scheme := "http://"
	if cfg.TLSCert != "" {
		scheme = "https://"
	}
	return &Gateway{Server: s, URL: scheme + ln.Addr().String()}
}

// UpperAfterEOF starts a TCP server that reads until the client's FIN and
// then answers with what it read, upper-cased; an answer therefore proves
// that half-close crossed the tunnel. It returns the server's address.
func UpperAfterEOF(t testing.TB) string {
	return serve(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
	})
}

// UpperEcho starts a TCP server that upper-cases and echoes as it reads,
// and half-closes when its input ends.
func UpperEcho(t testing.TB) string {
	return serve(t, func(c net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				c.Write(bytes.ToUpper(buf[:n]))
			}
			if err != nil {
				return
			}
		}
	})
}

func serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	// At the end connections still open are closed, not waited for: a
	// gateway may hold one for a tunnel session that waits to resume.
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				handle(c)
				if tc, ok := c.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
			})
		}
	})
	return ln.Addr().String()
}

// WriteCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir.
func WriteCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := testcert.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
