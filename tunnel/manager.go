package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/porthole/porthole/wire/mux"
)

// ManagerConfig configures a Manager. Zero fields mean the documented
// defaults.
type ManagerConfig struct {
	// Client talks to the gateway; required, with its ticket set.
	Client *Client
	// Logger receives per-connection logs; nil means slog.Default().
	Logger *slog.Logger
	// ExpiresAt is when the current ticket expires; zero means ask the
	// gateway.
	ExpiresAt time.Time
	// OnTicket receives every renewed ticket so it can be stored; nil
	// means renewed tickets are only kept in memory.
	OnTicket func(Ticket)
	// OnAuthLost is called when the gateway no longer accepts the ticket
	// (expired or revoked); nil means only log it.
	OnAuthLost func(error)
	// OnConnError is called when a connection through a forwarder is
	// refused or fails; nil means only log it.
	OnConnError func(context string, err error)
	// TicketWait is how long a new connection waits for a fresh ticket
	// (see SetTicket) after the gateway refused the old one; 0 means it
	// fails at once.
	TicketWait time.Duration
	// RetryPeriod is how often a failed renewal is retried; 0 means 30s.
	RetryPeriod time.Duration
	// LoadTicket reads the ticket kept for this gateway (the keyring), so
	// that a sign-in made elsewhere (porthole login in another terminal,
	// the tray) is picked up once the gateway refuses the current ticket;
	// nil means only SetTicket brings a new one.
	LoadTicket func() (Ticket, error)
	// OnTicketPickedUp is called when LoadTicket brought a new ticket into
	// use; nil means only log it.
	OnTicketPickedUp func(Ticket)
	// PickUpPeriod is how often LoadTicket is read while the gateway
	// refuses the ticket; 0 means 2s.
	PickUpPeriod time.Duration
	// AllowOtherUsers lets other users of the computer (and other
	// computers, where the local address allows) use the local ports;
	// by default a connection opened by anyone but the user is refused.
	AllowOtherUsers bool
}

// Manager runs local forwarders for one gateway and keeps the ticket
// fresh. It is safe for concurrent use.
type Manager struct {
	cfg    ManagerConfig
	client *Client
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the renewer has stopped

	// mu guards the fields below.
	mu       sync.Mutex
	fwd      map[string]*Forwarder // by lower-case context
	expires  time.Time
	obtained time.Time
	newTick  chan struct{} // closed and replaced when the ticket changes
	kick     chan struct{} // wakes the renewer
}

// NewManager starts a Manager; Close stops it and every forwarder.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Client == nil {
		return nil, errors.New("tunnel manager: no client")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 30 * time.Second
	}
	if cfg.PickUpPeriod == 0 {
		cfg.PickUpPeriod = 2 * time.Second
	}
	m := &Manager{cfg: cfg, client: cfg.Client, log: cfg.Logger, done: make(chan struct{}),
		fwd: map[string]*Forwarder{}, expires: cfg.ExpiresAt, obtained: time.Now(),
		newTick: make(chan struct{}), kick: make(chan struct{}, 1)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.renewLoop()
	return m, nil
}

// Client returns the manager's gateway client.
func (m *Manager) Client() *Client { return m.client }

// SetTicket installs a new ticket (after the user signed in again): the
// renewer and any connection waiting for it carry on with it.
func (m *Manager) SetTicket(t Ticket) {
	m.client.SetTicket(t.Ticket)
	m.mu.Lock()
	m.expires, m.obtained = t.ExpiresAt, time.Now()
	close(m.newTick)
	m.newTick = make(chan struct{})
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// renewAt is when the current ticket should be renewed: halfway through
// its remaining life, and not before 10 seconds from now.
func (m *Manager) renewAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.expires.IsZero() {
		return time.Now()
	}
	at := m.obtained.Add(m.expires.Sub(m.obtained) / 2)
	if min := time.Now().Add(10 * time.Second); at.Before(min) && m.expires.After(min) {
		return min
	}
	return at
}

