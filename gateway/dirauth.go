package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/porthole/porthole/gateway/acl"
	"github.com/porthole/porthole/gateway/directory"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

// settingGroupMap holds the administrators' mapping of directory groups to
// Porthole groups, as JSON.
const settingGroupMap = "directory_group_map"

// GroupMapping makes members of a directory group members of a Porthole
// group.
type GroupMapping struct {
	DirectoryGroup string `json:"directoryGroup"`
	Group          string `json:"group"` // Name@Environment
}

// newDirectory connects the configured directory section to the gateway.
func newDirectory(c *DirectoryConfig) (*directory.Directory, error) {
	return directory.New(directory.Config{
		URL: c.URL, StartTLS: c.StartTLS, CAFile: c.CAFile, ServerName: c.ServerName,
		BindDN: c.BindDN, BindPassword: c.BindPassword, BaseDN: c.BaseDN,
		UserFilter: c.UserFilter, UserAttr: c.UserAttr, GroupBaseDN: c.GroupBaseDN,
		GroupFilter: c.GroupFilter, DirectGroupsOnly: c.DirectGroupsOnly, GroupAttr: c.GroupAttr,
		Timeout: time.Duration(c.Timeout),
	})
}

// directorySignIn proves a password with the directory and brings the
// account's groups into the store. Refusals that do not count toward the
// rate limits wrap errNotCounted.
func (s *Server) directorySignIn(ctx context.Context, username, password, addr string, fail func(string) error) (store.User, error) {
	acct, err := s.dir.Authenticate(ctx, username, password)
	switch {
	case errors.Is(err, directory.ErrNoSuchUser):
		return store.User{}, fail("unknown user")
	case errors.Is(err, directory.ErrBadCredentials):
		return store.User{}, fail("wrong password")
	case errors.Is(err, directory.ErrDisabled):
		s.audit.SignIn(ctx, username, addr, false, "account disabled in the directory")
		return store.User{}, &Error{Status: http.StatusForbidden, Msg: "this account is disabled in the directory; ask your IT department", Err: errNotCounted, Code: wire.CodeAccountDisabled}
	case err != nil:
		s.log.Error("directory sign-in", "user", username, "err", err)
		s.metrics.directoryErrors.Inc()
		s.audit.SignIn(ctx, username, addr, false, "directory unavailable")
		return store.User{}, &Error{Status: http.StatusServiceUnavailable, RetryAfter: 30 * time.Second,
			Msg: "the directory (" + s.dir.URL() + ") is not answering, so directory accounts cannot sign in now: try again later (local accounts still can)",
			Err: fmt.Errorf("%w: %w", errNotCounted, err)}
	}
	u, err := s.syncDirectoryAccount(ctx, acct)
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		s.audit.SignIn(ctx, u.Username, addr, false, "account disabled")
		return store.User{}, &Error{Status: http.StatusForbidden, Msg: "this account is disabled; ask an administrator", Err: errNotCounted, Code: wire.CodeAccountDisabled}
	}
	return u, nil
}

// groupMappings reads the administrators' mappings.
func (s *Server) groupMappings(ctx context.Context) ([]GroupMapping, error) {
	v, err := s.st.Setting(ctx, settingGroupMap)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ms []GroupMapping
	if err := json.Unmarshal([]byte(v), &ms); err != nil {
		return nil, fmt.Errorf("stored directory group mappings: %w", err)
	}
	return ms, nil
}

