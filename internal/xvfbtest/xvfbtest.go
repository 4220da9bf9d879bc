// Package xvfbtest starts a virtual X display (Debian's Xvfb) for tests of
// desktop programs: the tray app on Linux, and under wine on Windows.
package xvfbtest

import (
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Start runs Xvfb on a free display until the test ends and returns its
// name (":N"); Xvfb picks the number and reports it (-displayfd).
func Start(t testing.TB) string {
	t.Helper()
	cmd := exec.Command("Xvfb", "-displayfd", "1", "-screen", "0", "1024x700x24", "-nolisten", "tcp")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var xlog strings.Builder
	cmd.Stderr = &xlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		var b [16]byte
		n, _ := stdout.Read(b[:])
		line <- strings.TrimSpace(string(b[:n]))
		io.Copy(io.Discard, stdout)
	}()
	select {
	case num := <-line:
		if num == "" {
			cmd.Wait()
			t.Fatalf("Xvfb did not start: %s", xlog.String())
		}
		return ":" + num
	case <-time.After(30 * time.Second):
		t.Fatal("Xvfb did not report a display within 30 s")
	}
	return ""
}
