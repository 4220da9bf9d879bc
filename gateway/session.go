package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/wire"
	"github.com/porthole/porthole/wire/mux"
)

// serveSession is GET /ws-mux: a client's tunnel session (package
// wire/mux), one WebSocket carrying all its connections, new or resumed.
// The ticket is checked here and again for every connection opened on it.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(s.log, w, r, errorf(http.StatusMethodNotAllowed, "tunnel sessions are opened with GET and a WebSocket upgrade"))
		return
	}
	if !sameOrigin(r) {
		writeError(s.log, w, r, errorf(http.StatusForbidden, "tunnels cannot be opened from another site's page"))
		return
	}
	p, err := s.authenticate(r)
	if err != nil {
		writeError(s.log, w, r, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(s.log, w, r, errorf(http.StatusBadRequest, "this endpoint carries tunnels over WebSocket: open them with the porthole client"))
		return
	}
	if !slices.Contains(websocket.Subprotocols(r), wire.MuxSubprotocol) {
		// An older or newer client: 404 makes it use one WebSocket per
		// connection instead.
		writeError(s.log, w, r, &Error{Status: http.StatusNotFound, Code: wire.CodeUnsupportedProtocol,
			Msg: fmt.Sprintf("this gateway's tunnel sessions speak %s only; the client's %q is not it (it can use one WebSocket per connection)", wire.MuxSubprotocol, r.Header.Get("Sec-WebSocket-Protocol"))})
		return
	}
	owner := strings.ToLower(p.user.Username)
	ss, isNew, err := s.sessions.Upgrade(w, r, &s.sessionUpgrader, owner)
	switch {
	case errors.Is(err, mux.ErrUnknownSession):
		writeError(s.log, w, r, &Error{Status: http.StatusGone, Msg: err.Error(), Code: mux.CodeSessionGone})
		return
	case err != nil && !mux.Answered(err):
		writeError(s.log, w, r, &Error{Status: http.StatusBadRequest, Msg: err.Error(), Err: err})
		return
	case err != nil:
		s.log.Info("tunnel session upgrade failed", "user", p.user.Username, "err", err)
		return
	}
	remote := clientAddr(r)
	if !isNew {
		s.log.Info("tunnel session resumed", "session", ss.ID(), "user", p.user.Username, "remote", remote)
		return
	}
	s.log.Info("tunnel session started", "session", ss.ID(), "user", p.user.Username, "remote", remote)
	go ss.Serve(func(st *mux.Stream, line string) { s.serveStream(owner, remote, st, line) })
}

// serveStream opens one connection of a session: the line is
// "OPEN <context> <ticket>"; the checks are those of /ws-proxy/, and a
// refusal is the same JSON error, sent on the stream.
func (s *Server) serveStream(owner, remote string, st *mux.Stream, line string) {
	ctx, cancel := context.WithTimeout(s.baseCtx, time.Duration(s.cfg.DialTimeout)+10*time.Second)
	defer cancel()
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "OPEN" {
		refuseStream(st, errorf(http.StatusBadRequest, "a tunnel stream starts with OPEN <context> <ticket>"))
		return
	}
	rec := TunnelRecord{Context: f[1], Remote: remote}
	p, err := s.checkTicket(ctx, f[2])
	if err != nil {
		rec.User = s.claimedUser(f[2])
		refuseStream(st, s.denied(ctx, rec, "unauthorized", err))
		return
	}
	if !strings.EqualFold(p.user.Username, owner) {
		rec.User = p.user.Username
		refuseStream(st, s.denied(ctx, rec, "forbidden", errorf(http.StatusForbidden, "the ticket is %s's, not the session's user's", p.user.Username)))
		return
	}
	t, err := s.mayOpen(ctx, p, rec.Context, &rec)
	if err != nil {
		refuseStream(st, err)
		return
	}
	target, err := s.dialFor(ctx, t, &rec)
	if err != nil {
		refuseStream(st, err)
		return
	}
	if _, err := st.Write([]byte("OK\n")); err != nil {
		target.Close()
		st.Close()
		return
	}
	s.carry(p, t, rec, st, target)
}

// refuseStream answers a stream's OPEN with the JSON error and ends it.
func refuseStream(st *mux.Stream, err error) {
	var he *Error
	if !errors.As(err, &he) {
		he = internal(err)
	}
	b, _ := json.Marshal(mux.Refusal{Status: he.Status, Message: he.Msg, Code: errorCode(he)})
	st.Write(append(b, '\n'))
	st.CloseWrite()
	st.Close()
}
