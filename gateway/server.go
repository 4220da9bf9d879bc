package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/porthole/porthole/gateway/acl"
	"github.com/porthole/porthole/gateway/directory"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/gateway/ticket"
	"github.com/porthole/porthole/wire"
	pmux "github.com/porthole/porthole/wire/mux"
)

// Well-known identities.
const (
	RootEnv    = "ROOT"
	AdminGroup = "admin"
	AdminUser  = "admin"
)

// Settings keys in the store.
const (
	settingTicketKey  = "ticket_key"
	settingSocketBuf  = "socket_buffer_size"
	settingBootstrapd = "bootstrapped"
)

// recheckPeriod is how often live tunnels are checked against the store,
// for changes this process did not make itself.
var recheckPeriod = 3 * time.Second

// auditPrunePeriod is how often audit events past the retention limits
// are deleted (and once at start).
const auditPrunePeriod = time.Hour

// pruneAudit deletes audit events older than the configured age and
// beyond the configured number, and says how many it deleted.
func (s *Server) pruneAudit(ctx context.Context) {
	before := s.cfg.Now().Add(-time.Duration(s.cfg.AuditMaxAge))
	n, err := s.st.PruneEvents(ctx, before, s.cfg.AuditMaxEvents)
	if err != nil {
		s.log.Error("prune the audit log", "err", err)
		return
	}
	if err := s.st.PruneSignInFailures(ctx, s.cfg.Now().Add(-sharedAccountWindow)); err != nil {
		s.log.Error("prune the failed sign-ins", "err", err)
	}
	if n > 0 {
		s.log.Info("pruned the audit log", "deleted", n, "older_than", before.UTC().Format(time.RFC3339), "keep_at_most", s.cfg.AuditMaxEvents)
	}
}

// Server is a Porthole gateway.
type Server struct {
	cfg    Config
	st     store.Store
	ownsSt bool
	log    *slog.Logger
	audit  Audit
	// signer signs with the newest ticket key and verifies with all the
	// store holds (reloaded when another gateway rotates).
	signer atomic.Pointer[ticket.Signer]
	// csrfKey is the portal's CSRF secret.
	csrfKey atomic.Pointer[[]byte]
	hash    HashParams
	metrics *metrics
	// tlsConfig is nil for plain HTTP.
	tlsConfig *tls.Config
	// deny is what tunnels may not lead to; dial connects to targets.
	deny *denyList
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	userLimit    *limiter // failed sign-ins per user and address
	addrLimit    *limiter // failed sign-ins per address
	accountLimit *limiter // failed sign-ins per user, from anywhere
	hashes       *hashGate
	// dir is the LDAP directory; nil when none is configured.
	dir *directory.Directory
	// krb accepts Kerberos (SPNEGO) sign-ins; nil when not configured.
	krb *kerberos
	// certs serves the TLS certificate and reloads it.
	certs      *certLoader
	totpSetups totpSetups

	// sockBufMu guards sockBuf, the stored socket buffer size last read.
	sockBufMu sync.Mutex
	sockBuf   struct {
		gen uint64
		at  time.Time
		n   int
	}

	patterns patternCache
	cache    *lookupCache
	upgrader websocket.Upgrader
	// sessions are the clients' tunnel sessions (GET /ws-mux), upgraded
	// by sessionUpgrader.
	sessions        *pmux.Server
	sessionUpgrader websocket.Upgrader
	handler         http.Handler
	pages           map[string]*template.Template

	// baseCtx is the parent of every live tunnel; Close cancels it.
	baseCtx    context.Context
	cancelBase context.CancelCauseFunc

	nextID atomic.Uint64
	liveWG sync.WaitGroup
	// liveMu guards live and closing; liveWG.Add happens under it.
	liveMu  sync.Mutex
	live    map[uint64]*liveConn
	closing bool

	closeOnce sync.Once
}

