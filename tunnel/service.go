package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// State is what a tunnel is doing, as a user sees it.
type State int

// Tunnel states.
const (
	Closed       State = iota // not listening
	Open                      // listening; connections go through
	Reconnecting              // listening, but the gateway does not answer right now
	Failed                    // could not open, or the gateway refused it
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case Reconnecting:
		return "reconnecting"
	case Failed:
		return "error"
	}
	return "closed"
}

// TunnelView is one tunnel as the tray shows it.
type TunnelView struct {
	Info      TunnelInfo
	State     State
	Port      int    // the local port it opens on (0: chosen when opened)
	Addr      string // where it listens while open
	AutoStart bool
	LastError string
	Stats     Stats
}

// ServiceConfig configures a Service; zero fields mean the defaults.
type ServiceConfig struct {
	// SettingsPath is settings.json; "" means SettingsPath().
	SettingsPath string
	// Tickets keeps the ticket; nil means DefaultTicketStore().
	Tickets TicketStore
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// OnChange is called (from any goroutine) when tunnel states change.
	OnChange func()
	// OnNotify is called with a failure the user must know about.
	OnNotify func(title, body string)
	// OnSignInNeeded is called when the gateway stops accepting the ticket.
	OnSignInNeeded func(err error)
	// OnSignedIn is called when a sign-in made elsewhere (porthole login)
	// was picked up after the gateway refused the old ticket.
	OnSignedIn func()
	// TicketWait is how long a new connection waits for the user to sign
	// in again; 0 means a minute.
	TicketWait time.Duration
	// ProbePeriod is how often an unreachable gateway is tried again; 0
	// means 5s.
	ProbePeriod time.Duration
	// ClientOptions are passed to every Client (tests shorten keepalive).
	ClientOptions ClientOptions
}

// Service is the desktop app's controller: it signs in (sharing the ticket
// and settings with the CLI), lists the user's tunnels, opens them on their
// fixed local ports, remembers the user's choices in settings.json, and
// tracks each tunnel's state. It owns a Manager while signed in. Methods
// are safe for concurrent use; Close stops everything.
type Service struct {
	cfg     ServiceConfig
	log     *slog.Logger
	tickets TicketStore
	path    string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu       sync.Mutex
	settings Settings
	client   *Client
	mgr      *Manager
	user     string
	tunnels  []TunnelInfo
	failed   map[string]string    // context (lower) -> why it could not open
	down     map[string]time.Time // context (lower) -> since when the gateway did not answer
	probing  bool
	problem  string // what was wrong with settings.json at start ("" if nothing)
}

// NewService loads the settings (a broken file is reported through
// OnNotify and replaced by defaults in memory, never overwritten silently).
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TicketWait == 0 {
		cfg.TicketWait = time.Minute
	}
	if cfg.ProbePeriod == 0 {
		cfg.ProbePeriod = 5 * time.Second
	}
	s := &Service{cfg: cfg, log: cfg.Logger, failed: map[string]string{}, down: map[string]time.Time{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.path = cfg.SettingsPath
	if s.path == "" {
		p, err := SettingsPath()
		if err != nil {
			return nil, err
		}
		s.path = p
	}
	s.tickets = cfg.Tickets
	if s.tickets == nil {
		ts, err := DefaultTicketStore()
		if err != nil {
			return nil, err
		}
		s.tickets = ts
	}
	st, err := LoadSettings(s.path)
	if err != nil {
		s.problem = err.Error()
		s.notify("Porthole settings", err.Error())
	}
	s.settings = st
	return s, nil
}

func (s *Service) notify(title, body string) {
	s.log.Warn(title, "detail", body)
	if s.cfg.OnNotify != nil {
		s.cfg.OnNotify(title, body)
	}
}

func (s *Service) changed() {
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// SettingsProblem says what was wrong with settings.json when the service
// started (and where a broken file was kept), for the window to show; ""
// when nothing was.
func (s *Service) SettingsProblem() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.problem
}

// Settings returns a copy of the current settings.
func (s *Service) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// updateSettings changes the settings and saves them.
func (s *Service) updateSettings(f func(*Settings)) error {
	s.mu.Lock()
	f(&s.settings)
	st := s.settings
	s.mu.Unlock()
	if err := SaveSettings(s.path, st); err != nil {
		s.notify("Porthole settings", err.Error())
		return err
	}
	return nil
}

// Identity says who is signed in where ("" when signed out).
func (s *Service) Identity() (gateway, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return "", ""
	}
	return s.client.Gateway(), s.user
}

