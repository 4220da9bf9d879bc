package gateway

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// rmemMax is the kernel's cap on SO_RCVBUF.
func rmemMax() int {
	b, _ := os.ReadFile("/proc/sys/net/core/rmem_max")
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

type contextT = context.Context

// sockBuf reads SO_RCVBUF of a connection.
func sockBuf(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	rc.Control(func(fd uintptr) {
		n, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	return n
}