// liveConn is one open tunnel connection.
type liveConn struct {
	id      uint64
	user    string
	session string
	context string
	target  string
	remote  string
	started time.Time
	up      atomic.Int64 // client to target
	down    atomic.Int64 // target to client
	cancel  context.CancelCauseFunc
}

// New opens (or uses) the store, bootstraps it on first start and returns
// a Server ready to serve. The caller must Close it.
func New(ctx context.Context, cfg Config, st store.Store) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hash: defaultHash, live: map[uint64]*liveConn{}}
	if cfg.PasswordCost != nil {
		s.hash = *cfg.PasswordCost
	}
	// Whatever can fail is checked before the store is created, so a first
	// start that fails never leaves a printed admin password behind.
	var err error
	if s.certs, err = newCertLoader(cfg); err != nil {
		return nil, err
	}
	if s.certs != nil {
		s.tlsConfig = &tls.Config{GetCertificate: s.certs.getCertificate, MinVersion: tls.VersionTLS12}
	}
	if cfg.Directory != nil {
		if s.dir, err = newDirectory(cfg.Directory); err != nil {
			return nil, err
		}
	}
	if cfg.Kerberos != nil {
		if s.krb, err = newKerberos(cfg.Kerberos); err != nil {
			return nil, err
		}
	}
	if s.deny, err = parseDenyList(cfg.DenyTargets); err != nil {
		return nil, err
	}
	s.dial = cfg.Dial
	if s.dial == nil {
		s.dial = s.deny.dialer(30 * time.Second)
	}
	if st == nil {
		var sq *store.SQLite
		if cfg.IsPostgres() {
			sq, err = store.OpenPostgres(ctx, cfg.Store, cfg.StorePasswordFile)
		} else {
			sq, err = store.OpenSQLite(ctx, cfg.StorePath())
		}
		if err != nil {
			return nil, err
		}
		sq.SetClock(cfg.Now)
		sq.SetGateway(cfg.Name)
		st, s.ownsSt = sq, true
	}
	s.st = st
	s.metrics = newMetrics()
	s.audit = cfg.Audit
	if s.audit == nil {
		s.audit = &storeAudit{st: st, log: s.log, now: cfg.Now, failed: s.metrics.auditFailures.Inc,
			queue: newEventQueue(st, s.log, s.metrics.auditFailures.Inc)}
	}
	s.cache = newLookupCache(cfg.Now)
	s.userLimit = newLimiter(5, cfg.Now)
	s.addrLimit = newLimiter(30, cfg.Now)
	s.accountLimit = newLimiter(20, cfg.Now)
	s.hashes = newHashGate(cfg.HashConcurrency)
	if err := s.bootstrap(ctx); err != nil {
		s.closeStore()
		return nil, err
	}
	s.baseCtx, s.cancelBase = context.WithCancelCause(context.Background())
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{wire.Subprotocol},
		// The same check serveProxy makes before the target is dialled (so
		// a refusal there is a clear JSON answer); here it guards the
		// upgrade itself too.
		CheckOrigin: sameOrigin,
		// Reads reuse the HTTP server's 4 KiB reader; writes use pooled
		// buffers, held only while a message is written.
		WriteBufferPool: &sync.Pool{},
	}
	s.sessionUpgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{wire.MuxSubprotocol},
		CheckOrigin:      sameOrigin,
		// One session carries many connections: buffers sized for bulk
		// (a link message of up to 256 KiB in one write).
		ReadBufferSize:  256 << 10,
		WriteBufferSize: 256<<10 + 16,
	}
	s.sessions = pmux.NewServer(pmux.Config{
		ResumeLimit: time.Duration(cfg.SessionResumeLimit),
		PingPeriod:  cfg.PingPeriod,
		PongWait:    cfg.PongWait,
		Log:         s.log,
	})
	if s.pages, err = loadPortal(cfg.Now); err != nil {
		s.closeStore()
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// bootstrap creates the signing key and, on an empty store, ROOT,
// admin@ROOT and the admin user.
func (s *Server) bootstrap(ctx context.Context) error {
	key := make([]byte, 32)
	rand.Read(key)
	enc, err := s.st.SetSettingIfAbsent(ctx, settingTicketKey, base64.StdEncoding.EncodeToString(key))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if _, err = base64.StdEncoding.DecodeString(enc); err != nil {
		return fmt.Errorf("bootstrap: stored ticket key is corrupt: %w", err)
	}
	if err := s.loadKeys(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if _, err := s.st.Setting(ctx, settingBootstrapd); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	pw, generated := s.cfg.AdminPassword, false
	if pw == "" {
		pw = os.Getenv("PORTHOLE_ADMIN_PASSWORD")
	}
	if pw == "" {
		pw, generated = generatePassword(), true
	}
	if len(pw) < MinPasswordLen {
		return fmt.Errorf("bootstrap: the administrator password must have at least %d characters", MinPasswordLen)
	}
	hash, err := hashPassword(pw, s.hash)
	if err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return s.st.CreateEnvironment(ctx, RootEnv) },
		func() error { return s.st.CreateGroup(ctx, AdminGroup, RootEnv) },
		func() error {
			return s.st.CreateUser(ctx, store.User{Username: AdminUser, PasswordHash: hash,
				Groups: []store.GroupRef{{Name: AdminGroup, Environment: RootEnv}}})
		},
	} {
		if err := step(); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	won, err := s.st.SetSettingIfAbsent(ctx, settingBootstrapd, s.cfg.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.audit.AdminChange(ctx, "system", "bootstrap", AdminUser, nil, map[string]any{"environment": RootEnv, "group": AdminGroup + "@" + RootEnv, "user": AdminUser})
	if generated && won != "" {
		fmt.Fprintf(s.cfg.Announce, "\nPorthole created the administrator %q with the password:\n\n    %s\n\nIt is shown only this once. Sign in and change it, or set PORTHOLE_ADMIN_PASSWORD before the first start.\n\n", AdminUser, pw)
	}
	return nil
}

// Handler returns the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers HTTP (HTTPS when the config names a certificate) on ln
// until ctx is done, then shuts down gracefully: it stops accepting, ends
// live tunnels with "going away" and waits for them. Serve always closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Connections that have not sent a request yet (a client's spare
	// keep-alive connection) would hold Shutdown for 5 s: track them so
	// shutdown can close them at once.
	var connMu sync.Mutex
	fresh := map[net.Conn]bool{}
	hs := &http.Server{
		ConnState: func(c net.Conn, st http.ConnState) {
			connMu.Lock()
			defer connMu.Unlock()
			if st == http.StateNew || st == http.StateIdle {
				fresh[c] = true
			} else {
				delete(fresh, c)
			}
		},
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		s.deny.listening(ta.Port)
	}
	if s.tlsConfig != nil {
		hs.TLSConfig = s.tlsConfig
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	scheme := "http"
	if s.tlsConfig != nil {
		scheme = "https"
	}
	s.log.Info("porthole gateway listening", "addr", ln.Addr().String(), "url", scheme+"://"+displayAddr(ln.Addr()), "store", s.cfg.StoreName())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	// Changes made elsewhere (another gateway on the same store, an
	// offline command) reach live tunnels within recheckPeriod.
	var bg sync.WaitGroup
	rctx, stopRecheck := context.WithCancel(ctx)
	defer func() { stopRecheck(); bg.Wait() }()
	if s.certs != nil {
		bg.Go(func() { s.certs.watch(rctx) })
	}
	if feed, ok := s.st.(store.ChangeFeed); ok && s.cfg.IsPostgres() {
		// Changes other gateways announce reach live tunnels at once; the
		// poll below stays as the safety net.
		bg.Go(func() {
			feed.Follow(rctx, func(msg string) {
				if msg != "" {
					s.command(rctx, msg)
					return
				}
				s.cache.Invalidate()
				s.reloadKeys(rctx)
				s.recheckLive(rctx, nil)
			})
		})
		bg.Go(func() {
			// This gateway's live connections, for the portal of every
			// gateway (Connections page).
			t := time.NewTicker(livePublishPeriod)
			defer t.Stop()
			wroteEmpty := false
			for {
				s.publishLive(rctx, &wroteEmpty)
				select {
				case <-rctx.Done():
					dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					s.st.DeleteSetting(dctx, settingLivePrefix+s.cfg.Name)
					cancel()
					return
				case <-t.C:
				}
			}
		})
	}
	if s.dir != nil {
		// Signed-in directory users are read again: a disabled account or
		// a lost group ends their sessions within the period.
		bg.Go(func() {
			t := time.NewTicker(time.Duration(s.cfg.Directory.RecheckPeriod))
			defer t.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
					s.recheckDirectory(rctx)
				}
			}
		})
	}
	bg.Go(func() {
		t := time.NewTicker(recheckPeriod)
		defer t.Stop()
		seen, _ := s.st.Setting(rctx, settingGeneration)
		s.pruneAudit(rctx)
		lastPrune := time.Now()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			if sa, ok := s.audit.(*storeAudit); ok {
				sa.flushRepeats(rctx, false)
			}
			if time.Since(lastPrune) >= auditPrunePeriod {
				s.pruneAudit(rctx)
				lastPrune = time.Now()
			}
			// One small query while nothing changed; a full recheck of
			// the live tunnels only after a change, made here or by
			// another process sharing the store.
			gen, err := s.st.Setting(rctx, settingGeneration)
			if err != nil && !errors.Is(err, store.ErrNotFound) || gen == seen {
				continue
			}
			seen = gen
			s.cache.Invalidate()
			s.reloadKeys(rctx)
			s.recheckLive(rctx, nil)
		}
	})
	select {
	case err := <-errc:
		s.dropLive(wire.CloseGoingAway, "gateway stopped")
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: no new connections, closing live tunnels")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.dropLive(wire.CloseGoingAway, "gateway shutting down")
	hs.SetKeepAlivesEnabled(false)
	connMu.Lock()
	for c := range fresh {
		c.Close()
	}
	connMu.Unlock()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("requests still running after 5s; closing them", "err", err)
		hs.Close()
	}
	<-errc
	return nil
}

