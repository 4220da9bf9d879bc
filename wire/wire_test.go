package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsPair returns the two ends of a real WebSocket connection over loopback.
// The server end agrees to Subprotocol when the client asks for it.
func wsPair(t testing.TB, clientOpts, serverOpts Options) (client, server *websocket.Conn) {
	t.Helper()
	got := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{Subprotocols: []string{Subprotocol}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		got <- ws
	}))
	t.Cleanup(srv.Close)
	d := websocket.Dialer{Subprotocols: []string{Subprotocol}}
	cws, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	if cws.Subprotocol() != Subprotocol {
		t.Fatalf("subprotocol = %q", cws.Subprotocol())
	}
	return cws, <-got
}

func connPair(t testing.TB, opts Options) (client, server *Conn) {
	c, s := wsPair(t, opts, opts)
	opts.HalfClose = true
	client, server = NewConn(c, opts), NewConn(s, opts)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// tcpPair returns two ends of a real loopback TCP connection.
func tcpPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// tunnelFixture wires app <-> [pipe] <-> ws <-> [pipe] <-> target, the
// shape of a real tunnel: app is the local client's socket, target the
// server's. It returns app's and target's far ends and the pipes' results.
type tunnelFixture struct {
	app, target *net.TCPConn
	clientDone  chan pipeResult
	gatewayDone chan pipeResult
}

type pipeResult struct {
	st  Stats
	err error
}

func newTunnel(t testing.TB, ctx context.Context, opts Options) *tunnelFixture {
	t.Helper()
	appFar, appNear := tcpPair(t)
	targetNear, targetFar := tcpPair(t)
	cws, sws := connPair(t, opts)
	f := &tunnelFixture{app: appFar, target: targetFar, clientDone: make(chan pipeResult, 1), gatewayDone: make(chan pipeResult, 1)}
	go func() {
		st, err := Pipe(ctx, appNear, cws)
		f.clientDone <- pipeResult{st, err}
	}()
	go func() {
		st, err := Pipe(ctx, sws, targetNear)
		f.gatewayDone <- pipeResult{st, err}
	}()
	return f
}

func waitResult(t *testing.T, ch chan pipeResult) pipeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("pipe did not finish")
		return pipeResult{}
	}
}

func TestPipeHalfClose(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"small", 11},
		{"large", 16 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/client-finishes-first", func(t *testing.T) {
			f := newTunnel(t, t.Context(), Options{})
			data := make([]byte, tc.size)
			rand.Read(data)
			// The target reads to EOF, then answers with the digest: the
			// answer can only arrive if the FIN crossed the tunnel and the
			// other direction kept flowing.
			go func() {
				h := sha256.New()
				io.Copy(h, f.target)
				f.target.Write(h.Sum(nil))
				f.target.CloseWrite()
			}()
			go func() {
				f.app.Write(data)
				f.app.CloseWrite()
			}()
			got, err := io.ReadAll(f.app)
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			want := sha256.Sum256(data)
			if !bytes.Equal(got, want[:]) {
				t.Fatalf("digest mismatch: got %x want %x", got, want)
			}
			c, g := waitResult(t, f.clientDone), waitResult(t, f.gatewayDone)
			if c.err != nil || g.err != nil {
				t.Fatalf("pipe errors: client %v, gateway %v", c.err, g.err)
			}
			if c.st.AToB != int64(tc.size) || g.st.BToA != 32 {
				t.Fatalf("stats: client %+v gateway %+v", c.st, g.st)
			}
		})
		t.Run(tc.name+"/target-finishes-first", func(t *testing.T) {
			f := newTunnel(t, t.Context(), Options{})
			data := make([]byte, tc.size)
			rand.Read(data)
			// The target sends everything and shuts its writing; the app
			// reads to EOF and only then sends its digest back, which the
			// target must still receive.
			go func() {
				f.target.Write(data)
				f.target.CloseWrite()
			}()
			h := sha256.New()
			if _, err := io.Copy(h, f.app); err != nil {
				t.Fatalf("app read: %v", err)
			}
			f.app.Write(h.Sum(nil))
			f.app.CloseWrite()
			got, err := io.ReadAll(f.target)
			if err != nil {
				t.Fatalf("target read: %v", err)
			}
			want := sha256.Sum256(data)
			if !bytes.Equal(got, want[:]) {
				t.Fatalf("digest mismatch")
			}
			if c := waitResult(t, f.clientDone); c.err != nil {
				t.Fatalf("client pipe: %v", c.err)
			}
			if g := waitResult(t, f.gatewayDone); g.err != nil {
				t.Fatalf("gateway pipe: %v", g.err)
			}
		})
	}
}

func TestPipeSlowReader(t *testing.T) {
	f := newTunnel(t, t.Context(), Options{})
	data := make([]byte, 4<<20)
	rand.Read(data)
	go func() {
		f.target.Write(data)
		f.target.CloseWrite()
	}()
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for i := 0; ; i++ {
		if i%8 == 0 {
			time.Sleep(5 * time.Millisecond) // a reader that falls behind
		}
		n, err := f.app.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("slow reader got %d bytes, want %d identical", got.Len(), len(data))
	}
}

