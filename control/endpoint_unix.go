//go:build unix

package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Path is the control socket: $XDG_RUNTIME_DIR/porthole/control.sock, or
// porthole-UID/control.sock in the temporary folder.
func Path() string {
	if d := os.Getenv("PORTHOLE_CONTROL"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "porthole", "control.sock")
	}
	return filepath.Join(os.TempDir(), "porthole-"+strconv.Itoa(os.Getuid()), "control.sock")
}

// ErrRunning: another Porthole already serves the control API.
var ErrRunning = errors.New("another Porthole (the tray app or porthole agent) already serves the control API")

// Listen makes the control endpoint: the socket in a folder only this
// user may enter (made 0700 if missing; refused if another user owns it
// or others may write to it), the socket itself 0600. A socket left by a
// Porthole that died is replaced; a live one is ErrRunning.
func Listen() (net.Listener, error) {
	path := Path()
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, fmt.Errorf("control: %s belongs to another user (uid %d): refusing to serve there", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control: %s is open to other users and cannot be closed: %w", dir, err)
		}
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %w (%s)", ErrRunning, path)
	}
	os.Remove(path) // a stale socket of a Porthole that is gone
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// Dial connects to the control endpoint.
func Dial() (net.Conn, error) {
	c, err := net.DialTimeout("unix", Path(), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control: Porthole is not running (start the tray app or porthole agent): %w", err)
	}
	return c, nil
}
