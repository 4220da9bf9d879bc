package launcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var helperBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "porthole-launcher-helper")
	if err != nil {
		panic(err)
	}
	helperBin = filepath.Join(dir, "helper")
	if out, err := exec.Command("go", "build", "-o", helperBin, "./testdata/helper").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build helper: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuf collects log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type launcherEnv struct {
	t     *testing.T
	rules string
	addr  string
	srv   *Server
	logs  *logBuf
}

func processRule(name, resource string, args ...string) string {
	full := append([]string{helperBin, "--listenuri", "tcp://${ListenAddress}:${ListenPort}"}, args...)
	b, _ := json.Marshal(map[string]any{"Name": name, "Match": map[string]string{"Resource": resource},
		"Action": map[string]any{"Type": "CreateProcess", "Options": map[string]any{"Arguments": full}}})
	return string(b)
}

func startLauncher(t *testing.T, rules map[string]string, mod func(*Config)) *launcherEnv {
	t.Helper()
	dir := t.TempDir()
	rd := filepath.Join(dir, "rules")
	os.MkdirAll(rd, 0o755)
	for n, body := range rules {
		writeRule(t, rd, n, body)
	}
	logs := &logBuf{}
	cfg := Config{RulesDir: rd, ImageFolder: filepath.Join(dir, "images"), StartTimeout: Duration(10 * time.Second),
		StopGrace: Duration(2 * time.Second), Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("launcher log:\n%s", logs.String())
		}
	})
	return &launcherEnv{t: t, rules: rd, addr: ln.Addr().String(), srv: s, logs: logs}
}

// ask connects, sends path and returns the connection and the answer line.
func (e *launcherEnv) ask(path string) (net.Conn, string) {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "%s\n", path)
	line, err := readAnswer(c)
	if err != nil {
		e.t.Fatalf("answer to %q: %v", path, err)
	}
	return c, line
}

func readAnswer(c net.Conn) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			return string(line), err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
}

var pidRE = regexp.MustCompile(`helper pid=(\d+)`)