func TestPipeTargetResetReachesClient(t *testing.T) {
	f := newTunnel(t, t.Context(), Options{})
	f.target.SetLinger(0)
	f.target.Close() // RST
	g := waitResult(t, f.gatewayDone)
	if g.err == nil {
		t.Fatal("gateway pipe: want an error for a reset target")
	}
	c := waitResult(t, f.clientDone)
	var ce *CloseError
	if !errors.As(c.err, &ce) || ce.Code != ClosePeerError {
		t.Fatalf("client pipe error = %v, want CloseError %d", c.err, ClosePeerError)
	}
	// The app's socket is closed, not left hanging.
	f.app.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(f.app); err != nil && !IsConnReset(err) {
		t.Fatalf("app read: %v", err)
	}
}

func TestPipeCancelWithCause(t *testing.T) {
	gwCtx, cancel := context.WithCancelCause(t.Context())
	appFar, appNear := tcpPair(t)
	targetNear, _ := tcpPair(t)
	cws, sws := connPair(t, Options{})
	clientDone := make(chan error, 1)
	go func() {
		_, err := Pipe(t.Context(), appNear, cws)
		clientDone <- err
	}()
	gwDone := make(chan error, 1)
	go func() {
		_, err := Pipe(gwCtx, sws, targetNear)
		gwDone <- err
	}()
	cancel(&CloseError{Code: CloseForbidden, Reason: "access removed"})
	select {
	case err := <-clientDone:
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != CloseForbidden || ce.Reason != "access removed" {
			t.Fatalf("client saw %v, want the revocation reason", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client pipe still running after cancel")
	}
	<-gwDone
	appFar.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(appFar); err != nil && !IsConnReset(err) {
		t.Fatalf("app read: %v", err)
	}
}

func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	opts := Options{PingPeriod: 20 * time.Millisecond, PongWait: 150 * time.Millisecond}
	c, s := wsPair(t, opts, opts)
	defer s.Close()
	// The server end never reads, so it never answers pings: a dead peer.
	conn := NewConn(c, Options{PingPeriod: opts.PingPeriod, PongWait: opts.PongWait, HalfClose: true})
	defer conn.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 10))
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPeerTimeout) {
			t.Fatalf("read error = %v, want ErrPeerTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dead peer not detected")
	}
}

func TestKeepaliveKeepsLivePeer(t *testing.T) {
	// Pings every 50 ms, dead after 600 ms of silence: wide enough that a
	// loaded machine's scheduling stalls do not look like a dead peer.
	opts := Options{PingPeriod: 50 * time.Millisecond, PongWait: 600 * time.Millisecond}
	client, server := connPair(t, opts)
	// Both sides read (so pongs flow) but no data moves for many pong waits.
	errc := make(chan error, 2)
	for _, c := range []*Conn{client, server} {
		go func() {
			_, err := c.Read(make([]byte, 10))
			errc <- err
		}()
	}
	select {
	case err := <-errc:
		t.Fatalf("idle but live tunnel ended: %v", err)
	case <-time.After(2 * time.Second): // more than three pong waits
	}
	if _, err := client.Write([]byte("still here")); err != nil {
		t.Fatalf("write after idle: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("read after idle: %v", err)
	}
}

func TestBadMessages(t *testing.T) {
	tests := []struct {
		name     string
		send     func(ws *websocket.Conn) error
		wantCode int
	}{
		{"oversized", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.BinaryMessage, make([]byte, MaxMessageSize+1))
		}, CloseTooBig},
		{"unknown control", func(ws *websocket.Conn) error {
			return ws.WriteMessage(websocket.TextMessage, []byte("reboot"))
		}, CloseProtocolError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, s := wsPair(t, Options{}, Options{})
			conn := NewConn(s, Options{HalfClose: true})
			defer conn.Close()
			go tc.send(c)
			_, err := io.Copy(io.Discard, conn)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("read error = %v, want ErrProtocol", err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = c.ReadMessage()
			if !websocket.IsCloseError(err, tc.wantCode) {
				t.Fatalf("peer got %v, want close %d", err, tc.wantCode)
			}
		})
	}
}

func TestPlainPeerWithoutHalfClose(t *testing.T) {
	c, s := wsPair(t, Options{}, Options{})
	conn := NewConn(s, Options{}) // the peer did not ask for the subprotocol
	if err := c.WriteMessage(websocket.BinaryMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite without half-close: %v", err)
	}
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Fatal("write after full close succeeded")
	}
}

func TestPipeKeepsTheCause(t *testing.T) {
	p := &pipe{a: nopConn{}, b: nopConn{}}
	p.fail(fmt.Errorf("b -> a: write: %w", websocket.ErrCloseSent), ClosePeerError, "x")
	cause := fmt.Errorf("a -> b: read: %w: message larger than 1048576 bytes", ErrProtocol)
	p.fail(cause, ClosePeerError, "x")
	if p.firstError() != cause {
		t.Fatalf("kept %v, want the cause", p.firstError())
	}
	p.fail(fmt.Errorf("later: %w", websocket.ErrCloseSent), ClosePeerError, "x")
	if p.firstError() != cause {
		t.Fatalf("a consequence replaced the cause: %v", p.firstError())
	}
}

// nopConn is a net.Conn that does nothing, for pipe bookkeeping tests.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