// ReloadCertificate reads the TLS certificate files again (SIGHUP). A
// certificate that does not load leaves the one in use.
func (s *Server) ReloadCertificate() error {
	if s.certs == nil {
		return errors.New("the gateway serves plain HTTP: there is no certificate to reload")
	}
	return s.certs.Reload()
}

// ListenAndServe listens on the configured address and serves.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := Listen(s.cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Listen opens the listener cfg names (":8080" when it names none).
func Listen(cfg Config) (net.Listener, error) {
	addr := cfg.Listen
	if addr == "" {
		addr = ":8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

func displayAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// dropLive ends every live tunnel and waits for them; no new ones start.
func (s *Server) dropLive(code int, reason string) {
	s.liveMu.Lock()
	s.closing = true
	s.liveMu.Unlock()
	s.cancelBase(&wire.CloseError{Code: code, Reason: reason})
	s.liveWG.Wait()
}

// Close ends live tunnels and closes the store if the Server opened it.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.dropLive(wire.CloseGoingAway, "gateway shutting down")
		s.sessions.Close()
		if sa, ok := s.audit.(*storeAudit); ok {
			sa.flushRepeats(context.Background(), true)
			sa.queue.close()
		}
		err = s.closeStore()
	})
	return err
}

func (s *Server) closeStore() error {
	if s.ownsSt {
		return s.st.Close()
	}
	return nil
}

