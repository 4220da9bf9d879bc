package mux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/internal/toxitest"
	"github.com/porthole/porthole/wire"
)

// testGateway serves sessions the way the gateway does, with handle
// deciding each OPEN.
type testGateway struct {
	srv   *Server
	hs    *httptest.Server
	proxy *toxitest.Proxy
}

func echo(st *Stream, line string) {
	if !strings.HasPrefix(line, "OPEN echo ") {
		b, _ := json.Marshal(Refusal{Status: http.StatusNotFound, Message: fmt.Sprintf("there is no tunnel %q", strings.Fields(line)[1]), Code: "not_found"})
		st.Write(append(b, '\n'))
		st.Close()
		return
	}
	st.Write([]byte("OK\n"))
	io.Copy(st, st)
	st.CloseWrite()
	io.Copy(io.Discard, st)
	st.Close()
}

func newTestGateway(t testing.TB, cfg Config, handle func(*Stream, string)) *testGateway {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	g := &testGateway{srv: NewServer(cfg)}
	up := &websocket.Upgrader{Subprotocols: []string{wire.MuxSubprotocol}, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	g.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, isNew, err := g.srv.Upgrade(w, r, up, r.Header.Get("X-Owner"))
		switch {
		case errors.Is(err, ErrUnknownSession):
			w.WriteHeader(http.StatusGone)
			return
		case err != nil && !Answered(err):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil:
			return
		}
		if isNew {
			go ss.Serve(handle)
		}
	}))
	t.Cleanup(func() {
		g.srv.Close()
		g.hs.Close()
	})
	g.proxy = toxitest.New(t, g.hs.Listener.Addr().String())
	return g
}

func (g *testGateway) dial(owner string) DialFunc {
	d := &websocket.Dialer{Subprotocols: []string{wire.MuxSubprotocol}, HandshakeTimeout: 5 * time.Second}
	return func(ctx context.Context, h http.Header) (*websocket.Conn, *http.Response, error) {
		h.Set("X-Owner", owner)
		return d.DialContext(ctx, "ws://"+g.proxy.Addr()+"/", h)
	}
}

// directDial dials the test gateway without toxiproxy.
func (g *testGateway) directDial() DialFunc {
	d := &websocket.Dialer{Subprotocols: []string{wire.MuxSubprotocol}, HandshakeTimeout: 5 * time.Second,
		ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	return func(ctx context.Context, h http.Header) (*websocket.Conn, *http.Response, error) {
		h.Set("X-Owner", "alice")
		return d.DialContext(ctx, "ws://"+g.hs.Listener.Addr().String()+"/", h)
	}
}

func (g *testGateway) client(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, _, err := Dial(context.Background(), g.dial("alice"), cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// waitFor waits until cond holds (checked every millisecond).
func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// roundTrip sends n random bytes on a new echo stream, half-closes, and
// checks that exactly those bytes come back before the end.
func roundTrip(t *testing.T, c *Client, n int, during func(echoed func() int64)) {
	t.Helper()
	st, err := c.Open("echo", "ticket")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer st.Close()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += 64 << 10 {
			if _, err := st.Write(data[off:min(off+64<<10, len(data))]); err != nil {
				werr <- err
				return
			}
		}
		werr <- st.CloseWrite()
	}()
	var echoed atomic.Int64
	if during != nil {
		go during(echoed.Load)
	}
	got, err := io.ReadAll(countReader{st, &echoed})
	if err != nil {
		t.Fatalf("read after %d bytes: %v", len(got), err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("the echo differs: sent %d bytes, got %d", len(data), len(got))
	}
}

func TestStreamsShareOneSession(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			roundTrip(t, c, 100_000+i*50_000, nil)
		}()
	}
	wg.Wait()
	if g.srv.Len() != 1 {
		t.Fatalf("the gateway holds %d sessions, want 1", g.srv.Len())
	}
	if c.Resumes() != 0 {
		t.Fatalf("resumed %d times on a clean link", c.Resumes())
	}
}

func TestRefusalAndReason(t *testing.T) {
	done := make(chan struct{})
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		if strings.HasPrefix(line, "OPEN revoked ") {
			st.Write([]byte("OK\nhello"))
			<-done
			st.CloseWith(wire.CloseForbidden, "access to tunnel \"revoked\" was removed")
			return
		}
		echo(st, line)
	})
	c := g.client(t, Config{})

	st, err := c.Open("nosuch", "ticket")
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("first bytes travel with the open"))
	_, err = st.Read(make([]byte, 10))
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Status != http.StatusNotFound || ref.Code != "not_found" || ref.Message != `there is no tunnel "nosuch"` {
		t.Fatalf("refusal: got %#v (%v)", ref, err)
	}

	st, err = c.Open("revoked", "ticket")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(st, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	close(done)
	_, err = st.Read(buf)
	var ce *wire.CloseError
	if !errors.As(err, &ce) || ce.Code != wire.CloseForbidden || !strings.Contains(ce.Reason, "was removed") {
		t.Fatalf("after the gateway ended the stream: %v", err)
	}
	if _, err := st.Write([]byte("x")); err == nil {
		t.Fatal("a write after the gateway ended the stream succeeded")
	}
	// The session itself lives on.
	roundTrip(t, c, 1000, nil)
}

