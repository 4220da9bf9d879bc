//go:build !linux

package wire

import "net"

// tcpWaiter cannot wait without a buffer on this system: the pump reads
// with one.
func tcpWaiter(c *net.TCPConn) func() error { return nil }

// tcpTryWriter cannot write without waiting on this system: a tunnel
// session's stream hands its bytes to a goroutine that writes them.
func tcpTryWriter(c *net.TCPConn) func([]byte) (int, error) { return nil }
