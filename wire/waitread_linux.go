package wire

import (
	"io"
	"net"
	"syscall"
)

// tcpWaiter waits until c has data, an EOF or an error to read, without
// taking any buffer: it peeks one byte with MSG_PEEK|MSG_DONTWAIT and lets
// the runtime's poller wait while there is nothing.
func tcpWaiter(c *net.TCPConn) func() error {
	return func() error { return tcpWaitReadable(c) }
}

func tcpWaitReadable(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	var peek [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, e := syscall.Recvfrom(int(fd), peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			return false // nothing yet: wait for readability
		case e != nil:
			perr = e
		case n == 0:
			perr = io.EOF
		}
		return true
	})
	if err != nil {
		return err
	}
	if perr == io.EOF {
		return nil // let the read see the EOF (and any CloseWrite logic run)
	}
	return perr
}

// tcpTryWriter writes to c what its socket buffer takes now, without
// waiting for room. One write at a time (the caller's promise).
func tcpTryWriter(c *net.TCPConn) func([]byte) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	t := &tcpTry{c: c, rc: rc}
	t.fn = t.write // bound once: no allocation per write
	return t.try
}

type tcpTry struct {
	c   *net.TCPConn
	rc  syscall.RawConn
	fn  func(uintptr) bool
	p   []byte
	n   int
	err error
}

func (t *tcpTry) write(fd uintptr) bool {
	t.n, t.err = syscall.Write(int(fd), t.p)
	if t.err == syscall.EAGAIN || t.err == syscall.EINTR {
		t.n, t.err = 0, nil
	}
	t.n = max(t.n, 0)
	return true // never wait
}

func (t *tcpTry) try(p []byte) (int, error) {
	t.p = p
	err := t.rc.Write(t.fn)
	n, werr := t.n, t.err
	t.p, t.err = nil, nil
	if err != nil {
		return 0, err
	}
	if werr != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: t.c.LocalAddr(), Addr: t.c.RemoteAddr(), Err: werr}
	}
	return n, nil
}
