package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porthole/porthole/gateway/acl"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// clientAddr is the address a request came from.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// LoginResponse is the answer to a successful sign-in or renewal.
type LoginResponse = wire.Ticket

type loginRequest = wire.LoginRequest

// dummyHash is compared against when the user does not exist, so the
// answer takes as long as for a wrong password.
var dummyHash, _ = hashPassword("porthole-dummy-password", defaultHash)

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	resp, err := s.signIn(r.Context(), credentials{username: req.Username, password: req.Password, otp: req.OTP}, clientAddr(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Longest user name and password a sign-in accepts.
const (
	maxNameLen     = 256
	maxPasswordLen = 1024
)

// credentials are what a user signs in with.
type credentials struct {
	username, password, otp string
}

// signIn checks a user name and password from addr, with rate limiting,
// and starts a session. The JSON API and the portal both sign in here.
// Local accounts are checked first (they always work, so an administrator
// can sign in while the directory is down); other names go to the
// directory when one is configured.
func (s *Server) signIn(ctx context.Context, c credentials, addr string) (LoginResponse, error) {
	username, password := c.username, c.password
	fields := map[string]string{}
	if username == "" {
		fields["username"] = "is required"
	}
	if password == "" {
		fields["password"] = "is required"
	}
	// Nothing longer is a name or a password anyone types; refused before
	// it is hashed, logged or audited.
	if len(username) > maxNameLen {
		fields["username"] = fmt.Sprintf("is longer than %d characters", maxNameLen)
	}
	if len(password) > maxPasswordLen {
		fields["password"] = fmt.Sprintf("is longer than %d characters", maxPasswordLen)
	}
	if len(c.otp) > 16 {
		fields["otp"] = "is longer than 16 characters"
	}
	if len(fields) > 0 {
		return LoginResponse{}, invalid(fields)
	}
	at, err := s.guard(ctx, username, addr)
	if err != nil {
		s.audit.SignIn(ctx, username, addr, false, "rate limited or busy")
		return LoginResponse{}, err
	}
	ok := false
	defer func() { at.done(ok) }()
	fail := func(reason string) error {
		s.metrics.signinFailed.Inc()
		s.recordFailure(ctx, username, addr)
		s.audit.SignIn(ctx, username, addr, false, reason)
		return &Error{Status: http.StatusUnauthorized, Msg: "wrong user name or password", Code: wire.CodeWrongCredentials}
	}
	u, err := s.st.User(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return LoginResponse{}, internal(err)
	}
	if s.dir != nil && (err != nil || u.Source == store.SourceDirectory) {
		u, err := s.directorySignIn(ctx, username, password, addr, fail)
		if err != nil {
			if errors.Is(err, errNotCounted) {
				ok = true
			}
			return LoginResponse{}, err
		}
		ok = true
		return s.startSession(ctx, u, addr, "directory")
	}
	if errors.Is(err, store.ErrNotFound) {
		checkPassword(dummyHash, password)
		return LoginResponse{}, fail("unknown user")
	}
	if u.Source == store.SourceDirectory {
		// The directory was configured once and is no longer.
		checkPassword(dummyHash, password)
		return LoginResponse{}, fail("directory account, but no directory is configured")
	}
	match, err := checkPassword(u.PasswordHash, password)
	if err != nil {
		return LoginResponse{}, internal(fmt.Errorf("user %q: %w", u.Username, err))
	}
	if !match {
		return LoginResponse{}, fail("wrong password")
	}
	if u.Disabled {
		ok = true // the password was right: the attempt does not count
		s.audit.SignIn(ctx, u.Username, addr, false, "account disabled")
		return LoginResponse{}, &Error{Status: http.StatusForbidden, Msg: "this account is disabled; ask an administrator", Code: wire.CodeAccountDisabled}
	}
	if err := s.checkSecondFactor(ctx, u, c.otp, addr); err != nil {
		// A missing code is no failure; a wrong one counts like a wrong
		// password.
		ok = errors.Is(err, errNotCounted)
		return LoginResponse{}, err
	}
	ok = true
	return s.startSession(ctx, u, addr, "")
}

// errNotCounted marks a refused sign-in that does not count toward the
// rate limits (the password was right).
var errNotCounted = errors.New("not counted")

// startSession starts a session for u, who has just proved who they are
// (how: "" for a password, "directory", "kerberos"), and signs its ticket.
func (s *Server) startSession(ctx context.Context, u store.User, addr, how string) (LoginResponse, error) {
	now := s.cfg.Now()
	se := store.Session{ID: randomID(16), Username: u.Username, CreatedAt: now, ExpiresAt: now.Add(time.Duration(s.cfg.TicketLifetime))}
	if err := s.st.CreateSession(ctx, se); err != nil {
		return LoginResponse{}, internal(err)
	}
	s.audit.SignIn(ctx, u.Username, addr, true, how)
	gs := groupsOf(u)
	return s.issue(&principal{user: u, session: se.ID, groups: gs, admin: isAdmin(gs)}, se.ExpiresAt), nil
}

// issue signs a ticket for p's session.
func (s *Server) issue(p *principal, expires time.Time) LoginResponse {
	now := s.cfg.Now()
	tok := s.signer.Load().Sign(ticketClaims(p.user.Username, p.session, now, expires))
	return LoginResponse{Ticket: tok, ExpiresAt: expires.UTC().Truncate(time.Second), User: p.user.Username, Groups: p.groupNames(), Admin: p.admin}
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if p.token {
		// A token keeps the expiry it was made with.
		writeJSON(w, http.StatusOK, s.issue(p, p.expires))
		return nil
	}
	expires := s.cfg.Now().Add(time.Duration(s.cfg.TicketLifetime))
	if err := s.st.ExtendSession(r.Context(), p.session, expires); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return unauthorized("your session has ended: sign in again", err)
		}
		return internal(err)
	}
	writeJSON(w, http.StatusOK, s.issue(p, expires))
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if p.token {
		// Signing out on a machine only forgets the token there; an
		// administrator revokes it.
		writeJSON(w, http.StatusOK, map[string]string{"status": "token kept: an administrator revokes API tokens"})
		return nil
	}
	if err := s.endSession(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
	return nil
}

// endSession revokes p's session and closes its tunnels.
func (s *Server) endSession(ctx context.Context, p *principal) error {
	if err := s.st.RevokeSession(ctx, p.session, s.cfg.Now()); err != nil {
		return internal(err)
	}
	s.changed(ctx)
	s.audit.SignOut(ctx, p.user.Username, p.session)
	s.closeLive(func(lc *liveConn) bool { return lc.session == p.session }, wire.CloseUnauthorized, "you signed out")
	return nil
}

// MeResponse describes the signed-in user.
type MeResponse = wire.Me

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, MeResponse{User: p.user.Username, Groups: p.groupNames(), Admin: p.admin, ExpiresAt: p.expires.UTC()})
	return nil
}

