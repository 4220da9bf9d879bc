package mux

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Server keeps the gateway's sessions by id, so a client can resume one.
type Server struct {
	cfg Config

	mu       sync.Mutex
	sessions map[string]*ServerSession
	closed   bool
}

// NewServer makes an empty session registry.
func NewServer(cfg Config) *Server {
	return &Server{cfg: cfg.withDefaults(), sessions: map[string]*ServerSession{}}
}

// ServerSession is the gateway's end of one client's session.
type ServerSession struct {
	*session
	id    string
	owner string
	srv   *Server
	done  chan struct{}
}

// Get returns the session with id, or nil.
func (s *Server) Get(id string) *ServerSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Len is the number of sessions.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// New starts a session for owner (whoever may resume it); nil once the
// server is closed.
func (s *Server) New(owner string) *ServerSession {
	var b [16]byte
	rand.Read(b[:])
	ss := &ServerSession{id: hex.EncodeToString(b[:]), owner: owner, srv: s, done: make(chan struct{})}
	ss.session = newSession(s.cfg, ss.lost, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ss.link.Close()
		return nil
	}
	s.sessions[ss.id] = ss
	go func() {
		<-ss.over
		ss.link.Close()
		s.mu.Lock()
		delete(s.sessions, ss.id)
		s.mu.Unlock()
		close(ss.done)
	}()
	return ss
}

// Close ends every session.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*ServerSession, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.Close()
	}
}

// ID is the session's id, for the response header.
func (ss *ServerSession) ID() string { return ss.id }

// Done is closed when the session has ended.
func (ss *ServerSession) Done() <-chan struct{} { return ss.done }

// Prepare drops the session's current WebSocket (a client resuming knows
// better than the gateway that it is gone) and returns how many bytes the
// gateway has received, for the response's ReceivedHeader.
func (ss *ServerSession) Prepare() uint64 {
	ss.link.drop()
	return ss.link.Received()
}

// Attach carries the session on ws from now on; peerReceived is the
// client's ReceivedHeader (0 for a new session).
func (ss *ServerSession) Attach(ws *websocket.Conn, peerReceived uint64) error {
	err := ss.link.attach(ws, peerReceived)
	if err != nil {
		ws.Close()
		ss.Close()
	}
	return err
}

// Serve accepts the session's streams and calls handle on a goroutine of
// its own for each, with the stream's OPEN line, until the session ends.
func (ss *ServerSession) Serve(handle func(st *Stream, line string)) {
	for {
		var r *rawStream
		select {
		case r = <-ss.accept:
		case <-ss.over:
			return
		}
		go func() {
			st := newStream(r, ss.session)
			r.SetReadDeadline(time.Now().Add(ss.cfg.PongWait))
			line, err := st.readLine()
			r.SetReadDeadline(time.Time{})
			if err != nil {
				st.CloseWith(1002, "no OPEN line")
				return
			}
			handle(st, line)
		}()
	}
}

// Close ends the session and its streams.
func (ss *ServerSession) Close() {
	ss.link.Close()
}

// lost starts the resume limit's clock when the WebSocket drops.
func (ss *ServerSession) lost() {
	time.AfterFunc(ss.cfg.ResumeLimit, func() {
		if ss.link.DetachedFor() >= ss.cfg.ResumeLimit {
			ss.cfg.Log.Info("tunnel session expired without a resume", "session", ss.id)
			ss.link.fail(ErrLinkExpired)
		}
	})
}

// ErrUnknownSession is a resume of a session the gateway does not have (or
// that belongs to someone else); answer it with 410 and CodeSessionGone.
var ErrUnknownSession = errors.New("this tunnel session is not known here (the gateway restarted, or it waited too long); start a new one")

// Upgrade answers an upgrade request at wire.MuxPath for owner, who has
// been authenticated: a new session when the request names none (the
// caller then runs Serve), else the named session resumed on the new
// WebSocket. Errors before the upgrade come back unanswered so the caller
// answers them in its own format: ErrUnknownSession, or a bad
// ReceivedHeader (400). An upgrade that fails has been answered.
func (s *Server) Upgrade(w http.ResponseWriter, r *http.Request, up *websocket.Upgrader, owner string) (ss *ServerSession, isNew bool, err error) {
	var peer uint64
	if id := r.Header.Get(SessionHeader); id != "" {
		ss = s.Get(id)
		if ss == nil || ss.owner != owner {
			return nil, false, ErrUnknownSession
		}
		peer, err = strconv.ParseUint(r.Header.Get(ReceivedHeader), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("the %s header must be a byte count: %w", ReceivedHeader, err)
		}
	} else {
		ss = s.New(owner)
		if ss == nil {
			return nil, false, errors.New("the gateway is shutting down")
		}
		isNew = true
	}
	h := http.Header{}
	h.Set(SessionHeader, ss.id)
	h.Set(ReceivedHeader, strconv.FormatUint(ss.Prepare(), 10))
	ws, err := up.Upgrade(w, r, h)
	if err != nil {
		if isNew {
			ss.Close()
		}
		return nil, false, &upgradeError{err}
	}
	if err := ss.Attach(ws, peer); err != nil {
		return nil, false, &upgradeError{err}
	}
	return ss, isNew, nil
}

// upgradeError is an Upgrade failure that has been answered already.
type upgradeError struct{ err error }

func (e *upgradeError) Error() string { return "tunnel session upgrade: " + e.err.Error() }
func (e *upgradeError) Unwrap() error { return e.err }

// Answered reports whether Upgrade's error has been answered (the caller
// must not write a response).
func Answered(err error) bool {
	var ue *upgradeError
	return errors.As(err, &ue)
}