// principal is who made a request.
type principal struct {
	user    store.User
	session string
	expires time.Time
	groups  []acl.Group
	admin   bool
	// token is set when the session is an API token, which may open only
	// the tunnels in scope ("*": all the user's) and never administers.
	token bool
	scope []string
}

// inScope reports whether p's token (if it is one) covers the tunnel.
func (p *principal) inScope(context string) bool {
	if !p.token {
		return true
	}
	for _, c := range p.scope {
		if c == "*" || strings.EqualFold(c, context) {
			return true
		}
	}
	return false
}

func (p *principal) groupNames() []string {
	out := make([]string, len(p.groups))
	for i, g := range p.groups {
		out[i] = g.String()
	}
	return out
}

func groupsOf(u store.User) []acl.Group {
	gs := make([]acl.Group, len(u.Groups))
	for i, g := range u.Groups {
		gs[i] = acl.Group{Name: g.Name, Env: g.Environment}
	}
	return gs
}

func isAdmin(gs []acl.Group) bool {
	for _, g := range gs {
		if strings.EqualFold(g.Name, AdminGroup) && strings.EqualFold(g.Env, RootEnv) {
			return true
		}
	}
	return false
}

// Sentinels for errors.Is on authentication failures.
var (
	ErrTicketExpired = errors.New("ticket expired")
	ErrAccessDenied  = errors.New("access denied")
)

