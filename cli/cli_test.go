package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/tunnel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		// gokrb5's process-wide replay cache cleaner (the in-process
		// gateway's Kerberos sign-ins start it) never stops.
		goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.GetReplayCache.func1.1"),
		goleak.IgnoreAnyFunction("github.com/jcmturner/gokrb5/v8/service.VerifyAPREQ.GetReplayCache.func1.1"))
}

// startGateway runs a real gateway on loopback with a tunnel "echo" to an
// upper-casing target, and returns its URL.
func startGateway(t *testing.T) (string, *gatewaytest.Gateway) {
	t.Helper()
	gw := gatewaytest.Start(t)
	if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "echo", SocketAddress: gatewaytest.UpperAfterEOF(t), Description: "upper-casing echo"}); err != nil {
		t.Fatal(err)
	}
	return gw.URL, gw
}

type runner struct {
	t        *testing.T
	settings string
	tickets  tunnel.TicketStore
}

func newRunner(t *testing.T) *runner {
	dir := t.TempDir()
	return &runner{t: t, settings: filepath.Join(dir, "porthole", "settings.json"), tickets: &tunnel.FileStore{Path: filepath.Join(dir, "porthole", "tickets.json")}}
}

func (r *runner) run(ctx context.Context, stdin string, args ...string) (string, error) {
	var out bytes.Buffer
	err := Run(ctx, args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out, SettingsPath: r.settings, Tickets: r.tickets})
	return out.String(), err
}

func TestLoginListOpenLogout(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	out, err := r.run(t.Context(), "wrong-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin")
	if err == nil || !strings.Contains(err.Error(), "wrong user name or password") {
		t.Fatalf("wrong password: %v %s", err, out)
	}
	if _, err := r.run(t.Context(), "", "list"); err == nil || !strings.Contains(err.Error(), "porthole login") {
		t.Fatalf("list before login: %v", err)
	}
	out, err = r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin")
	if err != nil || !strings.Contains(out, "Signed in to "+url+" as admin") {
		t.Fatalf("login: %v %s", err, out)
	}
	out, err = r.run(t.Context(), "", "list")
	if err != nil || !strings.Contains(out, "echo") || !strings.Contains(out, "upper-casing echo") {
		t.Fatalf("list: %v %s", err, out)
	}
	out, err = r.run(t.Context(), "", "status")
	if err != nil || !strings.Contains(out, "admin@ROOT") {
		t.Fatalf("status: %v %s", err, out)
	}

	// open: bytes flow, then Ctrl-C closes everything within a second.
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	var out2 bytes.Buffer
	go func() {
		done <- Run(ctx, []string{"open", "echo:0"}, Env{Stdout: &out2, Stderr: &out2, SettingsPath: r.settings, Tickets: r.tickets,
			Ready: func(a []net.Addr) { ready <- a }})
	}()
	var addrs []net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("open ended: %v", err)
	}
	c, err := net.Dial("tcp", addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("through the cli"))
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "THROUGH THE CLI" {
		t.Fatalf("got %q", b)
	}
	idle, err := net.Dial("tcp", addrs[0].String()) // left open across Ctrl-C
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("open: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("open did not end on Ctrl-C")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Ctrl-C took %s to close everything", d)
	}
	if _, err := net.Dial("tcp", addrs[0].String()); err == nil {
		t.Fatal("still listening after Ctrl-C")
	}

	out, err = r.run(t.Context(), "", "logout")
	if err != nil || !strings.Contains(out, "Signed out") {
		t.Fatalf("logout: %v %s", err, out)
	}
	if _, err := r.run(t.Context(), "", "list"); err == nil || !strings.Contains(err.Error(), "porthole login") {
		t.Fatalf("list after logout: %v", err)
	}
}

func TestOpenRefusals(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	if _, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	tests := map[string]struct {
		args []string
		want string
		err  error
	}{
		"unknown tunnel": {[]string{"open", "nope"}, `there is no tunnel "nope"`, nil},
		"port in use":    {[]string{"open", "echo:" + itoa(port)}, "already used by", nil},
		"bad port":       {[]string{"open", "echo:x"}, "local port must be a number", ErrUsage},
		"nothing":        {[]string{"open"}, "at least one", ErrUsage},
		"unknown cmd":    {[]string{"frob"}, "unknown command", ErrUsage},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := r.run(t.Context(), "", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err %v is not %v", err, tc.err)
			}
		})
	}
}

func TestLoginWithoutTerminal(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	_, err := r.run(t.Context(), "", "login", "--gateway", url, "--user", "admin")
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("err %v", err)
	}
}

