package mux

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/porthole/porthole/wire"
)

// initialWindow is how many bytes each side of a new stream may send
// before the other offers more.
const initialWindow = 256 << 10

// rawStream is one stream of a session as the link carries it: bytes in
// order with per-stream flow control (the sender sends at most what the
// receiver said it will take), a half-close (FIN) per direction and a
// close with a reason. Stream adds the OPEN line, the answer and the
// retry on top.
//
// Bytes arriving for a stream go from the session's reader straight to
// the program's socket when the stream has one to deliver to (deliverTo)
// and that socket takes them at once; otherwise they wait in the stream's
// queue for Read or the delivering goroutine. Writes go to the link from
// the writer's goroutine. So a round trip costs no goroutine hand-off
// beyond those of a TCP connection.
type rawStream struct {
	id   uint32
	sess *session

	// wmu keeps one writer at a time, so records of two writes do not mix.
	wmu sync.Mutex

	// mu guards everything below; cond is signalled on every change.
	mu   sync.Mutex
	cond *sync.Cond

	in      byteQueue // received, not yet taken
	unacked int       // bytes taken and not yet offered to the peer again
	window  int       // the receive window offered to the peer
	sendWin int       // bytes the peer will still take

	peerFin   bool             // the peer's direction ended
	peerClose *wire.CloseError // the peer closed the stream
	localFin  bool             // this side's direction ended
	closed    bool             // closed here
	sessErr   error            // the session ended

	// try writes to deliverTo's sink without waiting (nil when there is no
	// sink or it cannot); sinkBusy is set while a goroutine writes to it.
	try      func([]byte) (int, error)
	sinkBusy bool
	sinkErr  error

	rdl, wdl deadline
}

func newRawStream(s *session, id uint32) *rawStream {
	// Both sides start from the protocol's initialWindow; a receiver with a
	// larger window offers the rest with its first read, as if that much
	// had been taken already.
	w := int(s.cfg.StreamWindow)
	r := &rawStream{id: id, sess: s, window: w, sendWin: initialWindow, unacked: w - initialWindow}
	r.cond = sync.NewCond(&r.mu)
	r.in.release = releaseBody
	return r
}

// readErr is why a read cannot wait for more; r.mu is held.
func (r *rawStream) readErr() error {
	switch {
	case r.closed:
		return net.ErrClosed
	case r.peerClose != nil && r.peerClose.Code != wire.CloseNormal:
		return r.peerClose
	case r.peerFin || r.peerClose != nil:
		return io.EOF
	case r.sessErr != nil:
		return r.sessErr
	case r.rdl.passed():
		return os.ErrDeadlineExceeded
	}
	return nil
}

// writeErr is why a write cannot go on; r.mu is held.
func (r *rawStream) writeErr() error {
	switch {
	case r.closed || r.localFin:
		return net.ErrClosed
	case r.peerClose != nil && r.peerClose.Code != wire.CloseNormal:
		return r.peerClose
	case r.peerClose != nil:
		return net.ErrClosed // the peer takes no more
	case r.sessErr != nil:
		return r.sessErr
	case r.wdl.passed():
		return os.ErrDeadlineExceeded
	}
	return nil
}

// Read takes what was received; Read(nil) waits until a Read would not
// block.
func (r *rawStream) Read(p []byte) (int, error) {
	r.mu.Lock()
	for {
		if r.in.Len() > 0 && !r.closed {
			if len(p) == 0 {
				r.mu.Unlock()
				return 0, nil
			}
			n := r.in.read(p)
			credit := r.taken(n)
			r.mu.Unlock()
			r.offer(credit, true)
			return n, nil
		}
		if err := r.readErr(); err != nil {
			r.mu.Unlock()
			return 0, err
		}
		r.cond.Wait()
	}
}

// taken counts n bytes taken off the stream and returns how many to offer
// the peer again now (half a window at a time); r.mu is held.
func (r *rawStream) taken(n int) int {
	r.unacked += n
	if r.unacked < r.window/2 || r.closed || r.peerFin || r.peerClose != nil {
		return 0
	}
	n, r.unacked = r.unacked, 0
	return n
}

// offer tells the peer it may send n more bytes.
func (r *rawStream) offer(n int, inline bool) {
	if n <= 0 {
		return
	}
	var b [binary.MaxVarintLen64]byte
	r.sess.link.writeRecord(recordWindow, r.id, b[:binary.PutUvarint(b[:], uint64(n))], inline)
}