// ticketFrom returns the request's ticket: the Authorization bearer, or
// the portal's cookie.
func ticketFrom(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	if c, err := r.Cookie(wire.SessionCookie); err == nil {
		return c.Value
	}
	return ""
}

// authenticate checks the request's ticket, its session and its user.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	tok := ticketFrom(r)
	if tok == "" {
		if r.Header.Get("Authorization") != "" {
			return nil, unauthorized("send the ticket as \"Authorization: Bearer <ticket>\"", nil)
		}
		return nil, unauthorized("sign in first: the request carried no ticket", nil)
	}
	return s.checkTicket(r.Context(), tok)
}

func (s *Server) checkTicket(ctx context.Context, tok string) (*principal, error) {
	if p, ok := s.cache.principal(tok); ok {
		return p, nil
	}
	gen := s.cache.gen.Load()
	p, err := s.verifyTicket(ctx, tok)
	if err == nil {
		s.cache.putPrincipal(tok, p, gen)
	}
	return p, err
}

// verifyTicket checks a ticket against the store: signature and expiry,
// then the session, then the user.
func (s *Server) verifyTicket(ctx context.Context, tok string) (*principal, error) {
	now := s.cfg.Now()
	claims, err := s.signer.Load().Verify(tok, now)
	if errors.Is(err, ticket.ErrExpired) {
		return nil, unauthorized("your ticket has expired: sign in again", ErrTicketExpired)
	}
	if err != nil {
		return nil, unauthorized("the ticket is not valid: sign in again", err)
	}
	se, err := s.st.Session(ctx, claims.Session)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthorized("your session has ended: sign in again", err)
	}
	if err != nil {
		return nil, internal(err)
	}
	if !se.RevokedAt.IsZero() {
		// Say why, where the account tells more than the session.
		if u, err := s.st.User(ctx, claims.User); errors.Is(err, store.ErrNotFound) {
			return nil, unauthorized("your account no longer exists", nil)
		} else if err == nil && u.Disabled {
			return nil, unauthorized("your account is disabled; ask an administrator", nil)
		}
		return nil, unauthorized("your session was ended (signed out or revoked): sign in again", nil)
	}
	if !strings.EqualFold(se.Username, claims.User) {
		return nil, unauthorized("the ticket is not valid: sign in again", nil)
	}
	u, err := s.st.User(ctx, claims.User)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthorized("your account no longer exists", err)
	}
	if err != nil {
		return nil, internal(err)
	}
	if u.Disabled {
		return nil, unauthorized("your account is disabled; ask an administrator", nil)
	}
	gs := groupsOf(u)
	p := &principal{user: u, session: se.ID, expires: claims.ExpiresAt, groups: gs, admin: isAdmin(gs)}
	if se.Kind == store.KindToken {
		p.token, p.scope, p.admin = true, se.Scope, false
	}
	return p, nil
}