func TestSettingsPortIsUsed(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	if _, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s, _ := tunnel.LoadSettings(r.settings)
	s.Tunnels = map[string]tunnel.TunnelSettings{"echo": {LocalPort: port}}
	tunnel.SaveSettings(r.settings, s)
	out, _ := r.run(t.Context(), "", "list")
	if !strings.Contains(out, itoa(port)) {
		t.Fatalf("list does not show the user's port %d: %s", port, out)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"open", "echo"}, Env{Stdout: io.Discard, Stderr: io.Discard, SettingsPath: r.settings, Tickets: r.tickets,
			Ready: func(a []net.Addr) { ready <- a }})
	}()
	select {
	case a := <-ready:
		if a[0].(*net.TCPAddr).Port != port {
			t.Fatalf("opened on %s, want port %d", a[0], port)
		}
	case err := <-done:
		t.Fatalf("open: %v", err)
	}
	cancel()
	<-done
}

func itoa(n int) string { return strconv.Itoa(n) }

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startOpen runs porthole open in the background until the test ends and
// returns where it listens and its output.
func (r *runner) startOpen(args ...string) ([]net.Addr, *syncBuffer) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.t.Context())
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	out := &syncBuffer{}
	go func() {
		done <- Run(ctx, append([]string{"open"}, args...), Env{Stdout: out, Stderr: out, SettingsPath: r.settings, Tickets: r.tickets,
			Ready: func(a []net.Addr) { ready <- a }})
	}()
	r.t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-ready:
		return a, out
	case err := <-done:
		r.t.Fatalf("open ended: %v\n%s", err, out)
	}
	return nil, nil
}

// echoThrough sends msg through the local tunnel address and returns the
// answer, or the error the connection ended with.
func echoThrough(addr net.Addr, msg string) (string, error) {
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// After its ticket is revoked, a running porthole open uses the next
// sign-in made in another terminal, without a restart.
func TestOpenPicksUpANewSignIn(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	login := func() {
		t.Helper()
		if out, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
			t.Fatalf("login: %v %s", err, out)
		}
	}
	login()
	addrs, out := r.startOpen("echo:0")
	if got, err := echoThrough(addrs[0], "before"); got != "BEFORE" {
		t.Fatalf("before the sign-out: %q %v", got, err)
	}
	// Another terminal signs out: the session is revoked on the gateway.
	if o, err := r.run(t.Context(), "", "logout"); err != nil {
		t.Fatalf("logout: %v %s", err, o)
	}
	if got, _ := echoThrough(addrs[0], "refused"); got != "" {
		t.Fatalf("a revoked ticket still carried bytes: %q", got)
	}
	waitFor(t, "the refusal to be reported", func() bool { return strings.Contains(out.String(), "porthole login") }, out)
	// ... and signs in again: the running open carries on with it.
	login()
	if got, err := echoThrough(addrs[0], "after"); got != "AFTER" {
		t.Fatalf("after signing in again: %q %v\n%s", got, err, out)
	}
	if !strings.Contains(out.String(), "using the new sign-in of admin") {
		t.Fatalf("open did not say it uses the new sign-in:\n%s", out)
	}
}

// waitFor polls cond (a state another process or goroutine reaches) for
// up to ten seconds.
func waitFor(t *testing.T, what string, cond func() bool, extra ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what+"\n"+fmt.Sprint(extra...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --ca given as a relative path is kept as an absolute one, so the CLI
// run from another folder, and the tray, still find it.
func TestLoginKeepsTheCAPathAbsolute(t *testing.T) {
	dir := t.TempDir()
	cert, key := gatewaytest.WriteCert(t, dir)
	gw := gatewaytest.Start(t, func(c *gateway.Config) { c.TLSCert, c.TLSKey = cert, key })
	r := newRunner(t)
	t.Chdir(dir)
	if out, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", gw.URL, "--user", "admin", "--password-stdin", "--ca", "cert.pem"); err != nil {
		t.Fatalf("login: %v %s", err, out)
	}
	s, err := tunnel.LoadSettings(r.settings)
	if err != nil || s.CA != cert {
		t.Fatalf("settings keep ca %q (%v), want %q", s.CA, err, cert)
	}
	t.Chdir(t.TempDir())
	if out, err := r.run(t.Context(), "", "status"); err != nil || !strings.Contains(out, "Signed in") {
		t.Fatalf("status from another folder: %v %s", err, out)
	}
	if _, err := r.run(t.Context(), "", "login", "--gateway", gw.URL, "--user", "admin", "--password-stdin", "--ca", "missing.pem"); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("a missing CA file: %v", err)
	}
}

