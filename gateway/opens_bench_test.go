package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/wire"
)

// benchGateways starts n gateways on one store (sqlite: one file; else
// the PostgreSQL DSN) with a tunnel "echo", and returns their ws:// base
// URLs and an administrator's ticket.
func benchGateways(b *testing.B, n int, storeDSN string) ([]string, string) {
	b.Helper()
	target := benchEcho(b)
	data := b.TempDir()
	var urls []string
	var ticket string
	for i := range n {
		cfg := Config{DataDir: data, AdminPassword: adminPassword, Logger: testLogger(b), PasswordCost: fastHash,
			Announce: io.Discard, Store: storeDSN}
		s, err := New(b.Context(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Serve(ctx, ln); close(done) }()
		b.Cleanup(func() { cancel(); <-done; s.Close() })
		if i == 0 {
			if _, err := s.CreateTunnel(b.Context(), "bench", TunnelSpec{Context: "echo", SocketAddress: target}); err != nil {
				b.Fatal(err)
			}
			resp, err := s.signIn(b.Context(), credentials{username: "admin", password: adminPassword}, "127.0.0.1")
			if err != nil {
				b.Fatal(err)
			}
			ticket = resp.Ticket
		}
		urls = append(urls, "ws://"+ln.Addr().String()+wire.ProxyPath+"echo")
	}
	return urls, ticket
}

// benchEcho is a TCP echo target for benchmarks.
func benchEcho(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkTunnelOpens measures tunnel opens per second sustained (each:
// the WebSocket upgrade with a ticket, the target dialled, one byte each
// way, the close, and its audit rows) by one gateway on SQLite, one on
// PostgreSQL and three on one PostgreSQL with the clients spread over
// them, and prints each as a ratio of the first, measured in the same
// run. All gateways run in this process on this machine's cores, so three
// gateways show what the shared store costs, not what three machines add.
//
//	go test ./gateway -run '^$' -bench TunnelOpens -benchtime 3000x
func BenchmarkTunnelOpens(b *testing.B) {
	rates := map[string]float64{}
	run := func(name string, urls []string, ticket string) {
		b.Run(name, func(b *testing.B) {
			h := http.Header{"Authorization": {"Bearer " + ticket}}
			d := websocket.Dialer{Subprotocols: []string{wire.Subprotocol}, HandshakeTimeout: 10 * time.Second}
			var next atomic.Uint64
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 1)
				for pb.Next() {
					u := urls[next.Add(1)%uint64(len(urls))]
					ws, resp, err := d.Dial(u, h)
					if err != nil {
						b.Errorf("open: %v", err)
						return
					}
					resp.Body.Close()
					c := wire.NewConn(ws, wire.Options{HalfClose: true})
					c.Write([]byte{'x'})
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Errorf("echo: %v", err)
					}
					c.Close()
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "opens/s")
			rates[name] = rate
		})
	}
	urls, tk := benchGateways(b, 1, "")
	run("sqlite-1", urls, tk)
	if dsn := postgresStoreOrEmpty(b); dsn != "" {
		urls, tk = benchGateways(b, 1, dsn)
		run("postgres-1", urls, tk)
		urls, tk = benchGateways(b, 3, postgresStoreOrEmpty(b))
		run("postgres-3", urls, tk)
	}
	if base := rates["sqlite-1"]; base > 0 {
		for _, n := range []string{"postgres-1", "postgres-3"} {
			if r, ok := rates[n]; ok {
				b.Logf("%s: %.0f opens/s, %.2fx one gateway on SQLite (%.0f opens/s) in the same run", n, r, r/base, base)
			}
		}
	}
}

// postgresStoreOrEmpty is postgresStore, or "" without a server.
func postgresStoreOrEmpty(b *testing.B) string {
	if strings.TrimSpace(os.Getenv("PORTHOLE_TEST_POSTGRES")) == "" {
		return ""
	}
	return postgresStore(b)
}