// claimedUser is the user a ticket names, if its signature is good
// (expired or revoked or not), for the audit log of refusals.
func (s *Server) claimedUser(tok string) string {
	c, err := s.signer.Load().Verify(tok, s.cfg.Now())
	if err != nil && !errors.Is(err, ticket.ErrExpired) {
		return ""
	}
	return c.User
}

func unauthorized(msg string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Msg: msg, Err: err}
}

// patternCache keeps parsed user-group patterns by their text.
type patternCache struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]acl.Patterns
}

func (c *patternCache) get(s string) (acl.Patterns, error) {
	c.mu.Lock()
	ps, ok := c.m[s]
	c.mu.Unlock()
	if ok {
		return ps, nil
	}
	ps, err := acl.ParsePatterns(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 4096 {
		c.m = map[string]acl.Patterns{}
	}
	c.m[s] = ps
	c.mu.Unlock()
	return ps, nil
}

// mayUse reports whether p may use t: their groups allow it and, for an
// API token, its scope names it.
func (s *Server) mayUse(p *principal, t store.Tunnel) bool {
	return p.inScope(t.Context) && s.allows(t, p.groups)
}

// allows reports whether members of groups may use t.
func (s *Server) allows(t store.Tunnel, groups []acl.Group) bool {
	ps, err := s.patterns.get(t.UserGroups)
	if err != nil {
		s.log.Error("stored tunnel has invalid user groups", "context", t.Context, "err", err)
		return false
	}
	return ps.Allows(groups)
}

// register adds a live tunnel connection; it refuses once the server is
// shutting down.
func (s *Server) register(lc *liveConn) bool {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if s.closing {
		return false
	}
	s.live[lc.id] = lc
	s.liveWG.Add(1)
	s.metrics.active.Inc()
	return true
}

func (s *Server) unregister(lc *liveConn) {
	s.liveMu.Lock()
	delete(s.live, lc.id)
	s.liveMu.Unlock()
	s.metrics.active.Dec()
	s.liveWG.Done()
}

// liveSnapshot returns the live connections matching keep.
func (s *Server) liveSnapshot(keep func(*liveConn) bool) []*liveConn {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	var out []*liveConn
	for _, lc := range s.live {
		if keep == nil || keep(lc) {
			out = append(out, lc)
		}
	}
	return out
}

// closeLive ends the live connections matching keep, telling each client
// why. It returns how many it ended.
func (s *Server) closeLive(keep func(*liveConn) bool, code int, reason string) int {
	s.cache.Invalidate()
	conns := s.liveSnapshot(keep)
	for _, lc := range conns {
		s.log.Info("closing tunnel connection", "conn", lc.id, "user", lc.user, "context", lc.context, "reason", reason)
		lc.cancel(&wire.CloseError{Code: code, Reason: reason})
	}
	return len(conns)
}

// recheckLive re-evaluates live connections against the current store and
// ends those whose user may no longer use their tunnel.
func (s *Server) recheckLive(ctx context.Context, keep func(*liveConn) bool) {
	if keep != nil {
		s.cache.Invalidate() // a change made here: forget what was cached
	}
	users := map[string]*store.User{}
	tunnels := map[string]*store.Tunnel{}
	sessions := map[string]bool{} // id -> still valid
	for _, lc := range s.liveSnapshot(keep) {
		valid, ok := sessions[lc.session]
		if !ok {
			se, err := s.st.Session(ctx, lc.session)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				continue // the store is not answering: try again next time
			}
			valid = err == nil && se.RevokedAt.IsZero()
			sessions[lc.session] = valid
		}
		key := strings.ToLower(lc.user)
		u, ok := users[key]
		if !ok {
			if got, err := s.st.User(ctx, lc.user); err == nil {
				u = &got
			}
			users[key] = u
		}
		tk := strings.ToLower(lc.context)
		t, ok := tunnels[tk]
		if !ok {
			if got, err := s.st.Tunnel(ctx, lc.context); err == nil {
				t = &got
			}
			tunnels[tk] = t
		}
		switch {
		case !valid:
			lc.cancel(&wire.CloseError{Code: wire.CloseUnauthorized, Reason: "your session was ended"})
		case u == nil:
			lc.cancel(&wire.CloseError{Code: wire.CloseUnauthorized, Reason: "your account was deleted"})
		case u.Disabled:
			lc.cancel(&wire.CloseError{Code: wire.CloseUnauthorized, Reason: "your account was disabled"})
		case t == nil:
			lc.cancel(&wire.CloseError{Code: wire.CloseForbidden, Reason: "the tunnel was deleted"})
		case !s.allows(*t, groupsOf(*u)):
			lc.cancel(&wire.CloseError{Code: wire.CloseForbidden, Reason: "your access to this tunnel was removed"})
		}
	}
}

