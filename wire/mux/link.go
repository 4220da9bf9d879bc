package mux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/wire"
)

// Frame types: the first byte of every binary WebSocket message on a link.
const (
	frameData = 'D' // stream bytes follow
	frameAck  = 'A' // 8 bytes, big-endian: the bytes the sender has consumed so far
)

// maxFrame bounds one data message; maxWindow bounds any side's window.
const (
	maxFrame  = 256 << 10
	maxWindow = 64 << 20
)

// ErrLinkExpired ends a link that stayed without a WebSocket for longer
// than its resume limit.
var ErrLinkExpired = errors.New("the connection to the other side was lost for longer than the resume limit")

// ErrPeerEnded ends a link whose peer closed the session.
var ErrPeerEnded = errors.New("the other side ended the tunnel session")

// link is a byte stream that outlives the WebSockets that carry it. Each
// side keeps what it sent until the peer says it consumed it (an
// acknowledgement counts bytes from the start of the link), so when a
// WebSocket drops, a new one resumes where the peer's count stands: nothing
// is lost or repeated. The bytes not yet acknowledged are bounded by
// window; Write blocks beyond it, which is also the link's flow control.
//
// The link carries records (see readRecord); the session above it makes
// them streams.
type link struct {
	window     int
	pingPeriod time.Duration
	pongWait   time.Duration
	// onDetach is called (on its own goroutine) when the WebSocket drops.
	onDetach func()

	// mu guards everything below; cond is signalled on every change.
	mu   sync.Mutex
	cond *sync.Cond

	// Sending: out holds bytes [outAcked, outWritten).
	out        byteQueue
	outAcked   uint64
	outWritten uint64
	// outSent is how far the current WebSocket has been given bytes.
	outSent uint64

	// Receiving: in holds bytes [inRead, inReceived).
	in         byteQueue
	inRead     uint64
	inReceived uint64
	inAcked    uint64 // the last count we acknowledged
	ackTimer   *time.Timer
	// ackDue asks the sender to acknowledge inRead.
	ackDue bool

	ws        *websocket.Conn
	gen       int       // counts attachments, so a stale reader cannot detach a new one
	detached  time.Time // when the last WebSocket dropped; zero while attached
	closedErr error

	// wmu serialises writes to the WebSocket; send is signalled when there
	// is something to send.
	wmu  sync.Mutex
	send chan struct{}
	done chan struct{}
}

func newLink(window int, pingPeriod, pongWait time.Duration, onDetach func()) *link {
	l := &link{window: window, pingPeriod: pingPeriod, pongWait: pongWait, onDetach: onDetach,
		send: make(chan struct{}, 1), done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	// A record's buffer goes back to the pool once the peer acknowledged
	// all of it (so no send still reads it: see attach).
	l.out.release = releaseBody
	l.in.release = releaseFrame
	go l.sender()
	return l
}

// Received is how many bytes of the peer's stream this side has taken in;
// a resuming peer sends from there.
func (l *link) Received() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inReceived
}

// attach makes ws carry the link from now on. peerReceived is how many of
// our bytes the peer has; everything after it is sent again.
func (l *link) attach(ws *websocket.Conn, peerReceived uint64) error {
	if ws != nil {
		// Before ws is published: the reader may start on it at once.
		l.prepare(ws)
	}
	l.mu.Lock()
	if l.closedErr != nil {
		l.mu.Unlock()
		return l.closedErr
	}
	if peerReceived < l.outAcked || peerReceived > l.outWritten {
		l.mu.Unlock()
		return fmt.Errorf("the peer resumes at byte %d, outside what this side still holds (%d-%d)", peerReceived, l.outAcked, l.outWritten)
	}
	old := l.ws
	l.gen++
	gen := l.gen
	// The peer has everything before peerReceived: drop it as if acknowledged.
	// Not given back to the pool: a send on the old WebSocket may still
	// be reading them.
	release := l.out.release
	l.out.release = nil
	l.out.discard(int(peerReceived - l.outAcked))
	l.out.release = release
	l.outAcked = peerReceived
	l.outSent = peerReceived
	l.ws = ws
	l.detached = time.Time{}
	l.cond.Broadcast()
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go l.keepalive(ws, gen)
	l.kick()
	// Tell the peer at once how much we hold, so it can free its buffer.
	l.sendAck(true)
	return nil
}

