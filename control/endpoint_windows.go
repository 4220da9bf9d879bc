package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/Microsoft/go-winio"
)

// Path is the control pipe, \\.\pipe\porthole-control-USER.
func Path() string {
	if p := os.Getenv("PORTHOLE_CONTROL"); p != "" {
		return p
	}
	name := os.Getenv("USERNAME")
	if u, err := user.Current(); err == nil {
		name = u.Username
		if i := strings.LastIndexByte(name, '\\'); i >= 0 {
			name = name[i+1:]
		}
	}
	return `\\.\pipe\porthole-control-` + name
}

// ErrRunning: another Porthole already serves the control API.
var ErrRunning = errors.New("another Porthole (the tray app or porthole agent) already serves the control API")

// Listen makes the control pipe, open only to this user's SID.
func Listen() (net.Listener, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("control: who am I: %w", err)
	}
	if c, err := winio.DialPipe(Path(), ptr(time.Second)); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %w (%s)", ErrRunning, Path())
	}
	ln, err := winio.ListenPipe(Path(), &winio.PipeConfig{SecurityDescriptor: "D:P(A;;GA;;;" + u.Uid + ")"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	// Under wine the first client of a new pipe hangs (the next ones do
	// not): use up the first instance with a connection of our own, which
	// the server sees end at once. Harmless on Windows.
	if c, err := winio.DialPipe(Path(), ptr(time.Second)); err == nil {
		c.Close()
	}
	return ln, nil
}

// Dial connects to the control pipe.
func Dial() (net.Conn, error) {
	c, err := winio.DialPipe(Path(), ptr(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("control: Porthole is not running (start the tray app or porthole agent): %w", err)
	}
	return c, nil
}

func ptr(d time.Duration) *time.Duration { return &d }