func TestHalfCloseKeepsTheOtherDirection(t *testing.T) {
	// The gateway answers only after the client has finished sending, and
	// keeps sending for a while after that: nothing may be cut short.
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		st.Write([]byte("OK\n"))
		n, _ := io.Copy(io.Discard, st)
		for range 50 {
			fmt.Fprintf(st, "got %d\n", n)
			time.Sleep(2 * time.Millisecond)
		}
		st.CloseWrite()
	})
	c := g.client(t, Config{})
	st, err := c.Open("x", "t")
	if err != nil {
		t.Fatal(err)
	}
	st.Write(bytes.Repeat([]byte("q"), 12345))
	st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("got 12345\n", 50); string(got) != want {
		t.Fatalf("got %q", got)
	}
}

func TestResumeAfterCuts(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	const size = 24 << 20
	roundTrip(t, c, size, func(echoed func() int64) {
		// Three cuts, at a quarter, a half and three quarters of the echo.
		for i := range int64(3) {
			waitFor(func() bool { return echoed() >= (i+1)*size/4 })
			g.proxy.Cut()
			time.Sleep(300 * time.Millisecond)
			g.proxy.Restore()
		}
	})
	if c.Resumes() < 1 {
		t.Fatal("the session never resumed, so the cuts missed the transfer")
	}
	t.Logf("resumed %d times", c.Resumes())
}

func TestResumeAfterSilentOutage(t *testing.T) {
	// A link that stops carrying anything without closing (a sleeping
	// laptop, a dead Wi-Fi): the keepalive notices, the client dials again.
	cfg := Config{PingPeriod: 200 * time.Millisecond, PongWait: 800 * time.Millisecond}
	g := newTestGateway(t, cfg, echo)
	c := g.client(t, cfg)
	st, err := c.Open("echo", "t")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check := func(msg, want string) {
		t.Helper()
		st.Write([]byte(msg))
		buf := make([]byte, len(want))
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(st, buf); err != nil || string(buf) != want {
			t.Fatalf("echo of %q: %q, %v", want, buf, err)
		}
	}
	check("before", "before")
	silent := g.proxy.Add("timeout", "downstream", `"timeout": 0`)
	st.Write([]byte("sent into the silence; "))
	time.Sleep(2 * time.Second)
	g.proxy.Remove(silent)
	check("after", "sent into the silence; after")
	if c.Resumes() < 1 {
		t.Fatal("no resume after the silent outage")
	}
}

func TestResumeAfterResets(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	roundTrip(t, c, 8<<20, func(echoed func() int64) {
		waitFor(func() bool { return echoed() >= 1<<20 })
		reset := g.proxy.Add("reset_peer", "upstream", `"timeout": 50`)
		time.Sleep(400 * time.Millisecond)
		g.proxy.Remove(reset)
	})
	if c.Resumes() < 1 {
		t.Fatal("no resume after the resets")
	}
}

func TestSlowLink(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	g.proxy.Add("bandwidth", "downstream", `"rate": 2000`) // KB/s
	g.proxy.Latency(5)
	c := g.client(t, Config{Window: 512 << 10, StreamWindow: 256 << 10})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			roundTrip(t, c, 600_000, nil)
		}()
	}
	wg.Wait()
}

func TestResumeLimit(t *testing.T) {
	cfg := Config{ResumeLimit: time.Second}
	g := newTestGateway(t, cfg, echo)
	c := g.client(t, cfg)
	st, err := c.Open("echo", "t")
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	io.ReadFull(st, make([]byte, 1))
	g.proxy.Cut()
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = st.Read(make([]byte, 1))
	var ce *wire.CloseError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "longer than the resume limit") {
		t.Fatalf("read after the limit: %v", err)
	}
	if !errors.Is(c.Err(), ErrLinkExpired) {
		t.Fatalf("session error: %v", c.Err())
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.srv.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g.srv.Len() != 0 {
		t.Fatal("the gateway still holds the expired session")
	}
	if _, err := c.Open("echo", "t"); err == nil {
		t.Fatal("opened a stream on an expired session")
	}
}

