//go:build !linux && !windows

package tunnel

import "net"

// localPeerOwner: only Linux and Windows can tell which user opened a
// connection; elsewhere every local connection is taken as the user's.
func localPeerOwner(c net.Conn) (string, bool, error) {
	return "", true, nil
}
