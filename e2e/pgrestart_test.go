package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/gatewaytest"
)

// privatePostgres is a PostgreSQL server of this test's own (Debian's
// binaries, a data folder in a temp dir), so the test may stop and start
// it without disturbing others.
type privatePostgres struct {
	bin, dir, port string
	as             []string // runuser -u postgres --, when root
}

func (p *privatePostgres) ctl(t *testing.T, args ...string) {
	t.Helper()
	argv := append(append(append([]string{}, p.as...), filepath.Join(p.bin, "pg_ctl"), "-D", p.dir), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("PORTHOLE_REQUIRE_DB") != "" {
			t.Fatal("PostgreSQL's server binaries are missing although scripts/test installs them")
		}
		t.Skip("no PostgreSQL server binaries: run scripts/test")
	}
	p := &privatePostgres{bin: filepath.Dir(bins[len(bins)-1])}
	// Not t.TempDir(): its parent is private to root, and the server runs
	// as postgres.
	root, err := os.MkdirTemp("", "porthole-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	p.dir = filepath.Join(root, "pg")
	os.Mkdir(p.dir, 0o700)
	if os.Geteuid() == 0 {
		p.as = []string{"runuser", "-u", "postgres", "--"}
		exec.Command("chown", "-R", "postgres", root).Run()
	}
	pw := filepath.Join(root, "pw")
	os.WriteFile(pw, []byte("pg-restart-test"), 0o644)
	initdb := append(append([]string{}, p.as...), filepath.Join(p.bin, "initdb"), "-D", p.dir, "-A", "scram-sha-256", "-U", "porthole", "--pwfile="+pw)
	if out, err := exec.Command(initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	p.port = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	p.start(t)
	t.Cleanup(func() {
		cmd := append(append([]string{}, p.as...), filepath.Join(p.bin, "pg_ctl"), "-D", p.dir, "-m", "immediate", "stop")
		exec.Command(cmd[0], cmd[1:]...).Run()
	})
	return p
}

func (p *privatePostgres) start(t *testing.T) {
	t.Helper()
	p.ctl(t, "-w", "-l", filepath.Join(p.dir, "server.log"), "-o", "-p "+p.port+" -k "+p.dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
}

// TestPostgresRestart: the gateway's PostgreSQL goes away under a live
// tunnel and comes back. The tunnel keeps flowing, /healthz says degraded
// meanwhile, and afterwards the gateway works again without a restart.
func TestPostgresRestart(t *testing.T) {
	pg := startPrivatePostgres(t)
	store := "postgres://porthole:pg-restart-test@127.0.0.1:" + pg.port + "/postgres?sslmode=disable"
	g := startGatewayOn(t, "gateway", store)
	g.admin(t, "tunnel", "add", "echo", gatewaytest.UpperEcho(t), "--groups", "admin@ROOT", "--config", filepath.Join(g.data, "gateway.json"))
	c := newClient(t)
	c.login(t, g, "admin", "admin-password")
	o := c.open(t, "echo:0")
	live, err := net.Dial("tcp", o.addrs["echo"])
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	echo := func(msg string) {
		t.Helper()
		live.SetDeadline(time.Now().Add(10 * time.Second))
		live.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(live, buf); err != nil || string(buf) != strings.ToUpper(msg) {
			t.Fatalf("live tunnel %q: %q %v", msg, buf, err)
		}
	}
	echo("before")
	health := func() (int, string) {
		resp, err := http.Get(g.url + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	pg.ctl(t, "-m", "fast", "-w", "stop")
	waitUntil(t, "healthz to say degraded", func() bool {
		code, body := health()
		return code == 503 && strings.Contains(body, "degraded")
	})
	echo("while the store is down")

	pg.start(t)
	waitUntil(t, "healthz to recover", func() bool { code, _ := health(); return code == 200 })
	echo("after")
	// New sign-ins and tunnels work again.
	if got := roundTrip(t, o.addrs["echo"], "new connection"); got != "NEW CONNECTION" {
		t.Fatalf("a new connection after the restart: %q", got)
	}
	loginAPI(t, g, "admin", "admin-password")
	o.interrupt(t)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