func TestSessionGone(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	roundTrip(t, c, 100, nil)
	// A restarted gateway knows no sessions.
	g.srv.mu.Lock()
	old := g.srv.sessions
	g.srv.sessions = map[string]*ServerSession{}
	g.srv.mu.Unlock()
	defer func() {
		for _, ss := range old {
			ss.Close()
		}
	}()
	g.proxy.Cut()
	g.proxy.Restore()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
	if !errors.Is(c.Err(), ErrSessionGone) {
		t.Fatalf("err = %v", c.Err())
	}
}

func TestDeliberateEndsAreFinal(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	roundTrip(t, c, 100, nil)
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for g.srv.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g.srv.Len() != 0 {
		t.Fatal("the gateway keeps a session its client closed, waiting for a resume")
	}

	c = g.client(t, Config{})
	st, err := c.Open("echo", "t")
	if err != nil {
		t.Fatal(err)
	}
	g.srv.Close() // the gateway shuts down
	_, err = st.Read(make([]byte, 1))
	var ce *wire.CloseError
	if !errors.As(err, &ce) || ce.Code != wire.CloseGoingAway {
		t.Fatalf("read after the gateway closed the session: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the client keeps trying to resume a session the gateway ended")
	}
	if c.Resumes() != 0 {
		t.Fatalf("resumed %d times", c.Resumes())
	}
}

func TestResumeBySomeoneElseIsRefused(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	h := http.Header{}
	h.Set(SessionHeader, c.ID())
	h.Set(ReceivedHeader, "0")
	_, resp, err := g.dial("mallory")(context.Background(), h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusGone {
		t.Fatalf("resume by another user: %v %v", resp, err)
	}
	roundTrip(t, c, 1000, nil) // and alice's session is untouched
}

func TestBadResumeCounts(t *testing.T) {
	g := newTestGateway(t, Config{}, echo)
	c := g.client(t, Config{})
	roundTrip(t, c, 1000, nil)
	for _, received := range []string{"lots", "-1", "99999999"} {
		h := http.Header{}
		h.Set(SessionHeader, c.ID())
		h.Set(ReceivedHeader, received)
		ws, resp, err := g.dial("alice")(context.Background(), h)
		if received == "99999999" {
			// Well formed but beyond what the client could have: the
			// gateway cannot resume that, and ends the session.
			if err == nil {
				ws.Close()
			}
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("a resume from a byte never sent kept the session")
			}
			continue
		}
		if err == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("Received %q: %v %v", received, resp, err)
		}
	}
}

func TestLinkRejectsBadFrames(t *testing.T) {
	l := newLink(1<<20, time.Second, 5*time.Second, nil)
	defer l.Close()
	if err := l.acked(10, 0); err == nil {
		t.Fatal("an acknowledgement of bytes never sent was accepted")
	}
	if err := l.receive(bytes.NewReader(make([]byte, maxFrame+1)), 0); err == nil {
		t.Fatal("a frame over the limit was accepted")
	}
	if err := l.attach(nil, 5); err == nil {
		t.Fatal("a resume from byte 5 of an empty link was accepted")
	}
}

func TestOpenLineLimits(t *testing.T) {
	got := make(chan string, 1)
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		if strings.HasPrefix(line, "OPEN echo ") {
			echo(st, line)
			return
		}
		got <- line
		st.Close()
	})
	c := g.client(t, Config{})
	st, err := c.open()
	if err != nil {
		t.Fatal(err)
	}
	st.Write(bytes.Repeat([]byte("x"), maxHeaderLine+100))
	select {
	case l := <-got:
		t.Fatalf("a %d-byte line was accepted", len(l))
	case <-time.After(500 * time.Millisecond):
	}
	_, err = st.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("the stream with an over-long line stayed open")
	}
	roundTrip(t, c, 10, nil)
	var _ net.Conn = (*Stream)(nil)
}

func TestRetryWithANewTicketKeepsTheFirstBytes(t *testing.T) {
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		if strings.HasSuffix(line, " old") {
			b, _ := json.Marshal(Refusal{Status: http.StatusUnauthorized, Message: "your session was ended"})
			st.Write(append(b, '\n'))
			st.Close()
			return
		}
		echo(st, "OPEN echo new")
	})
	c := g.client(t, Config{})
	st, err := c.Open("echo", "old")
	if err != nil {
		t.Fatal(err)
	}
	var asked []int
	st.Retry = func(r *Refusal) (string, bool) {
		asked = append(asked, r.Status)
		return "new", true
	}
	st.Write([]byte("first bytes, "))
	st.Write([]byte("written before the answer"))
	st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "first bytes, written before the answer" {
		t.Fatalf("got %q, %v", got, err)
	}
	if len(asked) != 1 || asked[0] != http.StatusUnauthorized {
		t.Fatalf("Retry asked %v", asked)
	}

	// A retry that gives no ticket: the refusal is the answer.
	st, _ = c.Open("echo", "old")
	st.Retry = func(*Refusal) (string, bool) { return "", false }
	_, err = st.Read(make([]byte, 1))
	var ref *Refusal
	if !errors.As(err, &ref) || ref.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v", err)
	}
}

