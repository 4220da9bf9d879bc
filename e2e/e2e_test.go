package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaries are built once per test run.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "porthole-e2e-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "../cmd/porthole", "../cmd/porthole-gateway", "../cmd/porthole-launcher")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// A program for the launcher to start: it listens where it is told.
		cmd = exec.Command("go", "build", "-o", binDir+"/helper", "../launcher/testdata/helper")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build helper: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// lineWatcher copies a process's output to the test log and lets a test
// wait for a line matching a pattern (a readiness signal, not a sleep).
type lineWatcher struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
	done  bool
}

func watch(t *testing.T, name string, r io.Reader) *lineWatcher {
	w := &lineWatcher{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.done = true
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w
}

// wait returns the first submatch of the first line matching re.
func (w *lineWatcher) wait(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	timer := time.AfterFunc(timeout, func() { w.mu.Lock(); w.done = true; w.cond.Broadcast(); w.mu.Unlock() })
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for next := 0; ; {
		for ; next < len(w.lines); next++ {
			if m := re.FindStringSubmatch(w.lines[next]); m != nil {
				if len(m) > 1 {
					return m[1]
				}
				return m[0]
			}
		}
		if w.done {
			t.Fatalf("no line matching %q; output:\n%s", re, strings.Join(w.lines, "\n"))
		}
		w.cond.Wait()
	}
}

func (w *lineWatcher) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// gatewayProc is a porthole-gateway process.
type gatewayProc struct {
	url, data string
	cmd       *exec.Cmd
	out       *lineWatcher
}

func startGatewayProc(t *testing.T) *gatewayProc {
	t.Helper()
	bin := binaries(t)
	data := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "porthole-gateway"), "serve", "--data", data, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "PORTHOLE_ADMIN_PASSWORD=admin-password")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{data: data, cmd: cmd, out: watch(t, "gateway", pr)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			stopProcess(t, "the gateway", cmd)
		}
		pw.Close()
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out.text())
		}
	})
	addr := g.out.wait(t, regexp.MustCompile(`porthole gateway listening"? addr=(\S+)`), 30*time.Second)
	g.url = "http://" + addr
	return g
}

// admin runs an offline admin command against the running gateway's store:
// changes made there apply at once.
func (g *gatewayProc) admin(t *testing.T, args ...string) string {
	t.Helper()
	return g.adminIn(t, "", args...)
}

// adminIn is admin with standard input.
func (g *gatewayProc) adminIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "porthole-gateway"), append(args, "--data", g.data)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("porthole-gateway %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// client is a porthole CLI user with its own config folder.
type client struct {
	env []string
}

func newClient(t *testing.T) *client {
	return &client{env: append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "PORTHOLE_NO_KEYRING=1")}
}

func (c *client) run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "porthole"), args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// open starts `porthole open` and returns the local address of each tunnel.
type openProc struct {
	cmd   *exec.Cmd
	out   *lineWatcher
	addrs map[string]string
	pw    *io.PipeWriter
}

// start runs a long-lived porthole command (open, launch).
func (c *client) start(t *testing.T, args ...string) *openProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "porthole"), args...)
	cmd.Env = c.env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &openProc{cmd: cmd, out: watch(t, args[0], pr), addrs: map[string]string{}, pw: pw}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() })
	return p
}

func (c *client) open(t *testing.T, targets ...string) *openProc {
	t.Helper()
	p := c.start(t, append([]string{"open"}, targets...)...)
	for _, tg := range targets {
		name, _, _ := strings.Cut(tg, ":")
		p.addrs[name] = p.out.wait(t, regexp.MustCompile(`^`+regexp.QuoteMeta(name)+` -> (\S+)$`), 30*time.Second)
	}
	p.out.wait(t, regexp.MustCompile(`Tunnels are open`), 10*time.Second)
	return p
}

// interrupt sends Ctrl-C and checks everything closes within a second.
func (p *openProc) interrupt(t *testing.T) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(os.Interrupt)
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("porthole open exited with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("porthole open did not exit on Ctrl-C")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Ctrl-C took %s", d)
	}
	for name, a := range p.addrs {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Fatalf("%s still listens on %s after Ctrl-C", name, a)
		}
	}
}

func (c *client) login(t *testing.T, g *gatewayProc, user, password string) {
	t.Helper()
	out, err := c.run(t, password+"\n", "login", "--gateway", g.url, "--user", user, "--password-stdin")
	if err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
}

// apiCall calls the gateway's JSON API.
func apiCall(t *testing.T, g *gatewayProc, method, path, ticket string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, g.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	if ticket != "" {
		req.Header.Set("Authorization", "Bearer "+ticket)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func loginAPI(t *testing.T, g *gatewayProc, user, pw string) string {
	status, b := apiCall(t, g, "POST", "/api/v1/login", "", map[string]string{"username": user, "password": pw})
	if status != 200 {
		t.Fatalf("login %s: %d %s", user, status, b)
	}
	var resp struct{ Ticket string }
	json.Unmarshal(b, &resp)
	return resp.Ticket
}

// stopProcess ends a process with SIGTERM; one that has not exited ten
// seconds later is a shutdown that hangs: it gets SIGQUIT (a Go program
// prints its goroutines) and the test fails.
func stopProcess(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		t.Errorf("%s did not stop within 10 s of SIGTERM (its goroutines are in its output)", name)
	}
}
