package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/gateway/ticket"
	"github.com/porthole/porthole/wire"
)

func ticketClaims(user, session string, now, expires time.Time) ticket.Claims {
	return ticket.Claims{User: user, Session: session, IssuedAt: now, ExpiresAt: expires}
}

// sameOrigin reports whether a browser request comes from the gateway's
// own pages. Requests without Origin (non-browser clients) pass.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// serveProxy is GET /ws-proxy/{context}. Everything that can refuse the
// tunnel (origin, ticket, context, access, the dial to the target) happens
// before the upgrade and is answered with a JSON reason, so the client can
// tell its user; only then do bytes flow.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec := TunnelRecord{Context: r.PathValue("context"), Remote: clientAddr(r)}
	deny := func(label string, err error) {
		writeError(s.log, w, r, s.denied(ctx, rec, label, err))
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(s.log, w, r, errorf(http.StatusMethodNotAllowed, "tunnels are opened with GET and a WebSocket upgrade"))
		return
	}
	if !sameOrigin(r) {
		deny("origin", errorf(http.StatusForbidden, "tunnels cannot be opened from another site's page"))
		return
	}
	p, err := s.authenticate(r)
	if err != nil {
		rec.User = s.claimedUser(ticketFrom(r))
		deny("unauthorized", err)
		return
	}
	t, err := s.mayOpen(ctx, p, rec.Context, &rec)
	if err != nil {
		writeError(s.log, w, r, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(s.log, w, r, errorf(http.StatusBadRequest, "this endpoint carries a tunnel over WebSocket: open it with the porthole client"))
		return
	}
	target, err := s.dialFor(ctx, t, &rec)
	if err != nil {
		writeError(s.log, w, r, err)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the client.
		target.Close()
		s.log.Info("websocket upgrade failed", "context", t.Context, "user", p.user.Username, "err", err)
		return
	}
	conn := wire.NewConn(ws, wire.Options{
		HalfClose:  ws.Subprotocol() == wire.Subprotocol,
		PingPeriod: s.cfg.PingPeriod,
		PongWait:   s.cfg.PongWait,
	})
	// Carry the stream on a fresh goroutine and let this one (whose stack
	// grew while serving HTTP, checking the ticket and dialling) end: an
	// idle tunnel then costs two small goroutines.
	go s.carry(p, t, rec, conn, target)
}

// mayOpen finds the tunnel p asks for by name and checks that p may
// use it; a refusal is counted and audited with rec, which it fills in.
func (s *Server) mayOpen(ctx context.Context, p *principal, name string, rec *TunnelRecord) (store.Tunnel, error) {
	rec.User = p.user.Username
	t, err := s.tunnelFor(ctx, name, p)
	if err != nil {
		var he *Error
		label := "forbidden"
		if errors.As(err, &he) && he.Status == http.StatusNotFound {
			label = "not_found"
		}
		return t, s.denied(ctx, *rec, label, err)
	}
	rec.Context, rec.Target = t.Context, t.SocketAddress
	return t, nil
}

// dialFor dials t's target for the tunnel connection rec.
func (s *Server) dialFor(ctx context.Context, t store.Tunnel, rec *TunnelRecord) (net.Conn, error) {
	target, err := s.dialTarget(ctx, t)
	if err != nil {
		return nil, s.denied(ctx, *rec, "unreachable", err)
	}
	return target, nil
}

// denied counts and audits a refused tunnel connection and returns err.
func (s *Server) denied(ctx context.Context, rec TunnelRecord, label string, err error) error {
	var he *Error
	if errors.As(err, &he) {
		s.metrics.denials.WithLabelValues(label).Inc()
		s.audit.TunnelDenied(ctx, rec, he.Msg)
	}
	return err
}

// dialTarget connects to a tunnel's target within the dial timeout.
func (s *Server) dialTarget(ctx context.Context, t store.Tunnel) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.DialTimeout))
	defer cancel()
	c, err := s.dialChecked(dctx, t.SocketAddress)
	if err != nil {
		reason := dialReason(err)
		if errors.Is(err, context.DeadlineExceeded) {
			reason = fmt.Sprintf("no answer within %s", time.Duration(s.cfg.DialTimeout))
		}
		return nil, &Error{Status: http.StatusBadGateway,
			Msg: fmt.Sprintf("the gateway cannot reach tunnel %q's target %s: %s", t.Context, t.SocketAddress, reason), Err: err}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if n := s.socketBufferSize(ctx); n > 0 {
			tc.SetReadBuffer(n)
			tc.SetWriteBuffer(n)
		}
	}
	return c, nil
}

