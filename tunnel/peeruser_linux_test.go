package tunnel

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/internal/usertest"
)

func TestLocalPortsRefuseOtherUsers(t *testing.T) {
	e := newEnv(t)
	e.tunnel(gateway.TunnelSpec{Context: "echo", SocketAddress: e.target})
	var mu sync.Mutex
	var refusals []string
	m := newManager(t, e.admin, func(c *ManagerConfig) {
		c.OnConnError = func(_ string, err error) {
			mu.Lock()
			refusals = append(refusals, err.Error())
			mu.Unlock()
		}
	})
	f, err := m.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(t, f.Addr().String(), "mine"); err != nil || got != "MINE" {
		t.Fatalf("the user's own connection: %q %v", got, err)
	}
	if got := usertest.RoundTripAsNobody(t, f.Addr().String(), "theirs"); got != "" {
		t.Fatalf("another user's connection carried bytes: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(refusals)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refusals) != 1 || !strings.Contains(refusals[0], "opened by another user of this computer (uid 65534)") || !strings.Contains(refusals[0], "allowOtherUsers") {
		t.Fatalf("refusals: %q", refusals)
	}
	if f.Stats().Accepted != 2 {
		t.Fatalf("stats: %+v", f.Stats())
	}

	// With others allowed, the same connection goes through.
	shared := newManager(t, e.admin, func(c *ManagerConfig) { c.AllowOtherUsers = true })
	g, err := shared.Start(t.Context(), "echo", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got := usertest.RoundTripAsNobody(t, g.Addr().String(), "theirs"); got != "THEIRS" {
		t.Fatalf("with allowOtherUsers: %q", got)
	}
}

func TestSocketOwnerOfBothEnds(t *testing.T) {
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", network)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		owner, same, err := localPeerOwner(s)
		if err != nil || !same || owner != "uid "+itoa(os.Getuid()) {
			t.Fatalf("%s: %q %v %v", network, owner, same, err)
		}
		// A socket that does not exist is an error, never "same user".
		gone := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
		if _, err := socketUID(gone, gone); err == nil {
			t.Fatal("found an owner for a socket that does not exist")
		}
	}
}

func BenchmarkPeerOwner(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	c, _ := net.Dial("tcp", ln.Addr().String())
	defer c.Close()
	s, _ := ln.Accept()
	defer s.Close()
	for b.Loop() {
		if _, same, err := localPeerOwner(s); !same || err != nil {
			b.Fatal(err)
		}
	}
}
