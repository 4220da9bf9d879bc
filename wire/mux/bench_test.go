package mux

import (
	"io"
	"net"
	"testing"
	"time"
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
		g := newTestGateway(b, Config{}, func(st *Stream, line string) {
			st.Write([]byte("OK\n"))
			io.Copy(st, st)
			st.Close()
		})
		c, _, err := Dial(b.Context(), g.directDial(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
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
		g := newTestGateway(b, Config{}, func(st *Stream, line string) {
			st.Write([]byte("OK\n"))
			io.Copy(st, st)
			st.Close()
		})
		c, _, err := Dial(b.Context(), g.directDial(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		st, _ := c.Open("x", "t")
		defer st.Close()
		ping(b, st)
	})
}

// tcpServer serves each connection with handle until the benchmark ends:
// the plain TCP baseline.
func tcpServer(b *testing.B, handle func(net.Conn)) string {
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