// UserTunnel is a tunnel as its users see it; administrators also get the
// target and the patterns.
type UserTunnel = wire.UserTunnel

func (s *Server) userTunnel(p *principal, t store.Tunnel) UserTunnel {
	ut := UserTunnel{Context: t.Context, LocalPort: t.LocalPort, Description: t.Description, Kind: string(kindOf(t))}
	if p.admin {
		ut.SocketAddress, ut.UserGroups = t.SocketAddress, t.UserGroups
	}
	return ut
}

func (s *Server) myTunnels(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	ts, err := s.st.Tunnels(r.Context())
	if err != nil {
		return internal(err)
	}
	out := []UserTunnel{}
	for _, t := range ts {
		if s.mayUse(p, t) {
			out = append(out, s.userTunnel(p, t))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// myTunnel answers whether the caller may use one tunnel: 404 unknown,
// 403 not allowed. Clients ask it before they listen locally.
func (s *Server) myTunnel(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	t, err := s.lookupTunnel(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.userTunnel(p, t))
	return nil
}

// changePassword is a user's change of their own password; the ticket
// that made it stays valid, every other session of the user ends.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	var ch PasswordChange
	if err := decodeJSON(w, r, &ch); err != nil {
		return err
	}
	if err := s.ChangeOwnPassword(r.Context(), p, ch, clientAddr(r)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": p.user.Username, "message": "password changed; your other sessions were signed out"})
	return nil
}

// TargetCheck says whether the gateway reaches a tunnel's target now.
type TargetCheck = wire.TargetCheck

// checkTarget dials a tunnel's target for a user who may use the tunnel,
// so a client can say at once that a database is down instead of letting
// the first connection fail.
func (s *Server) checkTarget(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	t, err := s.lookupTunnel(r, p)
	if err != nil {
		return err
	}
	msg, ok := s.testDial(r.Context(), t.SocketAddress)
	writeJSON(w, http.StatusOK, TargetCheck{Reachable: ok, Message: msg})
	return nil
}

func (s *Server) lookupTunnel(r *http.Request, p *principal) (store.Tunnel, error) {
	return s.tunnelFor(r.Context(), r.PathValue("context"), p)
}

// tunnelFor finds the tunnel named name for p: 404 when there is none, 403
// when p may not use it.
func (s *Server) tunnelFor(ctx context.Context, name string, p *principal) (store.Tunnel, error) {
	if len(name) > acl.MaxContextLen { // no such tunnel can exist
		return store.Tunnel{}, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("there is no tunnel %q", clip(name, acl.MaxContextLen)), Err: store.ErrNotFound}
	}
	key := strings.ToLower(name)
	t, ok := s.cache.tunnel(key)
	if !ok {
		gen := s.cache.gen.Load()
		var err error
		t, err = s.st.Tunnel(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return t, &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("there is no tunnel %q", clip(name, acl.MaxContextLen)), Err: err}
		}
		if err != nil {
			return t, internal(err)
		}
		s.cache.putTunnel(key, t, gen)
	}
	if !s.mayUse(p, t) {
		return t, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("%s may not use tunnel %q: it is for %s", p.user.Username, t.Context, t.UserGroups), Err: ErrAccessDenied}
	}
	return t, nil
}

// adminHandler is a handler that needs an administrator.
type adminHandler func(w http.ResponseWriter, r *http.Request, p *principal) error