func (m *Manager) renewLoop() {
	defer close(m.done)
	for {
		timer := time.NewTimer(time.Until(m.renewAt()))
		select {
		case <-m.ctx.Done():
			timer.Stop()
			return
		case <-m.kick:
			timer.Stop()
			continue
		case <-timer.C:
		}
		if m.Ticket() == "" {
			if !m.sleep(m.cfg.RetryPeriod) {
				return
			}
			continue
		}
		m.mu.Lock()
		unknown := m.expires.IsZero()
		m.mu.Unlock()
		var err error
		if unknown {
			var me Me
			if me, err = m.client.Me(m.ctx); err == nil {
				m.mu.Lock()
				m.expires = me.ExpiresAt
				m.mu.Unlock()
				continue
			}
		} else {
			var t Ticket
			if t, err = m.client.Renew(m.ctx); err == nil {
				m.mu.Lock()
				m.expires, m.obtained = t.ExpiresAt, time.Now()
				m.mu.Unlock()
				m.log.Debug("ticket renewed", "expires", t.ExpiresAt)
				if m.cfg.OnTicket != nil {
					m.cfg.OnTicket(t)
				}
				continue
			}
		}
		if m.ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrUnauthorized) {
			if m.pickUpTicket() {
				continue
			}
			m.mu.Lock()
			ch := m.newTick
			m.mu.Unlock()
			m.authLost(err)
			if !m.waitForTicket(m.ctx, ch, 0) {
				return
			}
			continue
		}
		m.log.Warn("ticket renewal failed; will retry", "err", err, "in", m.cfg.RetryPeriod)
		if !m.sleep(m.cfg.RetryPeriod) {
			return
		}
	}
}

// waitForTicket waits until the ticket changes from the one whose change
// channel is ch (SetTicket, or a ticket picked up from LoadTicket), for at
// most timeout (0: no limit). It returns false when ctx or the manager
// ended first, or the time ran out.
func (m *Manager) waitForTicket(ctx context.Context, ch chan struct{}, timeout time.Duration) bool {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var poll <-chan time.Time
	if m.cfg.LoadTicket != nil {
		t := time.NewTicker(m.cfg.PickUpPeriod)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		case <-m.ctx.Done():
			return false
		case <-expired:
			return false
		case <-poll:
			if m.pickUpTicket() {
				return true
			}
		}
	}
}

// pickUpTicket reads the kept ticket and, if it is not the one in use (a
// sign-in made elsewhere), uses it. It reports whether it did.
func (m *Manager) pickUpTicket() bool {
	if m.cfg.LoadTicket == nil {
		return false
	}
	t, err := m.cfg.LoadTicket()
	if err != nil || t.Ticket == "" || t.Ticket == m.Ticket() {
		return false
	}
	m.SetTicket(t)
	m.log.Info("using the ticket of a new sign-in", "user", t.User, "expires", t.ExpiresAt)
	if m.cfg.OnTicketPickedUp != nil {
		m.cfg.OnTicketPickedUp(t)
	}
	return true
}

func (m *Manager) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.kick:
		return true
	case <-m.ctx.Done():
		return false
	}
}

func (m *Manager) authLost(err error) {
	m.log.Warn("the gateway no longer accepts the ticket: sign in again", "err", err)
	if m.cfg.OnAuthLost != nil {
		m.cfg.OnAuthLost(err)
	}
}

// Ticket returns the current ticket.
func (m *Manager) Ticket() string { return m.client.Ticket() }

// ExpiresAt returns when the current ticket expires (zero if unknown).
func (m *Manager) ExpiresAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.expires
}

// ParseTarget splits a CLI argument CONTEXT[:PORT].
func ParseTarget(s string) (name string, port int, err error) {
	name, ps, ok := strings.Cut(s, ":")
	if name == "" {
		return "", 0, fmt.Errorf("%q: name the tunnel, like mysql or mysql:13306", s)
	}
	if !ok {
		return name, 0, nil
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: the local port must be a number from 1 to 65535", s)
	}
	return name, port, nil
}

// ErrPortInUse is returned by Start when the local port is taken.
var ErrPortInUse = errors.New("local port in use")

