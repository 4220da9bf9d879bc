package wire

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gorilla/websocket"
)

// bufSize is the copy buffer size: one binary message at most this big is
// sent per read from a TCP socket. Buffers come from a pool and are taken
// only once data is readable, so an idle tunnel holds none.
const bufSize = 128 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Stats counts what a Pipe moved.
type Stats struct {
	AToB int64 // bytes read from a and written to b
	BToA int64 // bytes read from b and written to a
}

// Pipe copies a to b and b to a until both directions have ended, then
// closes both. When one direction reaches EOF, Pipe passes it on with
// CloseWrite and keeps the other direction flowing (half-close). When a
// direction fails, or ctx is done, both ends are closed at once; a *Conn
// end is closed with a code that tells its peer why (the *CloseError given
// as ctx's cancel cause, or ClosePeerError for a failure at the other end).
//
// io.EOF, net.ErrClosed and a normal close are clean ends, not errors. Pipe
// always closes a and b, and returns only after both copies have stopped.
// It copies one direction on the calling goroutine and starts one more.
func Pipe(ctx context.Context, a, b net.Conn) (Stats, error) {
	p := &pipe{a: a, b: b}
	stop := context.AfterFunc(ctx, func() {
		code, reason := CloseGoingAway, "tunnel closed"
		var ce *CloseError
		if errors.As(context.Cause(ctx), &ce) {
			code, reason = ce.Code, ce.Reason
		}
		p.fail(context.Cause(ctx), code, reason)
	})
	defer stop()
	type result struct {
		n   int64
		err error
	}
	other := make(chan result, 1)
	go func() {
		n, err := copyHalf(b, a, "b", "a")
		if err != nil {
			p.fail(err, ClosePeerError, err.Error())
		}
		other <- result{n, err}
	}()
	var st Stats
	var err error
	st.BToA, err = copyHalf(a, b, "a", "b")
	if err != nil {
		p.fail(err, ClosePeerError, err.Error())
	}
	r := <-other
	st.AToB = r.n
	p.closeBoth(CloseNormal, "")
	return st, p.firstError()
}

// pipe holds the shared end state of a Pipe.
type pipe struct {
	a, b net.Conn

	// mu guards first and closed.
	mu     sync.Mutex
	first  error
	closed bool
}

// fail records the error that says why the pipe ended and closes both
// ends with code and reason. An error that only follows from the other
// side having closed (a write after our close frame went out) gives way to
// the cause when it arrives, so the log and the audit say, for example,
// "message larger than ..." rather than "close sent".
func (p *pipe) fail(err error, code int, reason string) {
	p.mu.Lock()
	if p.first == nil || (consequential(p.first) && !consequential(err)) {
		p.first = err
	}
	p.mu.Unlock()
	p.closeBoth(code, reason)
}

// consequential reports whether err only follows from the stream having
// been closed already.
func consequential(err error) bool {
	return errors.Is(err, websocket.ErrCloseSent) || errors.Is(err, net.ErrClosed)
}

func (p *pipe) closeBoth(code int, reason string) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	closeConn(p.a, code, reason)
	closeConn(p.b, code, reason)
}

func (p *pipe) firstError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// ReadWaiter is implemented by conns that can wait until data (or an end)
// is readable without a buffer, so a pump holds no buffer while idle.
type ReadWaiter interface {
	WaitReadable() error
}

// Deliverer is implemented by conns that write what they receive to w
// themselves until their end, rather than being read (a tunnel session's
// stream, whose reader hands bytes straight to a socket). werr is w's
// failure, rerr the conn's; an EOF is a clean end (both nil).
type Deliverer interface {
	DeliverTo(w io.Writer) (n int64, werr, rerr error)
}

// TryWriterOf returns how to write to w without waiting (what w takes at
// once is written, the count returned), or nil when w cannot: a TCP
// connection can where the system allows (Linux), and a Counted conn
// when what it wraps can.
func TryWriterOf(w io.Writer) func(p []byte) (int, error) {
	switch c := w.(type) {
	case *countingConn:
		inner := TryWriterOf(c.Conn)
		if inner == nil {
			return nil
		}
		return func(p []byte) (int, error) {
			n, err := inner(p)
			c.written.Add(int64(n))
			return n, err
		}
	case *net.TCPConn:
		return tcpTryWriter(c)
	}
	return nil
}

// EndError is a Pipe that failed at one of its ends: reading from it,
// writing to it, or passing the end of the stream on to it.
type EndError struct {
	End string // "a" or "b": the end that failed
	Dir string // the direction that was copying: "a -> b" or "b -> a"
	Op  string // "read", "write" or "close write"
	Err error
}

