package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/gatewaytest"
)

// TestControlAPI: `porthole agent` serves TunnelStart to other programs;
// the Python module and the C library (built here with gcc) open a tunnel,
// carry a half-closed round trip through it, get Porthole's refusal in
// words, and their tunnels close when the programs exit.
func TestControlAPI(t *testing.T) {
	g := startGatewayProc(t)
	g.admin(t, "tunnel", "add", "echo", gatewaytest.UpperAfterEOF(t), "--groups", "admin@ROOT")
	g.admin(t, "tunnel", "add", "other", gatewaytest.UpperAfterEOF(t), "--groups", "admin@ROOT")
	c := newClient(t)
	runtime := t.TempDir()
	c.env = append(c.env, "XDG_RUNTIME_DIR="+runtime)
	// Without an agent: a clear error from the clients.
	py := func(script string) (string, error) {
		cmd := exec.Command("python3", "-c", script)
		cmd.Env = append(c.env, "PYTHONPATH="+filepath.Join("..", "sdk", "python"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := py("import porthole_control as p\ntry:\n  p.tunnel_start('echo')\nexcept p.PortholeError as e:\n  print('REFUSED', e)"); err != nil || !strings.Contains(out, "REFUSED Porthole is not running") {
		t.Fatalf("no agent: %v %s", err, out)
	}
	if out, err := c.run(t, "", "agent"); err == nil || !strings.Contains(out, "porthole login") {
		t.Fatalf("agent before login: %v %s", err, out)
	}
	c.login(t, g, "admin", "admin-password")
	agent := c.start(t, "agent")
	agent.out.wait(t, regexp.MustCompile(`programs start tunnels through (\S+)\.`), 30*time.Second)
	sock := filepath.Join(runtime, "porthole", "control.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %s: %v %v", sock, fi, err)
	}

	t.Run("python", func(t *testing.T) {
		out, err := py(`
import porthole_control as p, socket
port = p.tunnel_start("echo")
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"from python"); s.shutdown(socket.SHUT_WR)
print("ECHO", s.recv(100).decode())
try:
    p.tunnel_start("nope")
except p.PortholeError as e:
    print("REFUSED", e)
print("LIST", sorted(p._conn().list()))
other = p.tunnel_start("other")
p.tunnel_stop("other")
try:
    socket.create_connection(("127.0.0.1", other), timeout=2)
    print("STOP FAILED")
except OSError:
    print("STOPPED other")
p.tunnel_start("other")
print("STOPALL", p.tunnel_stop_all())
try:
    socket.create_connection(("127.0.0.1", port), timeout=2)
    print("STOPALL FAILED")
except OSError:
    print("ALL STOPPED")
port = p.tunnel_start("echo")
print("PORT", port)
`)
		if err != nil || !strings.Contains(out, "ECHO FROM PYTHON") || !strings.Contains(out, `REFUSED no tunnel "nope" that you may use`) ||
			!strings.Contains(out, "('echo', 'open',") || !strings.Contains(out, "STOPPED other") || !strings.Contains(out, "STOPALL 2") ||
			!strings.Contains(out, "ALL STOPPED") {
			t.Fatalf("python: %v\n%s", err, out)
		}
		port := regexp.MustCompile(`PORT (\d+)`).FindStringSubmatch(out)[1]
		waitClosed(t, "127.0.0.1:"+port) // the program is gone: its tunnel closes
	})

	t.Run("c", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "porthole-example")
		sdk := filepath.Join("..", "sdk", "c")
		if out, err := exec.Command("gcc", "-Wall", "-Werror", "-O2", "-o", bin, filepath.Join(sdk, "example.c"), filepath.Join(sdk, "porthole.c")).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v %s", err, out)
		}
		cmd := exec.Command(bin, "echo")
		cmd.Env = c.env
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		port, ok := strings.CutPrefix(strings.TrimSpace(line), "PORT ")
		if !ok {
			t.Fatalf("the C program printed %q", line)
		}
		if refused, _ := r.ReadString('\n'); !strings.Contains(refused, `REFUSED no tunnel "no-such-tunnel"`) {
			t.Fatalf("the C program's refusal: %q", refused)
		}
		if got := roundTrip(t, "127.0.0.1:"+port, "from c"); got != "FROM C" {
			t.Fatalf("through the C program's tunnel: %q", got)
		}
		stdin.Write([]byte("\n")) // the program exits without TunnelStop
		cmd.Wait()
		waitClosed(t, "127.0.0.1:"+port)
	})

	// Ctrl-C stops the agent and every tunnel it opened.
	agent.interrupt(t)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket outlived the agent: %v", err)
	}
}

// waitClosed waits until nothing listens on addr.
func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still listens after the program that held it exited", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
