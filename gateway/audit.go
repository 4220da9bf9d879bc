package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/porthole/porthole/gateway/store"
)

// Audit receives one call per auditable event. Implementations must not
// block for long and must never fail the operation: a failed write is
// logged and counted.
type Audit interface {
	// AdminChange records a change to tunnels, users, groups or
	// environments, with the object before and after (nil when absent).
	AdminChange(ctx context.Context, actor, kind, target string, before, after any)
	// SignIn records a sign-in attempt; reason says why it failed.
	SignIn(ctx context.Context, user, addr string, ok bool, reason string)
	// SignOut records a sign-out.
	SignOut(ctx context.Context, user, session string)
	// TunnelOpened records a tunnel connection that started.
	TunnelOpened(ctx context.Context, t TunnelRecord)
	// TunnelDenied records a refused tunnel connection and why.
	TunnelDenied(ctx context.Context, t TunnelRecord, reason string)
	// TunnelClosed records the end of a tunnel connection.
	TunnelClosed(ctx context.Context, t TunnelRecord)
}

// TunnelRecord describes one tunnel connection for the audit log.
type TunnelRecord struct {
	ID        uint64        `json:"id,omitempty"`
	User      string        `json:"user"`
	Context   string        `json:"context"`
	Target    string        `json:"target,omitempty"`
	Remote    string        `json:"remote,omitempty"`
	BytesUp   int64         `json:"bytesUp"`   // client to target
	BytesDown int64         `json:"bytesDown"` // target to client
	Duration  time.Duration `json:"-"`
	Seconds   float64       `json:"seconds,omitempty"`
	Error     string        `json:"error,omitempty"`
}

// Bounds on what one audit event (and its log line) may hold, whatever a
// client sent: names are clipped, details beyond maxAuditDetails are
// replaced by their beginning.
const (
	maxAuditName    = 200
	maxAuditDetails = 4 << 10
)

// repeatWindow is how long repeated refusals (the same kind, actor,
// target and reason) are folded into one event with a count.
const repeatWindow = time.Minute

// maxRepeatKeys bounds the refusals being counted at once; past it,
// refusals are written one by one (still clipped).
const maxRepeatKeys = 10000

// storeAudit writes events to the store and as structured log lines.
type storeAudit struct {
	st     store.Store
	log    *slog.Logger
	now    func() time.Time
	failed func() // counts a failed write

	// queue writes the tunnel rows, which come in bursts, in batches.
	queue *eventQueue

	// mu guards repeats.
	mu      sync.Mutex
	repeats map[repeatKey]*repeatEntry
}

type repeatKey struct{ kind, actor, target, reason string }

// repeatEntry counts the refusals folded after the first one was written.
type repeatEntry struct {
	first      time.Time
	last       time.Time
	suppressed int
	outcome    string
	details    any
}

// clip shortens s to at most n bytes (on a character boundary), saying
// how much was cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(+%d bytes)", s[:cut], len(s)-cut)
}

// event makes the stored form of an audit event, clipped to the bounds.
func (a *storeAudit) event(actor, kind, target, outcome string, details any) store.Event {
	actor, target = clip(actor, maxAuditName), clip(target, maxAuditName)
	b, err := json.Marshal(details)
	if err != nil {
		b = []byte("{}")
	}
	if len(b) > maxAuditDetails {
		b, _ = json.Marshal(map[string]any{"clipped": clip(string(b), 1024), "bytes": len(b)})
	}
	return store.Event{Time: a.now(), Actor: actor, Kind: kind, Target: target, Outcome: outcome, Details: b}
}

// logEvent writes e as a structured log line.
func (a *storeAudit) logEvent(ctx context.Context, e store.Event) {
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("actor", e.Actor), slog.String("kind", e.Kind),
		slog.String("target", e.Target), slog.String("outcome", e.Outcome), slog.String("details", string(e.Details)))
}

func (a *storeAudit) record(ctx context.Context, actor, kind, target, outcome string, details any) {
	e := a.event(actor, kind, target, outcome, details)
	a.logEvent(ctx, e)
	// The write must outlive a cancelled request.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.st.AppendEvent(wctx, e); err != nil {
		a.log.Error("audit write failed", "kind", kind, "target", e.Target, "err", err)
		a.failed()
	}
}