// detach drops the WebSocket of attachment gen (if it is still the current
// one) after a read or write on it failed. Messages that arrive on it later
// are ignored, so what Received says stays true until the next attach.
func (l *link) detach(gen int) {
	l.mu.Lock()
	if gen != l.gen || l.ws == nil {
		l.mu.Unlock()
		return
	}
	ws := l.ws
	l.ws = nil
	l.gen++
	l.detached = time.Now()
	l.cond.Broadcast()
	l.mu.Unlock()
	ws.Close()
	if l.onDetach != nil {
		go l.onDetach()
	}
}

// DetachedFor says how long the link has been without a WebSocket (zero
// while it has one).
func (l *link) DetachedFor() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ws != nil || l.detached.IsZero() {
		return 0
	}
	return time.Since(l.detached)
}

func (l *link) kick() {
	select {
	case l.send <- struct{}{}:
	default:
	}
}

// sender gives the current WebSocket everything written and not yet sent,
// in messages of up to maxFrame, so small writes that come together (a
// frame header and its body) travel in one message.
func (l *link) sender() {
	for {
		select {
		case <-l.send:
		case <-l.done:
			return
		}
		l.flush()
	}
}

// flush sends what is due on the current WebSocket (an acknowledgement,
// then the bytes not yet sent, in messages of up to maxFrame, so frames
// written together travel together) until nothing is left or the
// WebSocket fails.
func (l *link) flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.flushLocked()
}

// flushLocked is flush with l.wmu held.
func (l *link) flushLocked() {
	for {
		l.mu.Lock()
		ws, gen := l.ws, l.gen
		if ws == nil {
			l.mu.Unlock()
			return
		}
		if l.ackDue {
			n := l.inRead
			l.inAcked, l.ackDue = n, false
			l.mu.Unlock()
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], n)
			if err := writeFrame(ws, frameAck, b[:]); err != nil {
				l.detach(gen)
				return
			}
			continue
		}
		if l.outSent == l.outWritten {
			l.mu.Unlock()
			return
		}
		start := int(l.outSent - l.outAcked)
		n := min(int(l.outWritten-l.outSent), maxFrame)
		var pieces [][]byte
		l.out.each(start, n, func(b []byte) { pieces = append(pieces, b) })
		l.outSent += uint64(n)
		l.mu.Unlock()
		if err := writeFrame(ws, frameData, pieces...); err != nil {
			l.detach(gen)
			return
		}
	}
}

// writeFrame writes one message; l.wmu is held.
func writeFrame(ws *websocket.Conn, kind byte, payload ...[]byte) error {
	w, err := ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return err
	}
	w.Write([]byte{kind})
	for _, p := range payload {
		w.Write(p)
	}
	return w.Close()
}

// prepare sets ws up to be read: the message limit and the keepalive
// deadline, which every message, ping and pong moves on.
func (l *link) prepare(ws *websocket.Conn) {
	ws.SetReadLimit(maxFrame + 16)
	alive := func() { ws.SetReadDeadline(time.Now().Add(l.pongWait)) }
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	ws.SetPingHandler(func(data string) error {
		alive()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) && !isTimeout(err) {
			return err
		}
		return nil
	})
}

// readMessage takes in one message of ws; false means ws is done (failed,
// closed, or the link ended). The link's reader (Read) calls it, so bytes
// go from the network to the multiplexer without a hand-off.
func (l *link) readMessage(ws *websocket.Conn, gen int) bool {
	kind, r, err := ws.NextReader()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
			// Only a deliberate end sends a close frame; a lost network
			// does not (gorilla says 1006). The session is over.
			if ce.Code == websocket.CloseNormalClosure {
				l.fail(ErrPeerEnded)
			} else {
				l.fail(&wire.CloseError{Code: ce.Code, Reason: ce.Text})
			}
		}
		return false
	}
	if kind != websocket.BinaryMessage {
		return false
	}
	ws.SetReadDeadline(time.Now().Add(l.pongWait))
	var t [1]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return false
	}
	switch t[0] {
	case frameData:
		if err := l.receive(r, gen); err != nil {
			l.fail(err)
			return false
		}
	case frameAck:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return false
		}
		if err := l.acked(binary.BigEndian.Uint64(b[:]), gen); err != nil {
			l.fail(err)
			return false
		}
	default:
		l.fail(fmt.Errorf("unknown frame type %q on the link", t[0]))
		return false
	}
	return true
}

