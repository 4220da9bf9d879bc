//go:build !linux

package wire

import "net"

// tcpWaiter cannot wait without a buffer on this system: the pump reads
// with one.
func tcpWaiter(c *net.TCPConn) func() error { return nil }