func TestAStreamThatIsNotReadStopsOnlyItself(t *testing.T) {
	release := make(chan struct{})
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		if strings.HasPrefix(line, "OPEN stall ") {
			st.Write([]byte("OK\n"))
			<-release // reads nothing until released
			io.Copy(io.Discard, st)
			st.Close()
			return
		}
		echo(st, line)
	})
	c := g.client(t, Config{})
	stalled, err := c.Open("stall", "t")
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20 // past the stream's window and the link's
	wrote := make(chan error, 1)
	go func() {
		_, err := stalled.Write(make([]byte, size))
		if err == nil {
			err = stalled.CloseWrite()
		}
		wrote <- err
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-wrote:
		t.Fatalf("%d bytes went into a stream nobody reads (%v): no flow control", size, err)
	default:
	}
	// The session's other streams flow meanwhile.
	roundTrip(t, c, 2<<20, nil)
	close(release)
	if err := <-wrote; err != nil {
		t.Fatalf("the stalled stream's write, once read: %v", err)
	}
	stalled.Close()
}

// TestDeliveryToASlowSocket pipes a session's stream to a TCP server that
// reads slowly, the gateway's shape: what the socket does not take at once
// waits in the stream, in order, and the end follows the last byte.
func TestDeliveryToASlowSocket(t *testing.T) {
	target := tcpServer(t, func(c net.Conn) {
		h := sha256.New()
		buf := make([]byte, 16<<10)
		for {
			n, err := c.Read(buf)
			h.Write(buf[:n])
			if err != nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		c.Write(h.Sum(nil))
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		tc, err := net.Dial("tcp", target)
		if err != nil {
			st.CloseWith(wire.ClosePeerError, err.Error())
			return
		}
		st.Write([]byte("OK\n"))
		wire.Pipe(context.Background(), st, tc)
	})
	c := g.client(t, Config{StreamWindow: 256 << 10})
	st, err := c.Open("slow", "t")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	var got bytes.Buffer
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, _, err := st.DeliverTo(&got); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(got.Bytes(), want[:]) {
		t.Fatalf("the slow socket's digest is %x, want %x", got.Bytes(), want)
	}
}

func TestStreamRecordsThatBreakTheProtocol(t *testing.T) {
	cases := []struct {
		name  string
		apply func(s *session) error
	}{
		{"more than the window", func(s *session) error {
			s.opened(1)
			return s.apply(recordData, 1, make([]byte, initialWindow+1))
		}},
		{"a stream opened twice", func(s *session) error {
			s.opened(1)
			return s.opened(1)
		}},
		{"a close without a code", func(s *session) error {
			s.opened(1)
			return s.apply(recordClose, 1, nil)
		}},
		{"a window offer without a count", func(s *session) error {
			s.opened(1)
			return s.apply(recordWindow, 1, []byte{0x80})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(Config{StreamWindow: initialWindow}.withDefaults(), nil, true)
			defer s.link.Close()
			if err := tc.apply(s); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// Records for a stream closed here are dropped, not errors.
	s := newSession(Config{}.withDefaults(), nil, true)
	defer s.link.Close()
	if err := s.apply(recordData, 7, []byte("late")); err != nil {
		t.Fatal(err)
	}
	// The client does not take streams opened by the gateway.
	cs := newSession(Config{}.withDefaults(), nil, false)
	defer cs.link.Close()
	if err := cs.apply(recordOpen, 2, nil); err == nil {
		t.Fatal("the client took a stream the gateway opened")
	}
}

func TestStreamDeadlines(t *testing.T) {
	release := make(chan struct{})
	g := newTestGateway(t, Config{}, func(st *Stream, line string) {
		if strings.HasPrefix(line, "OPEN stall ") {
			st.Write([]byte("OK\n"))
			<-release
			st.Close()
			return
		}
		echo(st, line)
	})
	defer close(release)
	c := g.client(t, Config{})
	st, err := c.Open("echo", "t")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A read deadline ends a wait with os.ErrDeadlineExceeded; cleared,
	// the stream reads on.
	st.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	st.SetReadDeadline(time.Time{})
	st.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(st, b); err != nil || b[0] != 'x' {
		t.Fatalf("after the deadline was cleared: %q, %v", b, err)
	}

	// A write deadline ends a wait for the window of a stream nobody reads.
	stalled, err := c.Open("stall", "t")
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.Read(nil) // takes the answer (and returns at once): writes are no longer kept for a retry
	stalled.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := stalled.Write(make([]byte, 4<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= 4<<20 {
		t.Fatalf("a write into a full window past its deadline: %d bytes, %v", n, err)
	}
}
