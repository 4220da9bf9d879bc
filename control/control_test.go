package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend is a Backend in memory (a unit test of this package; the
// real Service is tested in package tunnel and end to end).
type fakeBackend struct {
	mu   sync.Mutex
	open map[string]int
	next int
}

func (f *fakeBackend) Start(_ context.Context, name string, port int) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "secret" {
		return 0, false, errors.New("access denied: ask an administrator\nfor access")
	}
	if p, ok := f.open[name]; ok {
		return p, true, nil
	}
	if port == 0 {
		f.next++
		port = 20000 + f.next
	}
	f.open[name] = port
	return port, false, nil
}

func (f *fakeBackend) Stop(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, name)
	return nil
}

func (f *fakeBackend) StopAll() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.open)
	f.open = map[string]int{}
	return n, nil
}

func (f *fakeBackend) List() []Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Status
	for n, p := range f.open {
		out = append(out, Status{Context: n, State: "open", Port: p})
	}
	return out
}

func (f *fakeBackend) isOpen(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.open[name]
	return ok
}

func serve(t *testing.T) (*fakeBackend, func() *client) {
	t.Helper()
	t.Setenv("PORTHOLE_CONTROL", filepath.Join(t.TempDir(), "run", "control.sock"))
	ln, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{open: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Backend: fb}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return fb, func() *client {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &client{t: t, c: c, r: bufio.NewReader(c)}
	}
}

type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (c *client) ask(req string) string {
	c.t.Helper()
	fmt.Fprintf(c.c, "%s\n", req)
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: %v", req, err)
	}
	return strings.TrimRight(line, "\n")
}

func TestProtocol(t *testing.T) {
	fb, dial := serve(t)
	c := dial()
	for _, tc := range []struct{ req, want string }{
		{"HELLO", "OK porthole-control 1"},
		{"START mysql", "OK 20001"},
		{"START mysql", "OK 20001"},
		{"start pg 15432", "OK 15432"},
		{"START secret", "ERR access denied: ask an administrator for access"},
		{"START x 70000", `ERR port "70000": write a number from 1 to 65535 (or 0 for the tunnel's usual port)`},
		{"START", "ERR usage: START <context> [<port>] [HOLD]"},
		{"STOP", "ERR usage: STOP <context>"},
		{"", "ERR empty request: send HELLO, START, STOP, STOPALL or LIST"},
		{"DROP TABLE", `ERR unknown request "DROP": send HELLO, START, STOP, STOPALL or LIST`},
		{"STOP pg", "OK"},
		{"LIST", "OK 1"},
	} {
		if got := c.ask(tc.req); got != tc.want {
			t.Fatalf("%q -> %q, want %q", tc.req, got, tc.want)
		}
	}
	if got, _ := c.r.ReadString('\n'); got != "mysql open 20001\n" {
		t.Fatalf("LIST line %q", got)
	}
	if got := c.ask("STOPALL"); got != "OK 1" || fb.isOpen("mysql") {
		t.Fatalf("STOPALL -> %q", got)
	}
	// A line over 1 KiB is refused and the connection closed.
	fmt.Fprintf(c.c, "START %s\n", strings.Repeat("a", 2000))
	line, _ := c.r.ReadString('\n')
	if !strings.Contains(line, "longer than 1024") {
		t.Fatalf("long line: %q", line)
	}
}

func TestHoldClosesWhenTheProgramGoes(t *testing.T) {
	fb, dial := serve(t)
	a, b := dial(), dial()
	if got := a.ask("START mysql 0 HOLD"); got != "OK 20001" {
		t.Fatal(got)
	}
	if got := b.ask("START mysql HOLD"); got != "OK 20001" {
		t.Fatal(got)
	}
	a.c.Close()
	time.Sleep(100 * time.Millisecond) // a is gone; b still holds it
	if !fb.isOpen("mysql") {
		t.Fatal("closed while another program still held it")
	}
	b.c.Close() // the last holder exits: closed
	deadline := time.Now().Add(5 * time.Second)
	for fb.isOpen("mysql") {
		if time.Now().After(deadline) {
			t.Fatal("the tunnel outlived the programs that held it")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A tunnel the user opened before is never closed by a program that
	// held it.
	c := dial()
	c.ask("START pg")
	d := dial()
	if got := d.ask("START pg HOLD"); got != "OK 20002" {
		t.Fatal(got)
	}
	d.c.Close()
	time.Sleep(100 * time.Millisecond)
	if !fb.isOpen("pg") {
		t.Fatal("a program closed a tunnel it did not open")
	}
}

func TestEndpointIsPrivate(t *testing.T) {
	_, dial := serve(t)
	dial().ask("HELLO")
	fi, err := os.Stat(Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	dir, _ := os.Stat(filepath.Dir(Path()))
	if dir.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v, want 0700", dir.Mode().Perm())
	}
	if _, err := Listen(); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second server: %v, want ErrRunning", err)
	}
}
