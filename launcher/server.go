package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/porthole/porthole/wire"
)

// Limits of the first line.
const (
	maxLine     = 4096
	lineTimeout = 10 * time.Second
)

// Server is a running launcher. Serve owns the listener; Close (or the
// end of Serve's context) stops accepting, ends every connection (which
// stops its process) and waits.
type Server struct {
	cfg   Config
	log   *slog.Logger
	rules atomic.Pointer[RuleSet]
	slots chan struct{}
	// id prefixes the mark of every process this launcher starts (see
	// procs_linux.go); launches counts them for each mark.
	id       string
	launches atomic.Uint64

	reloadMu sync.Mutex // one reload at a time
	wg       sync.WaitGroup

	// mu guards conns and closed.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// New loads the rules; broken rule files are logged and skipped (the
// launcher starts with the rules that work).
func New(cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, slots: make(chan struct{}, cfg.MaxProcesses), conns: map[net.Conn]struct{}{},
		id: strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	s.rules.Store(&RuleSet{})
	if _, err := os.Stat(cfg.RulesDir); err != nil {
		return nil, fmt.Errorf("rules folder: %w", err)
	}
	s.Reload()
	return s, nil
}

// knownVariable says whether a config variable exists.
func (s *Server) knownVariable(name string) bool {
	_, ok := s.cfg.Variables[name]
	return ok
}

// Reload reads the rule files again. It returns the problems found, which
// it also logs; files that fail keep their last working version.
func (s *Server) Reload() []error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	rs, errs := LoadRules(s.cfg.RulesDir, s.knownVariable, s.rules.Load())
	s.rules.Store(rs)
	for _, err := range errs {
		s.log.Error("rule file refused; its last working version (if any) stays in force", "err", err)
	}
	names := make([]string, len(rs.Rules))
	for i, r := range rs.Rules {
		names[i] = r.File
	}
	s.log.Info("rules loaded", "folder", s.cfg.RulesDir, "rules", strings.Join(names, ", "), "errors", len(errs))
	return errs
}

// Rules returns the rules in force.
func (s *Server) Rules() *RuleSet { return s.rules.Load() }

// Serve accepts connections on ln until ctx is done. It watches the rules
// folder and reloads on changes. Serve always closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		ln.Close()
		return fmt.Errorf("watch rules: %w", err)
	}
	defer watcher.Close()
	if err := watcher.Add(s.cfg.RulesDir); err != nil {
		ln.Close()
		return fmt.Errorf("watch rules folder %s: %w", s.cfg.RulesDir, err)
	}
	s.wg.Add(1)
	go s.watch(ctx, watcher)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	s.log.Info("porthole launcher listening", "addr", ln.Addr().String(), "rules", s.cfg.RulesDir)
	for {
		c, err := ln.Accept()
		if err != nil {
			s.shutdown()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		if !s.track(c) {
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(ctx, c)
		}()
	}
}

// watch reloads the rules a moment after the folder changes, so an editor
// saving in several steps causes one reload.
func (s *Server) watch(ctx context.Context, w *fsnotify.Watcher) {
	defer s.wg.Done()
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !strings.HasSuffix(ev.Name, ".rule") {
				continue
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(150*time.Millisecond, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case <-fire:
			s.Reload()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("watching the rules folder", "err", err)
		}
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// shutdown closes every connection (stopping its process) and waits.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readLine reads the first line byte by byte, so nothing after it is
// taken from the connection before the process gets it.
func readLine(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(lineTimeout))
	defer c.SetReadDeadline(time.Time{})
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", &Error{Code: 400, Desc: fmt.Sprintf("no path line within %s", lineTimeout)}
			}
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return "", &Error{Code: 400, Desc: "the path line must end with a newline"}
			}
			return "", err
		}
		if b[0] == '\n' {
			return strings.TrimSuffix(string(line), "\r"), nil
		}
		line = append(line, b[0])
		if len(line) > maxLine {
			return "", &Error{Code: 400, Desc: fmt.Sprintf("the path line is longer than %d bytes", maxLine)}
		}
	}
}

// refuse answers ERR and logs it.
func (s *Server) refuse(c net.Conn, log *slog.Logger, e *Error) {
	log.Info("rejected", "code", e.Code, "reason", e.Desc)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, e.Line())
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	log := s.log.With("client", c.RemoteAddr().String())
	path, err := readLine(c)
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			s.refuse(c, log, le)
		}
		return
	}
	log = log.With("path", path)
	port, err := freePort(s.cfg.ListenAddress)
	if err != nil {
		s.refuse(c, log, &Error{Code: 500, Desc: "no free port for the process: " + err.Error()})
		return
	}
	plan, err := s.resolve(path, strconv.Itoa(port))
	if err != nil {
		var le *Error
		if !errors.As(err, &le) {
			le = &Error{Code: 500, Desc: err.Error()}
		}
		s.refuse(c, log, le)
		return
	}
	r := plan.Rule
	log = log.With("rule", r.Name, "file", r.File)
	if r.Action.Type == Reject {
		s.refuse(c, log, &Error{Code: r.Reject.ErrorCode, Desc: r.Reject.ErrorDesc})
		return
	}
	if err := checkRequires(plan); err != nil {
		s.refuse(c, log, err.(*Error))
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.refuse(c, log, &Error{Code: 503, Desc: fmt.Sprintf("too busy: %d processes are running, the most this launcher allows", s.cfg.MaxProcesses)})
		return
	}
	// Programs' children count too (where the system tells).
	if n := countMarked(s.id + "."); n >= s.cfg.MaxProcesses {
		s.refuse(c, log, &Error{Code: 503, Desc: fmt.Sprintf("too busy: %d processes (programs and their children) are running, the most this launcher allows is %d", n, s.cfg.MaxProcesses)})
		return
	}
	s.run(ctx, c, log, plan, port)
}

