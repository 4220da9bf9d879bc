package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrPeerTimeout is returned by reads and writes once the keepalive has
// declared the peer dead.
var ErrPeerTimeout = errors.New("peer stopped answering keepalive pings")

// Options tune a Conn. The zero value means the package defaults.
type Options struct {
	// PingPeriod is how often a ping is sent; zero means PingPeriod.
	// A negative value turns keepalive off.
	PingPeriod time.Duration
	// PongWait is how long the peer may stay silent; zero means PongWait.
	PongWait time.Duration
	// HalfClose says the peer agreed to Subprotocol, so CloseWrite sends
	// the end-of-stream message. Without it CloseWrite is a full close.
	HalfClose bool
}

// Conn adapts a WebSocket connection to a net.Conn that carries a byte
// stream as described in the package comment, with CloseWrite for
// half-close and its own keepalive.
//
// One goroutine may Read while another Writes. Close, CloseWith and
// CloseWrite may be called from any goroutine. Conn owns ws: Close closes it.
type Conn struct {
	ws        *websocket.Conn
	halfClose bool

	// Reader state, touched only by the reading goroutine (and by the
	// drainer, which takes over reading once Read has returned io.EOF).
	msg     io.Reader
	readErr error

	// wmu serialises data writes and the end-of-stream message.
	wmu      sync.Mutex
	wroteEOF bool

	// Keepalive.
	pingPeriod time.Duration
	pongWait   time.Duration
	timer      *time.Timer
	lastRecv   atomic.Int64 // unix nanoseconds of the last message, ping or pong
	lastSent   atomic.Int64 // unix nanoseconds of the last completed data write
	dead       atomic.Bool

	// readEOF is set when the peer's end-of-stream arrived; drained is
	// closed when the drainer that then reads control frames has stopped.
	readEOF atomic.Bool
	drained chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// NewConn wraps ws. It sets the read limit, the ping and pong handlers and
// starts the keepalive timer (no goroutine runs while the tunnel is idle).
func NewConn(ws *websocket.Conn, opts Options) *Conn {
	c := &Conn{
		ws:         ws,
		halfClose:  opts.HalfClose,
		pingPeriod: opts.PingPeriod,
		pongWait:   opts.PongWait,
		drained:    make(chan struct{}),
	}
	if c.pingPeriod == 0 {
		c.pingPeriod = PingPeriod
	}
	if c.pongWait == 0 {
		c.pongWait = PongWait
	}
	now := time.Now().UnixNano()
	c.lastRecv.Store(now)
	c.lastSent.Store(now)
	ws.SetReadLimit(MaxMessageSize)
	ws.SetPongHandler(func(string) error {
		c.lastRecv.Store(time.Now().UnixNano())
		return nil
	})
	ws.SetPingHandler(func(data string) error {
		c.lastRecv.Store(time.Now().UnixNano())
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(WriteWait))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) && !isTimeout(err) {
			return err
		}
		return nil
	})
	if c.pingPeriod > 0 {
		c.timer = time.AfterFunc(c.pingPeriod, c.keepalive)
	}
	return c
}

// keepalive runs on the timer: it declares the peer dead when nothing has
// arrived and nothing was sent for pongWait, or sends a ping and re-arms.
func (c *Conn) keepalive() {
	now := time.Now()
	recv := time.Unix(0, c.lastRecv.Load())
	sent := time.Unix(0, c.lastSent.Load())
	if now.Sub(recv) > c.pongWait && now.Sub(sent) > c.pongWait {
		c.dead.Store(true)
		c.ws.NetConn().Close()
		return
	}
	err := c.ws.WriteControl(websocket.PingMessage, nil, now.Add(WriteWait))
	if errors.Is(err, websocket.ErrCloseSent) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.timer.Reset(c.pingPeriod)
}

