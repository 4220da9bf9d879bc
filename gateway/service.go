package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/porthole/porthole/gateway/acl"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

// TunnelSpec is a tunnel as the API, the offline commands and the portal
// write it.
type TunnelSpec struct {
	Context       string `json:"context"`
	SocketAddress string `json:"socketAddress"`
	UserGroups    string `json:"userGroups"`
	LocalPort     int    `json:"localPort,omitempty"`
	Description   string `json:"description,omitempty"`
}

// TunnelPatch changes some fields of a tunnel; nil fields stay as they are.
type TunnelPatch struct {
	Context       *string `json:"context"`
	SocketAddress *string `json:"socketAddress"`
	UserGroups    *string `json:"userGroups"`
	LocalPort     *int    `json:"localPort"`
	Description   *string `json:"description"`
}

// TunnelInfo is a stored tunnel as the admin API shows it.
type TunnelInfo struct {
	TunnelSpec
	Connections int       `json:"connections"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// UserSpec is a new user.
type UserSpec struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Groups   []string `json:"groups"`
	Disabled bool     `json:"disabled,omitempty"`
}

// UserPatch changes some fields of a user; nil fields stay as they are.
type UserPatch struct {
	Password *string   `json:"password"`
	Groups   *[]string `json:"groups"`
	Disabled *bool     `json:"disabled"`
	// SecondFactor false removes the user's second factor (a lost phone);
	// true is refused: users set one up themselves.
	SecondFactor *bool `json:"secondFactor"`
}

// UserInfo is a user as the admin API shows it (never the hash).
type UserInfo struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
	Disabled bool     `json:"disabled"`
	Admin    bool     `json:"admin"`
	// Source is "local" or "directory".
	Source string `json:"source"`
	// DirectoryGroups are a directory account's groups in the directory.
	DirectoryGroups []string `json:"directoryGroups,omitempty"`
	// SecondFactor says whether the user has a second factor (TOTP).
	SecondFactor bool      `json:"secondFactor"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

func userInfo(u store.User) UserInfo {
	gs := groupsOf(u)
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.String()
	}
	src := "local"
	if u.Source != "" {
		src = u.Source
	}
	return UserInfo{Username: u.Username, Groups: names, Disabled: u.Disabled, Admin: isAdmin(gs), Source: src,
		DirectoryGroups: u.DirectoryGroups, SecondFactor: u.TOTPSecret != "", CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func specOf(t store.Tunnel) TunnelSpec {
	return TunnelSpec{Context: t.Context, SocketAddress: t.SocketAddress, UserGroups: t.UserGroups, LocalPort: t.LocalPort, Description: t.Description}
}

// catalog answers acl's existence questions from one read of the store.
type catalog struct {
	envs   []store.Environment
	groups []store.Group
}

func (s *Server) catalog(ctx context.Context) (*catalog, error) {
	envs, err := s.st.Environments(ctx)
	if err != nil {
		return nil, internal(err)
	}
	groups, err := s.st.Groups(ctx)
	if err != nil {
		return nil, internal(err)
	}
	return &catalog{envs: envs, groups: groups}, nil
}

func (d *catalog) HasEnvironment(name string) bool {
	return slices.ContainsFunc(d.envs, func(e store.Environment) bool { return strings.EqualFold(e.Name, name) })
}

func (d *catalog) HasGroup(name, env string) bool {
	return slices.ContainsFunc(d.groups, func(g store.Group) bool {
		return strings.EqualFold(g.Name, name) && (env == "" || strings.EqualFold(g.Environment, env))
	})
}

// checkTunnel validates spec and returns it normalised, or field errors.
func (s *Server) checkTunnel(ctx context.Context, spec TunnelSpec) (TunnelSpec, error) {
	fields := map[string]string{}
	if err := acl.CheckContext(spec.Context); err != nil {
		fields["context"] = err.Error()
	}
	if a, err := acl.ParseSocketAddress(spec.SocketAddress); err != nil {
		fields["socketAddress"] = err.Error()
	} else if err := s.deny.checkLiteral(a.String()); err != nil {
		fields["socketAddress"] = strings.TrimPrefix(err.Error(), ErrTargetDenied.Error()+": ")
	} else {
		spec.SocketAddress = a.String()
	}
	if spec.UserGroups == "" {
		spec.UserGroups = acl.DefaultPatterns
	}
	if ps, err := acl.ParsePatterns(spec.UserGroups); err != nil {
		fields["userGroups"] = err.Error()
	} else {
		dir, derr := s.catalog(ctx)
		if derr != nil {
			return spec, derr
		}
		if err := ps.Check(dir); err != nil {
			fields["userGroups"] = err.Error()
		}
	}
	if spec.LocalPort < 0 || spec.LocalPort > 65535 {
		fields["localPort"] = fmt.Sprintf("%d is outside 1-65535 (leave it empty for none)", spec.LocalPort)
	}
	if err := checkText(spec.Description, 500); err != nil {
		fields["description"] = err.Error()
	}
	if len(fields) > 0 {
		return spec, invalid(fields)
	}
	return spec, nil
}

func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("is longer than %d characters", max)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) >= 0 {
		return errors.New("may not contain control characters or line breaks")
	}
	return nil
}

func storeErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Msg: what + " does not exist", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Msg: what + " already exists", Err: err}
	}
	return internal(err)
}

// CreateTunnel validates and stores a new tunnel; it works at once.
func (s *Server) CreateTunnel(ctx context.Context, actor string, spec TunnelSpec) (TunnelSpec, error) {
	spec, err := s.checkTunnel(ctx, spec)
	if err != nil {
		return spec, err
	}
	actx, audited := s.audited(ctx, actor, "tunnel.create", spec.Context, nil, spec)
	if err := s.st.CreateTunnel(actx, store.Tunnel{Context: spec.Context, SocketAddress: spec.SocketAddress,
		UserGroups: spec.UserGroups, LocalPort: spec.LocalPort, Description: spec.Description}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return spec, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("a tunnel with context %q already exists", spec.Context),
				Fields: map[string]string{"context": "is already used by another tunnel (contexts ignore case)"}, Err: err}
		}
		return spec, internal(err)
	}
	s.changed(ctx)
	audited()
	return spec, nil
}

// UpdateTunnel applies patch to the tunnel named context. Live
// connections whose users may no longer use it are closed.
func (s *Server) UpdateTunnel(ctx context.Context, actor, context string, patch TunnelPatch) (TunnelSpec, error) {
	old, err := s.st.Tunnel(ctx, context)
	if err != nil {
		return TunnelSpec{}, storeErr(err, fmt.Sprintf("tunnel %q", context))
	}
	before := specOf(old)
	spec := before
	if patch.Context != nil {
		spec.Context = *patch.Context
	}
	if patch.SocketAddress != nil {
		spec.SocketAddress = *patch.SocketAddress
	}
	if patch.UserGroups != nil {
		spec.UserGroups = *patch.UserGroups
		if spec.UserGroups == "" {
			return spec, invalid(map[string]string{"userGroups": "is required (use .*@.* for everyone)"})
		}
	}
	if patch.LocalPort != nil {
		spec.LocalPort = *patch.LocalPort
	}
	if patch.Description != nil {
		spec.Description = *patch.Description
	}
	if spec, err = s.checkTunnel(ctx, spec); err != nil {
		return spec, err
	}
	actx, audited := s.audited(ctx, actor, "tunnel.update", spec.Context, before, spec)
	if err := s.st.UpdateTunnel(actx, old.Context, store.Tunnel{Context: spec.Context, SocketAddress: spec.SocketAddress,
		UserGroups: spec.UserGroups, LocalPort: spec.LocalPort, Description: spec.Description}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return spec, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("a tunnel with context %q already exists", spec.Context),
				Fields: map[string]string{"context": "is already used by another tunnel (contexts ignore case)"}, Err: err}
		}
		return spec, storeErr(err, fmt.Sprintf("tunnel %q", context))
	}
	s.changed(ctx)
	audited()
	onTunnel := func(lc *liveConn) bool { return strings.EqualFold(lc.context, old.Context) }
	if !strings.EqualFold(old.Context, spec.Context) {
		s.closeLive(onTunnel, wire.CloseForbidden, "the tunnel was renamed to "+spec.Context)
	} else {
		s.recheckLive(ctx, onTunnel)
	}
	return spec, nil
}

