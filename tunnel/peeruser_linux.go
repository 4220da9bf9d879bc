package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// localPeerOwner says which OS user owns the other end of c, a connection
// accepted from this computer: the uid of the connecting socket, asked of
// the kernel with one sock_diag (netlink) request for exactly that socket.
// It returns the uid as a string and whether it is the current user.
func localPeerOwner(c net.Conn) (owner string, same bool, err error) {
	local, remote, err := localEnds(c)
	if err != nil {
		return "", false, err
	}
	uid, err := socketUID(remote, local)
	if err != nil {
		return "", false, err
	}
	return fmt.Sprintf("uid %d", uid), uid == uint32(os.Getuid()), nil
}

// socketUID finds the TCP socket whose own address is src and whose peer
// is dst, and returns its owner's uid.
func socketUID(src, dst *net.TCPAddr) (uint32, error) {
	family, size := byte(unix.AF_INET), 4
	if src.IP.To4() == nil {
		family, size = unix.AF_INET6, 16
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	// struct nlmsghdr (16) + struct inet_diag_req_v2 (56).
	req := make([]byte, 16+56)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1) // sequence
	r := req[16:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // every state
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], uint16(src.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(dst.Port))
	copy(id[4:4+size], ipBytes(src.IP, size))
	copy(id[20:20+size], ipBytes(dst.IP, size))
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	if n < 16 {
		return 0, errors.New("sock_diag: short answer")
	}
	switch ne.Uint16(buf[4:]) {
	case unix.NLMSG_ERROR:
		if n >= 20 {
			if errno := int32(ne.Uint32(buf[16:])); errno != 0 {
				return 0, fmt.Errorf("sock_diag: %w", unix.Errno(-errno))
			}
		}
		return 0, errors.New("sock_diag: the socket was not found")
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return 0, errors.New("sock_diag: unexpected answer")
	}
	// struct inet_diag_msg: idiag_uid at offset 64.
	if n < 16+68 {
		return 0, errors.New("sock_diag: short answer")
	}
	return ne.Uint32(buf[16+64:]), nil
}

func ipBytes(ip net.IP, size int) []byte {
	if size == 4 {
		return ip.To4()
	}
	return ip.To16()
}
