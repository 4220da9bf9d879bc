// Package mux carries many tunnel streams over one WebSocket per client
// and gateway (the porthole.mux.v1 protocol), and lets that session survive
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
// The link's bytes are records: a kind byte (0 data, 1 control), a uvarint
// length (at most 64 KiB) and the bytes. Data records carry yamux
// (hashicorp/yamux): per-stream flow control and a half-close per stream
// (a stream's FIN). A control record "CLOSE <stream id> <code> <reason>"
// ends a stream with a reason (a wire.Close* code); it travels in order with
// the data, so the reason arrives before the stream's end. Keepalive is one
// WebSocket ping per session, not per stream. Every stream starts with the
// client's line "OPEN <context> <ticket>" followed at once by the stream's
// first bytes (no round trip before them); the gateway answers with "OK" or
// with the JSON error body (wire.Error plus "status": the HTTP status it
// would have refused the upgrade with) on one line and closes the stream.
package mux

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

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
	// A whole frame (up to a stream's window) must fit the link's window.
	c.StreamWindow = min(c.StreamWindow, 16<<20, uint32(max(c.Window/2, 256<<10)))
	c.Window = max(c.Window, int(c.StreamWindow)*2)
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

func (c Config) yamux() *yamux.Config {
	y := yamux.DefaultConfig()
	y.EnableKeepAlive = false // the link pings, once per session
	y.MaxStreamWindowSize = c.StreamWindow
	y.StreamOpenTimeout = 0                                // an open may wait through a resume
	y.StreamCloseTimeout = 0                               // a half-closed stream lives as long as its other half
	y.ConnectionWriteTimeout = c.ResumeLimit + time.Minute // writes wait through a resume
	y.AcceptBacklog = 1024
	y.LogOutput = io.Discard
	return y
}

// session is what both sides share: the link, yamux on it, the streams by
// id (for CLOSE lines) and the control stream.
type session struct {
	cfg  Config
	link *link
	ym   *yamux.Session

	mu      sync.Mutex
	streams map[uint32]*Stream
}

func (s *session) track(st *Stream) {
	s.mu.Lock()
	s.streams[st.ys().StreamID()] = st
	s.mu.Unlock()
}

func (s *session) forget(st *Stream) {
	s.mu.Lock()
	delete(s.streams, st.ys().StreamID())
	s.mu.Unlock()
}

// control applies a control record from the peer: "CLOSE <id> <code> <reason>".
func (s *session) control(msg []byte) {
	f := strings.SplitN(string(msg), " ", 4)
	if len(f) < 3 || f[0] != "CLOSE" {
		s.cfg.Log.Warn("unknown control record on a tunnel session", "record", clip(string(msg), 80))
		return
	}
	id, err1 := strconv.ParseUint(f[1], 10, 32)
	code, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		s.cfg.Log.Warn("bad control record on a tunnel session", "record", clip(string(msg), 80))
		return
	}
	reason := ""
	if len(f) == 4 {
		reason = f[3]
	}
	s.mu.Lock()
	st := s.streams[uint32(id)]
	s.mu.Unlock()
	if st != nil {
		st.endedByPeer(&wire.CloseError{Code: code, Reason: reason})
	}
}

func (s *session) sendClose(id uint32, code int, reason string) {
	s.link.writeControl(fmt.Appendf(nil, "CLOSE %d %d %s", id, code, clip(reason, 200)))
}