// DeleteTunnel removes a tunnel and closes its live connections.
func (s *Server) DeleteTunnel(ctx context.Context, actor, context string) error {
	old, err := s.st.Tunnel(ctx, context)
	if err != nil {
		return storeErr(err, fmt.Sprintf("tunnel %q", context))
	}
	actx, audited := s.audited(ctx, actor, "tunnel.delete", old.Context, specOf(old), nil)
	if err := s.st.DeleteTunnel(actx, old.Context); err != nil {
		return storeErr(err, fmt.Sprintf("tunnel %q", context))
	}
	s.changed(ctx)
	audited()
	s.closeLive(func(lc *liveConn) bool { return strings.EqualFold(lc.context, old.Context) }, wire.CloseForbidden, "the tunnel was deleted")
	return nil
}

// Tunnels lists every tunnel with its live connection count.
func (s *Server) Tunnels(ctx context.Context) ([]TunnelInfo, error) {
	ts, err := s.st.Tunnels(ctx)
	if err != nil {
		return nil, internal(err)
	}
	counts := map[string]int{}
	for _, lc := range s.liveSnapshot(nil) {
		counts[strings.ToLower(lc.context)]++
	}
	out := make([]TunnelInfo, len(ts))
	for i, t := range ts {
		out[i] = TunnelInfo{TunnelSpec: specOf(t), Connections: counts[strings.ToLower(t.Context)], CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	}
	return out, nil
}

// tunnelsReferencing lists the tunnels whose patterns name env (and group,
// when group is not "") without regular expressions.
func (s *Server) tunnelsReferencing(ctx context.Context, group, env string) ([]string, error) {
	ts, err := s.st.Tunnels(ctx)
	if err != nil {
		return nil, internal(err)
	}
	var out []string
	for _, t := range ts {
		ps, err := s.patterns.get(t.UserGroups)
		if err != nil {
			continue
		}
		for _, p := range ps {
			var hit bool
			if group == "" {
				hit = p.LiteralEnv() && strings.EqualFold(p.Env, env)
			} else {
				hit = p.LiteralGroup() && p.Matches(acl.Group{Name: group, Env: env})
			}
			if hit {
				out = append(out, t.Context)
				break
			}
		}
	}
	return out, nil
}

func inUse(what string, tunnels []string) *Error {
	return &Error{Status: http.StatusConflict,
		Msg:    fmt.Sprintf("%s is still named by tunnel(s) %s: change their user groups first", what, strings.Join(tunnels, ", ")),
		Fields: map[string]string{"tunnels": strings.Join(tunnels, ", ")}}
}

// CreateEnvironment adds an environment.
func (s *Server) CreateEnvironment(ctx context.Context, actor, name string) error {
	if err := acl.CheckName(name); err != nil {
		return invalid(map[string]string{"name": err.Error()})
	}
	actx, audited := s.audited(ctx, actor, "environment.create", name, nil, map[string]string{"name": name})
	if err := s.st.CreateEnvironment(actx, name); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("environment %q already exists", name),
				Fields: map[string]string{"name": "is already used (names ignore case)"}, Err: err}
		}
		return internal(err)
	}
	audited()
	return nil
}

// DeleteEnvironment removes an environment with no groups that no tunnel
// names. ROOT stays.
func (s *Server) DeleteEnvironment(ctx context.Context, actor, name string) error {
	if strings.EqualFold(name, RootEnv) {
		return errorf(http.StatusConflict, "the ROOT environment cannot be deleted")
	}
	refs, err := s.tunnelsReferencing(ctx, "", name)
	if err != nil {
		return err
	}
	if len(refs) > 0 {
		return inUse(fmt.Sprintf("environment %q", name), refs)
	}
	actx, audited := s.audited(ctx, actor, "environment.delete", name, map[string]string{"name": name}, nil)
	if err := s.st.DeleteEnvironment(actx, name); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("environment %q still has groups: delete them first", name), Err: err}
		}
		return storeErr(err, fmt.Sprintf("environment %q", name))
	}
	audited()
	return nil
}