// Read reads stream bytes. It returns io.EOF when the peer has finished
// writing (end-of-stream message or a normal close) and a *CloseError when
// the peer closed the stream with a reason. At the end of a message it may
// return 0, nil rather than block for the next one while holding p.
func (c *Conn) Read(p []byte) (int, error) {
	if c.readErr != nil {
		return 0, c.readErr
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.msg == nil {
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n, err := c.msg.Read(p)
	if err == nil && n > 0 && n < len(p) {
		// The frame ran out before p did: see whether the message did too
		// (this does not block at the end of a final frame), so the next
		// wait needs no buffer.
		var m int
		m, err = c.msg.Read(p[n:])
		n += m
	}
	if err == io.EOF {
		c.msg, err = nil, nil
	}
	if err != nil {
		c.readErr = c.mapErr(err)
		return n, c.readErr
	}
	return n, nil
}

// WaitReadable blocks until a message (or the end of the stream) has
// arrived, without a buffer; Read then returns its data or the end.
func (c *Conn) WaitReadable() error {
	if c.readErr != nil || c.msg != nil {
		return nil
	}
	c.next()
	return nil
}

// next waits for the next binary message, handling control messages; at
// the end of the stream it sets and returns readErr.
func (c *Conn) next() error {
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.readErr = c.mapErr(err)
			return c.readErr
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if typ == websocket.TextMessage {
			if err := c.control(r); err != nil {
				c.readErr = err
				if err == io.EOF {
					c.readEOF.Store(true)
					go c.drain()
				} else {
					c.CloseWith(CloseProtocolError, err.Error())
				}
				return err
			}
			continue
		}
		c.msg = r
		return nil
	}
}

// control handles a text message: only EOFMessage is defined.
func (c *Conn) control(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxControlMessage+1))
	if err != nil {
		return c.mapErr(err)
	}
	if string(b) == EOFMessage {
		return io.EOF
	}
	return fmt.Errorf("%w: unknown control message %q", ErrProtocol, truncate(string(b), 40))
}

// drain keeps reading after the peer's end-of-stream so pings, pongs and
// the final close frame are still handled. Any data now is a protocol error.
func (c *Conn) drain() {
	defer close(c.drained)
	for {
		typ, _, err := c.ws.NextReader()
		if err != nil {
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if typ == websocket.BinaryMessage {
			c.CloseWith(CloseProtocolError, "data after end of stream")
			return
		}
	}
}

// mapErr turns gorilla's errors into the ones this package promises.
func (c *Conn) mapErr(err error) error {
	if c.dead.Load() {
		return ErrPeerTimeout
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived:
			if ce.Code == websocket.CloseGoingAway && ce.Text != "" {
				return &CloseError{Code: ce.Code, Reason: ce.Text}
			}
			return io.EOF
		}
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		c.CloseWith(CloseTooBig, "message too big")
		return fmt.Errorf("%w: message larger than %d bytes", ErrProtocol, MaxMessageSize)
	}
	return err
}

// maxWriteMessage is the largest binary message Write sends; longer
// writes are split.
const maxWriteMessage = 128 << 10

// Write sends p as binary messages of at most maxWriteMessage bytes.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wroteEOF {
		return 0, fmt.Errorf("write after CloseWrite: %w", net.ErrClosed)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxWriteMessage)]
		if err := c.ws.WriteMessage(websocket.BinaryMessage, chunk); err != nil {
			if c.dead.Load() {
				return written, ErrPeerTimeout
			}
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
		c.lastSent.Store(time.Now().UnixNano())
	}
	return written, nil
}

// CloseWrite tells the peer this side has finished writing. Without the
// half-close subprotocol it closes the whole connection.
func (c *Conn) CloseWrite() error {
	if !c.halfClose {
		return c.Close()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wroteEOF {
		return nil
	}
	c.wroteEOF = true
	return c.ws.WriteMessage(websocket.TextMessage, []byte(EOFMessage))
}

// Close ends the stream: with code 1000 after the peer's end-of-stream has
// arrived (waiting up to CloseWait for its close frame, so nothing in
// flight is reset), otherwise with code 1000 at once.
func (c *Conn) Close() error {
	return c.CloseWith(CloseNormal, "")
}

// CloseWith ends the stream with the given close code and reason, which the
// peer's reader receives as a *CloseError (or io.EOF for 1000).
func (c *Conn) CloseWith(code int, reason string) error {
	c.closeOnce.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		msg := websocket.FormatCloseMessage(code, truncate(reason, 120))
		// A close frame that cannot be written within a second (a peer that
		// stopped reading) is given up: closing must never hang.
		err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		if err == nil && code == CloseNormal && c.readEOF.Load() {
			// The drainer returns when the peer's close frame arrives.
			select {
			case <-c.drained:
			case <-time.After(CloseWait):
			}
		}
		c.closeErr = c.ws.Close()
		if errors.Is(c.closeErr, net.ErrClosed) {
			c.closeErr = nil
		}
	})
	return c.closeErr
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets both deadlines on the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.ws.NetConn().SetDeadline(t) }

// SetReadDeadline sets the read deadline on the underlying connection.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline on the underlying connection.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
