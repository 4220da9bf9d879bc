package tunnel

import (
	"errors"
	"net"
)

// errFromAnotherComputer is a connection from another computer: no user of
// this one owns it.
var errFromAnotherComputer = errors.New("the connection comes from another computer")

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
