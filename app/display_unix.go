//go:build linux || freebsd || openbsd || netbsd

package app

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoDisplay means there is no desktop session to show the app in.
var ErrNoDisplay = errors.New("no display")

// CheckDisplay tells, before the GUI toolkit starts (which would crash
// with a stack trace), whether a desktop session answers: a Wayland
// socket, or the X server that DISPLAY names. getenv reads the
// environment (os.Getenv).
func CheckDisplay(getenv func(string) string) error {
	if w := getenv("WAYLAND_DISPLAY"); w != "" {
		sock := w
		if !filepath.IsAbs(sock) {
			sock = filepath.Join(getenv("XDG_RUNTIME_DIR"), w)
		}
		if err := dialDisplay("unix", sock); err == nil {
			return nil
		}
	}
	d := getenv("DISPLAY")
	if d == "" {
		return fmt.Errorf("%w: neither DISPLAY nor WAYLAND_DISPLAY is set; start porthole-tray in a desktop session, or use the porthole command", ErrNoDisplay)
	}
	network, addr, err := xServerAddr(d)
	if err != nil {
		return fmt.Errorf("%w: DISPLAY=%q: %v", ErrNoDisplay, d, err)
	}
	if err := dialDisplay(network, addr); err != nil {
		return fmt.Errorf("%w: the X server of DISPLAY=%q does not answer (%v); start porthole-tray in a desktop session, or use the porthole command", ErrNoDisplay, d, err)
	}
	return nil
}

// xServerAddr is where the X server of a DISPLAY value listens:
// ":1" and "unix:1" are /tmp/.X11-unix/X1, "host:1" is TCP port 6001.
func xServerAddr(display string) (network, addr string, err error) {
	i := strings.LastIndexByte(display, ':')
	if i < 0 {
		return "", "", errors.New(`not of the form "HOST:N" or ":N"`)
	}
	host, rest := strings.Trim(display[:i], "[]"), display[i+1:]
	num, _, _ := strings.Cut(rest, ".") // the screen number does not matter
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return "", "", fmt.Errorf("display number %q is not a number", num)
	}
	if host == "" || host == "unix" {
		return "unix", "/tmp/.X11-unix/X" + strconv.Itoa(n), nil
	}
	return "tcp", net.JoinHostPort(host, strconv.Itoa(6000+n)), nil
}

func dialDisplay(network, addr string) error {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