// Write sends p, waiting for the peer's window.
func (r *rawStream) Write(p []byte) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	total := 0
	for len(p) > 0 {
		r.mu.Lock()
		for {
			if err := r.writeErr(); err != nil {
				r.mu.Unlock()
				return total, err
			}
			if r.sendWin > 0 {
				break
			}
			r.cond.Wait()
		}
		n := min(len(p), r.sendWin, maxData)
		r.sendWin -= n
		r.mu.Unlock()
		if err := r.sess.link.writeRecord(recordData, r.id, p[:n], true); err != nil {
			return total, r.sess.endedBy(err)
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

// CloseWrite ends this side's direction (FIN) after what was written.
func (r *rawStream) CloseWrite() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	if r.localFin || r.closed || r.sessErr != nil {
		r.mu.Unlock()
		return nil
	}
	r.localFin = true
	r.cond.Broadcast()
	r.mu.Unlock()
	return r.sess.link.writeRecord(recordFin, r.id, nil, true)
}

// close ends the stream here: reads and writes stop, and the peer is told
// (with code and reason) unless it closed first or the session is over.
func (r *rawStream) close(code int, reason string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	tell := r.peerClose == nil && r.sessErr == nil
	if !r.sinkBusy { // else the delivering goroutine still writes from it
		r.in.discard(r.in.Len())
	}
	r.stopTimers()
	r.cond.Broadcast()
	r.mu.Unlock()
	r.sess.forget(r.id)
	if tell {
		var b [binary.MaxVarintLen64]byte
		n := binary.PutUvarint(b[:], uint64(code))
		r.sess.link.writeRecord(recordClose, r.id, append(b[:n], clip(reason, 200)...), true)
	}
}

// received takes a record's bytes from the session's reader: straight to
// the sink when it takes them at once, else into the queue. A peer that
// sends past the window it was offered breaks the protocol.
func (r *rawStream) received(body []byte) error {
	r.mu.Lock()
	if r.closed || r.peerFin || r.peerClose != nil {
		r.mu.Unlock()
		releaseBody(body) // closed here: dropped, as TCP would
		return nil
	}
	if r.in.Len()+len(body) > r.window {
		r.mu.Unlock()
		releaseBody(body)
		return errOverWindow
	}
	if try := r.try; try != nil && !r.sinkBusy && r.in.Len() == 0 && r.sinkErr == nil {
		r.sinkBusy = true
		r.mu.Unlock()
		n, err := try(body)
		r.mu.Lock()
		r.sinkBusy = false
		if err != nil {
			r.sinkErr = err
			n = len(body)
		}
		credit := r.taken(n)
		if n < len(body) {
			// The rest waits for the delivering goroutine (woken only now:
			// a wake-up per message would cost what this path saves).
			r.in.push(body[n:len(body):len(body)])
			r.cond.Broadcast()
		} else {
			releaseBody(body)
			if err != nil {
				r.cond.Broadcast()
			}
		}
		r.mu.Unlock()
		r.offer(credit, false)
		return nil
	}
	r.in.push(body)
	r.cond.Broadcast()
	r.mu.Unlock()
	return nil
}

// deliverTo writes what the stream receives to w until the peer's end
// (wire.Deliverer). Where w can be written without waiting, the session's
// reader writes to it directly.
func (r *rawStream) deliverTo(w io.Writer) (n int64, werr, rerr error) {
	r.mu.Lock()
	r.try = wire.TryWriterOf(w)
	defer func() {
		r.try = nil
		r.mu.Unlock()
	}()
	for {
		if r.sinkErr != nil {
			return n, r.sinkErr, nil
		}
		if r.in.Len() > 0 && !r.closed && !r.sinkBusy {
			var chunk []byte
			r.in.each(0, maxData, func(b []byte) {
				if chunk == nil {
					chunk = b
				}
			})
			r.sinkBusy = true
			r.mu.Unlock()
			k, err := w.Write(chunk)
			r.mu.Lock()
			r.sinkBusy = false
			n += int64(k)
			if r.closed {
				r.in.discard(r.in.Len())
			} else {
				r.in.discard(k)
			}
			credit := r.taken(k)
			if err != nil {
				r.sinkErr = err
			}
			if credit > 0 {
				r.mu.Unlock()
				r.offer(credit, true)
				r.mu.Lock()
			}
			continue
		}
		if r.in.Len() == 0 || r.closed {
			if err := r.readErr(); err != nil {
				if err == io.EOF {
					err = nil
				}
				return n, nil, err
			}
		}
		r.cond.Wait()
	}
}

// peerEnded applies the peer's FIN or CLOSE.
func (r *rawStream) peerEnded(fin bool, ce *wire.CloseError) {
	r.mu.Lock()
	if fin {
		r.peerFin = true
	} else if r.peerClose == nil {
		r.peerClose = ce
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// windowed applies the peer's window record.
func (r *rawStream) windowed(n int) {
	r.mu.Lock()
	r.sendWin += n
	r.cond.Broadcast()
	r.mu.Unlock()
}

// sessionEnded ends the stream with the session's end.
func (r *rawStream) sessionEnded(err error) {
	r.mu.Lock()
	r.sessErr = err
	r.cond.Broadcast()
	r.mu.Unlock()
}

// deadline is a read or write deadline and the timer that wakes waiters
// when it passes.
type deadline struct {
	at    time.Time
	timer *time.Timer
}

func (d *deadline) passed() bool { return !d.at.IsZero() && !time.Now().Before(d.at) }

// SetReadDeadline and SetWriteDeadline bound waits for data and window.
func (r *rawStream) SetReadDeadline(t time.Time) error  { return r.setDeadline(&r.rdl, t) }
func (r *rawStream) SetWriteDeadline(t time.Time) error { return r.setDeadline(&r.wdl, t) }

func (r *rawStream) setDeadline(d *deadline, t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.at = t
	d.timer = r.wake(d.timer, t)
	return nil
}

// wake arranges for waiters to look at the clock at t; r.mu is held.
func (r *rawStream) wake(tm *time.Timer, t time.Time) *time.Timer {
	if tm != nil {
		tm.Stop()
	}
	r.cond.Broadcast()
	if t.IsZero() || r.closed {
		return nil
	}
	return time.AfterFunc(time.Until(t), func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
}

func (r *rawStream) stopTimers() {
	for _, d := range []*deadline{&r.rdl, &r.wdl} {
		if d.timer != nil {
			d.timer.Stop()
		}
	}
}