// pids lists the helper processes the launcher logged.
func (e *launcherEnv) pids() []int {
	var out []int
	for _, m := range pidRE.FindAllStringSubmatch(e.logs.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// waitGone waits until pid no longer exists (reaped: not even a zombie).
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there after %s: %s", pid, within, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *launcherEnv) waitLog(substr string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs.String(), substr) {
		if time.Now().After(deadline) {
			e.t.Fatalf("log never said %q", substr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSpawnForwardHalfClose(t *testing.T) {
	e := startLauncher(t, map[string]string{"echo.rule": processRule("echo", "/echo/(?<V>[^/]+)", "--mode", "echo")}, nil)
	c, line := e.ask("/echo/v1")
	if line != "OK" {
		t.Fatalf("answer %q", line)
	}
	c.Write([]byte("half-close crosses the launcher"))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "HALF-CLOSE CROSSES THE LAUNCHER" {
		t.Fatalf("got %q %v", b, err)
	}
	c.Close()
	e.waitLog("process stopped")
	pids := e.pids()
	if len(pids) != 1 {
		t.Fatalf("pids %v", pids)
	}
	waitGone(t, pids[0], 5*time.Second)
	logs := e.logs.String()
	for _, want := range []string{`msg="process started"`, `rule=echo`, fmt.Sprintf("pid=%d", pids[0]), `msg="process output"`, `stream=stdout line="helper pid=`, `stream=stderr line="helper says hello on stderr"`, `msg="process stopped"`} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestVariablesReachTheProcess(t *testing.T) {
	t.Setenv("PORTHOLE_TEST_ENV", "env-value")
	rule := fmt.Sprintf(`{"Name":"describe","Match":{"Resource":"/d/(?<Version>[0-9.]+)"},"Action":{"Type":"CreateProcess","Options":{
		"Arguments":[%q,"--listenuri","tcp://${ListenAddress}:${ListenPort}","--mode","describe","--env","IMG,FROM_ENV,HOME","${Version}","${Compiler}","${ServerPath}"],
		"Environment":[["IMG","${ImageFolder}/x64/${Version}"],["FROM_ENV","${Env.PORTHOLE_TEST_ENV}"]]}}}`, helperBin)
	e := startLauncher(t, map[string]string{"d.rule": rule}, func(c *Config) {
		c.Variables = map[string]string{"Compiler": "vc141"}
		c.ServerPath = "/srv/launcher"
	})
	c, line := e.ask("/d/4.60")
	if line != "OK" {
		t.Fatalf("answer %q", line)
	}
	var got struct {
		Args []string
		Env  map[string]string
	}
	if err := json.NewDecoder(c).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if n := len(got.Args); n < 3 || got.Args[n-3] != "4.60" || got.Args[n-2] != "vc141" || got.Args[n-1] != "/srv/launcher" {
		t.Fatalf("args %q", got.Args)
	}
	if !strings.HasSuffix(got.Env["IMG"], "/images/x64/4.60") || got.Env["FROM_ENV"] != "env-value" || got.Env["HOME"] != os.Getenv("HOME") {
		t.Fatalf("env %v (the rule's variables merge over the launcher's environment)", got.Env)
	}
}

func TestProcessExitClosesClient(t *testing.T) {
	e := startLauncher(t, map[string]string{"exit.rule": processRule("exit", "/exit", "--mode", "exit")}, nil)
	c, line := e.ask("/exit")
	if line != "OK" {
		t.Fatalf("answer %q", line)
	}
	b, err := io.ReadAll(c) // ends when the launcher closes us
	if err != nil || string(b) != "bye\n" {
		t.Fatalf("got %q %v", b, err)
	}
	e.waitLog("exit status 3")
}

func TestRefusals(t *testing.T) {
	rules := map[string]string{
		"10-gone.rule":   rejectRule("Version 3 was retired", "/v3/.*", 410),
		"20-never.rule":  processRule("never", "/never", "--mode", "never-listen"),
		"30-needs.rule":  strings.Replace(processRule("needs", "/needs", "--mode", "echo"), `"Arguments"`, `"Requires":"${ImageFolder}/missing.dll","Arguments"`, 1),
		"40-nobin.rule":  `{"Name":"nobin","Match":{"Resource":"/nobin"},"Action":{"Type":"CreateProcess","Options":{"Arguments":["/nonexistent/program"]}}}`,
		"50-dies.rule":   `{"Name":"dies","Match":{"Resource":"/dies"},"Action":{"Type":"CreateProcess","Options":{"Arguments":["` + helperBin + `","--listenuri","bogus"]}}}`,
		"60-images.rule": processRule("images", "/img/(?<F>.*)", "--mode", "echo"),
	}
	e := startLauncher(t, rules, func(c *Config) { c.StartTimeout = Duration(400 * time.Millisecond) })
	tests := map[string]struct {
		path string
		want string
	}{
		"reject":       {"/v3/anything", "ERR 410 Version 3 was retired"},
		"no rule":      {"/v9", "ERR 404 no rule matches /v9"},
		"never listen": {"/never", "ERR 504 the process did not listen"},
		"requires":     {"/needs", "ERR 424 needs is not installed here"},
		"no program":   {"/nobin", "ERR 500 could not start /nonexistent/program"},
		"exits early":  {"/dies", "ERR 500 the process exited before it listened (exit status 2)"},
		"dot dot":      {"/img/../../etc/passwd", "ERR 400"},
		"control":      {"/img/a\x1bb", "ERR 400"},
		"not a path":   {"img", "ERR 400"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, line := e.ask(tc.path)
			if !strings.HasPrefix(line, tc.want) {
				t.Fatalf("answer %q, want %q", line, tc.want)
			}
			if b, _ := io.ReadAll(c); len(b) != 0 {
				t.Fatalf("data after ERR: %q", b)
			}
		})
	}
	t.Run("line too long", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("/" + strings.Repeat("a", 5000)))
		line, _ := readAnswer(c)
		if !strings.HasPrefix(line, "ERR 400 the path line is longer than 4096") {
			t.Fatalf("answer %q", line)
		}
	})
	// The never-listening process was stopped.
	e.waitLog(`msg="process stopped"`)
	for _, pid := range e.pids() {
		waitGone(t, pid, 5*time.Second)
	}
	if !strings.Contains(e.logs.String(), `msg=rejected`) {
		t.Fatal("rejections are not logged")
	}
}

func TestProcessLimit(t *testing.T) {
	e := startLauncher(t, map[string]string{"echo.rule": processRule("echo", "/echo", "--mode", "echo")}, func(c *Config) { c.MaxProcesses = 1 })
	c1, line := e.ask("/echo")
	if line != "OK" {
		t.Fatalf("first: %q", line)
	}
	_, line = e.ask("/echo")
	if !strings.HasPrefix(line, "ERR 503 too busy: 1 processes") {
		t.Fatalf("second: %q", line)
	}
	c1.Close()
	e.waitLog("process stopped")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, line = e.ask("/echo")
		if line == "OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot never came back: %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStopGraceKills(t *testing.T) {
	e := startLauncher(t, map[string]string{"stubborn.rule": processRule("stubborn", "/s", "--mode", "describe", "--ignore-interrupt")},
		func(c *Config) { c.StopGrace = Duration(300 * time.Millisecond) })
	c, line := e.ask("/s")
	if line != "OK" {
		t.Fatalf("answer %q", line)
	}
	io.ReadAll(c)
	c.Close()
	e.waitLog("process stopped")
	pids := e.pids()
	waitGone(t, pids[0], 3*time.Second)
	if !strings.Contains(e.logs.String(), "signal: killed") {
		t.Fatalf("the process ignoring the interrupt was not killed:\n%s", e.logs.String())
	}
}

func TestHotReload(t *testing.T) {
	e := startLauncher(t, map[string]string{"a.rule": rejectRule("first", "/a", 410)}, nil)
	if _, line := e.ask("/b"); !strings.HasPrefix(line, "ERR 404") {
		t.Fatalf("before: %q", line)
	}
	writeRule(t, e.rules, "b.rule", rejectRule("added while running", "/b", 411))
	e.eventually("/b", "ERR 411 added while running")
	// A broken file is reported by name and line; working rules stay.
	writeRule(t, e.rules, "a.rule", "{\n  \"Name\": \"first\",\n  oops\n}")
	e.waitLog("a.rule:3")
	if _, line := e.ask("/a"); line != "ERR 410 first" {
		t.Fatalf("the last working a.rule was dropped: %q", line)
	}
	// Reload (what SIGHUP calls) picks up a fixed file.
	writeRule(t, e.rules, "a.rule", rejectRule("fixed", "/a", 412))
	e.srv.Reload()
	if _, line := e.ask("/a"); line != "ERR 412 fixed" {
		t.Fatalf("after reload: %q", line)
	}
}

func (e *launcherEnv) eventually(path, want string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, line := e.ask(path)
		if line == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still answers %q, want %q", path, line, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rules"), 0o755)
	seed, _ := os.ReadFile("testdata/seed/aimmsifa-x64.rule")
	os.WriteFile(filepath.Join(dir, "rules", "aimmsifa-x64.rule"), seed, 0o644)
	os.WriteFile(filepath.Join(dir, "rules", "old.rule"), []byte(rejectRule("Too old", "/x86/.*", 410)), 0o644)
	cfgPath := filepath.Join(dir, "launcher.json")
	os.WriteFile(cfgPath, []byte(`{"imageFolder": "images", "variables": {"Compiler": "vc141"}}`), 0o644)
	var out strings.Builder
	err := Run(t.Context(), []string{"check", "--config", cfgPath, "/x64/4.60", "/x86/1", "/nothing", "/x64/.."}, &out, io.Discard)
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`aimmsifa-x64.rule`, `-> aimmsifa-x64.rule ("AIMMS Install Free x64")`, `groups:   SubFolder=4.60`,
		`a3host-x64\\aimmssdk_a3host-vc141_x64_Release.exe`, `tcp://127.0.0.1:${ListenPort}`,
		`env:      PATH=` + filepath.Join(dir, "images") + `\x64\4.60\Bin;`, `MISSING: the launcher would answer ERR 424`,
		`answers: ERR 410 Too old`, `-> ERR 404 no rule matches /nothing`, `-> ERR 400`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("check output lacks %q:\n%s", want, out.String())
		}
	}
	// Without the Compiler variable the seed file is refused, by name and line.
	os.WriteFile(cfgPath, []byte(`{"imageFolder": "images"}`), 0o644)
	out.Reset()
	err = Run(t.Context(), []string{"check", "--config", cfgPath}, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "error: aimmsifa-x64.rule:8: Arguments uses ${Compiler}") {
		t.Fatalf("err %v\n%s", err, out.String())
	}
	if err := Run(t.Context(), []string{"check"}, &out, io.Discard); err == nil {
		t.Fatal("check without --config accepted")
	}
}