// CreateGroup adds a group to an existing environment.
func (s *Server) CreateGroup(ctx context.Context, actor, name, env string) error {
	fields := map[string]string{}
	if err := acl.CheckName(name); err != nil {
		fields["name"] = err.Error()
	}
	if err := acl.CheckName(env); err != nil {
		fields["environment"] = err.Error()
	}
	if len(fields) > 0 {
		return invalid(fields)
	}
	actx, audited := s.audited(ctx, actor, "group.create", name+"@"+env, nil, map[string]string{"name": name, "environment": env})
	if err := s.st.CreateGroup(actx, name, env); err != nil {
		switch {
		case errors.Is(err, store.ErrConflict):
			return &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("group %q already exists", name+"@"+env),
				Fields: map[string]string{"name": "is already used in this environment (names ignore case)"}, Err: err}
		case errors.Is(err, store.ErrNotFound):
			return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("environment %q does not exist", env),
				Fields: map[string]string{"environment": "does not exist: create it first"}, Err: err}
		}
		return internal(err)
	}
	audited()
	return nil
}

// DeleteGroupNamed is DeleteGroup with the group written Group@Environment.
func (s *Server) DeleteGroupNamed(ctx context.Context, actor, ref string) error {
	g, err := acl.ParseGroup(ref)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Msg: err.Error() + ", e.g. staff@ROOT"}
	}
	return s.DeleteGroup(ctx, actor, g.Name, g.Env)
}

// DeleteGroup removes a group that no tunnel names; its members lose it,
// so their tickets are revoked and their tunnels re-checked.
func (s *Server) DeleteGroup(ctx context.Context, actor, name, env string) error {
	if strings.EqualFold(name, AdminGroup) && strings.EqualFold(env, RootEnv) {
		return errorf(http.StatusConflict, "the admin@ROOT group cannot be deleted")
	}
	refs, err := s.tunnelsReferencing(ctx, name, env)
	if err != nil {
		return err
	}
	if len(refs) > 0 {
		return inUse(fmt.Sprintf("group %q", name+"@"+env), refs)
	}
	users, err := s.st.Users(ctx)
	if err != nil {
		return internal(err)
	}
	actx, audited := s.audited(ctx, actor, "group.delete", name+"@"+env, map[string]string{"name": name, "environment": env}, nil)
	if err := s.st.DeleteGroup(actx, name, env); err != nil {
		return storeErr(err, fmt.Sprintf("group %q", name+"@"+env))
	}
	s.changed(ctx)
	audited()
	for _, u := range users {
		if slices.ContainsFunc(u.Groups, func(g store.GroupRef) bool {
			return strings.EqualFold(g.Name, name) && strings.EqualFold(g.Environment, env)
		}) {
			s.revokeUser(ctx, u.Username, "you were removed from group "+name+"@"+env)
		}
	}
	return nil
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func (s *Server) parseGroups(ctx context.Context, names []string) ([]store.GroupRef, error) {
	dir, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.GroupRef
	var problems []string
	for _, n := range names {
		g, err := acl.ParseGroup(n)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !dir.HasGroup(g.Name, g.Env) {
			problems = append(problems, fmt.Sprintf("group %q does not exist", n))
			continue
		}
		out = append(out, store.GroupRef{Name: g.Name, Environment: g.Env})
	}
	if len(problems) > 0 {
		return nil, invalid(map[string]string{"groups": strings.Join(problems, "; ")})
	}
	return out, nil
}

// CreateUser adds a user with a password and groups.
func (s *Server) CreateUser(ctx context.Context, actor string, spec UserSpec) (UserInfo, error) {
	fields := map[string]string{}
	if !usernameRE.MatchString(spec.Username) {
		fields["username"] = "must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
	}
	if len(spec.Password) < MinPasswordLen {
		fields["password"] = fmt.Sprintf("must have at least %d characters", MinPasswordLen)
	}
	groups, err := s.parseGroups(ctx, spec.Groups)
	if err != nil {
		var he *Error
		if !errors.As(err, &he) || he.Fields == nil {
			return UserInfo{}, err
		}
		fields["groups"] = he.Fields["groups"]
	}
	if len(fields) > 0 {
		return UserInfo{}, invalid(fields)
	}
	hash, err := hashPassword(spec.Password, s.hash)
	if err != nil {
		return UserInfo{}, internal(err)
	}
	u := store.User{Username: spec.Username, PasswordHash: hash, Disabled: spec.Disabled, Groups: groups}
	after := userInfo(u)
	after.CreatedAt = s.cfg.Now().UTC()
	actx, audited := s.audited(ctx, actor, "user.create", u.Username, nil, after)
	if err := s.st.CreateUser(actx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return UserInfo{}, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("user %q already exists", spec.Username),
				Fields: map[string]string{"username": "is already taken (names ignore case)"}, Err: err}
		}
		return UserInfo{}, storeErr(err, "a group")
	}
	u, err = s.st.User(ctx, spec.Username)
	if err != nil {
		return UserInfo{}, internal(err)
	}
	info := userInfo(u)
	audited()
	return info, nil
}

