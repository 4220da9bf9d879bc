package tunnel

import (
	"errors"
	"net"
)

// errFromAnotherComputer is a connection from another computer: no user of
// this one owns it.
var errFromAnotherComputer = errors.New("the connection comes from another computer")

// localEnds returns both ends of a TCP connection accepted from this
// computer: errFromAnotherComputer when it came from elsewhere.
func localEnds(c net.Conn) (local, remote *net.TCPAddr, err error) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return nil, nil, errors.New("not a TCP connection")
	}
	if !remote.IP.IsLoopback() && !isLocalAddress(remote.IP) {
		return nil, nil, errFromAnotherComputer
	}
	return local, remote, nil
}

// isLocalAddress reports whether ip is one of this computer's addresses.
func isLocalAddress(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
