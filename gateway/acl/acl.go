// Package acl parses and matches the user-group patterns of a tunnel
// (`Group@Environment;...`, seed 000) and checks the other tunnel fields
// whose syntax the contract fixes: the context and the socket address.
// It is pure: what exists is asked of a Directory the caller provides.
package acl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPatterns admits every user in every group.
const DefaultPatterns = ".*@.*"

// MaxContextLen is the longest context.
const MaxContextLen = 64

// Reserved contexts, compared case-insensitively.
var reserved = []string{"backend", "license", "api", "ws-proxy", "portal"}

var contextRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// CheckContext reports what is wrong with a tunnel context, or nil.
func CheckContext(s string) error {
	switch {
	case s == "":
		return errors.New("is required")
	case len(s) > MaxContextLen:
		return fmt.Errorf("is longer than %d characters", MaxContextLen)
	case !contextRE.MatchString(s):
		return errors.New("may only contain letters, digits, '.', '_' and '-'")
	case strings.Trim(s, ".") == "":
		return errors.New("cannot be only dots")
	}
	for _, r := range reserved {
		if strings.EqualFold(s, r) {
			return fmt.Errorf("%q is reserved for Porthole's own use", r)
		}
	}
	return nil
}

// SocketAddress is a parsed `host:port`.
type SocketAddress struct {
	Host string // without brackets
	Port int
}

// String formats the address as host:port, bracketing IPv6 hosts.
func (a SocketAddress) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

var hostLabelRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

// ParseSocketAddress parses `host:port` where host is an IPv4 address, a
// bracketed IPv6 address or a host name and port is 1-65535.
func ParseSocketAddress(s string) (SocketAddress, error) {
	if s == "" {
		return SocketAddress{}, errors.New("is required")
	}
	if strings.TrimSpace(s) != s {
		return SocketAddress{}, errors.New("must not start or end with spaces")
	}
	if strings.Contains(s, "://") {
		return SocketAddress{}, errors.New("must be host:port without a scheme, like db.example.com:5432")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return SocketAddress{}, errors.New("an IPv6 address must be in brackets, like [2001:db8::1]:5432")
		}
		if !strings.Contains(s, ":") {
			return SocketAddress{}, errors.New("needs a port: write it as host:port, like db.example.com:5432")
		}
		return SocketAddress{}, errors.New("must be host:port, like db.example.com:5432 or [2001:db8::1]:5432")
	}
	if host == "" {
		return SocketAddress{}, errors.New("needs a host before the ':'")
	}
	p, err := strconv.Atoi(port)
	if err != nil || port[0] == '+' || port[0] == '-' {
		return SocketAddress{}, fmt.Errorf("port %q is not a number", port)
	}
	if p < 1 || p > 65535 {
		return SocketAddress{}, fmt.Errorf("port %d is outside 1-65535", p)
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return SocketAddress{}, fmt.Errorf("%q is not a valid IPv6 address", host)
		}
		return SocketAddress{Host: host, Port: p}, nil
	}
	if err := checkHostName(host); err != nil {
		return SocketAddress{}, err
	}
	return SocketAddress{Host: host, Port: p}, nil
}

func checkHostName(h string) error {
	if len(h) > 253 {
		return errors.New("host name is longer than 253 characters")
	}
	allDigits := true
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if !hostLabelRE.MatchString(label) {
			return fmt.Errorf("%q is not a valid host name or IP address", h)
		}
		if strings.Trim(label, "0123456789") != "" {
			allDigits = false
		}
	}
	if allDigits {
		if _, err := netip.ParseAddr(h); err != nil {
			return fmt.Errorf("%q is not a valid IPv4 address", h)
		}
	}
	return nil
}

// Group names a group in an environment: Group@Environment.
type Group struct {
	Name string
	Env  string
}

func (g Group) String() string { return g.Name + "@" + g.Env }

// ParseGroup parses `Name@Environment`.
func ParseGroup(s string) (Group, error) {
	name, env, ok := strings.Cut(s, "@")
	if !ok || strings.Contains(env, "@") {
		return Group{}, fmt.Errorf("%q must be written Group@Environment", s)
	}
	if err := CheckName(name); err != nil {
		return Group{}, fmt.Errorf("group name %w", err)
	}
	if err := CheckName(env); err != nil {
		return Group{}, fmt.Errorf("environment name %w", err)
	}
	return Group{Name: name, Env: env}, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]([A-Za-z0-9 _.-]*[A-Za-z0-9_.-])?$`)

// CheckName checks a group, environment or user name: 1-64 letters,
// digits, '.', '_', '-' and inner spaces ("Domain Users").
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("is required")
	case len(s) > 64:
		return errors.New("is longer than 64 characters")
	case !nameRE.MatchString(s):
		return fmt.Errorf("%q may only contain letters, digits, '.', '_', '-' and inner spaces", s)
	}
	return nil
}