// UpdateUser applies patch. A new password, a disabled account or a lost
// group revokes the user's tickets and closes their tunnels.
func (s *Server) UpdateUser(ctx context.Context, actor, username string, patch UserPatch) (UserInfo, error) {
	old, err := s.st.User(ctx, username)
	if err != nil {
		return UserInfo{}, storeErr(err, fmt.Sprintf("user %q", username))
	}
	u := old
	revoke := ""
	if old.Source == store.SourceDirectory {
		fields := map[string]string{}
		if patch.Password != nil {
			fields["password"] = "a directory account's password is changed in the directory"
		}
		if patch.Groups != nil {
			fields["groups"] = "a directory account's groups come from the directory: map directory groups to Porthole groups instead"
		}
		if len(fields) > 0 {
			return UserInfo{}, invalid(fields)
		}
	}
	if patch.SecondFactor != nil {
		if *patch.SecondFactor {
			return UserInfo{}, invalid(map[string]string{"secondFactor": "users set up their second factor themselves; an administrator can only remove it"})
		}
		u.TOTPSecret = ""
	}
	if patch.Password != nil {
		if len(*patch.Password) < MinPasswordLen {
			return UserInfo{}, invalid(map[string]string{"password": fmt.Sprintf("must have at least %d characters", MinPasswordLen)})
		}
		if u.PasswordHash, err = hashPassword(*patch.Password, s.hash); err != nil {
			return UserInfo{}, internal(err)
		}
		revoke = "your password was changed"
	}
	if patch.Groups != nil {
		if u.Groups, err = s.parseGroups(ctx, *patch.Groups); err != nil {
			return UserInfo{}, err
		}
		for _, g := range old.Groups {
			if !slices.ContainsFunc(u.Groups, func(n store.GroupRef) bool {
				return strings.EqualFold(n.Name, g.Name) && strings.EqualFold(n.Environment, g.Environment)
			}) {
				revoke = "you were removed from group " + g.Name + "@" + g.Environment
			}
		}
	}
	if patch.Disabled != nil {
		u.Disabled = *patch.Disabled
		if u.Disabled && !old.Disabled {
			revoke = "your account was disabled"
		}
	}
	if (isAdmin(groupsOf(old)) && !old.Disabled) && (!isAdmin(groupsOf(u)) || u.Disabled) {
		if err := s.keepOneAdmin(ctx, old.Username); err != nil {
			return UserInfo{}, err
		}
	}
	info := userInfo(u)
	info.CreatedAt = old.CreatedAt
	info.UpdatedAt = s.cfg.Now().UTC()
	actx, audited := s.audited(ctx, actor, "user.update", u.Username, userInfo(old), info)
	if err := s.st.UpdateUser(actx, u); err != nil {
		return UserInfo{}, storeErr(err, fmt.Sprintf("user %q", username))
	}
	s.changed(ctx)
	audited()
	if revoke != "" {
		s.revokeUser(ctx, u.Username, revoke)
	}
	return info, nil
}

// DeleteUser removes a user, revoking their tickets and closing their
// tunnels.
func (s *Server) DeleteUser(ctx context.Context, actor, username string) error {
	old, err := s.st.User(ctx, username)
	if err != nil {
		return storeErr(err, fmt.Sprintf("user %q", username))
	}
	if isAdmin(groupsOf(old)) && !old.Disabled {
		if err := s.keepOneAdmin(ctx, old.Username); err != nil {
			return err
		}
	}
	actx, audited := s.audited(ctx, actor, "user.delete", old.Username, userInfo(old), nil)
	if err := s.st.DeleteUser(actx, old.Username); err != nil {
		return storeErr(err, fmt.Sprintf("user %q", username))
	}
	audited()
	s.revokeUser(ctx, old.Username, "your account was deleted")
	return nil
}

