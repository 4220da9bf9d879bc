// Package mux carries many tunnel streams over one WebSocket per client
// and gateway (the porthole.mux.v2 protocol), and lets that session survive
// the WebSocket: a dropped connection (a Wi-Fi switch, a laptop's sleep, a
// proxy's idle cut) is replaced by a new one and every stream continues
// with no byte lost or repeated.
//
// # Protocol
//
// The client opens a WebSocket at [wire.MuxPath] with the subprotocol
// [wire.MuxSubprotocol]. Binary messages carry the link: 'D' + stream bytes,
// or 'A' + an 8-byte count of the bytes consumed so far (acknowledgement).
// Each side keeps what it sent until acknowledged, at most the window. To
// resume, the client sends the session id and its received count in the
// [SessionHeader] and [ReceivedHeader] request headers; the gateway answers
// with its own count in the same response headers, and each side sends again
// from the other's count. An unknown session is refused with 410 and the
// code "session_gone".
//
// The link's bytes are records: a kind byte, a uvarint length, then that
// many bytes: a uvarint stream id and the record's body. The client opens
// stream n (1, 2, 3, ...) with an open record; data records carry a
// stream's bytes (at most 128 KiB each); a FIN record ends the sender's
// direction (half-close; the other flows on); a close record (uvarint code,
// then the reason) ends the stream with a wire.Close* code that the peer's
// reads and writes return, after the bytes sent before it; a window record
// offers the sender more bytes. Each side of a stream may send 256 KiB
// before the receiver offers more (per-stream flow control: a stream whose
// program does not read stops only itself). Records travel in order, so a
// close's reason is known after the data and before anything else.
// Keepalive is one WebSocket ping per session, not per stream. Every
// stream starts with the client's line "OPEN <context> <ticket>" followed
// at once by the stream's first bytes (no round trip before them); the
// gateway answers with "OK" or with the JSON error body (wire.Error plus
// "status": the HTTP status it would have refused the upgrade with) on one
// line and closes the stream.
//
// Bytes received for a stream go from the reading goroutine straight into
// the program's socket when it takes them at once (Stream.DeliverTo), and
// a write goes out from the writer's goroutine: a round trip costs the
// same goroutine wake-ups as over one WebSocket per connection.
package mux

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole/porthole/wire"
)

// Headers of the upgrade request and response that resume a session.
const (
	SessionHeader  = "Porthole-Session"
	ReceivedHeader = "Porthole-Received"
	// CodeSessionGone is the error code of a resume the gateway cannot do.
	CodeSessionGone = "session_gone"
	// maxHeaderLine bounds the OPEN, OK and error lines.
	maxHeaderLine = 8 << 10
)