// Start checks with the gateway that the user may use the tunnel (failing
// with the gateway's reason before listening), then listens on localAddr
// and forwards each connection through the tunnel. An empty localAddr
// means 127.0.0.1 on the tunnel's suggested local port, or a free port if
// it suggests none. Starting an open tunnel again returns it.
func (m *Manager) Start(ctx context.Context, name, localAddr string) (*Forwarder, error) {
	if m.ctx.Err() != nil {
		return nil, errors.New("tunnel manager is closed")
	}
	info, err := m.client.Tunnel(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open tunnel %q: %w", name, err)
	}
	key := strings.ToLower(info.Context)
	m.mu.Lock()
	if f, ok := m.fwd[key]; ok {
		m.mu.Unlock()
		return f, nil
	}
	m.mu.Unlock()
	if localAddr == "" {
		localAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(info.LocalPort))
	}
	ln, err := net.Listen("tcp", localAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			_, port, _ := net.SplitHostPort(localAddr)
			p, _ := strconv.Atoi(port)
			holder := ""
			if h := PortHolder(p); h != "" {
				holder = " by " + h
			}
			return nil, fmt.Errorf("open tunnel %q: %w: %s is already used%s; choose another port with %s:PORT", info.Context, ErrPortInUse, localAddr, holder, info.Context)
		}
		return nil, fmt.Errorf("open tunnel %q: listen on %s: %w", info.Context, localAddr, err)
	}
	f := newForwarder(forwarderConfig{parent: m.ctx, name: info.Context, info: info, ln: ln, log: m.log, onErr: m.cfg.OnConnError, allowOthers: m.cfg.AllowOtherUsers,
		dial: func(ctx context.Context) (net.Conn, error) { return m.dialTunnel(ctx, info.Context) }})
	m.mu.Lock()
	if old, ok := m.fwd[key]; ok {
		m.mu.Unlock()
		f.Close()
		return old, nil
	}
	m.fwd[key] = f
	m.mu.Unlock()
	m.log.Info("tunnel open", "context", info.Context, "listen", ln.Addr().String())
	return f, nil
}

// Forwarder returns the open forwarder for a tunnel, or nil.
func (m *Manager) Forwarder(name string) *Forwarder {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fwd[strings.ToLower(name)]
}

// Forwarders lists the open forwarders by context.
func (m *Manager) Forwarders() []*Forwarder {
	m.mu.Lock()
	out := make([]*Forwarder, 0, len(m.fwd))
	for _, f := range m.fwd {
		out = append(out, f)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].info.Context < out[j].info.Context })
	return out
}

// Stop closes one tunnel's listener and connections and waits for them.
func (m *Manager) Stop(name string) error {
	m.mu.Lock()
	f, ok := m.fwd[strings.ToLower(name)]
	if ok {
		delete(m.fwd, strings.ToLower(name))
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("tunnel %q is not open", name)
	}
	f.Close()
	return nil
}

// StopAll closes every tunnel and waits for them.
func (m *Manager) StopAll() {
	m.mu.Lock()
	fs := m.fwd
	m.fwd = map[string]*Forwarder{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(f.Close)
	}
	wg.Wait()
}

// Close stops every tunnel and the renewer, and ends the client's tunnel
// session.
func (m *Manager) Close() {
	stopped := make(chan struct{})
	go func() {
		m.StopAll()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(500 * time.Millisecond):
		// Connections waiting for the gateway (the network is gone and
		// the session waits to resume): end the session, and them with it.
		m.client.Close()
		<-stopped
	}
	m.cancel()
	<-m.done
	m.client.Close()
}

// dialTunnel opens a tunnel stream; when the ticket was refused and the
// manager may wait for a new one, it waits and tries once more.
func (m *Manager) dialTunnel(ctx context.Context, name string) (net.Conn, error) {
	m.mu.Lock()
	ch := m.newTick
	m.mu.Unlock()
	ws, err := m.client.Dial(ctx, name)
	if st, ok := ws.(*mux.Stream); ok {
		// A session's stream learns of a refused ticket at its first
		// read: it then opens again with a newer sign-in (picked up, or
		// waited for), sending the first bytes again.
		st.Retry = func(r *mux.Refusal) (string, bool) {
			if r.Status != 401 {
				return "", false
			}
			m.mu.Lock()
			ch := m.newTick
			m.mu.Unlock()
			if m.pickUpTicket() {
				return m.Ticket(), true
			}
			if m.cfg.TicketWait <= 0 {
				return "", false
			}
			m.authLost(refusalError(r))
			if !m.waitForTicket(ctx, ch, m.cfg.TicketWait) {
				return "", false
			}
			return m.Ticket(), true
		}
	}
	if err == nil || !errors.Is(err, ErrUnauthorized) {
		return ws, err
	}
	if m.pickUpTicket() {
		return m.client.Dial(ctx, name)
	}
	if m.cfg.TicketWait <= 0 {
		return nil, err
	}
	m.authLost(err)
	if !m.waitForTicket(ctx, ch, m.cfg.TicketWait) {
		return nil, err
	}
	return m.client.Dial(ctx, name)
}
