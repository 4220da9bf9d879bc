package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porthole/porthole/internal/xvfbtest"

	"github.com/porthole/porthole/gateway/gatewaytest"
)

// desktopTools checks for what the tray test needs: Xvfb, xwininfo and
// ImageMagick's import. scripts/test installs them and sets
// PORTHOLE_REQUIRE_DESKTOP, so there their absence fails.
func desktopTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"Xvfb", "xwininfo", "import"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("PORTHOLE_REQUIRE_DESKTOP") != "" {
				t.Fatalf("%s is missing although scripts/test should have installed it", tool)
			}
			t.Skipf("%s is not installed: run scripts/test, which installs it", tool)
		}
	}
}

// buildTray returns the porthole-tray binary: under scripts/test, which
// has just built dist/ (PORTHOLE_REQUIRE_DIST), the packaged one (the
// artifact users get, and no second cgo build of Fyne); otherwise one built
// here from the current sources with cgo.
func buildTray(t *testing.T) string {
	t.Helper()
	if packaged, err := filepath.Abs(filepath.Join("..", "dist", "build", "linux", "porthole-tray")); err == nil && os.Getenv("PORTHOLE_REQUIRE_DIST") != "" {
		if _, err := os.Stat(packaged); err == nil {
			t.Logf("using the packaged %s", packaged)
			return packaged
		}
	}
	out := filepath.Join(binaries(t), "porthole-tray")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", out, "../cmd/porthole-tray")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build porthole-tray: %v\n%s", err, b)
	}
	t.Logf("built porthole-tray in %s", time.Since(start).Round(time.Second))
	return out
}

// TestTrayBinary runs the real porthole-tray under Xvfb: it starts with the
// sign-in the CLI made, opens its window, auto-starts a tunnel that
// carries bytes, and SIGTERM ends it within 2 seconds with the port closed.
func TestTrayBinary(t *testing.T) {
	desktopTools(t)
	tray := buildTray(t)
	g := startGatewayProc(t)
	target := gatewaytest.UpperAfterEOF(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	g.admin(t, "tunnel", "add", "mysql", target, "--local-port", strconv.Itoa(port), "--description", "Orders database")

	// Sign in with the CLI; the tray shares the sign-in and settings.json.
	c := newClient(t)
	c.login(t, g, "admin", "admin-password")
	cfgHome := ""
	for _, e := range c.env {
		if v, ok := strings.CutPrefix(e, "XDG_CONFIG_HOME="); ok {
			cfgHome = v
		}
	}
	settingsPath := filepath.Join(cfgHome, "porthole", "settings.json")
	var st map[string]any
	b, _ := os.ReadFile(settingsPath)
	json.Unmarshal(b, &st)
	st["tunnels"] = map[string]any{"mysql": map[string]any{"autoStart": true}}
	b, _ = json.MarshalIndent(st, "", "  ")
	os.WriteFile(settingsPath, b, 0o600)

	display := xvfbtest.Start(t)
	cmd := exec.Command(tray)
	cmd.Env = append(c.env, "DISPLAY="+display, "DBUS_SESSION_BUS_ADDRESS=", "LANG=C.UTF-8")
	logFile := filepath.Join(t.TempDir(), "tray.log")
	lf, _ := os.Create(logFile)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("tray output:\n%s", b)
		}
	})

	// The auto-started tunnel carries bytes on its fixed port.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(60 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("porthole-tray exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the auto-start tunnel never listened")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := roundTrip(t, addr, "select 1 from the tray"); got != "SELECT 1 FROM THE TRAY" {
		t.Fatalf("got %q", got)
	}

	// Its window is on the display; save a screenshot.
	var tree string
	for time.Now().Before(deadline) {
		out, _ := exec.Command("xwininfo", "-display", display, "-root", "-tree").CombinedOutput()
		tree = string(out)
		if strings.Contains(tree, `"Porthole"`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(tree, `"Porthole"`) {
		t.Fatalf("no Porthole window:\n%s", tree)
	}
	shots := filepath.Join(artifacts(), "screenshots")
	os.MkdirAll(shots, 0o755)
	// Let one more refresh paint the open state (the UI ticks every second).
	time.Sleep(1500 * time.Millisecond)
	if out, err := exec.Command("import", "-display", display, "-window", "root", filepath.Join(shots, "tray-window.png")).CombinedOutput(); err != nil {
		t.Fatalf("screenshot: %v %s", err, out)
	}

	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.Write([]byte("held across SIGTERM"))

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("porthole-tray still running 5 s after SIGTERM")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("SIGTERM took %s", d)
	}
	t.Logf("porthole-tray exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("the port is still open after exit")
	}
}

func artifacts() string {
	if d := os.Getenv("PORTHOLE_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join("..", "artifacts")
}

// TestTrayCommandLine: the real binary answers --help and --version
// without a display, refuses a bad flag, and without a desktop session
// says so in one line instead of crashing.
func TestTrayCommandLine(t *testing.T) {
	tray := buildTray(t)
	// A desktop session's locale (with LANG=C, Fyne itself logs that it
	// cannot parse "C" before main runs).
	noDisplay := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=en_US.UTF-8"}
	tests := map[string]struct {
		args []string
		code int
		want string
	}{
		"help":       {[]string{"--help"}, 0, "needs a desktop session"},
		"version":    {[]string{"--version"}, 0, "porthole-tray "},
		"bad flag":   {[]string{"--frob"}, 2, "flag provided but not defined: -frob"},
		"no display": {nil, 1, "porthole-tray: no display: neither DISPLAY nor WAYLAND_DISPLAY is set"},
		"dead X":     {nil, 1, `the X server of DISPLAY=":9876" does not answer`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(tray, tc.args...)
			cmd.Env = noDisplay
			if name == "dead X" {
				cmd.Env = append(cmd.Env, "DISPLAY=:9876")
			}
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
			if strings.Contains(string(out), "goroutine ") || strings.Contains(string(out), "panic") {
				t.Fatalf("a stack trace:\n%s", out)
			}
			if tc.code == 1 && strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
				t.Fatalf("more than one line:\n%s", out)
			}
		})
	}
}
