package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/porthole/porthole/gateway/store"
)

// Tunnel rows (opened, closed) come in bursts: a thousand connections
// opening at once would otherwise be a thousand transactions, some
// timing out and lost. eventQueue writes them in batches, one transaction
// each, and never drops one: a failed batch is retried, a full queue makes
// its writers wait, and rows that still cannot be stored when the gateway
// stops are logged whole.

// Bounds of the queue.
const (
	maxBatch    = 512     // rows per transaction
	maxQueued   = 100_000 // rows waiting before writers wait
	retryMax    = 5 * time.Second
	stopTimeout = 10 * time.Second // how long close keeps trying
	// gatherDelay is how long the first row after a quiet spell waits for
	// others to share its transaction.
	gatherDelay = 2 * time.Millisecond
)

type eventQueue struct {
	st     store.Store
	log    *slog.Logger
	failed func()

	start   sync.Once
	stop    chan struct{} // closed by close
	stopped chan struct{} // closed when the writer has ended

	// mu guards rows and written; room and wake signal under it.
	mu      sync.Mutex
	rows    []store.Event
	written chan struct{} // closed and replaced after each stored batch
	room    *sync.Cond    // a writer waits here while the queue is full
	wake    chan struct{}
}

func newEventQueue(st store.Store, log *slog.Logger, failed func()) *eventQueue {
	q := &eventQueue{st: st, log: log, failed: failed, stop: make(chan struct{}), stopped: make(chan struct{}),
		written: make(chan struct{}), wake: make(chan struct{}, 1)}
	q.room = sync.NewCond(&q.mu)
	return q
}

// add queues e; it waits while the queue is full.
func (q *eventQueue) add(e store.Event) {
	q.start.Do(func() { go q.run() })
	q.mu.Lock()
	for len(q.rows) >= maxQueued {
		q.room.Wait()
	}
	q.rows = append(q.rows, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// sync waits until every row queued so far is stored, or ctx ends.
func (q *eventQueue) sync(ctx context.Context) {
	for {
		q.mu.Lock()
		if len(q.rows) == 0 {
			q.mu.Unlock()
			return
		}
		ch := q.written
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

func (q *eventQueue) run() {
	defer close(q.stopped)
	backoff := 50 * time.Millisecond
	var giveUp <-chan time.Time
	// quiet: nothing was waiting when the writer last looked, so the rows
	// it finds now are the start of a burst; they wait gatherDelay for the
	// rest to share their transaction (a commit costs far more than a
	// row). Rows that queued during a write are written at once.
	quiet := true
	for {
		q.mu.Lock()
		n := min(len(q.rows), maxBatch)
		if quiet && n > 0 && n < maxBatch {
			q.mu.Unlock()
			quiet = false
			select {
			case <-time.After(gatherDelay):
			case <-q.stop:
			}
			continue
		}
		batch := append([]store.Event(nil), q.rows[:n]...)
		q.mu.Unlock()
		if n == 0 {
			quiet = true
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := q.st.AppendEvents(ctx, batch)
		cancel()
		if err == nil {
			backoff = 50 * time.Millisecond
			q.mu.Lock()
			q.rows = q.rows[n:]
			close(q.written)
			q.written = make(chan struct{})
			q.room.Broadcast()
			q.mu.Unlock()
			continue
		}
		q.failed()
		q.log.Error("audit rows not stored yet; retrying", "rows", n, "in", backoff, "err", err)
		if giveUp == nil {
			select {
			case <-q.stop:
				giveUp = time.After(stopTimeout)
			default:
			}
		}
		select {
		case <-time.After(backoff):
		case <-giveUp:
			q.mu.Lock()
			rest := q.rows
			q.rows = nil
			q.room.Broadcast()
			q.mu.Unlock()
			for _, e := range rest {
				q.log.Error("audit row lost to the store; here it is", "time", e.Time, "actor", e.Actor, "kind", e.Kind,
					"target", e.Target, "outcome", e.Outcome, "details", string(e.Details))
			}
			return
		}
		backoff = min(backoff*2, retryMax)
	}
}

// close stores what is queued (trying for up to stopTimeout while the
// store fails) and stops the writer.
func (q *eventQueue) close() {
	q.start.Do(func() { go q.run() })
	close(q.stop)
	<-q.stopped
}
