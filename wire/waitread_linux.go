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