// keepalive pings the peer every pingPeriod while ws carries the link;
// the reader's deadline (pongWait, moved on by every message, ping and
// pong) ends a WebSocket whose peer went silent.
func (l *link) keepalive(ws *websocket.Conn, gen int) {
	t := time.NewTicker(l.pingPeriod)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.done:
			return
		}
		l.mu.Lock()
		current := gen == l.gen
		l.mu.Unlock()
		if !current {
			return
		}
		if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(l.pongWait)); err != nil {
			l.detach(gen)
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (l *link) receive(r io.Reader, gen int) error {
	buf := newFrame()
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		releaseFrame(buf)
		return errors.New("the peer sent a message larger than a link frame")
	case !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		releaseFrame(buf)
		return nil // the WebSocket failed; the reader detaches
	}
	data := buf[:n]
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		releaseFrame(buf)
		return nil // a WebSocket already given up
	}
	if l.in.Len()+len(data) > maxWindow+maxRecord+16 {
		releaseFrame(buf)
		return errors.New("the peer sent more than the link's window")
	}
	if n == 0 {
		releaseFrame(buf)
		return nil
	}
	l.in.push(data)
	l.inReceived += uint64(len(data))
	l.cond.Broadcast()
	return nil
}

func (l *link) acked(n uint64, gen int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen || n < l.outAcked {
		return nil // an older acknowledgement, overtaken by a resume
	}
	if n > l.outSent {
		return fmt.Errorf("the peer acknowledged byte %d, beyond the %d sent", n, l.outSent)
	}
	l.out.discard(int(n - l.outAcked))
	l.outAcked = n
	l.cond.Broadcast()
	return nil
}

// sendAck tells the peer how much has been consumed: at once when force is
// set or a quarter of the window waits to be acknowledged, otherwise soon.
func (l *link) sendAck(force bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pending := l.inRead - l.inAcked
	if !force && pending < uint64(l.window/4) {
		if pending > 0 && l.ackTimer == nil {
			l.ackTimer = time.AfterFunc(20*time.Millisecond, func() {
				l.mu.Lock()
				l.ackTimer = nil
				l.mu.Unlock()
				l.sendAck(true)
			})
		}
		return
	}
	// The sender writes it: the session's reader never waits for the
	// network.
	l.ackDue = true
	l.kick()
}

// Records inside the link's byte stream: a kind byte, a uvarint length,
// then that many bytes: a uvarint stream id and the record's body. They
// travel in order, so a stream's CLOSE reason is known before its end.
const (
	recordData   = 0 // the stream's bytes
	recordClose  = 1 // uvarint code, then the reason: the sender closed the stream
	recordOpen   = 2 // the client opens the stream (ids are the client's, from 1 up)
	recordFin    = 3 // the sender's direction ended (half-close)
	recordWindow = 4 // uvarint: more bytes the receiver will take on the stream
	// maxData bounds a data record's body.
	maxData = 128 << 10
	// maxRecord bounds any record; a record's header is at most 16 bytes.
	maxRecord = maxData + 16
)

