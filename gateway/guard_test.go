package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowHash makes each password check take a few milliseconds, so that
// concurrent attempts overlap as they do against the real cost.
var slowHash = &HashParams{Memory: 4 * 1024, Time: 2, Threads: 1}

func statusOfErr(err error) int {
	var he *Error
	if errors.As(err, &he) {
		return he.Status
	}
	if err == nil {
		return 200
	}
	return 0
}

// A burst of concurrent wrong passwords meets the limit as it arrives:
// attempts are counted before their hash is computed.
func TestSignInBurstIsLimited(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.PasswordCost = slowHash })
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := map[int]int{}
	for range 60 {
		wg.Go(func() {
			_, err := g.signIn(context.Background(), credentials{username: "admin", password: "guess-guess"}, "10.1.1.1")
			mu.Lock()
			count[statusOfErr(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count[401] > 5 || count[429] < 55 {
		t.Fatalf("60 concurrent wrong passwords: %v; want at most 5 checked (401) and the rest 429", count)
	}
	// The right password from elsewhere still works; the limit is per
	// user and address.
	if _, err := g.signIn(context.Background(), credentials{username: "admin", password: adminPassword}, "10.1.1.2"); err != nil {
		t.Fatalf("the right password from another address: %v", err)
	}
}

// Many addresses guessing one account are limited too.
func TestSignInAccountLimit(t *testing.T) {
	g := startGateway(t)
	var last error
	for i := range 25 {
		_, last = g.signIn(context.Background(), credentials{username: "admin", password: "guess-guess"}, fmt.Sprintf("10.2.0.%d", i))
		if i < 20 && statusOfErr(last) != http.StatusUnauthorized {
			t.Fatalf("guess %d: %v", i+1, last)
		}
	}
	var he *Error
	if !errors.As(last, &he) || he.Status != http.StatusTooManyRequests || he.RetryAfter <= 0 || he.Msg == "" {
		t.Fatalf("the 25th guess from the 25th address: %v", last)
	}
	if want := "for this account"; !strings.Contains(he.Msg, want) {
		t.Fatalf("message %q lacks %q", he.Msg, want)
	}
	// Successful sign-ins do not count against an address: a busy office
	// behind one address signs in all day.
	g2 := startGateway(t)
	for i := range 40 {
		if _, err := g2.signIn(context.Background(), credentials{username: "admin", password: adminPassword}, "10.3.0.1"); err != nil {
			t.Fatalf("sign-in %d from a busy address: %v", i+1, err)
		}
	}
}

// When every hashing slot is busy, a password check waits briefly, then
// is told to come back, instead of piling up 19 MiB hashes.
func TestSignInWaitsForAHashingSlot(t *testing.T) {
	g := startGateway(t, func(c *Config) { c.HashConcurrency = 1 })
	if !g.hashes.acquire(context.Background()) { // someone else is hashing
		t.Fatal("no slot")
	}
	start := time.Now()
	_, err := g.signIn(context.Background(), credentials{username: "admin", password: adminPassword}, "10.4.0.1")
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || he.RetryAfter != time.Second {
		t.Fatalf("while busy: %v", err)
	}
	if d := time.Since(start); d < hashQueueWait/2 {
		t.Fatalf("gave up after %s, before waiting for a slot", d)
	}
	g.hashes.release()
	// Turned away is not a failure: the right password works at once.
	if _, err := g.signIn(context.Background(), credentials{username: "admin", password: adminPassword}, "10.4.0.1"); err != nil {
		t.Fatalf("after the slot came free: %v", err)
	}
	// And over HTTP the answer carries Retry-After.
	g.hashes.acquire(context.Background())
	status, _, h := g.call("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": adminPassword})
	g.hashes.release()
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" {
		t.Fatalf("HTTP while busy: %d, Retry-After %q", status, h.Get("Retry-After"))
	}
}

// BenchmarkSignInBurst measures the gateway's heap during 200 concurrent
// sign-ins with the production argon2id cost, with hashing bounded to the
// cores (as the gateway runs) and, as the baseline in the same run,
// unbounded (as it ran before), and the heap a second after the burst.
func BenchmarkSignInBurst(b *testing.B) {
	peak := map[string]float64{}
	for _, mode := range []struct {
		name  string
		slots int
	}{{"unbounded", 200}, {"bounded", runtime.NumCPU()}} {
		b.Run(mode.name, func(b *testing.B) {
			s, err := New(b.Context(), Config{DataDir: b.TempDir(), AdminPassword: adminPassword, Logger: slog.New(slog.DiscardHandler), HashConcurrency: mode.slots}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var maxHeap uint64
			for b.Loop() {
				runtime.GC()
				stop := make(chan struct{})
				sampled := make(chan uint64)
				go func() {
					var m runtime.MemStats
					var top uint64
					for {
						select {
						case <-stop:
							sampled <- top
							return
						case <-time.After(2 * time.Millisecond):
							runtime.ReadMemStats(&m)
							top = max(top, m.HeapInuse)
						}
					}
				}()
				var wg sync.WaitGroup
				for i := range 200 {
					wg.Go(func() {
						s.signIn(context.Background(), credentials{username: "admin", password: "guess-guess"}, fmt.Sprintf("10.9.%d.%d", i/250, i%250))
					})
				}
				wg.Wait()
				close(stop)
				maxHeap = max(maxHeap, <-sampled)
			}
			peak[mode.name] = float64(maxHeap) / (1 << 20)
			b.ReportMetric(peak[mode.name], "peak-heap-MiB")
			if base := peak["unbounded"]; mode.name == "bounded" && base > 0 {
				b.ReportMetric(peak[mode.name]/base, "x-unbounded-peak")
			}
			time.Sleep(freeMemoryAfter + 500*time.Millisecond)
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.ReportMetric(float64(m.HeapSys-m.HeapReleased)/(1<<20), "held-after-MiB")
		})
	}
}
