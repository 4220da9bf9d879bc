package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/porthole/porthole/wire"
)

// Forwarder listens locally and carries each accepted connection to a
// dialled stream: a gateway tunnel, or a launcher. Close stops it.
type Forwarder struct {
	forwarderConfig
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when serve has returned

	wg        sync.WaitGroup
	up, down  atomic.Int64
	accepted  atomic.Int64
	closeOnce sync.Once

	// mu guards conns, lastErr and lastErrAt.
	mu        sync.Mutex
	conns     map[*fconn]struct{}
	lastErr   error // the last failure, until a connection goes through again
	lastErrAt time.Time
}

type forwarderConfig struct {
	parent context.Context // nil: background
	name   string
	info   TunnelInfo
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	log    *slog.Logger
	onErr  func(context string, err error)
	// allowOthers lets other users of the computer (and other computers)
	// connect; by default only the user's own programs may.
	allowOthers bool
}

// newForwarder starts serving ln.
func newForwarder(c forwarderConfig) *Forwarder {
	if c.parent == nil {
		c.parent = context.Background()
	}
	ctx, cancel := context.WithCancelCause(c.parent)
	f := &Forwarder{forwarderConfig: c, ctx: ctx, cancel: cancel, conns: map[*fconn]struct{}{}, done: make(chan struct{})}
	go f.serve()
	return f
}

type fconn struct{ local net.Conn }

// Context is the tunnel's context (or the launcher's address).
func (f *Forwarder) Context() string { return f.name }

// Info is what the gateway said about the tunnel.
func (f *Forwarder) Info() TunnelInfo { return f.info }

// Addr is the local address it listens on.
func (f *Forwarder) Addr() net.Addr { return f.ln.Addr() }

// Stats are a forwarder's counters.
type Stats struct {
	Open      int   // connections open now
	Accepted  int64 // connections accepted so far
	BytesUp   int64 // local client to target
	BytesDown int64 // target to local client
	LastError error // the last connection failure, until one goes through again
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
}

// Stats returns the forwarder's counters.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Open: len(f.conns), Accepted: f.accepted.Load(), BytesUp: f.up.Load(), BytesDown: f.down.Load(), LastError: f.lastErr, LastErrorAt: f.lastErrAt}
}

func (f *Forwarder) serve() {
	defer close(f.done)
	var delay time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if f.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry.
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			f.log.Warn("accept failed", "context", f.name, "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-f.ctx.Done():
				return
			}
		}
		delay = 0
		f.accepted.Add(1)
		fc := &fconn{local: c}
		f.mu.Lock()
		f.conns[fc] = struct{}{}
		f.mu.Unlock()
		f.wg.Add(1)
		go f.handle(fc)
	}
}

func (f *Forwarder) handle(fc *fconn) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.conns, fc)
		f.mu.Unlock()
	}()
	log := f.log.With("context", f.name, "from", fc.local.RemoteAddr().String())
	if err := f.checkPeer(fc.local); err != nil {
		f.fail(log, err)
		fc.local.Close()
		return
	}
	ws, err := f.dial(f.ctx)
	if err != nil {
		var le *LaunchError
		if !errors.As(err, &le) {
			err = fmt.Errorf("the gateway refused the connection: %w", err)
		}
		f.fail(log, err)
		fc.local.Close()
		return
	}
	f.recovered()
	counted := wire.Counted(fc.local, &f.up, &f.down)
	_, err = wire.Pipe(f.ctx, counted, ws)
	if err != nil && localEnded(err) {
		log.Debug("the local program ended its connection abruptly", "err", err)
		return
	}
	if err != nil && f.ctx.Err() == nil {
		var ce *wire.CloseError
		var ae *APIError
		if errors.As(err, &ae) {
			// A stream of the session that the gateway refused.
			err = fmt.Errorf("the gateway refused the connection: %w", ae)
		} else if errors.As(err, &ce) {
			err = fmt.Errorf("the gateway closed the connection: %s", ce.Reason)
		}
		f.fail(log, err)
	}
}

// checkPeer refuses a connection that another user of the computer (or
// another computer) opened, unless others are allowed: a tunnel carries its
// user's access, not theirs.
func (f *Forwarder) checkPeer(c net.Conn) error {
	if f.allowOthers {
		return nil
	}
	owner, same, err := localPeerOwner(c)
	if same {
		return nil
	}
	why := fmt.Sprintf("it was opened by another user of this computer (%s)", owner)
	switch {
	case errors.Is(err, errFromAnotherComputer):
		why = "it comes from another computer"
	case err != nil:
		why = fmt.Sprintf("which user opened it cannot be told (%v)", err)
	}
	return fmt.Errorf("refused a connection from %s: %s; only your own programs may use this tunnel (\"allowOtherUsers\": true in settings.json lets others)", c.RemoteAddr(), why)
}

// localEnded reports whether err only says that the local program ended
// its connection abruptly (a reset, or it was gone before the stream's
// last bytes or end reached it): its own doing, not a tunnel failure.
func localEnded(err error) bool {
	var ee *wire.EndError
	return errors.As(err, &ee) && ee.End == "a" && (wire.IsConnReset(err) || errors.Is(err, syscall.ENOTCONN))
}

// recovered clears the last error: a connection went through again.
func (f *Forwarder) recovered() {
	f.mu.Lock()
	f.lastErr, f.lastErrAt = nil, time.Time{}
	f.mu.Unlock()
}

func (f *Forwarder) fail(log *slog.Logger, err error) {
	if f.onErr == nil {
		log.Warn("tunnel connection failed", "err", err)
	} else {
		log.Info("tunnel connection failed", "err", err) // onErr tells the user
	}
	f.mu.Lock()
	f.lastErr, f.lastErrAt = err, time.Now()
	f.mu.Unlock()
	if f.onErr != nil {
		f.onErr(f.name, err)
	}
}

// closeWait bounds how long Close waits for connections to end.
const closeWait = 3 * time.Second

// Close stops accepting, ends every connection and waits for them (up to
// closeWait: see below).
func (f *Forwarder) Close() {
	f.closeOnce.Do(func() {
		f.cancel(&wire.CloseError{Code: wire.CloseGoingAway, Reason: "client closed the tunnel"})
		f.ln.Close()
		<-f.done
		f.mu.Lock()
		for fc := range f.conns {
			fc.local.Close()
		}
		f.mu.Unlock()
		// A connection whose last bytes wait for the tunnel session to
		// resume ends with the session; closing does not wait for it.
		done := make(chan struct{})
		go func() {
			f.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(closeWait):
			f.log.Warn("tunnel closed; connections still waiting for the gateway end with the session", "context", f.name)
			return
		}
		f.log.Info("tunnel closed", "context", f.name)
	})
}