func (e *EndError) Error() string { return e.Dir + ": " + e.Op + ": " + e.Err.Error() }
func (e *EndError) Unwrap() error { return e.Err }

// copyHalf copies src to dst (the ends named srcName and dstName) until src
// ends, then passes the end on to dst with CloseWrite. It returns nil for
// a clean end, else an *EndError.
func copyHalf(dst, src net.Conn, dstName, srcName string) (int64, error) {
	dir := srcName + " -> " + dstName
	var n int64
	var err error
	if isTCP(dst) && isTCP(src) {
		// TCP to TCP (the launcher): let the kernel splice.
		n, err = io.Copy(dst, src)
		if err != nil {
			// io.Copy (splice) does not always say which end failed: a
			// write, or a broken pipe, is dst's; the rest count as src's.
			op, end := "read", srcName
			var oe *net.OpError
			if (errors.As(err, &oe) && oe.Op == "write") || errors.Is(err, syscall.EPIPE) {
				op, end = "write", dstName
			}
			err = &EndError{End: end, Dir: dir, Op: op, Err: err}
		}
	} else if d, ok := src.(Deliverer); ok {
		var werr, rerr error
		n, werr, rerr = d.DeliverTo(dst)
		switch {
		case werr != nil:
			err = &EndError{End: dstName, Dir: dir, Op: "write", Err: werr}
		case rerr != nil:
			err = &EndError{End: srcName, Dir: dir, Op: "read", Err: rerr}
		}
	} else {
		n, err = copyPooled(dst, src, dstName, srcName)
	}
	if err != nil {
		if isCleanEnd(err) {
			return n, nil
		}
		return n, err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !isCleanEnd(err) {
			return n, &EndError{End: dstName, Dir: dir, Op: "close write", Err: err}
		}
		return n, nil
	}
	// No half-close on dst: the best we can do is end it whole.
	dst.Close()
	return n, nil
}

// copyPooled copies with a pooled buffer that it holds only while data is
// flowing: before each read it waits for readability without one (where
// src can), and it gives the buffer back after each read and write.
func copyPooled(dst io.Writer, src net.Conn, dstName, srcName string) (int64, error) {
	dir := srcName + " -> " + dstName
	wait := waiterFor(src)
	var written int64
	for {
		if wait != nil {
			if err := wait(); err != nil {
				return written, &EndError{End: srcName, Dir: dir, Op: "read", Err: err}
			}
		}
		bp := bufPool.Get().(*[]byte)
		nr, rerr := src.Read(*bp)
		if nr > 0 {
			nw, werr := dst.Write((*bp)[:nr])
			written += int64(nw)
			if werr != nil {
				bufPool.Put(bp)
				return written, &EndError{End: dstName, Dir: dir, Op: "write", Err: werr}
			}
		}
		bufPool.Put(bp)
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, &EndError{End: srcName, Dir: dir, Op: "read", Err: rerr}
		}
	}
}

// waiterFor returns how to wait for src to be readable, or nil.
func waiterFor(src net.Conn) func() error {
	switch c := src.(type) {
	case ReadWaiter:
		return c.WaitReadable
	case *net.TCPConn:
		return tcpWaiter(c)
	}
	return nil
}

func isTCP(c net.Conn) bool {
	_, ok := c.(*net.TCPConn)
	return ok
}

// isCleanEnd reports whether err is a normal end of a stream rather than a
// failure: EOF, a connection we closed ourselves, or a normal close.
func isCleanEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// closeConn closes c, with a code and reason when c is a *Conn.
func closeConn(c net.Conn, code int, reason string) {
	if wc, ok := c.(interface{ CloseWith(int, string) error }); ok {
		wc.CloseWith(code, reason)
		return
	}
	c.Close()
}

// IsConnReset reports whether err is a connection reset or broken pipe.
func IsConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Counted wraps c so that bytes read from it are added to read and bytes
// written to it to written. The wrapper passes CloseWrite on, so half-close
// still works through it.
func Counted(c net.Conn, read, written *atomic.Int64) net.Conn {
	return &countingConn{Conn: c, read: read, written: written}
}

type countingConn struct {
	net.Conn
	read, written *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// WaitReadable waits on the wrapped conn, so a counted conn still holds
// no buffer while idle.
func (c *countingConn) WaitReadable() error {
	if w := waiterFor(c.Conn); w != nil {
		return w()
	}
	return nil
}

func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
