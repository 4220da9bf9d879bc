package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the protocol version HELLO answers.
const Version = 1

// maxLine bounds a request line.
const maxLine = 1024

// Backend opens and closes tunnels; *tunnel.Service is one (through an
// adapter in package tunnel).
type Backend interface {
	// Start opens the tunnel (on port, or its usual one when 0) or finds
	// it open, and returns its local port and whether it was open before.
	Start(ctx context.Context, context string, port int) (got int, wasOpen bool, err error)
	Stop(context string) error
	// StopAll closes every open tunnel and says how many there were.
	StopAll() (int, error)
	List() []Status
}

// Status is one tunnel in LIST.
type Status struct {
	Context string
	State   string // "open", "closed", "reconnecting", "error"
	Port    int
}

// Server answers control connections.
type Server struct {
	Backend Backend
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// mu guards holds and conns.
	mu    sync.Mutex
	holds map[string]map[*session]bool // tunnel (lower case) -> holders
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

type session struct {
	conn net.Conn
	held map[string]string // lower case -> as written
}

// Serve answers connections on ln until ctx is done, then closes ln and
// every connection and waits for them. Serve always closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.mu.Lock()
	s.holds, s.conns = map[string]map[*session]bool{}, map[net.Conn]bool{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer s.wg.Wait()
	defer func() {
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		if err := peerAllowed(c); err != nil {
			s.Logger.Warn("control: refused a connection", "err", err)
			fmt.Fprintf(c, "ERR %s\n", err)
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() { s.handle(ctx, c) })
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	se := &session{conn: c, held: map[string]string{}}
	defer func() {
		c.Close()
		s.release(se)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	r := bufio.NewReaderSize(c, maxLine+1)
	for {
		line, err := readLine(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				fmt.Fprintf(c, "ERR %s\n", err)
			}
			return
		}
		answer := s.do(ctx, se, line)
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
	}
}

var errLineTooLong = fmt.Errorf("the request is longer than %d bytes", maxLine)

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// do answers one request.
func (s *Server) do(ctx context.Context, se *session, line string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "ERR empty request: send HELLO, START, STOP, STOPALL or LIST\n"
	}
	switch strings.ToUpper(f[0]) {
	case "HELLO":
		return fmt.Sprintf("OK porthole-control %d\n", Version)
	case "START":
		if len(f) < 2 || len(f) > 4 {
			return "ERR usage: START <context> [<port>] [HOLD]\n"
		}
		name, port, hold := f[1], 0, false
		for _, a := range f[2:] {
			switch {
			case strings.EqualFold(a, "HOLD"):
				hold = true
			default:
				p, err := strconv.Atoi(a)
				if err != nil || p < 0 || p > 65535 {
					return fmt.Sprintf("ERR port %q: write a number from 1 to 65535 (or 0 for the tunnel's usual port)\n", a)
				}
				port = p
			}
		}
		got, wasOpen, err := s.Backend.Start(ctx, name, port)
		if err != nil {
			return "ERR " + oneLine(err.Error()) + "\n"
		}
		if hold {
			s.hold(se, name, wasOpen)
		}
		return fmt.Sprintf("OK %d\n", got)
	case "STOP":
		if len(f) != 2 {
			return "ERR usage: STOP <context>\n"
		}
		s.unholdAll(f[1])
		if err := s.Backend.Stop(f[1]); err != nil {
			return "ERR " + oneLine(err.Error()) + "\n"
		}
		return "OK\n"
	case "STOPALL":
		s.mu.Lock()
		s.holds = map[string]map[*session]bool{}
		s.mu.Unlock()
		n, err := s.Backend.StopAll()
		if err != nil {
			return "ERR " + oneLine(err.Error()) + "\n"
		}
		return fmt.Sprintf("OK %d\n", n)
	case "LIST":
		st := s.Backend.List()
		var b strings.Builder
		fmt.Fprintf(&b, "OK %d\n", len(st))
		for _, t := range st {
			fmt.Fprintf(&b, "%s %s %d\n", t.Context, t.State, t.Port)
		}
		return b.String()
	}
	return fmt.Sprintf("ERR unknown request %q: send HELLO, START, STOP, STOPALL or LIST\n", f[0])
}

// hold ties a tunnel to a connection. A tunnel that was open before
// anyone held it is never closed by a holder leaving.
func (s *Server) hold(se *session, name string, wasOpen bool) {
	key := strings.ToLower(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if wasOpen && len(s.holds[key]) == 0 {
		return
	}
	if s.holds[key] == nil {
		s.holds[key] = map[*session]bool{}
	}
	s.holds[key][se] = true
	se.held[key] = name
}

// unholdAll forgets every hold on a tunnel (it was stopped on purpose).
func (s *Server) unholdAll(name string) {
	s.mu.Lock()
	delete(s.holds, strings.ToLower(name))
	s.mu.Unlock()
}

// release drops a closed connection's holds and closes the tunnels no one
// holds any more.
func (s *Server) release(se *session) {
	var closeNow []string
	s.mu.Lock()
	for key, name := range se.held {
		hs := s.holds[key]
		if !hs[se] {
			continue
		}
		delete(hs, se)
		if len(hs) == 0 {
			delete(s.holds, key)
			closeNow = append(closeNow, name)
		}
	}
	s.mu.Unlock()
	for _, name := range closeNow {
		s.Logger.Info("control: the program holding the tunnel is gone; closing it", "tunnel", name)
		if err := s.Backend.Stop(name); err != nil {
			s.Logger.Warn("control: close a released tunnel", "tunnel", name, "err", err)
		}
	}
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }
