package e2e

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startLauncherProc runs porthole-launcher with a rule that starts the
// helper program, and returns its address.
func startLauncherProc(t *testing.T) string {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rules"), 0o755)
	rule, _ := json.Marshal(map[string]any{"Name": "echo host", "Match": map[string]string{"Resource": "/echo/(?<Version>[0-9.]+)"},
		"Action": map[string]any{"Type": "CreateProcess", "Options": map[string]any{
			"Arguments": []string{filepath.Join(bin, "helper"), "--listenuri", "tcp://${ListenAddress}:${ListenPort}", "--mode", "echo"}}}})
	os.WriteFile(filepath.Join(dir, "rules", "echo.rule"), rule, 0o644)
	reject, _ := json.Marshal(map[string]any{"Name": "old", "Match": map[string]string{"Resource": "/old/.*"},
		"Action": map[string]any{"Type": "Reject", "Options": map[string]any{"ErrorCode": 410, "ErrorDesc": "that version was retired"}}})
	os.WriteFile(filepath.Join(dir, "rules", "old.rule"), reject, 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // the launcher binds the address its config names
	cfg := filepath.Join(dir, "launcher.json")
	os.WriteFile(cfg, []byte(`{"listen": "`+addr+`"}`), 0o644)
	cmd := exec.Command(filepath.Join(bin, "porthole-launcher"), "serve", "--config", cfg)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := watch(t, "launcher", pr)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		pw.Close()
		if t.Failed() {
			t.Logf("launcher output:\n%s", out.text())
		}
	})
	out.wait(t, regexp.MustCompile(`porthole launcher listening`), 30*time.Second)
	return addr
}

// TestLaunchThroughGateway: a tunnel points at a launcher; `porthole
// launch CONTEXT/PATH` carries each connection through the gateway, asks
// the launcher for PATH and reports its refusals; `tcp://` goes direct.
func TestLaunchThroughGateway(t *testing.T) {
	launcherAddr := startLauncherProc(t)
	g := startGatewayProc(t)
	g.admin(t, "tunnel", "add", "sdk", launcherAddr, "--groups", "admin@ROOT")
	c := newClient(t)
	c.login(t, g, "admin", "admin-password")

	for _, target := range []string{"sdk/echo/4.60", "tcp://" + launcherAddr + "/echo/4.60"} {
		t.Run(strings.SplitN(target, ":", 2)[0], func(t *testing.T) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			p := c.start(t, "launch", target, "--port", strconv.Itoa(port))
			p.out.wait(t, regexp.MustCompile(`Listening; press Ctrl-C`), 30*time.Second)
			addr := "127.0.0.1:" + strconv.Itoa(port)
			if got := roundTrip(t, addr, "through the launcher"); got != "THROUGH THE LAUNCHER" {
				t.Fatalf("got %q", got)
			}
			p.interrupt(t)
		})
	}
	// A refusal reaches the user as the launcher's own words.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := c.start(t, "launch", "sdk/old/3.1", "--port", strconv.Itoa(port))
	p.out.wait(t, regexp.MustCompile(`Listening; press Ctrl-C`), 30*time.Second)
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(conn)
	conn.Close()
	p.out.wait(t, regexp.MustCompile(`launch sdk/old/3.1: the launcher refused: 410 that version was retired`), 10*time.Second)
	p.interrupt(t)
}