// open says at once when a tunnel's target does not answer, and porthole
// status in another terminal shows each tunnel's connections and last
// error; the error clears once a connection goes through again.
func TestOpenChecksTheTargetAndStatusShowsErrors(t *testing.T) {
	url, gw := startGateway(t)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close() // nothing listens there now: the target is down
	if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "db", SocketAddress: downAddr}); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t)
	if _, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	out, err := r.run(t.Context(), "", "status")
	if err != nil || !strings.Contains(out, "No porthole open is running.") {
		t.Fatalf("status before open: %v\n%s", err, out)
	}
	addrs, openOut := r.startOpen("db:0", "echo:0")
	// Scripts read "CONTEXT -> ADDR" alone on its line.
	if !regexp.MustCompile(`(?m)^echo -> 127\.0\.0\.1:\d+$`).MatchString(openOut.String()) {
		t.Fatalf("no line of its own for the tunnel:\n%s", openOut)
	}
	for _, want := range []string{"porthole: warning: db: Not reachable from the gateway: connection refused.", "\n  target: reachable in "} {
		if !strings.Contains(openOut.String(), want) {
			t.Fatalf("open output lacks %q:\n%s", want, openOut)
		}
	}
	// A database client's connection is refused with the reason, at once.
	if got, _ := echoThrough(addrs[0], "hello"); got != "" {
		t.Fatalf("a down target answered %q", got)
	}
	waitFor(t, "the refusal on the terminal", func() bool {
		return strings.Contains(openOut.String(), "porthole: db: the gateway refused the connection: ")
	}, openOut)
	var status string
	waitFor(t, "status to show the last error", func() bool {
		status, _ = r.run(t.Context(), "", "status")
		return strings.Contains(status, "last error at ") && strings.Contains(status, "connection refused")
	}, &status)
	for _, want := range []string{"Signed in to " + url, "porthole open (pid ", "db -> " + addrs[0].String(), "echo -> " + addrs[1].String()} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	// The administrator points the tunnel at a working database: the next
	// connection goes through and the error is gone.
	addr := gatewaytest.UpperAfterEOF(t)
	if _, err := gw.UpdateTunnel(t.Context(), "test", "db", gateway.TunnelPatch{SocketAddress: &addr}); err != nil {
		t.Fatal(err)
	}
	if got, err := echoThrough(addrs[0], "back"); got != "BACK" {
		t.Fatalf("after the target came back: %q %v", got, err)
	}
	waitFor(t, "status to drop the error", func() bool {
		status, _ = r.run(t.Context(), "", "status")
		return strings.Contains(status, "db -> ") && !strings.Contains(status, "last error")
	}, &status)
}

// A broken settings.json is reported with what was wrong and where the
// file went; a gateway that could still be read keeps the user signed in.
func TestBrokenSettings(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	if _, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	// Part of it broken: the gateway survives, so the ticket still counts.
	os.WriteFile(r.settings, []byte(`{"gateway": "`+url+`", "user": 7, "tunels": {}}`), 0o600)
	out, err := r.run(t.Context(), "", "list")
	if err != nil || !strings.Contains(out, "echo") {
		t.Fatalf("list with a partly broken file: %v\n%s", err, out)
	}
	kept, _ := filepath.Glob(r.settings + ".broken-*")
	for _, want := range []string{`"user" must be a string`, "kept as " + kept[0], "still used: gateway " + url, `tunels`} {
		if !strings.Contains(out, want) {
			t.Fatalf("warning lacks %q:\n%s", want, out)
		}
	}
	// Wholly broken: the user is told why the gateway is forgotten.
	os.WriteFile(r.settings, []byte(`{"gateway": "`+url+`",`), 0o600)
	out, err = r.run(t.Context(), "", "list")
	if err == nil || !strings.Contains(err.Error(), "settings.json was broken") || !strings.Contains(out, "is not valid JSON") || !strings.Contains(out, "kept as ") {
		t.Fatalf("list with a broken file: %v\n%s", err, out)
	}
	if kept, _ := filepath.Glob(r.settings + ".broken-*"); len(kept) != 2 {
		t.Fatalf("the two broken files were not both kept: %v", kept)
	}
}

// porthole passwd changes the user's own password; this computer stays
// signed in, and the new password is the one that signs in.
func TestPasswd(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	if _, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.run(t.Context(), "guess-guess\nnew-admin-password\n", "passwd", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "currentPassword is wrong") {
		t.Fatalf("wrong current password: %v", err)
	}
	if _, err := r.run(t.Context(), "admin-password\n", "passwd", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "new password") {
		t.Fatalf("no new password: %v", err)
	}
	if _, err := r.run(t.Context(), "", "passwd"); !errors.Is(err, ErrUsage) {
		t.Fatalf("no terminal: %v", err)
	}
	out, err := r.run(t.Context(), "admin-password\nnew-admin-password\n", "passwd", "--password-stdin")
	if err != nil || !strings.Contains(out, "Changed the password of admin") {
		t.Fatalf("passwd: %v %s", err, out)
	}
	if out, err := r.run(t.Context(), "", "status"); err != nil || !strings.Contains(out, "Signed in") {
		t.Fatalf("status after passwd: %v %s", err, out)
	}
	other := newRunner(t)
	if _, err := other.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err == nil {
		t.Fatal("the old password still signs in")
	}
	if _, err := other.run(t.Context(), "new-admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}