// keepOneAdmin refuses a change that would leave no enabled administrator
// besides the user being changed.
func (s *Server) keepOneAdmin(ctx context.Context, changing string) error {
	users, err := s.st.Users(ctx)
	if err != nil {
		return internal(err)
	}
	for _, u := range users {
		if !strings.EqualFold(u.Username, changing) && !u.Disabled && isAdmin(groupsOf(u)) {
			return nil
		}
	}
	return errorf(http.StatusConflict, "%q is the last enabled administrator: make someone else an administrator first", changing)
}

// revokeUser ends every session of a user and closes their tunnels.
func (s *Server) revokeUser(ctx context.Context, username, reason string) {
	s.revokeUserExcept(ctx, username, "", reason)
}

// revokeUserExcept ends every session of a user but the one named keep
// ("" for none) and closes the tunnels of those sessions.
func (s *Server) revokeUserExcept(ctx context.Context, username, keep, reason string) {
	defer s.changed(ctx)
	if _, err := s.st.RevokeUserSessions(ctx, username, keep, s.cfg.Now()); err != nil {
		s.log.Error("revoke sessions", "user", username, "err", err)
	}
	s.closeLive(func(lc *liveConn) bool {
		return strings.EqualFold(lc.user, username) && (keep == "" || lc.session != keep)
	}, wire.CloseUnauthorized, reason)
}

// PasswordChange is a user's change of their own password.
type PasswordChange = wire.PasswordChange

// ChangeOwnPassword lets a signed-in user change their password, proving
// the current one (a wrong one counts as a failed sign-in for the rate
// limit). Every other session of the user is signed out and its tunnels
// closed; the session that made the change carries on.
func (s *Server) ChangeOwnPassword(ctx context.Context, p *principal, ch PasswordChange, addr string) error {
	fields := map[string]string{}
	if ch.CurrentPassword == "" {
		fields["currentPassword"] = "is required"
	}
	if len(ch.NewPassword) < MinPasswordLen {
		fields["newPassword"] = fmt.Sprintf("must have at least %d characters", MinPasswordLen)
	} else if ch.NewPassword == ch.CurrentPassword {
		fields["newPassword"] = "is the same as the current one"
	}
	if len(fields) > 0 {
		return invalid(fields)
	}
	at, err := s.guard(ctx, p.user.Username, addr)
	if err != nil {
		return err
	}
	ok := false
	defer func() { at.done(ok) }()
	u, err := s.st.User(ctx, p.user.Username)
	if err != nil {
		return storeErr(err, fmt.Sprintf("user %q", p.user.Username))
	}
	match, err := checkPassword(u.PasswordHash, ch.CurrentPassword)
	if err != nil {
		return internal(fmt.Errorf("user %q: %w", u.Username, err))
	}
	if !match {
		s.audit.SignIn(ctx, u.Username, addr, false, "wrong current password in a password change")
		return invalid(map[string]string{"currentPassword": "is wrong"})
	}
	ok = true
	if u.PasswordHash, err = hashPassword(ch.NewPassword, s.hash); err != nil {
		return internal(err)
	}
	actx, audited := s.audited(ctx, u.Username, "user.password", u.Username, nil, map[string]any{"password": "changed by the user", "from": addr})
	if err := s.st.UpdateUser(actx, u); err != nil {
		return storeErr(err, fmt.Sprintf("user %q", u.Username))
	}
	audited()
	s.revokeUserExcept(ctx, u.Username, p.session, "your password was changed")
	return nil
}

// audited prepares the audit row of an admin change: the returned context
// carries it into the store, which writes it in the change's own
// transaction (both or neither), and done, called once the change
// succeeded, logs it. An Audit that is not the store's is called instead.
func (s *Server) audited(ctx context.Context, actor, kind, target string, before, after any) (context.Context, func()) {
	sa, ok := s.audit.(*storeAudit)
	if !ok {
		return ctx, func() { s.audit.AdminChange(ctx, actor, kind, target, before, after) }
	}
	e := sa.event(actor, kind, target, "ok", map[string]any{"before": before, "after": after})
	return store.WithEvents(ctx, e), func() { sa.logEvent(ctx, e) }
}