// freePort asks the OS for a free port on addr. The program binds it
// itself, which is the seed's design; a clash shows as a start failure.
func freePort(addr string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// run starts the plan's process, waits until it listens, then pipes the
// client to it until either side ends; the process is always stopped and
// reaped before run returns.
func (s *Server) run(ctx context.Context, c net.Conn, log *slog.Logger, plan *Plan, port int) {
	pctx, stop := context.WithCancel(context.Background())
	defer stop()
	cmd := exec.CommandContext(pctx, plan.Argv[0], plan.Argv[1:]...)
	token := s.id + "." + strconv.FormatUint(s.launches.Add(1), 10)
	cmd.Env = append(mergeEnv(os.Environ(), plan.Env), launchEnv+"="+token)
	prepare(cmd)
	cmd.Cancel = func() error { return interrupt(cmd.Process) }
	cmd.WaitDelay = time.Duration(s.cfg.StopGrace)
	out := &logWriter{log: log, stream: "stdout"}
	errw := &logWriter{log: log, stream: "stderr"}
	cmd.Stdout, cmd.Stderr = out, errw
	if err := cmd.Start(); err != nil {
		s.refuse(c, log, &Error{Code: 500, Desc: fmt.Sprintf("could not start %s: %v", plan.Argv[0], errors.Unwrap(err))})
		return
	}
	started(cmd.Process)
	pid := cmd.Process.Pid
	log = log.With("pid", pid)
	out.setLog(log)
	errw.setLog(log)
	log.Info("process started", "argv", plan.Argv, "port", port)
	// done is closed once the process has exited and been reaped; status
	// is its exit status, safe to read after done.
	done := make(chan struct{})
	var status error
	go func() {
		status = cmd.Wait()
		close(done)
	}()
	defer func() {
		stop() // interrupt, then kill after stopGrace
		<-done
		sweep(pid, token) // what it started and left behind
		log.Info("process stopped", "exit", exitText(status))
	}()

	upstream, err := s.waitListening(ctx, port, done, &status)
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			s.refuse(c, log, le)
		}
		return
	}
	if _, err := io.WriteString(c, wire.LaunchOK); err != nil {
		upstream.Close()
		return
	}
	pipeCtx, cancelPipe := context.WithCancelCause(ctx)
	defer cancelPipe(nil)
	go func() {
		select {
		case <-done:
			// What the process wrote before it exited is still in its
			// socket: let the pipe deliver it (and pass on the end of
			// stream) before the client is cut off.
			log.Info("process exited; closing the client after its last output", "exit", exitText(status))
			select {
			case <-time.After(exitDrain):
				cancelPipe(errors.New("process exited"))
			case <-pipeCtx.Done():
			}
		case <-pipeCtx.Done():
		}
	}()
	st, err := wire.Pipe(pipeCtx, c, upstream)
	cancelPipe(nil)
	log.Info("connection ended", "to_process", st.AToB, "from_process", st.BToA, "err", err)
}

// exitDrain bounds how long a client stays connected after its process
// exited, for the process's last output to reach it.
const exitDrain = 2 * time.Second

// waitListening dials the process's port until it accepts (that
// connection is the one used), the process exits (500), or startTimeout
// passes (504).
func (s *Server) waitListening(ctx context.Context, port int, done <-chan struct{}, status *error) (net.Conn, error) {
	addr := net.JoinHostPort(s.cfg.ListenAddress, strconv.Itoa(port))
	deadline := time.Now().Add(time.Duration(s.cfg.StartTimeout))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c, nil
		}
		select {
		case <-done:
			return nil, &Error{Code: 500, Desc: "the process exited before it listened (" + exitText(*status) + ")"}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, &Error{Code: 504, Desc: fmt.Sprintf("the process did not listen on %s within %s", addr, time.Duration(s.cfg.StartTimeout))}
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logWriter sends a process's output to the log line by line.
type logWriter struct {
	mu     sync.Mutex
	log    *slog.Logger
	stream string
	buf    bytes.Buffer
}

func (w *logWriter) setLog(l *slog.Logger) {
	w.mu.Lock()
	w.log = l
	w.mu.Unlock()
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			// Keep the partial line for the next write (bounded).
			if len(line) > 8192 {
				w.log.Info("process output", "stream", w.stream, "line", line)
				line = ""
			}
			w.buf.Reset()
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.log.Info("process output", "stream", w.stream, "line", strings.TrimRight(line, "\r\n"))
	}
}
