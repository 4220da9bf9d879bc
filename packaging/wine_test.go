package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porthole/porthole/internal/xvfbtest"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
)

// The Windows builds, run for real under Debian's wine 8.0 in the prefix
// scripts/lib/wine.sh makes (PORTHOLE_TEST_WINEPREFIX; with the test-only
// bcryptprimitives.dll shim Go's runtime needs there). Every wine call is
// bounded in time. The tests share the prefix and run in order: install,
// use, upgrade, uninstall.

// winePrefix is a wine prefix with Porthole's MSIs at hand.
type winePrefix struct {
	dir string
	env []string
}

func wine(t *testing.T) *winePrefix {
	t.Helper()
	dir := os.Getenv("PORTHOLE_TEST_WINEPREFIX")
	if dir == "" {
		if os.Getenv("PORTHOLE_REQUIRE_WINE") != "" {
			t.Fatal("PORTHOLE_REQUIRE_WINE is set but PORTHOLE_TEST_WINEPREFIX is not: scripts/test makes the prefix")
		}
		t.Skip("no wine prefix (PORTHOLE_TEST_WINEPREFIX): scripts/test makes one")
	}
	env := append(os.Environ(), "WINEPREFIX="+dir, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "DISPLAY=")
	return &winePrefix{dir: dir, env: env}
}

// run runs a wine command with standard input and a time limit.
func (w *winePrefix) run(t *testing.T, limit time.Duration, stdin string, args ...string) (string, error) {
	t.Helper()
	// Not t.Context(): cleanups (uninstalls) run after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wine", args...)
	cmd.Env = w.env
	cmd.Stdin = strings.NewReader(stdin)
	// Wine's own background processes (services.exe, the services it
	// starts) may inherit the output pipe and outlive the command: stop
	// reading shortly after the command itself has exited.
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("wine %v: no answer within %s", args, limit)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // the command finished; a wine process kept the pipe
	}
	return string(out), err
}

func (w *winePrefix) must(t *testing.T, limit time.Duration, stdin string, args ...string) string {
	t.Helper()
	out, err := w.run(t, limit, stdin, args...)
	if err != nil {
		t.Fatalf("wine %v: %v\n%s", args, err, out)
	}
	return out
}

