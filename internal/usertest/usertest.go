// Package usertest connects to a local port as another user of the
// computer (nobody), for tests of who may use a tunnel's local port.
package usertest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
)

const script = `import socket,sys
s=socket.create_connection((sys.argv[1],int(sys.argv[2])))
d=b""
try:
    s.sendall(sys.argv[3].encode()); s.shutdown(socket.SHUT_WR)
    while True:
        b=s.recv(4096)
        if not b: break
        d+=b
except OSError:
    pass  # refused: the port closed the connection
print(d.decode(), end="")`

// RoundTripAsNobody connects to addr as the user nobody (runuser as root,
// else sudo -n), sends msg, half-closes and returns what came back.
func RoundTripAsNobody(t testing.TB, addr, msg string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("runuser", "-u", "nobody", "--", "python3", "-c", script, host, port, msg)
	if os.Getuid() != 0 {
		cmd = exec.Command("sudo", "-n", "-u", "nobody", "python3", "-c", script, host, port, msg)
	}
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("python as nobody: %v %s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("python as nobody: %v", err)
	}
	return string(out)
}