func (s *Server) admin(h adminHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if !p.admin {
			return errorf(http.StatusForbidden, "only members of admin@ROOT may do this")
		}
		return h(w, r, p)
	}
}

// jsonOp makes an admin operation a handler: the body decoded as In, the
// acting admin, the path's key (named key; "" for none), and op's result
// written as JSON with status.
func jsonOp[In, Out any](status int, key string, op func(ctx context.Context, actor, key string, in In) (Out, error)) adminHandler {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		var in In
		if err := decodeJSON(w, r, &in); err != nil {
			return err
		}
		out, err := op(r.Context(), p.user.Username, pathKey(r, key), in)
		if err != nil {
			return err
		}
		writeJSON(w, status, out)
		return nil
	}
}

// deleteOp makes an admin delete a handler that answers 204.
func deleteOp(key string, op func(ctx context.Context, actor, key string) error) adminHandler {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		if err := op(r.Context(), p.user.Username, pathKey(r, key)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func pathKey(r *http.Request, key string) string {
	if key == "" {
		return ""
	}
	return r.PathValue(key)
}

// readOp makes a read of the admin API a handler: op's result for the
// path's key (named key; "" for none) written as JSON.
func readOp[Out any](key string, op func(ctx context.Context, key string) (Out, error)) adminHandler {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		out, err := op(r.Context(), pathKey(r, key))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// The admin API's reads, for readOp.

func (s *Server) tunnelList(ctx context.Context, _ string) ([]TunnelInfo, error) {
	ts, err := s.Tunnels(ctx)
	if ts == nil {
		ts = []TunnelInfo{} // [] rather than null
	}
	return ts, err
}

func (s *Server) tunnelSpec(ctx context.Context, name string) (TunnelSpec, error) {
	t, err := s.st.Tunnel(ctx, name)
	if err != nil {
		return TunnelSpec{}, storeErr(err, fmt.Sprintf("tunnel %q", name))
	}
	return specOf(t), nil
}

func (s *Server) userList(ctx context.Context, _ string) ([]UserInfo, error) {
	us, err := s.st.Users(ctx)
	if err != nil {
		return nil, internal(err)
	}
	out := make([]UserInfo, len(us))
	for i, u := range us {
		out[i] = userInfo(u)
	}
	return out, nil
}

func (s *Server) userDetail(ctx context.Context, name string) (UserInfo, error) {
	u, err := s.st.User(ctx, name)
	if err != nil {
		return UserInfo{}, storeErr(err, fmt.Sprintf("user %q", name))
	}
	return userInfo(u), nil
}

// withoutKey adapts a read that takes no path key.
func withoutKey[Out any](op func(ctx context.Context) (Out, error)) func(context.Context, string) (Out, error) {
	return func(ctx context.Context, _ string) (Out, error) { return op(ctx) }
}

// create adapts an operation that makes something new (no path key).
func create[In, Out any](op func(ctx context.Context, actor string, in In) (Out, error)) func(context.Context, string, string, In) (Out, error) {
	return func(ctx context.Context, actor, _ string, in In) (Out, error) { return op(ctx, actor, in) }
}

// environmentRequest and groupRequest are the bodies that create an
// environment and a group; the API answers with them.
type environmentRequest struct {
	Name string `json:"name"`
}

type groupRequest struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
}

func (s *Server) createEnvironment(ctx context.Context, actor, _ string, req environmentRequest) (environmentRequest, error) {
	return req, s.CreateEnvironment(ctx, actor, req.Name)
}

func (s *Server) createGroup(ctx context.Context, actor, _ string, req groupRequest) (groupRequest, error) {
	return req, s.CreateGroup(ctx, actor, req.Name, req.Environment)
}

// EnvironmentInfo is an environment as the admin API shows it.
type EnvironmentInfo struct {
	Name      string    `json:"name"`
	Groups    int       `json:"groups"`
	CreatedAt time.Time `json:"createdAt"`
}

// GroupInfo is a group as the admin API shows it.
type GroupInfo struct {
	Name        string    `json:"name"`
	Environment string    `json:"environment"`
	Members     int       `json:"members"`
	CreatedAt   time.Time `json:"createdAt"`
}

// AuditEvent is an audit record as the admin API shows it.
type AuditEvent struct {
	ID      int64          `json:"id"`
	Time    time.Time      `json:"time"`
	Actor   string         `json:"actor"`
	Kind    string         `json:"kind"`
	Target  string         `json:"target"`
	Outcome string         `json:"outcome"`
	Details map[string]any `json:"details"`
	// Gateway is the gateway that wrote it.
	Gateway string `json:"gateway,omitempty"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	f := store.EventFilter{Actor: q.Get("actor"), Target: q.Get("target"), Kind: q.Get("kind")}
	for name, dst := range map[string]*int64{"before": &f.BeforeID} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return invalid(map[string]string{name: "must be a whole number"})
			}
			*dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return invalid(map[string]string{"limit": "must be a whole number from 1 to 1000"})
		}
		f.Limit = n
	}
	evs, err := s.events(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, evs)
	return nil
}