// readRecord returns the next record the peer sent, waiting through a drop
// and reading the WebSocket itself (on the session's reading goroutine), so
// bytes go from the network to their stream without a hand-off. body is the
// caller's; a large one comes from bodyPool.
func (l *link) readRecord() (kind byte, id uint32, body []byte, err error) {
	l.mu.Lock()
	for {
		if l.in.Len() > 0 {
			var hdr [1 + 2*binary.MaxVarintLen64]byte
			k := l.in.peek(hdr[:], 0)
			kind = hdr[0]
			size, hn := binary.Uvarint(hdr[1:k])
			switch {
			case hn < 0 || size > maxRecord || kind > recordWindow:
				err := fmt.Errorf("the peer broke the link's record format (kind %d, size %d)", kind, size)
				l.mu.Unlock()
				l.fail(err)
				return 0, 0, nil, err
			case hn == 0 || l.in.Len() < 1+hn+int(size):
				// Not all here yet: read on.
			default:
				sid, in := binary.Uvarint(hdr[1+hn : k])
				if in <= 0 || uint64(in) > size || sid > 1<<32-1 {
					err := fmt.Errorf("the peer sent a record without a stream id (kind %d)", kind)
					l.mu.Unlock()
					l.fail(err)
					return 0, 0, nil, err
				}
				l.in.discard(1 + hn + in)
				body = newBody(int(size) - in)
				l.in.read(body)
				l.inRead += uint64(1 + hn + int(size))
				l.mu.Unlock()
				l.sendAck(false)
				return kind, uint32(sid), body, nil
			}
		}
		if l.closedErr != nil {
			err := l.closedErr
			l.mu.Unlock()
			return 0, 0, nil, err
		}
		if ws, gen := l.ws, l.gen; ws != nil {
			l.mu.Unlock()
			if !l.readMessage(ws, gen) {
				l.detach(gen)
			}
			l.mu.Lock()
			continue
		}
		l.cond.Wait()
	}
}

// writeRecord keeps a record until the peer acknowledges it and sends it
// when a WebSocket carries the link. A data record waits while the link's
// window is full (the link's flow control); other records are small and
// pass. When inline is set the record is sent from this goroutine if no
// send is under way (a hand-off to the sender goroutine costs a wake-up
// on every round trip); the session's reader never sends inline, so it
// never waits for the network.
func (l *link) writeRecord(kind byte, id uint32, body []byte, inline bool) error {
	if err := l.appendRecord(kind, id, body); err != nil {
		return err
	}
	if inline && l.wmu.TryLock() {
		l.flushLocked()
		l.wmu.Unlock()
	} else {
		l.kick()
	}
	return nil
}

func (l *link) appendRecord(kind byte, id uint32, body []byte) error {
	var hdr [1 + 2*binary.MaxVarintLen64]byte
	var idb [binary.MaxVarintLen64]byte
	in := binary.PutUvarint(idb[:], uint64(id))
	hdr[0] = kind
	hn := 1 + binary.PutUvarint(hdr[1:], uint64(in+len(body)))
	copy(hdr[hn:], idb[:in])
	hn += in
	l.mu.Lock()
	defer l.mu.Unlock()
	if kind == recordData {
		for l.out.Len() > 0 && l.out.Len()+hn+len(body) > l.window && l.closedErr == nil {
			l.cond.Wait()
		}
	}
	if l.closedErr != nil {
		return l.closedErr
	}
	rec := newBody(hn + len(body))
	copy(rec, hdr[:hn])
	copy(rec[hn:], body)
	l.out.push(rec)
	l.outWritten += uint64(len(rec))
	return nil
}

// fail ends the link for good with err.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.closedErr != nil {
		l.mu.Unlock()
		return
	}
	l.closedErr = err
	ws := l.ws
	l.ws = nil
	if l.ackTimer != nil {
		l.ackTimer.Stop()
	}
	l.cond.Broadcast()
	l.mu.Unlock()
	close(l.done)
	if ws != nil {
		// Say that the session is over, so the peer does not wait to
		// resume it.
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		if !errors.Is(err, net.ErrClosed) {
			msg = websocket.FormatCloseMessage(websocket.CloseGoingAway, clip(err.Error(), 120))
		}
		// WriteControl may run beside a data write (gorilla allows it),
		// so a write stuck on a silent peer cannot hold the close up.
		ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		ws.Close()
	}
}

// Err says why the link ended (nil while it lives).
func (l *link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closedErr
}

// Close ends the link.
func (l *link) Close() error {
	l.fail(net.ErrClosed)
	return nil
}

// drop lets the current WebSocket go, if there is one.
func (l *link) drop() {
	l.mu.Lock()
	gen := l.gen
	l.mu.Unlock()
	l.detach(gen)
}
