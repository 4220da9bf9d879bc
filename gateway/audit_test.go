package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole/porthole/gateway/store"
)

// Hostile input cannot fill the disk or the log: over-long names are
// refused before they are hashed or audited, what is audited is clipped,
// and a flood of the same refusal is one row with a count.
func TestHostileInputIsBounded(t *testing.T) {
	var logged syncCounter
	g := startGateway(t, func(c *Config) { c.Logger = newCountingLogger(&logged) })
	huge := strings.Repeat("x", 400<<10)
	status, data, _ := g.call("POST", "/api/v1/login", "", map[string]string{"username": huge, "password": "whatever-pass"})
	if status != 400 || !strings.Contains(errBody(t, data).Fields["username"], "longer than 256") {
		t.Fatalf("a 400 KB user name: %d %s", status, data)
	}
	for range 100 {
		g.call("POST", "/api/v1/login", "", map[string]string{"username": strings.Repeat("y", 250), "password": "guess-guess"})
	}
	longContext := strings.Repeat("c", 30<<10)
	for range 100 {
		_, resp, err := websocket.DefaultDialer.Dial(strings.Replace(g.URL, "http", "ws", 1)+"/ws-proxy/"+longContext, nil)
		if err == nil || resp == nil || resp.StatusCode != 401 {
			t.Fatalf("ws-proxy with a 30 KB context: %v %v", resp, err)
		}
	}
	if n := g.auditedCount("auth.login_failed"); n != 100 {
		t.Fatalf("failed sign-ins accounted for: %d, want 100", n)
	}
	if n := g.auditedCount("tunnel.denied"); n != 100 {
		t.Fatalf("denials accounted for: %d, want 100", n)
	}
	evs, _ := g.events(t.Context(), eventFilter(""))
	rows := 0
	for _, e := range evs {
		if e.Kind == "auth.login_failed" || e.Kind == "tunnel.denied" {
			rows++
		}
		if len(e.Target) > maxAuditName+32 || len(e.Actor) > maxAuditName+32 {
			t.Fatalf("an audit row holds a %d-byte target, %d-byte actor", len(e.Target), len(e.Actor))
		}
	}
	// Three distinct refusals (wrong password, then rate limited; no
	// ticket): each is its first row plus one row with the count.
	if rows > 6 {
		t.Fatalf("200 refusals of 3 kinds took %d audit rows", rows)
	}
	fi, err := os.Stat(filepath.Join(g.cfg.DataDir, "porthole.db-wal"))
	if err == nil && fi.Size() > 4<<20 {
		t.Fatalf("the store's WAL grew to %d bytes", fi.Size())
	}
	if b := logged.n(); b > 256<<10 {
		t.Fatalf("the log took %d bytes for 201 hostile requests", b)
	}
}

// Old and surplus audit events go: the limits are kept.
func TestAuditRetention(t *testing.T) {
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	g := startGateway(t, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.AuditMaxAge, c.AuditMaxEvents = Duration(24*time.Hour), 1000
	})
	for i := range 1200 {
		g.audit.AdminChange(t.Context(), "admin", "test.event", "t", nil, i)
	}
	now = now.Add(time.Hour)
	g.pruneAudit(t.Context())
	evs, _ := g.events(t.Context(), eventFilter("test.event"))
	all, _ := g.st.Events(t.Context(), storeFilter(5000))
	if len(all) != 1000 || len(evs) == 0 {
		t.Fatalf("after pruning by number: %d events", len(all))
	}
	now = now.Add(48 * time.Hour)
	g.audit.AdminChange(t.Context(), "admin", "test.new", "t", nil, nil)
	g.pruneAudit(t.Context())
	all, _ = g.st.Events(t.Context(), storeFilter(5000))
	if len(all) != 1 || all[0].Kind != "test.new" {
		t.Fatalf("after pruning by age: %d events", len(all))
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo wörld", 2); got != "h…(+12 bytes)" {
		t.Fatalf("clip = %q", got)
	}
	if got := clip("short", 10); got != "short" {
		t.Fatalf("clip = %q", got)
	}
}

// syncCounter counts bytes written.
type syncCounter struct {
	mu    sync.Mutex
	total int
}

func (c *syncCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += len(p)
	return len(p), nil
}

func (c *syncCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

func storeFilter(n int) store.EventFilter { return store.EventFilter{Limit: n} }

// newCountingLogger logs everything, down to debug lines, into w.
func newCountingLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// BenchmarkHostileRequests measures what 200 hostile unauthenticated
// requests (100 sign-ins with 250-byte names, 100 /ws-proxy/ requests with
// 30 KB paths) leave in the audit store and the log, against the baseline
// of 200 ordinary failed sign-ins measured in the same run.
func BenchmarkHostileRequests(b *testing.B) {
	per := map[string]float64{}
	for _, mode := range []string{"ordinary", "hostile"} {
		b.Run(mode, func(b *testing.B) {
			var logged syncCounter
			s, err := New(b.Context(), Config{DataDir: b.TempDir(), AdminPassword: adminPassword, PasswordCost: fastHash,
				Logger: slog.New(slog.NewTextHandler(&logged, nil))}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			h := s.Handler()
			var stored, logBytes int
			for b.Loop() {
				before := logged.n()
				for i := range 200 {
					var req *http.Request
					switch {
					case mode == "ordinary":
						req = httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"bob","password":"guess-guess"}`))
					case i%2 == 0:
						req = httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(`{"username":"`+strings.Repeat("y", 250)+`","password":"guess-guess"}`))
					default:
						req = httptest.NewRequest("GET", "/ws-proxy/"+strings.Repeat("c", 30<<10), nil)
					}
					req.RemoteAddr = fmt.Sprintf("10.7.%d.%d:1234", i/200, i%200)
					h.ServeHTTP(httptest.NewRecorder(), req)
				}
				s.audit.(*storeAudit).flushRepeats(context.Background(), true)
				logBytes += logged.n() - before
			}
			evs, _ := s.st.Events(context.Background(), store.EventFilter{Limit: 1_000_000})
			for _, e := range evs {
				stored += len(e.Actor) + len(e.Target) + len(e.Kind) + len(e.Details)
			}
			n := float64(b.N) * 200
			per[mode] = float64(stored) / n
			b.ReportMetric(per[mode], "audit-B/req")
			b.ReportMetric(float64(logBytes)/n, "log-B/req")
			if base := per["ordinary"]; mode == "hostile" && base > 0 {
				b.ReportMetric(per[mode]/base, "x-ordinary-audit")
			}
		})
	}
}
