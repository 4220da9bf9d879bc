package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// bufSize is the copy buffer size: one binary message at most this big is
// sent per read from a TCP socket.
const bufSize = 32 << 10

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
func Pipe(ctx context.Context, a, b net.Conn) (Stats, error) {
	type result struct {
		aToB bool
		n    int64
		err  error
	}
	results := make(chan result, 2)
	go func() {
		n, err := copyHalf(b, a, "a -> b")
		results <- result{aToB: true, n: n, err: err}
	}()
	go func() {
		n, err := copyHalf(a, b, "b -> a")
		results <- result{aToB: false, n: n, err: err}
	}()

	var st Stats
	var firstErr error
	closed := false
	closeBoth := func(code int, reason string) {
		if closed {
			return
		}
		closed = true
		closeConn(a, code, reason)
		closeConn(b, code, reason)
	}
	done := ctx.Done()
	for pending := 2; pending > 0; {
		select {
		case r := <-results:
			pending--
			if r.aToB {
				st.AToB = r.n
			} else {
				st.BToA = r.n
			}
			if r.err != nil && firstErr == nil {
				firstErr = r.err
				closeBoth(ClosePeerError, r.err.Error())
			}
		case <-done:
			done = nil
			code, reason := CloseGoingAway, "tunnel closed"
			var ce *CloseError
			if errors.As(context.Cause(ctx), &ce) {
				code, reason = ce.Code, ce.Reason
			}
			if firstErr == nil {
				firstErr = context.Cause(ctx)
			}
			closeBoth(code, reason)
		}
	}
	closeBoth(CloseNormal, "")
	return st, firstErr
}

// copyHalf copies src to dst until src ends, then passes the end on to dst
// with CloseWrite. It returns nil for a clean end.
func copyHalf(dst, src net.Conn, dir string) (int64, error) {
	var n int64
	var err error
	if isTCP(dst) && isTCP(src) {
		// TCP to TCP (the launcher): let the kernel splice.
		n, err = io.Copy(dst, src)
	} else {
		bp := bufPool.Get().(*[]byte)
		n, err = copyBuffer(dst, src, *bp)
		bufPool.Put(bp)
	}
	if err != nil {
		if isCleanEnd(err) {
			return n, nil
		}
		return n, fmt.Errorf("%s: %w", dir, err)
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !isCleanEnd(err) {
			return n, fmt.Errorf("%s: close write: %w", dir, err)
		}
		return n, nil
	}
	// No half-close on dst: the best we can do is end it whole.
	dst.Close()
	return n, nil
}

// copyBuffer is io.CopyBuffer without the ReaderFrom/WriterTo detours,
// which would allocate their own buffers for our types.
func copyBuffer(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var written int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			written += int64(nw)
			if werr != nil {
				return written, fmt.Errorf("write: %w", werr)
			}
			if nw != nr {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, fmt.Errorf("read: %w", rerr)
		}
	}
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

func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