// mapGroups turns directory groups into Porthole groups: G becomes
// G@domainEnv when that group exists, plus whatever the mappings name
// for G. Only groups that exist are returned, sorted, each once.
func mapGroups(dirGroups []string, mappings []GroupMapping, domainEnv string, cat *catalog) []store.GroupRef {
	var out []store.GroupRef
	add := func(name, env string) {
		for _, g := range cat.groups {
			if strings.EqualFold(g.Name, name) && strings.EqualFold(g.Environment, env) {
				ref := store.GroupRef{Name: g.Name, Environment: g.Environment}
				if !slices.Contains(out, ref) {
					out = append(out, ref)
				}
				return
			}
		}
	}
	for _, dg := range dirGroups {
		add(dg, domainEnv)
		for _, m := range mappings {
			if strings.EqualFold(m.DirectoryGroup, dg) {
				if g, err := acl.ParseGroup(m.Group); err == nil {
					add(g.Name, g.Env)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b store.GroupRef) int {
		return strings.Compare(strings.ToLower(a.Environment+"@"+a.Name), strings.ToLower(b.Environment+"@"+b.Name))
	})
	return out
}

// syncDirectoryAccount writes what the directory says about an account
// into the store (creating it on first sign-in), audited as the
// directory's change. A lost group ends the user's sessions and closes
// their tunnels.
func (s *Server) syncDirectoryAccount(ctx context.Context, acct directory.Account) (store.User, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return store.User{}, err
	}
	ms, err := s.groupMappings(ctx)
	if err != nil {
		return store.User{}, internal(err)
	}
	groups := mapGroups(acct.Groups, ms, s.cfg.Directory.Domain, cat)
	old, err := s.st.User(ctx, acct.Username)
	if errors.Is(err, store.ErrNotFound) {
		u := store.User{Username: acct.Username, Source: store.SourceDirectory, DirectoryGroups: acct.Groups, Groups: groups}
		actx, audited := s.audited(ctx, "directory", "user.create", u.Username, nil, userInfo(u))
		if err := s.st.CreateUser(actx, u); err != nil && !errors.Is(err, store.ErrConflict) {
			return store.User{}, internal(err)
		}
		audited()
		return s.st.User(ctx, acct.Username)
	}
	if err != nil {
		return store.User{}, internal(err)
	}
	if old.Source != store.SourceDirectory {
		// A local account of the same name wins; never turn it into a
		// directory one.
		return store.User{}, errorf(http.StatusConflict, "a local account named %q exists: it signs in with its own password", old.Username)
	}
	u := old
	u.DirectoryGroups, u.Groups = acct.Groups, groups
	if slices.Equal(old.Groups, u.Groups) && slices.Equal(old.DirectoryGroups, u.DirectoryGroups) {
		return old, nil
	}
	actx, audited := s.audited(ctx, "directory", "user.update", u.Username, userInfo(old), userInfo(u))
	if err := s.st.UpdateUser(actx, u); err != nil {
		return store.User{}, internal(err)
	}
	s.changed(ctx)
	audited()
	if lost := lostGroups(old.Groups, u.Groups); len(lost) > 0 {
		s.revokeUser(ctx, u.Username, "you were removed from "+strings.Join(lost, ", ")+" in the directory")
	}
	return u, nil
}

// lostGroups names the groups in before that after lacks.
func lostGroups(before, after []store.GroupRef) []string {
	var out []string
	for _, g := range before {
		if !slices.ContainsFunc(after, func(n store.GroupRef) bool {
			return strings.EqualFold(n.Name, g.Name) && strings.EqualFold(n.Environment, g.Environment)
		}) {
			out = append(out, g.Name+"@"+g.Environment)
		}
	}
	return out
}

// recheckDirectory reads every directory account that has a live session
// (or token) again: one that is gone or disabled in the directory is
// signed out and its tunnels closed; group changes are applied (a lost
// group does the same). While the directory does not answer nothing is
// changed; the error is logged and counted.
func (s *Server) recheckDirectory(ctx context.Context) {
	sessions, err := s.st.Sessions(ctx, store.SessionFilter{LiveAt: s.cfg.Now()})
	if err != nil {
		s.log.Error("directory re-check: list sessions", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, se := range sessions {
		key := strings.ToLower(se.Username)
		if seen[key] {
			continue
		}
		seen[key] = true
		u, err := s.st.User(ctx, se.Username)
		if err != nil || u.Source != store.SourceDirectory {
			continue
		}
		acct, err := s.dir.Lookup(ctx, u.Username)
		switch {
		case errors.Is(err, directory.ErrNoSuchUser):
			s.audit.AdminChange(ctx, "directory", "user.revoke", u.Username, nil, map[string]any{"reason": "not in the directory any more"})
			s.revokeUser(ctx, u.Username, "your account is no longer in the directory")
		case errors.Is(err, directory.ErrDisabled):
			s.audit.AdminChange(ctx, "directory", "user.revoke", u.Username, nil, map[string]any{"reason": "disabled in the directory"})
			s.revokeUser(ctx, u.Username, "your account was disabled in the directory")
		case err != nil:
			s.metrics.directoryErrors.Inc()
			s.log.Warn("directory re-check: the directory is not answering; signed-in directory users keep their access until it does", "err", err)
			return
		default:
			if _, err := s.syncDirectoryAccount(ctx, acct); err != nil {
				s.log.Error("directory re-check", "user", u.Username, "err", err)
			}
		}
	}
}

// DirectoryInfo is what the portal and the API show about the directory.
type DirectoryInfo struct {
	Configured    bool           `json:"configured"`
	URL           string         `json:"url,omitempty"`
	Domain        string         `json:"domain,omitempty"`
	RecheckPeriod string         `json:"recheckPeriod,omitempty"`
	Mappings      []GroupMapping `json:"mappings"`
}

// Directory describes the configured directory and the group mappings.
func (s *Server) Directory(ctx context.Context) (DirectoryInfo, error) {
	ms, err := s.groupMappings(ctx)
	if err != nil {
		return DirectoryInfo{}, internal(err)
	}
	info := DirectoryInfo{Configured: s.dir != nil, Mappings: ms}
	if info.Mappings == nil {
		info.Mappings = []GroupMapping{}
	}
	if s.dir != nil {
		info.URL, info.Domain = s.dir.URL(), s.cfg.Directory.Domain
		info.RecheckPeriod = time.Duration(s.cfg.Directory.RecheckPeriod).String()
	}
	return info, nil
}

// SetGroupMappings replaces the mappings of directory groups. Each must
// name a directory group and an existing Porthole group. Users get the
// new groups at their next sign-in or re-check.
func (s *Server) SetGroupMappings(ctx context.Context, actor string, ms []GroupMapping) ([]GroupMapping, error) {
	cat, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	out := []GroupMapping{}
	for i, m := range ms {
		m.DirectoryGroup = strings.TrimSpace(m.DirectoryGroup)
		m.Group = strings.TrimSpace(m.Group)
		key := fmt.Sprintf("mappings[%d]", i)
		if m.DirectoryGroup == "" || checkText(m.DirectoryGroup, 256) != nil {
			fields[key] = "directoryGroup must be a group name of 1-256 printable characters"
			continue
		}
		g, err := acl.ParseGroup(m.Group)
		if err != nil {
			fields[key] = fmt.Sprintf("group %q: write it as Group@Environment", m.Group)
			continue
		}
		found := false
		for _, cg := range cat.groups {
			if strings.EqualFold(cg.Name, g.Name) && strings.EqualFold(cg.Environment, g.Env) {
				m.Group, found = cg.Name+"@"+cg.Environment, true
			}
		}
		if !found {
			fields[key] = fmt.Sprintf("group %q does not exist", m.Group)
			continue
		}
		if !slices.ContainsFunc(out, func(o GroupMapping) bool {
			return strings.EqualFold(o.DirectoryGroup, m.DirectoryGroup) && strings.EqualFold(o.Group, m.Group)
		}) {
			out = append(out, m)
		}
	}
	if len(fields) > 0 {
		return nil, invalid(fields)
	}
	before, err := s.groupMappings(ctx)
	if err != nil {
		return nil, internal(err)
	}
	b, _ := json.Marshal(out)
	actx, audited := s.audited(ctx, actor, "directory.mappings", "directory", before, out)
	if err := s.st.SetSetting(actx, settingGroupMap, string(b)); err != nil {
		return nil, internal(err)
	}
	audited()
	return out, nil
}

func (s *Server) getDirectory(w http.ResponseWriter, r *http.Request, p *principal) error {
	info, err := s.Directory(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

func (s *Server) putMappings(w http.ResponseWriter, r *http.Request, p *principal) error {
	var ms []GroupMapping
	if err := decodeJSON(w, r, &ms); err != nil {
		return err
	}
	out, err := s.SetGroupMappings(r.Context(), p.user.Username, ms)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
