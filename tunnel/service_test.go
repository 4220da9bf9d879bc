package tunnel

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/gateway/gatewaytest"
)

// TestReconnecting: when the gateway goes away, an open tunnel shows
// "reconnecting" (and keeps listening); when the gateway is back on the
// same address, it is open again by itself, and bytes flow.
func TestReconnecting(t *testing.T) {
	data := t.TempDir()
	target := gatewaytest.UpperAfterEOF(t)
	// start runs a gateway on addr over the same store (so the ticket stays
	// valid across restarts) and returns its address and how to stop it.
	start := func(addr string, first bool) (string, func()) {
		gw, err := gateway.New(t.Context(), gateway.Config{DataDir: data, AdminPassword: "admin-password", Logger: quietLogger(),
			PasswordCost: &gateway.HashParams{Memory: 1024, Time: 1, Threads: 1}, Announce: io.Discard}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- gw.Serve(ctx, ln) }()
		if first {
			if _, err := gw.CreateTunnel(t.Context(), "test", gateway.TunnelSpec{Context: "echo", SocketAddress: target}); err != nil {
				t.Fatal(err)
			}
		}
		return ln.Addr().String(), func() { cancel(); <-done; gw.Close() }
	}
	gwAddr, stop := start("127.0.0.1:0", true)
	dir := t.TempDir()
	changed := make(chan struct{}, 64)
	svc, err := NewService(ServiceConfig{SettingsPath: filepath.Join(dir, "settings.json"), Tickets: &FileStore{Path: filepath.Join(dir, "t.json")},
		Logger: quietLogger(), ProbePeriod: 50 * time.Millisecond, OnChange: func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(context.Background())
	if err := svc.SignIn(t.Context(), "http://"+gwAddr, "admin", "admin-password"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Open(t.Context(), "echo"); err != nil {
		t.Fatal(err)
	}
	state := func() TunnelView { return svc.Tunnels()[0] }
	local := state().Addr
	waitState := func(want State) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for state().State != want {
			select {
			case <-changed:
			case <-time.After(20 * time.Millisecond):
			case <-deadline:
				t.Fatalf("state %v, want %v", state().State, want)
			}
		}
	}
	stop() // the network drops, or the laptop sleeps
	c, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatalf("the tunnel stopped listening while the gateway was away: %v", err)
	}
	c.Close()
	waitState(Reconnecting)
	_, stop = start(gwAddr, false) // the gateway is back
	defer stop()
	waitState(Open)
	if got, err := roundTrip(t, local, "back again"); err != nil || got != "BACK AGAIN" {
		t.Fatalf("after reconnecting: %q %v", got, err)
	}
}
