package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultDenyTargets are the addresses no tunnel may lead to unless the
// configuration says otherwise: link-local addresses, where clouds serve
// instance metadata and credentials (169.254.169.254, fd00:ec2::254).
// The gateway's own listening port on this machine is always denied.
var DefaultDenyTargets = []string{"169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"}

// ErrTargetDenied means a tunnel's target is an address the gateway
// refuses to connect to.
var ErrTargetDenied = errors.New("target address denied")

// denyList is the set of target addresses the gateway never connects to.
type denyList struct {
	prefixes []netip.Prefix
	exact    []netip.AddrPort

	// mu guards ownPorts and local.
	mu       sync.Mutex
	ownPorts []int        // ports the gateway listens on
	local    []netip.Addr // this machine's addresses, read when ownPorts is set
}

// parseDenyList reads CIDR ranges, single addresses and address:port
// entries.
func parseDenyList(entries []string) (*denyList, error) {
	d := &denyList{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			d.prefixes = append(d.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			d.prefixes = append(d.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		if ap, err := netip.ParseAddrPort(e); err == nil {
			d.exact = append(d.exact, ap)
			continue
		}
		return nil, fmt.Errorf("denyTargets: %q is not an address, a CIDR range or address:port", e)
	}
	return d, nil
}

// String lists the entries, for the portal.
func (d *denyList) String() string {
	var parts []string
	for _, p := range d.prefixes {
		parts = append(parts, p.String())
	}
	for _, ap := range d.exact {
		parts = append(parts, ap.String())
	}
	return strings.Join(parts, ", ")
}

// listening records a port the gateway serves on: connecting a tunnel to
// it on this machine would loop the gateway into itself.
func (d *denyList) listening(port int) {
	var local []netip.Addr
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				local = append(local, p.Addr().Unmap())
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ownPorts = append(d.ownPorts, port)
	d.local = local
}

// check says why ap is denied, or returns nil.
func (d *denyList) check(ap netip.AddrPort) error {
	a := ap.Addr().Unmap()
	for _, p := range d.prefixes {
		if p.Contains(a) {
			return fmt.Errorf("%w: %s is in %s, which the gateway never connects to (its denyTargets)", ErrTargetDenied, a, p)
		}
	}
	for _, e := range d.exact {
		if e.Addr().Unmap() == a && e.Port() == ap.Port() {
			return fmt.Errorf("%w: %s is in the gateway's denyTargets", ErrTargetDenied, ap)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Contains(d.ownPorts, int(ap.Port())) && (a.IsLoopback() || a.IsUnspecified() || slices.Contains(d.local, a)) {
		return fmt.Errorf("%w: %s is the gateway's own port", ErrTargetDenied, ap)
	}
	return nil
}

// checkLiteral checks a socket address whose host is an IP address; a
// host name is checked when it is dialled.
func (d *denyList) checkLiteral(hostport string) error {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return nil
	}
	return d.check(ap)
}

// dialer connects to targets, refusing denied addresses after name
// resolution (so a name cannot smuggle a denied address in).
func (d *denyList) dialer(timeoutKeepAlive time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{KeepAlive: timeoutKeepAlive, Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil
		}
		return d.check(ap)
	}}
	return nd.DialContext
}
