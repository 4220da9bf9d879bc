package gateway

import (
	"sync"
	"time"
)

// limiter counts failed sign-ins per key and locks a key out for a growing
// time once it has failed too often. The gateway keeps three: per
// "user|address", per address (one address cannot guess many users'
// passwords) and per user (many addresses cannot guess one user's).
type limiter struct {
	threshold int           // failures before the first lock-out
	base      time.Duration // first lock-out; doubles with each failure after
	max       time.Duration // longest lock-out
	now       func() time.Time

	// mu guards entries.
	mu      sync.Mutex
	entries map[string]*limitEntry
}

type limitEntry struct {
	failures int
	until    time.Time
	last     time.Time
}

func newLimiter(threshold int, now func() time.Time) *limiter {
	return &limiter{threshold: threshold, base: 30 * time.Second, max: 15 * time.Minute, now: now, entries: map[string]*limitEntry{}}
}

// wait reports how long key must wait before trying again (0: go ahead).
func (l *limiter) wait(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return 0
	}
	if d := e.until.Sub(l.now()); d > 0 {
		return d
	}
	return 0
}

// take is one attempt for key, counted as a failure before it is made
// (reset forgets it when it succeeds), so a burst of concurrent attempts
// is limited as it arrives, not after each has been checked. It returns
// how long key must wait instead (0: the attempt may go ahead).
func (l *limiter) take(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil {
		if d := e.until.Sub(l.now()); d > 0 {
			return d
		}
	}
	l.failLocked(key)
	return 0
}

// fail records a failure for key.
func (l *limiter) fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failLocked(key)
}

func (l *limiter) failLocked(key string) {
	now := l.now()
	if len(l.entries) > 10000 {
		for k, e := range l.entries {
			if now.Sub(e.last) > time.Hour && now.After(e.until) {
				delete(l.entries, k)
			}
		}
	}
	e := l.entries[key]
	if e == nil || now.Sub(e.last) > time.Hour {
		e = &limitEntry{}
		l.entries[key] = e
	}
	e.failures++
	e.last = now
	if e.failures >= l.threshold {
		d := l.base << min(e.failures-l.threshold, 10)
		if d > l.max || d <= 0 {
			d = l.max
		}
		e.until = now.Add(d)
	}
}

// undo takes back one failure counted by take for an attempt that did
// not fail.
func (l *limiter) undo(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return
	}
	if e.failures--; e.failures <= 0 {
		delete(l.entries, key)
		return
	}
	if e.failures < l.threshold {
		e.until = time.Time{}
	}
}

// reset forgets key's failures after a success.
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key)
}