// Config tunes a session; zero fields take the defaults.
type Config struct {
	// Window bounds the bytes sent and not yet acknowledged (4 MiB).
	Window int
	// StreamWindow is each stream's flow-control window (1 MiB).
	StreamWindow uint32
	// ResumeLimit is how long a session without a WebSocket waits for a
	// new one before its streams end (10 minutes: a short sleep).
	ResumeLimit time.Duration
	// PingPeriod and PongWait are the session's keepalive.
	PingPeriod time.Duration
	PongWait   time.Duration
	Log        *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = 4 << 20
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = 1 << 20
	}
	c.StreamWindow = max(min(c.StreamWindow, 16<<20), initialWindow)
	c.Window = max(c.Window, 256<<10)
	if c.ResumeLimit == 0 {
		c.ResumeLimit = 10 * time.Minute
	}
	if c.PingPeriod == 0 {
		c.PingPeriod = wire.PingPeriod
	}
	if c.PongWait == 0 {
		c.PongWait = wire.PongWait
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// session is what both sides share: the link, its streams by id, and the
// goroutine that reads the link and hands each record to its stream.
type session struct {
	cfg  Config
	link *link

	mu      sync.Mutex
	streams map[uint32]*rawStream
	lastID  uint32 // the last stream opened
	endErr  error  // why the session ended; nil while it lives
	// accept takes the streams the peer opens (the gateway's side only).
	accept chan *rawStream
	// over is closed when the session has ended.
	over chan struct{}
}

func newSession(cfg Config, onDetach func(), server bool) *session {
	s := &session{cfg: cfg, streams: map[uint32]*rawStream{}, over: make(chan struct{})}
	if server {
		s.accept = make(chan *rawStream, 1024)
	}
	s.link = newLink(cfg.Window, cfg.PingPeriod, cfg.PongWait, onDetach)
	go s.run()
	return s
}

// run reads the link's records and applies each to its stream until the
// link ends.
func (s *session) run() {
	for {
		kind, id, body, err := s.link.readRecord()
		if err == nil {
			err = s.apply(kind, id, body)
		}
		if err != nil {
			if s.link.Err() == nil {
				s.cfg.Log.Warn("the peer broke the tunnel session's protocol; its connections end", "err", err)
			}
			s.link.fail(err)
			s.end(s.link.Err())
			return
		}
	}
}

// errOverWindow is a peer that sent more than a stream's window.
var errOverWindow = errors.New("the peer sent more than a stream's window")

func (s *session) apply(kind byte, id uint32, body []byte) error {
	if kind == recordOpen {
		return s.opened(id)
	}
	s.mu.Lock()
	r := s.streams[id]
	s.mu.Unlock()
	if r == nil {
		// A stream closed here: the peer had not heard yet.
		releaseBody(body)
		return nil
	}
	switch kind {
	case recordData:
		return r.received(body)
	case recordFin:
		r.peerEnded(true, nil)
	case recordClose:
		code, n := binary.Uvarint(body)
		if n <= 0 || code > 4999 {
			return fmt.Errorf("bad close record for stream %d", id)
		}
		r.peerEnded(false, &wire.CloseError{Code: int(code), Reason: string(body[n:])})
	case recordWindow:
		n, k := binary.Uvarint(body)
		if k <= 0 || n > maxWindow {
			return fmt.Errorf("bad window record for stream %d", id)
		}
		r.windowed(int(n))
	}
	return nil
}

// opened takes a stream the client opened (on the gateway's side).
func (s *session) opened(id uint32) error {
	if s.accept == nil {
		return errors.New("the gateway opened a stream")
	}
	s.mu.Lock()
	if id <= s.lastID {
		s.mu.Unlock()
		return fmt.Errorf("the client opened stream %d again", id)
	}
	s.lastID = id
	r := newRawStream(s, id)
	s.streams[id] = r
	s.mu.Unlock()
	// The gateway's Serve takes each stream at once (it starts a
	// goroutine); waiting here briefly is the backpressure on a burst of
	// opens, which are never refused for it.
	select {
	case s.accept <- r:
	case <-s.link.done:
	}
	return nil
}

// open starts a stream (on the client's side); its first write carries the
// open along.
func (s *session) open() (*rawStream, error) {
	s.mu.Lock()
	if s.endErr != nil {
		s.mu.Unlock()
		return nil, s.endErr
	}
	// The open record is queued under s.mu, so ids reach the peer in
	// order (an open record does not wait for the link's window).
	err := s.link.appendRecord(recordOpen, s.lastID+1, nil)
	if err != nil {
		s.mu.Unlock()
		return nil, s.endedBy(err)
	}
	s.lastID++
	r := newRawStream(s, s.lastID)
	s.streams[r.id] = r
	s.mu.Unlock()
	return r, nil
}

func (s *session) forget(id uint32) {
	s.mu.Lock()
	delete(s.streams, id)
	s.mu.Unlock()
}

// end ends every stream with the link's error err.
func (s *session) end(err error) {
	e := s.endedBy(err)
	s.mu.Lock()
	if s.endErr != nil {
		s.mu.Unlock()
		return
	}
	s.endErr = e
	all := make([]*rawStream, 0, len(s.streams))
	for _, r := range s.streams {
		all = append(all, r)
	}
	s.mu.Unlock()
	for _, r := range all {
		r.sessionEnded(e)
	}
	close(s.over)
}

// endedBy is what a stream's reads and writes return once the session
// ended because its link failed with err.
func (s *session) endedBy(err error) error {
	s.mu.Lock()
	e := s.endErr
	s.mu.Unlock()
	if e != nil {
		return e
	}
	if err == nil || errors.Is(err, net.ErrClosed) {
		return &wire.CloseError{Code: wire.CloseGoingAway, Reason: "the tunnel session ended"}
	}
	return sessionEnded(err)
}

// Stream is one tunnel connection in a session: a net.Conn with CloseWrite
// (half-close) and CloseWith (end with a reason the peer reads as a
// *wire.CloseError).
type Stream struct {
	rawp atomic.Pointer[rawStream]
	sess *session

	// pre holds bytes read past a header line.
	pre []byte
	// status is set on the client: the gateway's answer is read before
	// the first byte of data.
	status    bool
	statusErr error

	// MapRefusal, when set before the first Read, turns the gateway's
	// refusal into the error the first Read returns.
	MapRefusal func(*Refusal) error
	// Retry, when set before the first Read, is asked about a refusal:
	// it may return a new ticket (a new sign-in) to open the stream again
	// with, the first bytes included, so the program using the
	// connection notices nothing.
	Retry func(*Refusal) (ticket string, ok bool)

	// Until the gateway answered the open (client side), what was
	// written is kept (up to maxEarly) to send again with a repeated open.
	name     string
	em       sync.Mutex
	answered atomic.Bool
	early    []byte
	earlyFIN bool
	noRetry  bool // more was written before the answer than is kept
}

// maxEarly bounds what a stream keeps before the gateway's answer.
const maxEarly = 64 << 10

func newStream(r *rawStream, s *session) *Stream {
	st := &Stream{sess: s}
	st.rawp.Store(r)
	st.answered.Store(true)
	return st
}

func (st *Stream) raw() *rawStream { return st.rawp.Load() }

// answer ends the time before the gateway's answer.
func (st *Stream) answer() {
	st.em.Lock()
	st.answered.Store(true)
	st.early = nil
	st.em.Unlock()
}

// writeEarly writes p before the gateway answered the open, keeping it
// for a repeated open; done is false when the answer has come meanwhile.
func (st *Stream) writeEarly(p []byte) (n int, done bool) {
	st.em.Lock()
	if st.answered.Load() {
		st.em.Unlock()
		return 0, false
	}
	// Past maxEarly the bytes are no longer kept (a program may write a
	// lot before it reads the answer); such a stream cannot be opened
	// again after a refusal.
	if st.noRetry || len(st.early)+len(p) > maxEarly {
		st.noRetry, st.early = true, nil
	} else {
		st.early = append(st.early, p...)
	}
	r := st.raw()
	st.em.Unlock()
	// Not holding em: the write may wait for the stream's window, which
	// the reader of the answer must not. If the stream is opened again
	// meanwhile, p goes with what was kept, and this write to the old
	// stream fails; an error here (the gateway refused and closed the
	// stream) is the answer's to tell.
	r.Write(p)
	return len(p), true
}

// reopen opens the stream again with ticket and sends what was written.
func (st *Stream) reopen(ticket string) error {
	st.em.Lock()
	defer st.em.Unlock()
	r, err := st.sess.open()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(r, "OPEN %s %s\n", st.name, ticket); err != nil {
		r.close(wire.CloseNormal, "")
		return err
	}
	if len(st.early) > 0 {
		r.Write(st.early)
	}
	if st.earlyFIN {
		r.CloseWrite()
	}
	old := st.raw()
	st.rawp.Store(r)
	st.pre = nil
	old.close(wire.CloseNormal, "")
	return nil
}

// readLine reads one header line of the stream, keeping what follows it.
func (st *Stream) readLine() (string, error) {
	buf := make([]byte, 0, 256)
	tmp := make([]byte, 512)
	for {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			st.pre = append(st.pre[:0:0], buf[i+1:]...)
			return string(buf[:i]), nil
		}
		if len(buf) > maxHeaderLine {
			return "", errors.New("header line too long")
		}
		n, err := st.raw().Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// takeAnswer reads the gateway's answer before the first byte of data (on
// the client) and says whether it refused.
func (st *Stream) takeAnswer() error {
	if st.status {
		st.status = false
		st.statusErr = st.readAnswer()
		st.answer()
	}
	return st.statusErr
}

// Read reads the stream. On the client the first Read returns the
// gateway's refusal, if it refused.
func (st *Stream) Read(p []byte) (int, error) {
	if err := st.takeAnswer(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil // a Read of nothing waits for nothing (after the answer)
	}
	if len(st.pre) > 0 {
		n := copy(p, st.pre)
		st.pre = st.pre[n:]
		return n, nil
	}
	return st.raw().Read(p)
}

// DeliverTo writes what the stream receives to w until the peer's end
// (wire.Deliverer): werr is w's failure, rerr the stream's. Where w is a
// socket that takes bytes without waiting, the session's reader writes
// them to it directly, with no hand-off to this goroutine.
func (st *Stream) DeliverTo(w io.Writer) (n int64, werr, rerr error) {
	if err := st.takeAnswer(); err != nil {
		return 0, nil, err
	}
	if len(st.pre) > 0 {
		k, err := w.Write(st.pre)
		st.pre, n = nil, int64(k)
		if err != nil {
			return n, err, nil
		}
	}
	k, werr, rerr := st.raw().deliverTo(w)
	return n + k, werr, rerr
}

// readAnswer reads the gateway's answer to the open, opening again with a
// new ticket when Retry gives one.
func (st *Stream) readAnswer() error {
	for attempt := 0; ; attempt++ {
		line, err := st.readLine()
		if err != nil {
			return err
		}
		if line == "OK" {
			return nil
		}
		err = parseRefusal(line)
		var r *Refusal
		if !errors.As(err, &r) {
			return err
		}
		if st.Retry != nil && attempt < 2 {
			st.em.Lock()
			retry := !st.noRetry
			st.em.Unlock()
			if ticket, ok := st.Retry(r); ok && retry && st.reopen(ticket) == nil {
				continue
			}
		}
		if st.MapRefusal != nil {
			return st.MapRefusal(r)
		}
		return r
	}
}

// WaitReadable waits until a Read would not block, holding no buffer (see
// wire.ReadWaiter), so an idle stream costs no read buffer.
func (st *Stream) WaitReadable() error {
	if st.status || len(st.pre) > 0 || st.statusErr != nil {
		return nil
	}
	st.raw().Read(nil) // an error is the Read's that follows to return
	return nil
}

// sessionEnded is what a stream's reads and writes return once its session
// ended with err.
func sessionEnded(err error) error {
	var ce *wire.CloseError
	if errors.As(err, &ce) {
		return ce
	}
	return &wire.CloseError{Code: wire.CloseGoingAway, Reason: err.Error()}
}

// Write sends p on the stream.
func (st *Stream) Write(p []byte) (int, error) {
	if !st.answered.Load() {
		if n, done := st.writeEarly(p); done {
			return n, nil
		}
	}
	return st.raw().Write(p)
}

// CloseWrite ends this side's direction (the stream's FIN); the other
// direction flows on.
func (st *Stream) CloseWrite() error {
	if !st.answered.Load() {
		st.em.Lock()
		if !st.answered.Load() {
			st.earlyFIN = true
			st.raw().CloseWrite()
			st.em.Unlock()
			return nil
		}
		st.em.Unlock()
	}
	return st.raw().CloseWrite()
}

// Close ends the stream.
func (st *Stream) Close() error {
	return st.CloseWith(wire.CloseNormal, "")
}

// CloseWith ends the stream; a code other than CloseNormal reaches the
// peer's reads and writes as a *wire.CloseError with reason, after the
// bytes sent before it.
func (st *Stream) CloseWith(code int, reason string) error {
	st.raw().close(code, reason)
	return nil
}

// StreamID is the stream's number within its session.
func (st *Stream) StreamID() uint32 { return st.raw().id }

type sessionAddr struct{}

func (sessionAddr) Network() string { return "porthole-mux" }
func (sessionAddr) String() string  { return "porthole-mux" }

func (st *Stream) LocalAddr() net.Addr               { return sessionAddr{} }
func (st *Stream) RemoteAddr() net.Addr              { return sessionAddr{} }
func (st *Stream) SetReadDeadline(t time.Time) error { return st.raw().SetReadDeadline(t) }
func (st *Stream) SetWriteDeadline(t time.Time) error {
	return st.raw().SetWriteDeadline(t)
}

func (st *Stream) SetDeadline(t time.Time) error {
	st.raw().SetReadDeadline(t)
	return st.raw().SetWriteDeadline(t)
}

// Refusal is the gateway's answer to an OPEN it refused.
type Refusal struct {
	Status  int    `json:"status"`
	Message string `json:"error"`
	Code    string `json:"code,omitempty"`
}

func (r *Refusal) Error() string { return r.Message }

func parseRefusal(line string) error {
	var r Refusal
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.Status == 0 {
		return fmt.Errorf("the gateway answered the tunnel open with %q: %w", clip(line, 80), wire.ErrProtocol)
	}
	return &r
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
