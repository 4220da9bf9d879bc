package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/gatewaytest"
	"github.com/porthole/porthole/internal/toxitest"
)

// TestPsqlSurvivesAnOutage: one psql session through `porthole open`
// while the network between the client and the gateway is gone for 20
// seconds (toxiproxy closes every connection and refuses new ones, like a
// Wi-Fi switch or a laptop's sleep). The tunnel session resumes when the
// network is back; psql's connection, its server process and an open
// transaction carry on as if nothing happened.
func TestPsqlSurvivesAnOutage(t *testing.T) {
	addr, user, password, db := dbEnv(t, "PORTHOLE_TEST_POSTGRES")
	g := startGatewayProc(t)
	g.admin(t, "tunnel", "add", "pg", addr, "--groups", "admin@ROOT")
	network := toxitest.New(t, strings.TrimPrefix(g.url, "http://"))
	c := newClient(t)
	c.login(t, &gatewayProc{url: "http://" + network.Addr()}, "admin", "admin-password")
	o := c.start(t, "open", "pg:0")
	o.addrs["pg"] = o.out.wait(t, regexp.MustCompile(`^pg -> (\S+)$`), 30*time.Second)
	host, port, _ := net.SplitHostPort(o.addrs["pg"])

	cmd := exec.Command("psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", user, "-d", db)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	ask := func(sql string) string {
		t.Helper()
		fmt.Fprintln(stdin, sql)
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("psql ended before answering %q", sql)
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatalf("psql did not answer %q within 30 s", sql)
		}
		return ""
	}
	pid := ask("SELECT pg_backend_pid();")
	ask("BEGIN; CREATE TEMP TABLE kept (v text); INSERT INTO kept VALUES ('written before the outage'); SELECT 'ok';")

	network.Cut()
	time.Sleep(20 * time.Second)
	network.Restore()

	if got := ask("SELECT pg_backend_pid();"); got != pid {
		t.Fatalf("after the outage the server process is %q, was %q: the connection did not survive", got, pid)
	}
	if got := ask("SELECT v FROM kept; COMMIT;"); got != "written before the outage" {
		t.Fatalf("the open transaction after the outage: %q", got)
	}
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("psql: %v", err)
	}
	o.out.wait(t, regexp.MustCompile(`lost the connection to the gateway`), 5*time.Second)
	o.out.wait(t, regexp.MustCompile(`the connection to the gateway is back`), 5*time.Second)
	o.interrupt(t)
}

// TestCtrlCDuringAnOutage: Ctrl-C while the network is gone and a
// connection is in the middle of an upload (its bytes wait for the session
// to resume) still ends `porthole open` at once, its ports closed.
func TestCtrlCDuringAnOutage(t *testing.T) {
	g := startGatewayProc(t)
	g.admin(t, "tunnel", "add", "sink", gatewaytest.UpperAfterEOF(t), "--groups", "admin@ROOT")
	network := toxitest.New(t, strings.TrimPrefix(g.url, "http://"))
	c := newClient(t)
	c.login(t, &gatewayProc{url: "http://" + network.Addr()}, "admin", "admin-password")
	o := c.open(t, "sink:0")
	// Enough uploads at once to fill the session's window, not only each
	// stream's.
	const uploads = 24
	wrote := make(chan int64, uploads)
	for range uploads {
		conn, err := net.Dial("tcp", o.addrs["sink"])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			chunk := make([]byte, 64<<10)
			var n int64
			for {
				conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
				k, err := conn.Write(chunk)
				n += int64(k)
				if err != nil {
					wrote <- n
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	network.Cut()
	// The uploads stall once the session's window and the sockets are full.
	var total int64
	for range uploads {
		total += <-wrote
	}
	t.Logf("%d MiB written before the uploads stalled", total>>20)
	o.interrupt(t)
}
