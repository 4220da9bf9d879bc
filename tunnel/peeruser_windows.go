package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	iphlpapi            = windows.NewLazySystemDLL("iphlpapi.dll")
	getExtendedTcpTable = iphlpapi.NewProc("GetExtendedTcpTable")
)

const tcpTableOwnerPIDConnections = 4 // TCP_TABLE_OWNER_PID_CONNECTIONS

// localPeerOwner says which OS user owns the other end of c, a connection
// accepted from this computer: the connecting socket's owning process is
// found in the TCP table and its token's user compared with ours.
func localPeerOwner(c net.Conn) (owner string, same bool, err error) {
	local, remote, err := localEnds(c)
	if err != nil {
		return "", false, err
	}
	pid, err := owningPID(remote, local)
	if err != nil {
		return "", false, err
	}
	sid, err := processUser(pid)
	if err != nil {
		return fmt.Sprintf("pid %d", pid), false, err
	}
	me, err := processUser(windows.GetCurrentProcessId())
	if err != nil {
		return "", false, err
	}
	name := sid.String()
	if account, domain, _, err := sid.LookupAccount(""); err == nil {
		name = domain + `\` + account
	}
	return name, windows.EqualSid(sid, me), nil
}

// owningPID finds the process that owns the IPv4 TCP connection from src
// to dst (IPv6 loopback connections are looked up the same way in the
// IPv6 table).
func owningPID(src, dst *net.TCPAddr) (uint32, error) {
	family, rowSize := uint32(windows.AF_INET), 24
	if src.IP.To4() == nil {
		family, rowSize = windows.AF_INET6, 56
	}
	var size uint32
	getExtendedTcpTable.Call(0, uintptr(unsafe.Pointer(&size)), 0, uintptr(family), tcpTableOwnerPIDConnections, 0)
	for attempt := 0; attempt < 3; attempt++ {
		buf := make([]byte, size+4096)
		size = uint32(len(buf))
		r, _, _ := getExtendedTcpTable.Call(uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0, uintptr(family), tcpTableOwnerPIDConnections, 0)
		if r == uintptr(windows.ERROR_INSUFFICIENT_BUFFER) {
			continue
		}
		if r != 0 {
			return 0, fmt.Errorf("GetExtendedTcpTable: %w", windows.Errno(r))
		}
		le := binary.LittleEndian
		n := int(le.Uint32(buf))
		for i := 0; i < n; i++ {
			row := buf[4+i*rowSize:]
			if 4+(i+1)*rowSize > len(buf) {
				break
			}
			var lip, rip net.IP
			var lport, rport uint16
			var pid uint32
			if family == windows.AF_INET {
				// MIB_TCPROW_OWNER_PID: state, local addr, local port, remote addr, remote port, pid.
				lip, rip = net.IP(row[4:8]), net.IP(row[12:16])
				lport, rport = binary.BigEndian.Uint16(row[8:10]), binary.BigEndian.Uint16(row[16:18])
				pid = le.Uint32(row[20:])
			} else {
				// MIB_TCP6ROW_OWNER_PID: local addr, scope, local port, remote addr, scope, remote port, state, pid.
				lip, rip = net.IP(row[0:16]), net.IP(row[24:40])
				lport, rport = binary.BigEndian.Uint16(row[20:22]), binary.BigEndian.Uint16(row[44:46])
				pid = le.Uint32(row[52:])
			}
			if lip.Equal(src.IP) && int(lport) == src.Port && rip.Equal(dst.IP) && int(rport) == dst.Port {
				return pid, nil
			}
		}
		return 0, errors.New("the connecting socket is not in the TCP table")
	}
	return 0, errors.New("GetExtendedTcpTable: the table keeps growing")
}

// processUser returns the user a process runs as.
func processUser(pid uint32) (*windows.SID, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return nil, fmt.Errorf("token of process %d: %w", pid, err)
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return nil, err
	}
	return u.User.Sid.Copy()
}
