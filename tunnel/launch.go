package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/porthole/porthole/wire"
)

// LaunchError is a launcher's refusal: "ERR <Code> <Desc>".
type LaunchError = wire.LaunchError

// LaunchHandshake sends path as the first line on c and reads the
// launcher's answer: nil after "OK", a *LaunchError after "ERR". It reads
// byte by byte, so nothing of the stream after the answer is consumed.
func LaunchHandshake(c net.Conn, path string, timeout time.Duration) error {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "\r\n") {
		return fmt.Errorf("launch path %q must start with / and be one line", path)
	}
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(path + "\n")); err != nil {
		return fmt.Errorf("send the launch path: %w", err)
	}
	var line []byte
	b := make([]byte, 1)
	for len(line) <= 4096 {
		n, err := c.Read(b)
		if err != nil {
			if len(line) == 0 {
				return fmt.Errorf("the launcher closed the connection without an answer: %w", err)
			}
			return fmt.Errorf("read the launcher's answer: %w", err)
		}
		if n == 0 {
			continue // a message boundary on a tunnel stream
		}
		if b[0] == '\n' {
			return wire.ParseLaunchAnswer(string(line))
		}
		line = append(line, b[0])
	}
	return errors.New("the launcher's answer is longer than 4096 bytes")
}

// LaunchTarget is where `porthole launch` sends connections: a gateway
// tunnel (Context) or a launcher reached directly (Addr), and the path.
type LaunchTarget struct {
	Context string // tunnel context, for CONTEXT/PATH
	Addr    string // host:port, for tcp://HOST:PORT/PATH
	Path    string
}

// ParseLaunchTarget reads CONTEXT/PATH or tcp://HOST:PORT/PATH.
func ParseLaunchTarget(s string) (LaunchTarget, error) {
	if strings.HasPrefix(s, "tcp://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Port() == "" {
			return LaunchTarget{}, fmt.Errorf("%q: write it as tcp://HOST:PORT/PATH", s)
		}
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		return LaunchTarget{Addr: u.Host, Path: p}, nil
	}
	name, path, ok := strings.Cut(s, "/")
	if !ok || name == "" {
		return LaunchTarget{}, fmt.Errorf("%q: write it as CONTEXT/PATH (a tunnel to a launcher) or tcp://HOST:PORT/PATH", s)
	}
	return LaunchTarget{Context: name, Path: "/" + path}, nil
}

// LaunchConfig configures ListenLaunch.
type LaunchConfig struct {
	// Target says where each connection goes.
	Target LaunchTarget
	// Client dials gateway tunnels; needed when Target.Context is set.
	Client *Client
	// Local is the address to listen on, e.g. 127.0.0.1:4000.
	Local string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// OnConnError is told when a connection fails, with the launcher's
	// ERR text; nil means only log it.
	OnConnError func(context string, err error)
	// AllowOtherUsers lets other users of the computer connect (see
	// ManagerConfig).
	AllowOtherUsers bool
}

// ListenLaunch listens on cfg.Local; each connection is carried to the
// launcher (through the gateway tunnel, or directly), which is sent the
// path first, and then carries the started program's stream. A refusal is
// reported (never a silent close). Close the Forwarder to stop.
func ListenLaunch(cfg LaunchConfig) (*Forwarder, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	name := cfg.Target.Context
	if name == "" {
		name = cfg.Target.Addr
	}
	dialTarget := func(ctx context.Context) (net.Conn, error) {
		if cfg.Target.Context != "" {
			if cfg.Client == nil {
				return nil, errors.New("launch through a tunnel needs a signed-in client")
			}
			return cfg.Client.Dial(ctx, cfg.Target.Context)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", cfg.Target.Addr)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := dialTarget(ctx)
		if err != nil {
			return nil, err
		}
		if err := LaunchHandshake(c, cfg.Target.Path, 60*time.Second); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	ln, err := net.Listen("tcp", cfg.Local)
	if err != nil {
		return nil, fmt.Errorf("launch %s%s: listen on %s: %w", name, cfg.Target.Path, cfg.Local, err)
	}
	return newForwarder(forwarderConfig{name: name, ln: ln, dial: dial, log: cfg.Logger, onErr: cfg.OnConnError, allowOthers: cfg.AllowOtherUsers}), nil
}