// Resume uses the ticket kept from an earlier sign-in (by the tray or the
// CLI). It returns ErrNoTicket when there is none, or the gateway's
// refusal; on success it lists the tunnels and opens those marked
// auto-start.
func (s *Service) Resume(ctx context.Context) error {
	st := s.Settings()
	if st.Gateway == "" {
		return ErrNoTicket
	}
	client, err := NewClient(st.Gateway, s.clientOptions(st.CA))
	if err != nil {
		return err
	}
	t, err := s.tickets.Load(client.Gateway())
	if err != nil {
		return err
	}
	client.SetTicket(t.Ticket)
	me, err := client.Me(ctx)
	if err != nil {
		return err
	}
	t.ExpiresAt, t.User = me.ExpiresAt, me.User
	return s.start(ctx, client, t)
}

func (s *Service) clientOptions(ca string) ClientOptions {
	o := s.cfg.ClientOptions
	o.CAFile = ca
	if o.Logger == nil {
		o.Logger = s.log
	}
	return o
}

// SignIn signs in, keeps the ticket (where the CLI finds it too) and the
// gateway and user in settings, then lists tunnels and auto-starts. After
// the gateway refused the old ticket, connections waiting for a new one go
// through as soon as SignIn succeeds.
func (s *Service) SignIn(ctx context.Context, gateway, user, password string) error {
	return s.SignInWith(ctx, gateway, Login{User: user, Password: password})
}

// Login is how a user signs in: a user name and password (with the code
// of their second factor, when they have one), or single sign-on.
type Login struct {
	User, Password string
	// Code is the second-factor code; "" for none.
	Code string
	// SSO signs in with the Windows login (or a kinit ticket) instead of
	// a password; SPN is the gateway's service principal ("" for
	// HTTP/<gateway host>).
	SSO bool
	SPN string
}

// SignInWith is SignIn with any way of signing in. An account that needs
// a second-factor code answers an *APIError whose NeedsCode is true.
func (s *Service) SignInWith(ctx context.Context, gateway string, l Login) error {
	st := s.Settings()
	ca := ""
	if SameGateway(gateway, st.Gateway) {
		ca = st.CA
	}
	client, err := NewClient(gateway, s.clientOptions(ca))
	if err != nil {
		return err
	}
	var t Ticket
	if l.SSO {
		t, err = client.LoginKerberos(ctx, l.SPN)
	} else {
		t, err = client.LoginWithCode(ctx, l.User, l.Password, l.Code)
	}
	if err != nil {
		return err
	}
	if err := s.tickets.Save(client.Gateway(), t); err != nil {
		return err
	}
	if w := FallbackWarning(s.tickets); w != "" {
		s.log.Warn(w)
	}
	if err := s.updateSettings(func(st *Settings) { st.Gateway, st.User = client.Gateway(), t.User }); err != nil {
		return err
	}
	s.mu.Lock()
	mgr := s.mgr
	same := mgr != nil && s.client != nil && SameGateway(s.client.Gateway(), client.Gateway()) && strings.EqualFold(s.user, t.User)
	s.mu.Unlock()
	if same {
		// Keep the open tunnels; hand them the new ticket.
		mgr.SetTicket(t)
		return s.Refresh(ctx)
	}
	return s.start(ctx, client, t)
}

// start makes a Manager for client, lists tunnels and auto-starts.
func (s *Service) start(ctx context.Context, client *Client, t Ticket) error {
	s.stopManager()
	mgr, err := NewManager(ManagerConfig{
		Client: client, Logger: s.log, ExpiresAt: t.ExpiresAt, TicketWait: s.cfg.TicketWait,
		AllowOtherUsers: s.Settings().AllowOtherUsers,
		OnTicket: func(nt Ticket) {
			if err := s.tickets.Save(client.Gateway(), nt); err != nil {
				s.log.Warn("could not store the renewed ticket", "err", err)
			}
		},
		OnAuthLost: func(err error) {
			if s.cfg.OnSignInNeeded != nil {
				s.cfg.OnSignInNeeded(err)
			}
		},
		OnConnError: s.connError,
		// A sign-in made with the CLI is picked up as soon as the gateway
		// refuses the old ticket.
		LoadTicket: func() (Ticket, error) { return s.tickets.Load(client.Gateway()) },
		OnTicketPickedUp: func(t Ticket) {
			s.mu.Lock()
			s.user = t.User
			s.mu.Unlock()
			if s.cfg.OnSignedIn != nil {
				s.cfg.OnSignedIn()
			}
			s.changed()
		},
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.client, s.mgr, s.user = client, mgr, t.User
	s.mu.Unlock()
	if err := s.Refresh(ctx); err != nil {
		return err
	}
	for _, tv := range s.Tunnels() {
		if tv.AutoStart && tv.State == Closed {
			if err := s.Open(ctx, tv.Info.Context); err != nil {
				s.notify("Could not open "+tv.Info.Context, err.Error())
			}
		}
	}
	return nil
}

// connError records a failed connection: an unreachable gateway makes the
// tunnel "reconnecting" until the gateway answers again; a refusal is
// reported to the user.
func (s *Service) connError(name string, err error) {
	key := strings.ToLower(name)
	if errors.Is(err, ErrGatewayUnreachable) {
		s.mu.Lock()
		if _, ok := s.down[key]; !ok {
			s.down[key] = time.Now()
		}
		start := !s.probing
		s.probing = true
		s.mu.Unlock()
		if start {
			s.wg.Add(1)
			go s.probe()
		}
		s.changed()
		return
	}
	switch {
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrNotFound):
		s.notify("Access to "+name+" was removed", err.Error())
	case errors.Is(err, ErrTargetUnreachable):
		s.notify(name+" is down", err.Error())
	case errors.Is(err, ErrUnauthorized):
		// OnSignInNeeded has asked the user to sign in.
	default:
		s.log.Info("tunnel connection ended with an error", "context", name, "err", err)
	}
	s.changed()
}

// probe asks the gateway's /healthz until it answers, then clears the
// "reconnecting" states.
func (s *Service) probe() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ProbePeriod)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		client := s.client
		s.mu.Unlock()
		if client == nil || s.healthy(client) {
			s.mu.Lock()
			s.down = map[string]time.Time{}
			s.probing = false
			s.mu.Unlock()
			s.changed()
			return
		}
	}
}