// socketBufferSize is the configured SO_RCVBUF/SO_SNDBUF for targets.
// The stored value is read at most once per cache period (and after a
// change), not once per tunnel.
func (s *Server) socketBufferSize(ctx context.Context) int {
	if s.cfg.SocketBufferSize > 0 {
		return int(s.cfg.SocketBufferSize)
	}
	gen, now := s.cache.gen.Load(), s.cfg.Now()
	s.sockBufMu.Lock()
	if s.sockBuf.gen == gen && !s.sockBuf.at.IsZero() && now.Sub(s.sockBuf.at) < cacheTTL {
		n := s.sockBuf.n
		s.sockBufMu.Unlock()
		return n
	}
	s.sockBufMu.Unlock()
	n := 0
	if v, err := s.st.Setting(ctx, settingSocketBuf); err == nil {
		if v, err := strconv.Atoi(v); err == nil && v > 0 {
			n = v
		}
	}
	s.sockBufMu.Lock()
	s.sockBuf.gen, s.sockBuf.at, s.sockBuf.n = gen, now, n
	s.sockBufMu.Unlock()
	return n
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", s.route(methods{"GET": s.healthz}))
	mux.Handle("/metrics", s.route(methods{"GET": s.serveMetrics}))
	mux.Handle("/api/v1/login", s.route(methods{"POST": s.login}))
	mux.Handle(wire.KerberosLoginPath, s.route(methods{"POST": s.loginKerberos}))
	mux.Handle("/api/v1/second-factor", s.route(methods{"POST": s.beginSecondFactor}))
	mux.Handle("/api/v1/second-factor/confirm", s.route(methods{"POST": s.confirmSecondFactor}))
	mux.Handle("/api/v1/admin/tokens", s.route(methods{"GET": s.admin(s.listTokens), "POST": s.admin(s.postToken)}))
	mux.Handle("/api/v1/admin/tokens/{id}", s.route(methods{"DELETE": s.admin(s.deleteToken)}))
	mux.Handle("/api/v1/admin/directory", s.route(methods{"GET": s.admin(s.getDirectory)}))
	mux.Handle("/api/v1/admin/directory/mappings", s.route(methods{"PUT": s.admin(s.putMappings)}))
	mux.Handle("/api/v1/renew", s.route(methods{"POST": s.renew}))
	mux.Handle("/api/v1/logout", s.route(methods{"POST": s.logout}))
	mux.Handle("/api/v1/me", s.route(methods{"GET": s.me}))
	mux.Handle("/api/v1/password", s.route(methods{"POST": s.changePassword}))
	mux.Handle("/api/v1/tunnels", s.route(methods{"GET": s.myTunnels}))
	mux.Handle("/api/v1/tunnels/{context}", s.route(methods{"GET": s.myTunnel}))
	mux.Handle("/api/v1/tunnels/{context}/check", s.route(methods{"POST": s.checkTarget}))
	mux.Handle("/api/v1/admin/tunnels", s.route(methods{"GET": s.admin(readOp("", s.tunnelList)), "POST": s.admin(jsonOp(http.StatusCreated, "", create(s.CreateTunnel)))}))
	mux.Handle("/api/v1/admin/tunnels/{context}", s.route(methods{"GET": s.admin(readOp("context", s.tunnelSpec)), "PUT": s.admin(jsonOp(http.StatusOK, "context", s.UpdateTunnel)), "DELETE": s.admin(deleteOp("context", s.DeleteTunnel))}))
	mux.Handle("/api/v1/admin/environments", s.route(methods{"GET": s.admin(readOp("", withoutKey(s.environmentInfos))), "POST": s.admin(jsonOp(http.StatusCreated, "", s.createEnvironment))}))
	mux.Handle("/api/v1/admin/environments/{name}", s.route(methods{"DELETE": s.admin(deleteOp("name", s.DeleteEnvironment))}))
	mux.Handle("/api/v1/admin/groups", s.route(methods{"GET": s.admin(readOp("", withoutKey(s.groupInfos))), "POST": s.admin(jsonOp(http.StatusCreated, "", s.createGroup))}))
	mux.Handle("/api/v1/admin/groups/{group}", s.route(methods{"DELETE": s.admin(deleteOp("group", s.DeleteGroupNamed))}))
	mux.Handle("/api/v1/admin/users", s.route(methods{"GET": s.admin(readOp("", s.userList)), "POST": s.admin(jsonOp(http.StatusCreated, "", create(s.CreateUser)))}))
	mux.Handle("/api/v1/admin/users/{username}", s.route(methods{"GET": s.admin(readOp("username", s.userDetail)), "PUT": s.admin(jsonOp(http.StatusOK, "username", s.UpdateUser)), "DELETE": s.admin(deleteOp("username", s.DeleteUser))}))
	mux.Handle("/api/v1/admin/audit", s.route(methods{"GET": s.admin(s.listAudit)}))
	mux.Handle(wire.ProxyPath+"{context}", http.HandlerFunc(s.serveProxy))
	mux.Handle(wire.MuxPath, http.HandlerFunc(s.serveSession))
	mux.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(s.log, w, r, errorf(http.StatusNotFound, "no such API endpoint: %s %s", r.Method, r.URL.Path))
	}))
	s.portalRoutes(mux)
	mux.Handle("/", http.HandlerFunc(s.serveRoot))
	return bodyDeadline(http.NewCrossOriginProtection().Handler(mux))
}

