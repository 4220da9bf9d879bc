package gateway

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Password checks are what an unauthenticated client can make the gateway
// spend on: each argon2id hash takes ~25 ms and 19 MiB. guard bounds
// them: attempts are counted against the limits before the hash is
// computed (so a concurrent burst is limited as it arrives), and at most
// hashSlots hashes run at once; a client beyond that waits up to
// hashQueueWait, then is told to come back (503 with Retry-After).

// hashQueueWait is how long a password check waits for a hashing slot.
const hashQueueWait = 2 * time.Second

// freeMemoryAfter is how long the hashing slots stay idle before the
// memory of a burst is handed back to the operating system.
const freeMemoryAfter = time.Second

// hashGate bounds concurrent password hashing.
type hashGate struct {
	slots chan struct{}

	// mu guards idle.
	mu   sync.Mutex
	idle *time.Timer // frees memory once no hash has run for a while
}

func newHashGate(n int) *hashGate {
	if n <= 0 {
		n = max(runtime.NumCPU(), 1)
	}
	return &hashGate{slots: make(chan struct{}, n)}
}

// acquire takes a hashing slot, waiting up to hashQueueWait; it reports
// false when none came free.
func (g *hashGate) acquire(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(hashQueueWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// release gives a slot back; when all are free for freeMemoryAfter, the
// hashes' memory is returned to the operating system, so a burst does not
// leave the gateway holding hundreds of MiB.
func (g *hashGate) release() {
	<-g.slots
	if len(g.slots) > 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.idle == nil {
		g.idle = time.AfterFunc(freeMemoryAfter, func() {
			if len(g.slots) == 0 {
				debug.FreeOSMemory()
			}
		})
		return
	}
	g.idle.Reset(freeMemoryAfter)
}

// attempt is one password check that guard let through; done ends it.
type attempt struct {
	s                      *Server
	userKey, addr, account string
}

// guard admits one password check for username from addr, or says why
// not: a rate limit (429) or no free hashing slot (503), both with
// Retry-After. The caller must call done with the outcome.
func (s *Server) guard(ctx context.Context, username, addr string) (*attempt, error) {
	a := &attempt{s: s, userKey: strings.ToLower(username) + "|" + addr, addr: addr, account: strings.ToLower(username)}
	wait := max(s.userLimit.wait(a.userKey), s.addrLimit.wait(addr))
	what := "too many failed sign-ins"
	if wait == 0 {
		if wait = s.accountLimit.wait(a.account); wait > 0 {
			what = "too many failed sign-ins for this account from different places"
		}
	}
	if wait == 0 {
		if d := s.sharedWait(ctx, a.account, sharedAccountLimit); d > 0 {
			wait, what = d, "too many failed sign-ins for this account"
		} else if d := s.sharedWait(ctx, addrKey(addr), sharedAddrLimit); d > 0 {
			wait = d
		}
	}
	if wait == 0 {
		// Counted before the hash: a concurrent burst meets the limit as it
		// arrives. A success gives its count back (done).
		wait = max(s.userLimit.take(a.userKey), s.addrLimit.take(addr), s.accountLimit.take(a.account))
	}
	if wait > 0 {
		s.metrics.signinFailed.Inc()
		secs := max(int((wait+time.Second-1)/time.Second), 1)
		return nil, &Error{Status: http.StatusTooManyRequests, RetryAfter: time.Duration(secs) * time.Second,
			Msg: fmt.Sprintf("%s: try again in %s", what, time.Duration(secs)*time.Second)}
	}
	if !s.hashes.acquire(ctx) {
		a.undo()
		s.metrics.signinBusy.Inc()
		return nil, &Error{Status: http.StatusServiceUnavailable, RetryAfter: time.Second,
			Msg: "the gateway is busy checking other passwords: try again in a second"}
	}
	return a, nil
}

// done ends the attempt: the hashing slot is free again, and a success
// takes back the failure counted in advance.
func (a *attempt) done(ok bool) {
	a.s.hashes.release()
	if ok {
		a.undo()
		a.s.userLimit.reset(a.userKey)
	}
}

// undo takes back the counts of an attempt that did not fail.
func (a *attempt) undo() {
	a.s.userLimit.undo(a.userKey)
	a.s.addrLimit.undo(a.addr)
	a.s.accountLimit.undo(a.account)
}

// Sign-in failures per account and per address are also counted in the
// store when several gateways share it (PostgreSQL): guesses spread over
// the gateways meet the same limits as guesses at one.
const (
	sharedAccountLimit  = 20
	sharedAddrLimit     = 30
	sharedAccountWindow = 15 * time.Minute
)

// addrKey is an address's key among the counted failures, beside the
// accounts' user names.
func addrKey(addr string) string { return "addr:" + addr }

// sharedWait is how long key must wait because of failures counted
// across the gateways; 0 with a store of one gateway, or when the store
// does not answer (the local limits still apply).
func (s *Server) sharedWait(ctx context.Context, key string, limit int) time.Duration {
	if !s.cfg.IsPostgres() {
		return 0
	}
	n, err := s.st.SignInFailures(ctx, key, s.cfg.Now().Add(-sharedAccountWindow))
	if err != nil {
		s.log.Warn("count failed sign-ins across gateways", "err", err)
		return 0
	}
	if n >= limit {
		return time.Minute
	}
	return 0
}

// recordFailure counts a failed sign-in, for the account and the
// address, for every gateway sharing the store.
func (s *Server) recordFailure(ctx context.Context, account, addr string) {
	if !s.cfg.IsPostgres() {
		return
	}
	for _, key := range []string{strings.ToLower(account), addrKey(addr)} {
		if err := s.st.RecordSignInFailure(ctx, key, s.cfg.Now()); err != nil {
			s.log.Warn("record a failed sign-in for the other gateways", "err", err)
			return
		}
	}
}