// refusal records a refused sign-in or tunnel. The first of a kind is
// written at once; the same refusal again within repeatWindow is only
// counted, and the count is written as one event when the window ends
// (flushRepeats), so a flood of guesses costs one row, not thousands.
func (a *storeAudit) refusal(ctx context.Context, actor, kind, target, reason string, details any) {
	key := repeatKey{kind, clip(actor, maxAuditName), clip(target, maxAuditName), clip(reason, maxAuditName)}
	now := a.now()
	a.mu.Lock()
	if a.repeats == nil {
		a.repeats = map[repeatKey]*repeatEntry{}
	}
	if e, ok := a.repeats[key]; ok && now.Sub(e.first) < repeatWindow {
		e.suppressed++
		e.last, e.details = now, details
		a.mu.Unlock()
		return
	}
	var due *repeatEntry
	if e, ok := a.repeats[key]; ok {
		due = e // its window ended: write its count before the new one
		delete(a.repeats, key)
	}
	if len(a.repeats) < maxRepeatKeys {
		a.repeats[key] = &repeatEntry{first: now, outcome: "denied"}
	}
	a.mu.Unlock()
	if due != nil && due.suppressed > 0 {
		a.writeRepeat(ctx, key, due)
	}
	a.record(ctx, actor, kind, target, "denied", details)
}

func (a *storeAudit) writeRepeat(ctx context.Context, k repeatKey, e *repeatEntry) {
	a.record(ctx, k.actor, k.kind, k.target, e.outcome, map[string]any{"repeated": e.suppressed,
		"since": e.first.UTC(), "until": e.last.UTC(), "reason": k.reason, "last": e.details})
}

// flushRepeats writes the counts of refusals whose window has ended, or
// of all of them (at shutdown).
func (a *storeAudit) flushRepeats(ctx context.Context, all bool) {
	now := a.now()
	type due struct {
		k repeatKey
		e *repeatEntry
	}
	var out []due
	a.mu.Lock()
	for k, e := range a.repeats {
		if all || now.Sub(e.first) >= repeatWindow {
			delete(a.repeats, k)
			if e.suppressed > 0 {
				out = append(out, due{k, e})
			}
		}
	}
	a.mu.Unlock()
	for _, d := range out {
		a.writeRepeat(ctx, d.k, d.e)
	}
}

func (a *storeAudit) AdminChange(ctx context.Context, actor, kind, target string, before, after any) {
	a.record(ctx, actor, kind, target, "ok", map[string]any{"before": before, "after": after})
}

func (a *storeAudit) SignIn(ctx context.Context, user, addr string, ok bool, reason string) {
	if ok {
		d := map[string]any{"addr": addr}
		if reason != "" {
			d["method"] = reason // "directory", "kerberos"; none for a local password
		}
		a.record(ctx, user, "auth.login", user, "ok", d)
		return
	}
	a.refusal(ctx, user, "auth.login_failed", user, reason, map[string]any{"addr": clip(addr, maxAuditName), "reason": reason})
}

func (a *storeAudit) SignOut(ctx context.Context, user, session string) {
	a.record(ctx, user, "auth.logout", user, "ok", map[string]any{"session": session})
}

func (a *storeAudit) TunnelOpened(ctx context.Context, t TunnelRecord) {
	e := a.event(t.User, "tunnel.open", t.Context, "ok", t)
	a.logEvent(ctx, e)
	a.queue.add(e)
}

func (a *storeAudit) TunnelDenied(ctx context.Context, t TunnelRecord, reason string) {
	t.Error = clip(reason, maxAuditName)
	t.Context, t.User, t.Remote = clip(t.Context, maxAuditName), clip(t.User, maxAuditName), clip(t.Remote, maxAuditName)
	a.refusal(ctx, t.User, "tunnel.denied", t.Context, t.Error, t)
}

func (a *storeAudit) TunnelClosed(ctx context.Context, t TunnelRecord) {
	t.Seconds = t.Duration.Seconds()
	outcome := "ok"
	if t.Error != "" {
		outcome = "error"
	}
	e := a.event(t.User, "tunnel.close", t.Context, outcome, t)
	a.logEvent(ctx, e)
	a.queue.add(e)
}