var childRE = regexp.MustCompile(`helper child pid=(\d+)`)

// A program's children, also those that left its session, are stopped
// with it, and they count toward maxProcesses while they run.
func TestChildrenAreStoppedAndCounted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups and marks are Linux's")
	}
	e := startLauncher(t, map[string]string{"fork.rule": processRule("fork", "/fork", "--mode", "echo", "--spawn", "2")},
		func(c *Config) { c.MaxProcesses = 3 })
	c1, line := e.ask("/fork")
	if line != "OK" {
		t.Fatalf("first: %q", line)
	}
	e.waitLog("helper child pid=")
	deadline := time.Now().Add(10 * time.Second)
	var children []int
	for len(children) < 2 && time.Now().Before(deadline) {
		children = children[:0]
		for _, m := range childRE.FindAllStringSubmatch(e.logs.String(), -1) {
			n, _ := strconv.Atoi(m[1])
			children = append(children, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(children) != 2 {
		t.Fatalf("children logged: %v", children)
	}
	// One program and its two children: the third slot is taken.
	_, line = e.ask("/fork")
	if !strings.HasPrefix(line, "ERR 503 too busy: 3 processes (programs and their children)") {
		t.Fatalf("with 3 processes running: %q", line)
	}
	c1.Close()
	e.waitLog("process stopped")
	for _, pid := range children {
		waitDead(t, pid, 5*time.Second)
	}
}

// waitDead waits until pid is gone or a zombie (killed, not yet reaped by
// whoever inherited it).
func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if os.IsNotExist(err) {
			return
		}
		if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