func (s *Service) healthy(c *Client) bool {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/healthz"), nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Refresh lists the user's tunnels again.
func (s *Service) Refresh(ctx context.Context) error {
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	if client == nil {
		return ErrNoTicket
	}
	ts, err := client.Tunnels(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.tunnels = ts
	s.mu.Unlock()
	s.changed()
	return nil
}

// Tunnels returns every tunnel the user may use, with its state.
func (s *Service) Tunnels() []TunnelView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TunnelView, 0, len(s.tunnels))
	for _, t := range s.tunnels {
		key := strings.ToLower(t.Context)
		tv := TunnelView{Info: t, Port: s.portLocked(t)}
		if ts, ok := s.tunnelSettingsLocked(t.Context); ok {
			tv.AutoStart = ts.AutoStart
		}
		if why, ok := s.failed[key]; ok {
			tv.State, tv.LastError = Failed, why
		}
		if s.mgr != nil {
			if f := s.mgr.Forwarder(t.Context); f != nil {
				tv.State, tv.Addr, tv.Stats = Open, f.Addr().String(), f.Stats()
				if tv.Stats.LastError != nil {
					tv.LastError = tv.Stats.LastError.Error()
				}
				if _, down := s.down[key]; down {
					tv.State = Reconnecting
				}
			}
		}
		out = append(out, tv)
	}
	sort.Slice(out, func(i, j int) bool {
		return strings.ToLower(out[i].Info.Context) < strings.ToLower(out[j].Info.Context)
	})
	return out
}