// path maps a Windows path on C: into the prefix.
func (w *winePrefix) path(win string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(win, "C:"), "c:")
	return filepath.Join(w.dir, "drive_c", filepath.FromSlash(strings.ReplaceAll(rest, `\`, "/")))
}

// reg reads a registry value ("" when absent).
func (w *winePrefix) reg(t *testing.T, key, name string) string {
	t.Helper()
	out, err := w.run(t, time.Minute, "", "reg", "query", key, "/v", name)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.EqualFold(f[0], name) {
			return strings.Join(f[2:], " ")
		}
	}
	return ""
}

// uninstallEntries counts Add/Remove Programs entries named name.
func (w *winePrefix) uninstallEntries(t *testing.T, name string) (n int, versions []string) {
	t.Helper()
	out, _ := w.run(t, time.Minute, "", "reg", "query", `HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall`, "/s")
	var display, version string
	flush := func() {
		if display == name {
			n++
			versions = append(versions, version)
		}
		display, version = "", ""
	}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "HKEY_") {
			flush()
		}
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "DisplayName" {
			display = strings.Join(f[2:], " ")
		}
		if len(f) >= 3 && f[0] == "DisplayVersion" {
			version = f[2]
		}
	}
	flush()
	return n, versions
}

// msi builds the client MSI again at another version from the same
// Windows binaries (for the upgrade), with wixl as scripts/package does.
func msiAtVersion(t *testing.T, d, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "porthole-"+version+"-x64.msi")
	// wixl wants the build folder relative to where it runs.
	root, _ := filepath.Abs("..")
	abs, _ := filepath.Abs(filepath.Join(d, "build", "windows"))
	build, err := filepath.Rel(root, abs)
	if err != nil {
		t.Fatal(err)
	}
	// From the repository's root, as scripts/package runs it (the .wxs
	// names sdk/ files relative to it).
	cmd := exec.Command("wixl", "-a", "x64", "-D", "Version="+version, "-D", "Build="+build, "-o", out, filepath.Join("packaging", "windows", "client.wxs"))
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wixl: %v\n%s", err, b)
	}
	return out
}

func TestWindowsClientUnderWine(t *testing.T) {
	w := wine(t)
	d := dist(t)
	msi := one(t, filepath.Join(d, "porthole-[0-9]*-x64.msi"))
	gw := gatewaytest.Start(t)
	if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "echo", SocketAddress: gatewaytest.UpperAfterEOF(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "admins-only", SocketAddress: gatewaytest.UpperEcho(t), UserGroups: "admin@ROOT"}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.CreateUser(t.Context(), "test", gateway.UserSpec{Username: "wendy", Password: "wendy-password"}); err != nil {
		t.Fatal(err)
	}
	exe := `C:\Program Files\Porthole\porthole.exe`
	settings := w.path(`C:\users\` + currentUser() + `\AppData\Roaming\porthole\settings.json`)
	// A user who never used Porthole on this machine (an uninstall keeps
	// the settings of an earlier run in this prefix).
	os.RemoveAll(filepath.Dir(settings))
	t.Cleanup(func() { w.run(t, 2*time.Minute, "", "msiexec", "/x", msi, "/qn") })

	// The installer names an old gateway; Group Policy (the ADMX) names
	// the real one, and policy wins.
	const msiGateway = "https://old-gateway.example.com"
	if !t.Run("install", func(t *testing.T) {
		start := time.Now()
		w.must(t, 2*time.Minute, "", "msiexec", "/i", msi, "/qn", "GATEWAY_URL="+msiGateway, "ADDLOCAL=Client,Autostart")
		t.Logf("silent install took %s", time.Since(start).Round(time.Millisecond))
		for _, f := range []string{`C:\Program Files\Porthole\porthole.exe`, `C:\Program Files\Porthole\porthole-tray.exe`} {
			if _, err := os.Stat(w.path(f)); err != nil {
				t.Fatalf("%s not installed: %v", f, err)
			}
		}
		links, _ := filepath.Glob(filepath.Join(w.dir, "drive_c", "*", "*", "AppData", "Roaming", "Microsoft", "Windows", "Start Menu", "Programs", "Porthole.lnk"))
		more, _ := filepath.Glob(filepath.Join(w.dir, "drive_c", "ProgramData", "Microsoft", "Windows", "Start Menu", "Programs", "Porthole.lnk"))
		if len(links)+len(more) == 0 {
			t.Fatal("no Start-menu shortcut Porthole.lnk")
		}
		if got := w.reg(t, `HKLM\Software\Porthole`, "GatewayURL"); got != msiGateway {
			t.Fatalf("GatewayURL in the registry is %q, want %q", got, msiGateway)
		}
		if got := w.reg(t, `HKLM\Software\Microsoft\Windows\CurrentVersion\Run`, "Porthole"); !strings.Contains(got, `porthole-tray.exe`) {
			t.Fatalf("autostart entry %q", got)
		}
		if n, v := w.uninstallEntries(t, "Porthole"); n != 1 {
			t.Fatalf("%d Add/Remove Programs entries (%v), want 1", n, v)
		}
	}) {
		return
	}

	policyKey, policyName := policyValue(t, "GatewayURL")
	t.Cleanup(func() { w.run(t, time.Minute, "", "reg", "delete", `HKLM\`+policyKey, "/f") })
	if !t.Run("group policy", func(t *testing.T) {
		// What the Group Policy editor writes for the ADMX's GatewayURL.
		w.must(t, time.Minute, "", "reg", "add", `HKLM\`+policyKey, "/v", policyName, "/t", "REG_SZ", "/d", gw.URL, "/f")
	}) {
		return
	}

	if !t.Run("cli", func(t *testing.T) {
		// The gateway comes from the policy: no --gateway.
		out := w.must(t, time.Minute, "admin-password\n", exe, "login", "--user", "admin", "--password-stdin")
		if !strings.Contains(out, "Signed in to "+gw.URL+" as admin") {
			t.Fatalf("login: %s", out)
		}
		// The ticket is in Windows' Credential Manager (wine keeps it in
		// its registry), not in a fallback file.
		creds, _ := w.run(t, time.Minute, "", "reg", "query", `HKCU\Software\Wine\Credential Manager`)
		if !strings.Contains(creds, "porthole:"+gw.URL) || strings.Contains(out, "file") {
			t.Fatalf("no Credential Manager entry for porthole:%s:\n%s\n%s", gw.URL, creds, out)
		}
		out = w.must(t, time.Minute, "", exe, "list")
		if !strings.Contains(out, "echo") {
			t.Fatalf("list: %s", out)
		}
		// A refusal, in the user's words.
		out = w.must(t, time.Minute, "wendy-password\n", exe, "login", "--user", "wendy", "--password-stdin")
		o, err := w.run(t, time.Minute, "", exe, "open", "admins-only:0")
		if err == nil || !strings.Contains(o, "not allowed") && !strings.Contains(o, "may not") {
			t.Fatalf("open a tunnel wendy may not use: %v\n%s", err, o)
		}
		o, err = w.run(t, time.Minute, "", exe, "open", "nope:0")
		if err == nil || !strings.Contains(o, "nope") {
			t.Fatalf("open an unknown tunnel: %v\n%s", err, o)
		}
		w.must(t, time.Minute, "admin-password\n", exe, "login", "--user", "admin", "--password-stdin")

		// Local ports take only the user's own programs. The test's
		// connections come from a Linux process, which no Windows user
		// owns: porthole.exe refuses them and says why...
		p := w.start(t, exe, "open", "echo:0")
		addr := p.wait(t, regexp.MustCompile(`^echo -> (\S+)`))
		p.wait(t, regexp.MustCompile(`Tunnels are open`))
		if c, err := net.DialTimeout("tcp", addr, 10*time.Second); err == nil {
			c.SetDeadline(time.Now().Add(20 * time.Second))
			c.Write([]byte("not mine"))
			c.(*net.TCPConn).CloseWrite()
			if b, _ := io.ReadAll(c); len(b) > 0 {
				t.Fatalf("a connection no Windows user owns carried bytes: %q", b)
			}
			c.Close()
		}
		p.wait(t, regexp.MustCompile(`refused a connection from .*: which user opened it cannot be told`))
		p.interrupt(t)
		p.wait(t, regexp.MustCompile(`Closed every tunnel`))
		// ... until settings.json allows others (as the tray's do below).
		allowOthers(t, settings)

		// open, a round trip with half-close, Ctrl-C.
		p = w.start(t, exe, "open", "echo:0")
		addr = p.wait(t, regexp.MustCompile(`^echo -> (\S+)`))
		p.wait(t, regexp.MustCompile(`Tunnels are open`))
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte("from linux to a windows porthole"))
		c.(*net.TCPConn).CloseWrite() // the target answers only after our end of stream
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "FROM LINUX TO A WINDOWS PORTHOLE" {
			t.Fatalf("round trip through porthole.exe: %q %v", b, err)
		}
		p.interrupt(t)
		p.wait(t, regexp.MustCompile(`Closed every tunnel`))
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still listens after Ctrl-C", addr)
		}
		if _, err := os.Stat(settings); err != nil {
			t.Fatalf("the user's settings.json: %v", err)
		}
	}) {
		return
	}

	if !t.Run("control API from a C program", func(t *testing.T) {
		// porthole.exe agent serves the per-user named pipe; a C program
		// built with mingw against sdk/c (no Go inside it) opens a tunnel
		// through it and exits without closing it.
		// Linked against the porthole.dll the MSI installed, beside it.
		dir := t.TempDir()
		example := filepath.Join(dir, "porthole-example.exe")
		dll := w.path(`C:\Program Files\Porthole\sdk\porthole.dll`)
		b, err := os.ReadFile(dll)
		if err != nil {
			t.Fatalf("the installed SDK: %v", err)
		}
		os.WriteFile(filepath.Join(dir, "porthole.dll"), b, 0o644)
		run(t, "x86_64-w64-mingw32-gcc", "-Wall", "-Werror", "-O2", "-I", w.path(`C:\Program Files\Porthole\sdk`), "-o", example,
			filepath.Join("..", "sdk", "c", "example.c"), filepath.Join(dir, "porthole.dll"))
		agent := w.start(t, exe, "agent")
		pipe := agent.wait(t, regexp.MustCompile(`programs start tunnels through (\S+)\.`))
		if !strings.HasPrefix(pipe, `\\.\pipe\porthole-control-`) {
			t.Fatalf("the agent serves %q, want a named pipe", pipe)
		}
		prog := w.start(t, example, "echo")
		port := prog.wait(t, regexp.MustCompile(`^PORT (\d+)`))
		if refused := prog.wait(t, regexp.MustCompile(`^REFUSED (.*)`)); !strings.Contains(refused, `no tunnel "no-such-tunnel"`) {
			t.Fatalf("the C program's refusal: %q", refused)
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		c.Write([]byte("through a pipe"))
		c.(*net.TCPConn).CloseWrite()
		b, err = io.ReadAll(c)
		c.Close()
		if string(b) != "THROUGH A PIPE" {
			st, _ := w.run(t, time.Minute, "", exe, "status")
			t.Fatalf("round trip through the C program's tunnel: %q %v\n%s", b, err, st)
		}
		prog.stdin.Close() // the program exits without TunnelStop
		prog.cmd.Wait()
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("the tunnel outlived the C program that started it")
			}
			time.Sleep(100 * time.Millisecond)
		}
		agent.interrupt(t)
	}) {
		return
	}

	if !t.Run("tray app under Xvfb", func(t *testing.T) {
		trayUnderWine(t, w, gw.URL)
	}) {
		return
	}

	t.Run("upgrade keeps one entry and the settings", func(t *testing.T) {
		before, err := os.ReadFile(settings)
		if err != nil {
			t.Fatal(err)
		}
		next := msiAtVersion(t, d, "0.2.0")
		w.must(t, 2*time.Minute, "", "msiexec", "/i", next, "/qn")
		n, versions := w.uninstallEntries(t, "Porthole")
		if n != 1 || len(versions) != 1 || versions[0] != "0.2.0" {
			t.Fatalf("after the upgrade: %d entries %v, want one at 0.2.0", n, versions)
		}
		after, err := os.ReadFile(settings)
		if err != nil || string(after) != string(before) {
			t.Fatalf("the upgrade changed the user's settings:\n%s\n->\n%s (%v)", before, after, err)
		}
		if got := w.reg(t, `HKLM\Software\Porthole`, "GatewayURL"); got != msiGateway {
			t.Fatalf("GatewayURL after the upgrade: %q, want the installed %q", got, msiGateway)
		}
		if out := w.must(t, time.Minute, "", exe, "list"); !strings.Contains(out, "echo") {
			t.Fatalf("the upgraded CLI with the kept sign-in: %s", out)
		}

		w.must(t, 2*time.Minute, "", "msiexec", "/x", next, "/qn")
		if _, err := os.Stat(w.path(`C:\Program Files\Porthole\porthole.exe`)); !os.IsNotExist(err) {
			t.Fatalf("porthole.exe after uninstall: %v", err)
		}
		if n, _ := w.uninstallEntries(t, "Porthole"); n != 0 {
			t.Fatalf("%d entries after uninstall", n)
		}
		if kept, err := os.ReadFile(settings); err != nil || string(kept) != string(before) {
			t.Fatalf("uninstall removed or changed the user's settings: %v", err)
		}
	})
}

func TestWindowsGatewayServiceUnderWine(t *testing.T) {
	w := wine(t)
	d := dist(t)
	msi := one(t, filepath.Join(d, "porthole-gateway-*-x64.msi"))
	// The MSI's default configuration listens on :8080 (and the launcher
	// on 127.0.0.1:19340): both must be free here.
	for _, a := range []string{"127.0.0.1:8080", "127.0.0.1:19340"} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s is taken on this machine; the gateway MSI's defaults need it", a)
		}
	}
	cfg := w.path(`C:\ProgramData\Porthole\gateway.json`)
	os.Remove(cfg)
	w.must(t, 3*time.Minute, "", "msiexec", "/i", msi, "/qn")
	uninstalled := false
	t.Cleanup(func() {
		if !uninstalled {
			w.run(t, 3*time.Minute, "", "msiexec", "/x", msi, "/qn")
		}
	})
	out := w.must(t, time.Minute, "", "sc", "query", "PortholeGateway")
	if !strings.Contains(out, "RUNNING") {
		t.Fatalf("service state after install:\n%s", out)
	}
	waitHealthy(t, "http://127.0.0.1:8080/healthz")
	if b, err := os.ReadFile(cfg); err != nil || !strings.Contains(string(b), `"listen"`) {
		t.Fatalf("the service's first start wrote no configuration at %s: %v %s", cfg, err, b)
	}
	logFile := w.path(`C:\ProgramData\Porthole\PortholeGateway.log`)
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), "administrator") {
		t.Fatalf("the first start's administrator password is not in %s: %v\n%s", logFile, err, b)
	}
	w.must(t, time.Minute, "", "sc", "stop", "PortholeGateway")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := w.run(t, time.Minute, "", "sc", "query", "PortholeGateway")
		if strings.Contains(out, "STOPPED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not stop:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		c.Close()
		t.Fatal("the gateway still listens after the service stopped")
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "shutting down") {
		t.Fatalf("the log does not show a clean stop:\n%s", b)
	}

	// Uninstall stops and removes both services and keeps the
	// configuration and data.
	w.must(t, 3*time.Minute, "", "msiexec", "/x", msi, "/qn")
	uninstalled = true
	for _, svc := range []string{"PortholeGateway", "PortholeLauncher"} {
		if out, err := w.run(t, time.Minute, "", "sc", "query", svc); err == nil && strings.Contains(out, "RUNNING") {
			t.Fatalf("%s still runs after uninstall:\n%s", svc, out)
		}
	}
	if _, err := os.Stat(w.path(`C:\Program Files\Porthole Gateway\porthole-gateway.exe`)); !os.IsNotExist(err) {
		t.Fatalf("porthole-gateway.exe after uninstall: %v", err)
	}
	if _, err := os.Stat(cfg); err != nil {
		t.Fatalf("uninstall removed the configuration: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:19340", time.Second); err == nil {
		c.Close()
		t.Fatal("the launcher still listens after uninstall")
	}
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within a minute: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// wineProc is a long-running Windows program under wine.
type wineProc struct {
	cmd *exec.Cmd
	// stdin stays open until the test closes it or ends.
	stdin io.WriteCloser
	// mu guards lines.
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func (w *winePrefix) start(t *testing.T, args ...string) *wineProc {
	t.Helper()
	cmd := exec.Command("wine", args...)
	cmd.Env = w.env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &wineProc{cmd: cmd, stdin: stdin, more: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, strings.TrimRight(sc.Text(), "\r"))
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pw.Close()
		<-done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("wine %v printed:\n%s", args, strings.Join(p.lines, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// wait returns the first submatch of the first line matching re.
func (p *wineProc) wait(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				p.mu.Unlock()
				if len(m) > 1 {
					return m[1]
				}
				return m[0]
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no line matching %s within a minute", re)
		}
	}
}

// interrupt is Ctrl-C: wine turns SIGINT into the console's CTRL_C_EVENT.
func (p *wineProc) interrupt(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	errc := make(chan error, 1)
	go func() { errc <- p.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("porthole.exe exited with %v after Ctrl-C", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("porthole.exe did not exit on Ctrl-C")
	}
}

// trayUnderWine runs the installed porthole-tray.exe on a virtual display:
// it starts into wine's system tray with the CLI's sign-in, its menu opens
// a tunnel by a click (xdotool), the window shows, and Quit closes every
// tunnel and ends the process.
func trayUnderWine(t *testing.T, w *winePrefix, gateway string) {
	for _, tool := range []string{"Xvfb", "xdotool", "import", "xwininfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/test installs it", tool)
		}
	}
	display := xvfbtest.Start(t)
	env := append(slices.Clone(w.env), "DISPLAY="+display)
	x := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tw := &winePrefix{dir: w.dir, env: env}
	tray := tw.start(t, `C:\Program Files\Porthole\porthole-tray.exe`)
	// geometry finds a visible window by name and returns x, y, w, h.
	geometry := func(name string) (int, int, int, int, bool) {
		out, _ := exec.Command("xwininfo", "-display", display, "-root", "-tree").CombinedOutput()
		re := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + `".*\s(\d+)x(\d+)\+(-?\d+)\+(-?\d+)\s+\+(-?\d+)\+(-?\d+)`)
		m := re.FindStringSubmatch(string(out))
		if m == nil {
			return 0, 0, 0, 0, false
		}
		return atoi(m[5]), atoi(m[6]), atoi(m[1]), atoi(m[2]), true
	}
	var tx, ty int
	deadline := time.Now().Add(60 * time.Second)
	for {
		if x0, y0, _, _, ok := geometry("Wine System Tray"); ok {
			tx, ty = x0+9, y0+10 // the first icon
			if _, _, _, _, up := geometry("SystrayMonitor"); up {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no tray icon within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // the icon is set once the tray is ready
	// menu opens the tray menu and returns its top-left corner and height.
	menu := func() (int, int, int) {
		t.Helper()
		x("xdotool", "mousemove", strconv.Itoa(tx), strconv.Itoa(ty), "click", "1")
		row := regexp.MustCompile(`^\s+(0x[0-9a-f]+) .*\s(\d+)x(\d+)\+(-?\d+)\+(-?\d+)\s`)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, _ := exec.Command("xwininfo", "-display", display, "-root", "-children").CombinedOutput()
			for _, line := range strings.Split(string(out), "\n") {
				m := row.FindStringSubmatch(line)
				if m == nil || strings.Contains(line, `"Porthole"`) {
					continue
				}
				w, h := atoi(m[2]), atoi(m[3])
				if w < 100 || w > 500 || h < 60 || h > 500 {
					continue
				}
				info, _ := exec.Command("xwininfo", "-display", display, "-id", m[1]).CombinedOutput()
				if strings.Contains(string(info), "IsViewable") {
					return atoi(m[4]), atoi(m[5]), h
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		x("import", "-window", "root", filepath.Join(artifacts(), "tray-wine-no-menu.png"))
		t.Fatal("the tray menu did not open (see tray-wine-no-menu.png)")
		return 0, 0, 0
	}
	click := func(px, py int) {
		x("xdotool", "mousemove", strconv.Itoa(px), strconv.Itoa(py), "click", "1")
	}

	// The menu's rows, as Porthole lays them out, 17 pixels each under
	// wine: who, a line, one row per tunnel (admins-only, echo), a line,
	// Open all, Porthole..., Sign out, a line, Quit.
	mx, my, mh := menu()
	x("import", "-window", "root", filepath.Join(artifacts(), "tray-wine-menu.png"))
	click(mx+60, my+37+17) // the second tunnel: echo
	settings := w.path(`C:\users\` + currentUser() + `\AppData\Roaming\porthole\settings.json`)
	var port string
	deadline = time.Now().Add(30 * time.Second)
	for port == "" {
		if b, err := os.ReadFile(settings); err == nil {
			if m := regexp.MustCompile(`"echo":\s*\{[^}]*"localPort":\s*(\d+)`).FindSubmatch(b); m != nil {
				if c, err := net.DialTimeout("tcp", "127.0.0.1:"+string(m[1]), time.Second); err == nil {
					c.Close()
					port = string(m[1])
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("clicking the tunnel in the tray menu did not open it")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("clicked open"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "CLICKED OPEN" {
		t.Fatalf("through the tunnel the tray opened: %q", b)
	}

	mx, my, mh = menu()
	click(mx+60, my+mh-54) // Porthole...: the window
	deadline = time.Now().Add(20 * time.Second)
	for {
		if _, _, ww, wh, ok := geometry("Porthole"); ok && ww > 300 && wh > 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Porthole window did not show")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // let it draw
	x("import", "-window", "root", filepath.Join(artifacts(), "tray-wine-window.png"))
	// Out of the way of the tray icon (no window manager here to keep
	// the tray visible).
	x("xdotool", "search", "--onlyvisible", "--name", "^Porthole$", "windowmove", "250", "150")
	time.Sleep(500 * time.Millisecond)

	mx, my, mh = menu()
	click(mx+40, my+mh-12) // Quit
	done := make(chan error, 1)
	go func() { done <- tray.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the tray app did not end after Quit")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		c.Close()
		t.Fatal("the tunnel still listens after Quit")
	}
	_ = gateway
}

// artifacts is where screenshots go (scripts/test sets PORTHOLE_ARTIFACTS).
func artifacts() string {
	d := os.Getenv("PORTHOLE_ARTIFACTS")
	if d == "" {
		d = filepath.Join("..", "artifacts")
	}
	d = filepath.Join(d, "screenshots")
	os.MkdirAll(d, 0o755)
	return d
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// allowOthers sets "allowOtherUsers" in a settings.json, keeping the rest:
// the tests connect from Linux processes, which no Windows user owns.
func allowOthers(t *testing.T, path string) {
	t.Helper()
	m := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	m["allowOtherUsers"] = true
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
