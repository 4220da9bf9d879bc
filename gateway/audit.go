package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

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

// storeAudit writes events to the store and as structured log lines.
type storeAudit struct {
	st     store.Store
	log    *slog.Logger
	now    func() time.Time
	failed func() // counts a failed write
}

func (a *storeAudit) record(ctx context.Context, actor, kind, target, outcome string, details any) {
	b, err := json.Marshal(details)
	if err != nil {
		b = []byte("{}")
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("actor", actor), slog.String("kind", kind),
		slog.String("target", target), slog.String("outcome", outcome), slog.String("details", string(b)))
	// The write must outlive a cancelled request.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.st.AppendEvent(wctx, store.Event{Time: a.now(), Actor: actor, Kind: kind, Target: target, Outcome: outcome, Details: b}); err != nil {
		a.log.Error("audit write failed", "kind", kind, "target", target, "err", err)
		a.failed()
	}
}

func (a *storeAudit) AdminChange(ctx context.Context, actor, kind, target string, before, after any) {
	a.record(ctx, actor, kind, target, "ok", map[string]any{"before": before, "after": after})
}

func (a *storeAudit) SignIn(ctx context.Context, user, addr string, ok bool, reason string) {
	if ok {
		a.record(ctx, user, "auth.login", user, "ok", map[string]any{"addr": addr})
		return
	}
	a.record(ctx, user, "auth.login_failed", user, "denied", map[string]any{"addr": addr, "reason": reason})
}

func (a *storeAudit) SignOut(ctx context.Context, user, session string) {
	a.record(ctx, user, "auth.logout", user, "ok", map[string]any{"session": session})
}

func (a *storeAudit) TunnelOpened(ctx context.Context, t TunnelRecord) {
	a.record(ctx, t.User, "tunnel.open", t.Context, "ok", t)
}

func (a *storeAudit) TunnelDenied(ctx context.Context, t TunnelRecord, reason string) {
	t.Error = reason
	a.record(ctx, t.User, "tunnel.denied", t.Context, "denied", t)
}

func (a *storeAudit) TunnelClosed(ctx context.Context, t TunnelRecord) {
	t.Seconds = t.Duration.Seconds()
	outcome := "ok"
	if t.Error != "" {
		outcome = "error"
	}
	a.record(ctx, t.User, "tunnel.close", t.Context, outcome, t)
}