// Stream is one tunnel connection in a session: a net.Conn with CloseWrite
// (half-close) and CloseWith (end with a reason the peer reads as a
// *wire.CloseError).
type Stream struct {
	ysp  atomic.Pointer[yamux.Stream]
	sess *session

	// pre holds bytes read past a header line.
	pre []byte
	// status is set on the client: the gateway's answer is read before
	// the first byte of data.
	status    bool
	statusErr error

	ended     atomic.Pointer[wire.CloseError]
	closeOnce sync.Once

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

func newStream(ys *yamux.Stream, s *session) *Stream {
	st := &Stream{sess: s}
	st.ysp.Store(ys)
	st.answered.Store(true)
	s.track(st)
	return st
}

func (st *Stream) ys() *yamux.Stream { return st.ysp.Load() }

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
	defer st.em.Unlock()
	if st.answered.Load() {
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
	// An error here (the gateway refused and closed the stream) is the
	// answer's to tell.
	st.ys().Write(p)
	return len(p), true
}

// reopen opens the stream again with ticket and sends what was written.
func (st *Stream) reopen(ticket string) error {
	st.em.Lock()
	defer st.em.Unlock()
	ys, err := st.sess.ym.OpenStream()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(ys, "OPEN %s %s\n", st.name, ticket); err != nil {
		ys.Close()
		return err
	}
	if len(st.early) > 0 {
		ys.Write(st.early)
	}
	if st.earlyFIN {
		ys.Close()
	}
	old := st.ys()
	st.sess.forget(st)
	st.ysp.Store(ys)
	st.pre = nil
	st.sess.track(st)
	old.Close()
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
		n, err := st.ys().Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// Read reads the stream. On the client the first Read returns the
// gateway's refusal, if it refused.
func (st *Stream) Read(p []byte) (int, error) {
	if st.status {
		st.status = false
		st.statusErr = st.readAnswer()
		st.answer()
	}
	if st.statusErr != nil {
		return 0, st.statusErr
	}
	if len(st.pre) > 0 {
		n := copy(p, st.pre)
		st.pre = st.pre[n:]
		return n, nil
	}
	n, err := st.ys().Read(p)
	return n, st.mapErr(err)
}

// readAnswer reads the gateway's answer to the open, opening again with a
// new ticket when Retry gives one.
func (st *Stream) readAnswer() error {
	for attempt := 0; ; attempt++ {
		line, err := st.readLine()
		if err != nil {
			return st.mapErr(err)
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
	_, err := st.ys().Read(nil)
	if errors.Is(err, io.EOF) {
		return nil // the Read that follows returns it
	}
	return st.mapErr(err)
}

func (st *Stream) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if ce := st.ended.Load(); ce != nil {
		if ce.Code == wire.CloseNormal {
			return net.ErrClosed
		}
		return ce
	}
	if errors.Is(err, io.EOF) {
		// yamux ends every stream with EOF when the session dies; that is
		// not the peer's end of the stream.
		if lerr := st.sess.link.Err(); st.sess.ym.IsClosed() && lerr != nil && !errors.Is(lerr, net.ErrClosed) {
			return sessionEnded(lerr)
		}
		return err
	}
	if errors.Is(err, yamux.ErrSessionShutdown) || errors.Is(err, yamux.ErrConnectionReset) {
		if lerr := st.sess.link.Err(); lerr != nil && !errors.Is(lerr, net.ErrClosed) {
			return sessionEnded(lerr)
		}
		return &wire.CloseError{Code: wire.CloseGoingAway, Reason: "the tunnel session ended"}
	}
	if errors.Is(err, yamux.ErrStreamClosed) {
		return net.ErrClosed
	}
	return err
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
	if ce := st.ended.Load(); ce != nil {
		return 0, st.mapErr(ce)
	}
	if !st.answered.Load() {
		if n, done := st.writeEarly(p); done {
			return n, nil
		}
	}
	n, err := st.ys().Write(p)
	return n, st.mapErr(err)
}

// CloseWrite ends this side's direction (the stream's FIN); the other
// direction flows on.
func (st *Stream) CloseWrite() error {
	if !st.answered.Load() {
		st.em.Lock()
		if !st.answered.Load() {
			st.earlyFIN = true
			st.ys().Close()
			st.em.Unlock()
			return nil
		}
		st.em.Unlock()
	}
	return st.ys().Close()
}

// Close ends the stream.
func (st *Stream) Close() error {
	return st.CloseWith(wire.CloseNormal, "")
}

// CloseWith ends the stream; a code other than CloseNormal reaches the
// peer's reads and writes as a *wire.CloseError with reason.
func (st *Stream) CloseWith(code int, reason string) error {
	st.closeOnce.Do(func() {
		if code != wire.CloseNormal && st.ended.Load() == nil {
			st.sess.sendClose(st.ys().StreamID(), code, reason)
		}
		st.ended.CompareAndSwap(nil, &wire.CloseError{Code: wire.CloseNormal})
		ys := st.ys()
		// Wake a reader still waiting for the peer's FIN, and a writer
		// waiting for the stream's window.
		ys.SetReadDeadline(time.Now())
		ys.SetWriteDeadline(time.Now())
		st.sess.forget(st)
		// The FIN queues behind what was written; while the session waits
		// to resume, queueing it may wait too, and closing never does.
		go ys.Close()
	})
	return nil
}

// endedByPeer applies the peer's CLOSE line.
func (st *Stream) endedByPeer(ce *wire.CloseError) {
	st.ended.CompareAndSwap(nil, ce)
	st.ys().SetReadDeadline(time.Now())
	st.ys().SetWriteDeadline(time.Now())
}

// StreamID is the stream's number within its session.
func (st *Stream) StreamID() uint32 { return st.ys().StreamID() }

func (st *Stream) LocalAddr() net.Addr                { return st.ys().LocalAddr() }
func (st *Stream) RemoteAddr() net.Addr               { return st.ys().RemoteAddr() }
func (st *Stream) SetDeadline(t time.Time) error      { return st.ys().SetDeadline(t) }
func (st *Stream) SetReadDeadline(t time.Time) error  { return st.ys().SetReadDeadline(t) }
func (st *Stream) SetWriteDeadline(t time.Time) error { return st.ys().SetWriteDeadline(t) }

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