// bodyReadTimeout bounds reading a request's body: a client that trickles
// one (slowloris) is cut off instead of holding a connection and a
// goroutine for as long as it likes. http.Server's ReadHeaderTimeout
// covers the headers; the next request on the connection resets both.
var bodyReadTimeout = 10 * time.Second

func bodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && !websocket.IsWebSocketUpgrade(r) {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read, so
// the server's wait for the client's next request (and its detection of a
// client that went away) is not cut short by it.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.st.Setting(ctx, settingTicketKey); err != nil {
		// Degraded: live tunnels keep flowing, but sign-ins and new
		// tunnels need the store. 503 takes the gateway out of a load
		// balancer's rotation until the store answers again.
		s.log.Warn("health check: the store is not answering", "store", s.cfg.StoreName(), "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "degraded",
			"reason": "the store (" + s.cfg.StoreName() + ") is not answering; live tunnels keep flowing"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.MetricsAdminOnly {
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if !p.admin {
			return errorf(http.StatusForbidden, "metrics are for administrators")
		}
	}
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

// serveRoot answers what no other route takes: a page for browsers, JSON
// for everyone else.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		s.errorPage(w, r, nil, http.StatusNotFound, "Page not found", "There is no page at "+r.URL.Path+".")
		return
	}
	writeError(s.log, w, r, errorf(http.StatusNotFound, "no such page: %s", r.URL.Path))
}
