package mux

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/porthole/porthole/wire"
)

// BenchmarkSessionThroughput moves 64 MiB through one stream of a session
// over a real loopback WebSocket (no toxiproxy) and, as the baseline in the
// same run, through a plain TCP connection.
func BenchmarkSessionThroughput(b *testing.B) {
	const size = 64 << 20
	sink := func(c io.Reader) { io.Copy(io.Discard, c) }
	b.Run("tcp", func(b *testing.B) {
		addr := tcpServer(b, func(c net.Conn) { sink(c) })
		buf := make([]byte, 32<<10)
		b.SetBytes(size)
		for b.Loop() {
			c, _ := net.Dial("tcp", addr)
			for n := 0; n < size; n += len(buf) {
				c.Write(buf)
			}
			c.Close()
		}
	})
	b.Run("session", func(b *testing.B) {
		g := newTestGateway(b, Config{}, func(st *Stream, line string) {
			st.Write([]byte("OK\n"))
			sink(st)
			st.Close()
		})
		c, _, err := Dial(b.Context(), g.directDial(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 32<<10)
		b.SetBytes(size)
		for b.Loop() {
			st, _ := c.Open("x", "t")
			for n := 0; n < size; n += len(buf) {
				st.Write(buf)
			}
			st.CloseWrite()
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, st)
			st.Close()
		}
	})
}

// BenchmarkOpenRoundTrip opens a stream on a live session and waits for
// its first byte back (the gateway answers OK and echoes), against a new
// TCP connection's first round trip in the same run.
func BenchmarkOpenRoundTrip(b *testing.B) {
	one := func(c io.ReadWriter) {
		c.Write([]byte{1})
		var buf [1]byte
		io.ReadFull(c, buf[:])
	}
	b.Run("tcp", func(b *testing.B) {
		addr := tcpServer(b, func(c net.Conn) { io.Copy(c, c) })
		for b.Loop() {
			c, _ := net.Dial("tcp", addr)
			one(c)
			c.Close()
		}
	})
	b.Run("session", func(b *testing.B) {
		c := echoSession(b)
		for b.Loop() {
			st, _ := c.Open("x", "t")
			one(st)
			st.Close()
		}
	})
}

// BenchmarkRoundTrip64 sends 64 bytes and waits for them to come back on
// an open stream, against a TCP connection in the same run.
func BenchmarkRoundTrip64(b *testing.B) {
	ping := func(b *testing.B, c io.ReadWriter) {
		msg := make([]byte, 64)
		for b.Loop() {
			c.Write(msg)
			io.ReadFull(c, msg)
		}
	}
	b.Run("tcp", func(b *testing.B) {
		c, _ := net.Dial("tcp", tcpServer(b, func(c net.Conn) { io.Copy(c, c) }))
		defer c.Close()
		ping(b, c)
	})
	b.Run("session", func(b *testing.B) {
		st, _ := echoSession(b).Open("x", "t")
		defer st.Close()
		ping(b, st)
	})
}

// echoSession is a client session to a test gateway whose every stream
// answers OK and echoes, without toxiproxy.
func echoSession(b *testing.B) *Client {
	g := newTestGateway(b, Config{}, func(st *Stream, line string) {
		st.Write([]byte("OK\n"))
		io.Copy(st, st)
		st.Close()
	})
	c, _, err := Dial(b.Context(), g.directDial(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// tcpServer serves each connection with handle until the benchmark ends:
// the plain TCP baseline.
func tcpServer(b testing.TB, handle func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { handle(c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkTunnel measures a tunnel's whole shape on loopback: a program's
// TCP connection to the client's port, wire.Pipe into the tunnel, the
// gateway's wire.Pipe to a TCP echo server. "per-connection" carries each
// connection on a WebSocket of its own (porthole.v1), "session" on a
// stream of one session; both run in the same process and run.
func BenchmarkTunnel(b *testing.B) {
	for _, kind := range []string{"per-connection", "session"} {
		b.Run("rtt64/"+kind, func(b *testing.B) {
			c, err := net.Dial("tcp", tunnelTo(b, kind))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 64)
			for b.Loop() {
				c.Write(msg)
				if _, err := io.ReadFull(c, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("open/"+kind, func(b *testing.B) {
			addr := tunnelTo(b, kind)
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				var one [1]byte
				c.Write(one[:])
				if _, err := io.ReadFull(c, one[:]); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
		b.Run("throughput/"+kind, func(b *testing.B) {
			const size = 64 << 20
			c, err := net.Dial("tcp", tunnelTo(b, kind))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 128<<10)
			b.SetBytes(size)
			for b.Loop() {
				done := make(chan struct{})
				go func() {
					io.CopyN(io.Discard, c, size)
					close(done)
				}()
				for n := 0; n < size; n += len(buf) {
					c.Write(buf)
				}
				<-done
			}
		})
	}
}

// tunnelTo starts a TCP echo server, a gateway and a client of the given
// kind, and returns the client's local address.
func tunnelTo(b *testing.B, kind string) string {
	target := tcpServer(b, func(c net.Conn) { io.Copy(c, c) })
	dialTarget := func() net.Conn {
		t, err := net.Dial("tcp", target)
		if err != nil {
			b.Error(err)
			return nil
		}
		return t
	}
	var open func() (net.Conn, error)
	switch kind {
	case "session":
		g := newTestGateway(b, Config{}, func(st *Stream, line string) {
			t := dialTarget()
			st.Write([]byte("OK\n"))
			wire.Pipe(context.Background(), st, t)
		})
		c, _, err := Dial(b.Context(), g.directDial(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		open = func() (net.Conn, error) { return c.Open("x", "t") }
	default:
		up := &websocket.Upgrader{Subprotocols: []string{wire.Subprotocol}}
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			wire.Pipe(context.Background(), wire.NewConn(ws, wire.Options{HalfClose: true}), dialTarget())
		}))
		b.Cleanup(hs.Close)
		d := &websocket.Dialer{Subprotocols: []string{wire.Subprotocol}}
		open = func() (net.Conn, error) {
			ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
			if err != nil {
				return nil, err
			}
			return wire.NewConn(ws, wire.Options{HalfClose: true}), nil
		}
	}
	return tcpServer(b, func(local net.Conn) {
		up, err := open()
		if err != nil {
			b.Error(err)
			return
		}
		wire.Pipe(context.Background(), local, up)
	})
}