func (s *Service) tunnelSettingsLocked(name string) (TunnelSettings, bool) {
	for k, v := range s.settings.Tunnels {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return TunnelSettings{}, false
}

// portLocked is the local port for t: the user's choice, else the
// gateway's suggestion, else 0 (a free port, kept once chosen).
func (s *Service) portLocked(t TunnelInfo) int {
	if ts, ok := s.tunnelSettingsLocked(t.Context); ok && ts.LocalPort > 0 {
		return ts.LocalPort
	}
	return t.LocalPort
}

func (s *Service) info(name string) (TunnelInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tunnels {
		if strings.EqualFold(t.Context, name) {
			return t, true
		}
	}
	return TunnelInfo{}, false
}

// setTunnelSettings changes one tunnel's saved choices.
func (s *Service) setTunnelSettings(name string, f func(*TunnelSettings)) error {
	return s.updateSettings(func(st *Settings) {
		if st.Tunnels == nil {
			st.Tunnels = map[string]TunnelSettings{}
		}
		key := name
		for k := range st.Tunnels {
			if strings.EqualFold(k, name) {
				key = k
			}
		}
		ts := st.Tunnels[key]
		f(&ts)
		st.Tunnels[key] = ts
	})
}

// Open opens a tunnel on its local port (see TunnelView.Port). A tunnel
// that had no port keeps the one it got, so it is the same next time.
func (s *Service) Open(ctx context.Context, name string) error {
	_, err := s.open(ctx, name, 0)
	return err
}

// open opens a tunnel on port, or on its usual one when port is 0, and
// returns the port it listens on.
func (s *Service) open(ctx context.Context, name string, port int) (int, error) {
	s.mu.Lock()
	mgr := s.mgr
	s.mu.Unlock()
	if mgr == nil {
		return 0, ErrNoTicket
	}
	info, ok := s.info(name)
	if !ok {
		return 0, fmt.Errorf("open tunnel %q: %w", name, ErrNotFound)
	}
	usual := false
	if port == 0 {
		s.mu.Lock()
		port = s.portLocked(info)
		s.mu.Unlock()
		usual = true
	}
	f, err := mgr.Start(ctx, info.Context, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	got := 0
	if err == nil {
		got = f.Addr().(*net.TCPAddr).Port
		if usual && port == 0 {
			// Kept before anyone hears the tunnel is open, so the port
			// shown is already the one saved.
			s.setTunnelSettings(info.Context, func(ts *TunnelSettings) { ts.LocalPort = got })
		}
	}
	s.mu.Lock()
	if err != nil {
		s.failed[strings.ToLower(info.Context)] = err.Error()
	} else {
		delete(s.failed, strings.ToLower(info.Context))
	}
	s.mu.Unlock()
	s.changed()
	if err != nil {
		return 0, err
	}
	return got, nil
}

// Close closes a tunnel and its connections.
func (s *Service) Close(name string) error {
	s.mu.Lock()
	mgr := s.mgr
	delete(s.failed, strings.ToLower(name))
	s.mu.Unlock()
	if mgr == nil {
		return nil
	}
	err := mgr.Stop(name)
	s.changed()
	return err
}

// Toggle opens a closed tunnel and closes an open one.
func (s *Service) Toggle(ctx context.Context, name string) error {
	for _, tv := range s.Tunnels() {
		if strings.EqualFold(tv.Info.Context, name) {
			if tv.State == Open || tv.State == Reconnecting {
				return s.Close(name)
			}
			return s.Open(ctx, name)
		}
	}
	return fmt.Errorf("tunnel %q: %w", name, ErrNotFound)
}

// OpenAll opens every closed tunnel; it returns the first failure.
func (s *Service) OpenAll(ctx context.Context) error {
	var first error
	for _, tv := range s.Tunnels() {
		if tv.State == Closed || tv.State == Failed {
			if err := s.Open(ctx, tv.Info.Context); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// CheckPort says whether port can be a tunnel's local port: a number from
// 1 to 65535 that no other program listens on (naming the one that does,
// where the system tells).
func CheckPort(text string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || p < 1 || p > 65535 {
		return 0, errors.New("the port must be a number from 1 to 65535")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		holder := PortHolder(p)
		if holder == "" {
			holder = "another program"
		}
		return p, fmt.Errorf("%w: port %d is used by %s", ErrPortInUse, p, holder)
	}
	ln.Close()
	return p, nil
}

// SetLocalPort keeps the user's port for a tunnel; an open tunnel moves to
// it at once.
func (s *Service) SetLocalPort(ctx context.Context, name string, port int) error {
	var open bool
	for _, tv := range s.Tunnels() {
		if strings.EqualFold(tv.Info.Context, name) {
			if tv.Port == port {
				return nil
			}
			open = tv.State == Open || tv.State == Reconnecting
		}
	}
	if _, err := CheckPort(strconv.Itoa(port)); err != nil {
		return err
	}
	if err := s.setTunnelSettings(name, func(ts *TunnelSettings) { ts.LocalPort = port }); err != nil {
		return err
	}
	if open {
		s.Close(name)
		return s.Open(ctx, name)
	}
	s.changed()
	return nil
}

// SetAutoStart marks a tunnel to open when the app starts.
func (s *Service) SetAutoStart(name string, on bool) error {
	err := s.setTunnelSettings(name, func(ts *TunnelSettings) { ts.AutoStart = on })
	s.changed()
	return err
}

// SignOut closes every tunnel, ends the session on the gateway and forgets
// the ticket.
func (s *Service) SignOut(ctx context.Context) error {
	s.mu.Lock()
	client := s.client
	s.mu.Unlock()
	s.stopManager()
	if client == nil {
		return nil
	}
	if err := client.Logout(ctx); err != nil && !errors.Is(err, ErrUnauthorized) {
		s.log.Warn("the gateway did not confirm the sign-out", "err", err)
	}
	err := s.tickets.Delete(client.Gateway())
	s.mu.Lock()
	s.client, s.user, s.tunnels = nil, "", nil
	s.mu.Unlock()
	s.changed()
	return err
}

func (s *Service) stopManager() {
	s.mu.Lock()
	mgr := s.mgr
	s.mgr = nil
	s.failed = map[string]string{}
	s.down = map[string]time.Time{}
	s.mu.Unlock()
	if mgr != nil {
		mgr.Close()
	}
}

// Shutdown closes every tunnel and connection and stops background work.
// It returns within the context's deadline even if something hangs.
func (s *Service) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.cancel()
		s.stopManager()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: %w", ctx.Err())
	}
}
