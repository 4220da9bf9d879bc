package gateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

// API tokens are for scripts and services: an administrator makes one for
// a user, naming the tunnels it may open and when it expires. It is a
// ticket for a session of kind "token": shown once, checked like any
// ticket (the user's groups still decide, so removing the user from a
// group or disabling them stops the token too), never renewed past its
// expiry, and revoked by an administrator.
const (
	defaultTokenLifetime = 90 * 24 * time.Hour
	maxTokenLifetime     = 366 * 24 * time.Hour
)

// TokenSpec asks for a new API token.
type TokenSpec struct {
	Name string `json:"name"`
	// User is who the token acts as; "" means the administrator making it.
	User string `json:"user"`
	// Tunnels are the contexts it may open; ["*"] means all the user's.
	Tunnels []string `json:"tunnels"`
	// ExpiresIn is its lifetime, like "720h"; 0 means 90 days.
	ExpiresIn Duration `json:"expiresIn"`
}

// TokenInfo describes an API token (never the token itself, but once).
type TokenInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	User      string    `json:"user"`
	Tunnels   []string  `json:"tunnels"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// Token is the secret, present only in the answer that made it.
	Token string `json:"token,omitempty"`
}

func tokenInfo(se store.Session) TokenInfo {
	return TokenInfo{ID: se.ID, Name: se.Name, User: se.Username, Tunnels: se.Scope, CreatedBy: se.CreatedBy,
		CreatedAt: se.CreatedAt.UTC(), ExpiresAt: se.ExpiresAt.UTC()}
}

// CreateToken makes an API token and returns it with its secret, which is
// not kept and cannot be shown again.
func (s *Server) CreateToken(ctx context.Context, actor string, spec TokenSpec) (TokenInfo, error) {
	fields := map[string]string{}
	spec.Name = strings.TrimSpace(spec.Name)
	if spec.Name == "" || checkText(spec.Name, 100) != nil {
		fields["name"] = "must be 1-100 printable characters, saying what the token is for"
	}
	if spec.User == "" {
		spec.User = actor
	}
	u, err := s.st.User(ctx, spec.User)
	if err != nil {
		fields["user"] = fmt.Sprintf("no user %q", spec.User)
	}
	var scope []string
	if len(spec.Tunnels) == 0 {
		fields["tunnels"] = `name the tunnels the token may open, or ["*"] for all the user's`
	}
	for _, c := range spec.Tunnels {
		c = strings.TrimSpace(c)
		if c == "*" {
			scope = []string{"*"}
			break
		}
		t, err := s.st.Tunnel(ctx, c)
		if err != nil {
			fields["tunnels"] = fmt.Sprintf("no tunnel %q", c)
			break
		}
		if !slices.Contains(scope, t.Context) {
			scope = append(scope, t.Context)
		}
	}
	life := time.Duration(spec.ExpiresIn)
	if life == 0 {
		life = defaultTokenLifetime
	}
	if life < time.Minute || life > maxTokenLifetime {
		fields["expiresIn"] = fmt.Sprintf("must be between 1m and %s", maxTokenLifetime)
	}
	if len(fields) > 0 {
		return TokenInfo{}, invalid(fields)
	}
	now := s.cfg.Now()
	se := store.Session{ID: randomID(16), Username: u.Username, CreatedAt: now, ExpiresAt: now.Add(life),
		Kind: store.KindToken, Name: spec.Name, Scope: scope, CreatedBy: actor}
	info := tokenInfo(se)
	actx, audited := s.audited(ctx, actor, "token.create", u.Username, nil, info)
	if err := s.st.CreateSession(actx, se); err != nil {
		return TokenInfo{}, internal(err)
	}
	audited()
	info.Token = s.signer.Load().Sign(ticketClaims(u.Username, se.ID, now, se.ExpiresAt))
	return info, nil
}

// Tokens lists the API tokens that are live.
func (s *Server) Tokens(ctx context.Context) ([]TokenInfo, error) {
	kind := store.KindToken
	ss, err := s.st.Sessions(ctx, store.SessionFilter{LiveAt: s.cfg.Now(), Kind: &kind})
	if err != nil {
		return nil, internal(err)
	}
	out := make([]TokenInfo, 0, len(ss))
	for _, se := range ss {
		out = append(out, tokenInfo(se))
	}
	return out, nil
}

// RevokeToken ends an API token and closes the tunnels it opened.
func (s *Server) RevokeToken(ctx context.Context, actor, id string) error {
	se, err := s.st.Session(ctx, id)
	if err != nil || se.Kind != store.KindToken {
		return errorf(http.StatusNotFound, "no API token %q", id)
	}
	if !se.RevokedAt.IsZero() {
		return nil
	}
	actx, audited := s.audited(ctx, actor, "token.revoke", se.Username, tokenInfo(se), nil)
	if err := s.st.RevokeSession(actx, id, s.cfg.Now()); err != nil {
		return internal(err)
	}
	audited()
	s.changed(ctx)
	s.closeLive(func(lc *liveConn) bool { return lc.session == id }, wire.CloseUnauthorized, "the API token was revoked")
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p *principal) error {
	ts, err := s.Tokens(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ts)
	return nil
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	var spec TokenSpec
	if err := decodeJSON(w, r, &spec); err != nil {
		return err
	}
	t, err := s.CreateToken(r.Context(), p.user.Username, spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := s.RevokeToken(r.Context(), p.user.Username, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
