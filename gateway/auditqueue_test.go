package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/store"
)

// flakyStore fails its first batch writes, as a busy or briefly locked
// store does.
type flakyStore struct {
	store.Store
	failures atomic.Int32
}

func (f *flakyStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("database is locked")
	}
	return f.Store.AppendEvents(ctx, evs)
}

// A burst of tunnel rows is written in batches and none is lost, even
// when the store refuses the first writes.
func TestTunnelRowsAreNeverDropped(t *testing.T) {
	sq, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "porthole.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	fs := &flakyStore{Store: sq}
	fs.failures.Store(3)
	var failed atomic.Int32
	a := &storeAudit{st: fs, log: slog.New(slog.DiscardHandler), now: time.Now, failed: func() { failed.Add(1) }}
	a.queue = newEventQueue(fs, a.log, a.failed)
	var wg sync.WaitGroup
	for g := range 40 {
		wg.Go(func() {
			for i := range 100 {
				rec := TunnelRecord{ID: uint64(g*1000 + i), User: "alice", Context: "db"}
				a.TunnelOpened(context.Background(), rec)
				a.TunnelClosed(context.Background(), rec)
			}
		})
	}
	wg.Wait()
	a.queue.close()
	for kind, want := range map[string]int{"tunnel.open": 4000, "tunnel.close": 4000} {
		evs, err := sq.Events(context.Background(), store.EventFilter{Kind: kind, Limit: 10000})
		if err != nil || len(evs) != want {
			t.Fatalf("%s rows: %d (%v), want %d", kind, len(evs), err, want)
		}
	}
	if failed.Load() != 3 {
		t.Fatalf("failed writes counted: %d, want 3", failed.Load())
	}
	ids := map[string]bool{}
	evs, _ := sq.Events(context.Background(), store.EventFilter{Kind: "tunnel.open", Limit: 10000})
	for _, e := range evs {
		var d struct{ ID uint64 }
		if err := json.Unmarshal(e.Details, &d); err != nil {
			t.Fatal(err)
		}
		ids[fmt.Sprint(d.ID)] = true
	}
	if len(ids) != 4000 {
		t.Fatalf("distinct tunnel ids among the rows: %d", len(ids))
	}
}

// countingStore records the size of each batch written.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	batches []int
}

func (c *countingStore) AppendEvents(ctx context.Context, evs []store.Event) error {
	c.mu.Lock()
	c.batches = append(c.batches, len(evs))
	c.mu.Unlock()
	return c.Store.AppendEvents(ctx, evs)
}

// A row that follows the first of a quiet spell within a millisecond
// shares its transaction (one commit, not two): the queue waits
// gatherDelay before writing.
func TestRowsAfterAQuietSpellShareATransaction(t *testing.T) {
	sq, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "porthole.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	for attempt := 0; ; attempt++ {
		cs := &countingStore{Store: sq}
		q := newEventQueue(cs, slog.New(slog.DiscardHandler), func() {})
		first := time.Now()
		q.add(store.Event{Time: first, Actor: "alice", Kind: "tunnel.open", Target: "db"})
		for time.Since(first) < 300*time.Microsecond {
			// a short, steady gap (a timer's sleep may last a millisecond)
		}
		q.add(store.Event{Time: time.Now(), Actor: "alice", Kind: "tunnel.close", Target: "db"})
		gap := time.Since(first)
		q.close()
		if gap > time.Millisecond { // well within gatherDelay (2 ms)
			// The machine stalled between the two rows; try again.
			if attempt < 5 {
				continue
			}
			t.Fatal("could not add two rows within 1 ms in 6 tries")
		}
		if len(cs.batches) != 1 || cs.batches[0] != 2 {
			t.Fatalf("two rows %s apart were written as batches %v, want one of 2", gap, cs.batches)
		}
		return
	}
}