// dialChecked dials a target unless its address is denied (checked here
// for IP addresses, and after name resolution by the default dialer).
func (s *Server) dialChecked(ctx context.Context, addr string) (net.Conn, error) {
	if err := s.deny.checkLiteral(addr); err != nil {
		return nil, err
	}
	return s.dial(ctx, "tcp", addr)
}

// dialReason says why a dial failed in words for people: "connection
// refused", "no such host", without the Go error's operation prefixes.
func dialReason(err error) string {
	if errors.Is(err, ErrTargetDenied) {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return strings.TrimPrefix(err.Error(), ErrTargetDenied.Error()+": ")
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "no such host " + de.Name
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// carry moves bytes between the WebSocket and the target until either
// side ends, the tunnel is revoked, or the gateway shuts down.
func (s *Server) carry(p *principal, t store.Tunnel, rec TunnelRecord, conn net.Conn, target net.Conn) {
	ctx, cancel := context.WithCancelCause(s.baseCtx)
	defer cancel(nil)
	lc := &liveConn{id: s.nextID.Add(1), user: p.user.Username, session: p.session, context: t.Context,
		target: t.SocketAddress, remote: rec.Remote, started: s.cfg.Now(), cancel: cancel}
	if !s.register(lc) {
		conn.(interface{ CloseWith(int, string) error }).CloseWith(wire.CloseGoingAway, "gateway shutting down")
		target.Close()
		return
	}
	defer s.unregister(lc)
	rec.ID = lc.id
	s.metrics.opened.Inc()
	log := s.log.With("conn", lc.id, "user", lc.user, "context", lc.context)
	log.Info("tunnel opened", "target", lc.target, "remote", lc.remote)
	// The "opened" audit row (an INSERT, ~130 µs in SQLite) is written
	// beside the stream rather than before its first byte; "closed" waits
	// for it, so the log keeps its order.
	opened := make(chan struct{})
	go func(r TunnelRecord) {
		defer close(opened)
		s.audit.TunnelOpened(context.WithoutCancel(ctx), r)
	}(rec)

	counted := wire.Counted(target, &lc.down, &lc.up)
	_, err := wire.Pipe(ctx, conn, counted)
	<-opened

	rec.BytesUp, rec.BytesDown = lc.up.Load(), lc.down.Load()
	rec.Duration = s.cfg.Now().Sub(lc.started)
	var ce *wire.CloseError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		rec.Error = ce.Reason
	default:
		rec.Error = err.Error()
	}
	s.metrics.bytes.WithLabelValues("up").Add(float64(rec.BytesUp))
	s.metrics.bytes.WithLabelValues("down").Add(float64(rec.BytesDown))
	s.audit.TunnelClosed(context.WithoutCancel(ctx), rec)
	log.Info("tunnel closed", "up", rec.BytesUp, "down", rec.BytesDown, "duration", rec.Duration.Round(time.Millisecond), "err", rec.Error)
}

// events reads audit events for the API.
func (s *Server) events(ctx context.Context, f store.EventFilter) ([]AuditEvent, error) {
	if sa, ok := s.audit.(*storeAudit); ok {
		// Tunnel rows are written in batches: show them once stored.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sa.queue.sync(wctx)
		cancel()
	}
	evs, err := s.st.Events(ctx, f)
	if err != nil {
		return nil, internal(err)
	}
	out := make([]AuditEvent, len(evs))
	for i, e := range evs {
		out[i] = AuditEvent{ID: e.ID, Time: e.Time, Actor: e.Actor, Kind: e.Kind, Target: e.Target, Outcome: e.Outcome, Gateway: e.Gateway}
		if err := json.Unmarshal(e.Details, &out[i].Details); err != nil {
			out[i].Details = map[string]any{"raw": string(e.Details)}
		}
	}
	return out, nil
}
