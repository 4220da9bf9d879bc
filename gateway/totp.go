package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

// Second factor: time-based one-time codes (TOTP, RFC 6238), six digits
// every 30 seconds, as every authenticator app makes them. A code is
// accepted in the step before and after the current one (clocks drift),
// and each step's code works once.
const (
	totpPeriod = 30
	totpSkew   = 1
	// totpSetupTime is how long a secret waits for its first code.
	totpSetupTime = 10 * time.Minute
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpStep finds the time step whose code is code, within the skew.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	for d := -totpSkew; d <= totpSkew; d++ {
		t := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return t.Unix() / totpPeriod, true
		}
	}
	return 0, false
}

// newTOTPKey makes a new secret for user.
func newTOTPKey(user string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: "Porthole", AccountName: user, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// checkSecondFactor asks a local account with a second factor for its
// code. A missing code (and an administrator without one where they are
// required) is refused with errNotCounted: the password was right.
func (s *Server) checkSecondFactor(ctx context.Context, u store.User, code, addr string) error {
	if u.TOTPSecret == "" {
		if s.cfg.RequireAdminTOTP && isAdmin(groupsOf(u)) {
			s.audit.SignIn(ctx, u.Username, addr, false, "administrator without a second factor")
			return &Error{Status: http.StatusForbidden, Err: errNotCounted,
				Msg: "administrators must use a second factor on this gateway: on the gateway's machine run \"porthole-gateway user totp " + u.Username + "\" and add the secret to your authenticator app"}
		}
		return nil
	}
	if code == "" {
		return &Error{Status: http.StatusUnauthorized, Err: errNotCounted, Msg: "enter the code from your authenticator app",
			Fields: map[string]string{"otp": "is required"}, Code: wire.CodeOTPRequired}
	}
	step, ok := totpStep(u.TOTPSecret, code, s.cfg.Now())
	if !ok {
		s.metrics.signinFailed.Inc()
		s.audit.SignIn(ctx, u.Username, addr, false, "wrong second-factor code")
		return &Error{Status: http.StatusUnauthorized, Msg: "wrong code: enter the current code from your authenticator app", Fields: map[string]string{"otp": "is wrong"}, Code: wire.CodeOTPWrong}
	}
	if err := s.st.UseTOTPStep(ctx, u.Username, step); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.audit.SignIn(ctx, u.Username, addr, false, "second-factor code used again")
			return &Error{Status: http.StatusUnauthorized, Msg: "this code was used already: wait for the next one", Fields: map[string]string{"otp": "was used already"}, Code: wire.CodeOTPWrong}
		}
		return internal(err)
	}
	return nil
}

// totpSetups are secrets handed out and not yet confirmed with a code,
// by user name (lower case).
type totpSetups struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]totpSetup
}

type totpSetup struct {
	secret, url string
	expires     time.Time
}

func (ts *totpSetups) put(user string, p totpSetup) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m = map[string]totpSetup{}
	}
	for k, v := range ts.m {
		if p.expires.After(v.expires.Add(totpSetupTime)) {
			delete(ts.m, k) // long forgotten
		}
	}
	ts.m[strings.ToLower(user)] = p
}

func (ts *totpSetups) get(user string, now time.Time) (totpSetup, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	p, ok := ts.m[strings.ToLower(user)]
	if !ok || now.After(p.expires) {
		return totpSetup{}, false
	}
	return p, true
}

// pendingSecondFactor is the setup p started and has not confirmed.
func (s *Server) pendingSecondFactor(p *principal) (SecondFactorSetup, bool) {
	ps, ok := s.totpSetups.get(p.user.Username, s.cfg.Now())
	if !ok {
		return SecondFactorSetup{}, false
	}
	return SecondFactorSetup{Secret: ps.secret, URL: ps.url, ExpiresAt: ps.expires.UTC().Truncate(time.Second)}, true
}

func (ts *totpSetups) drop(user string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.m, strings.ToLower(user))
}

// SecondFactorSetup is a new secret for an authenticator app.
type SecondFactorSetup struct {
	Secret string `json:"secret"`
	// URL is the otpauth:// address an authenticator app reads (as a QR
	// code or pasted).
	URL string `json:"url"`
	// ExpiresAt is when the secret is forgotten unless confirmed.
	ExpiresAt time.Time `json:"expiresAt"`
}

// BeginSecondFactor makes a new secret for p's account; it takes effect
// when ConfirmSecondFactor gets a code made from it.
func (s *Server) BeginSecondFactor(ctx context.Context, p *principal) (SecondFactorSetup, error) {
	if p.user.Source == store.SourceDirectory {
		return SecondFactorSetup{}, errorf(http.StatusBadRequest, "directory accounts use the directory's own sign-in protection: a Porthole second factor is for local accounts")
	}
	if p.token {
		return SecondFactorSetup{}, errorf(http.StatusForbidden, "an API token cannot change its user's second factor")
	}
	key, err := newTOTPKey(p.user.Username)
	if err != nil {
		return SecondFactorSetup{}, internal(err)
	}
	exp := s.cfg.Now().Add(totpSetupTime)
	s.totpSetups.put(p.user.Username, totpSetup{secret: key.Secret(), url: key.URL(), expires: exp})
	return SecondFactorSetup{Secret: key.Secret(), URL: key.URL(), ExpiresAt: exp.UTC().Truncate(time.Second)}, nil
}

// ConfirmSecondFactor turns on the secret BeginSecondFactor handed out,
// once code proves the app has it. From then on, signing in asks for a
// code.
func (s *Server) ConfirmSecondFactor(ctx context.Context, p *principal, code string) error {
	setup, ok := s.totpSetups.get(p.user.Username, s.cfg.Now())
	secret := setup.secret
	if !ok {
		return errorf(http.StatusConflict, "no second factor is being set up (or the setup took longer than %s): start again", totpSetupTime)
	}
	step, ok := totpStep(secret, code, s.cfg.Now())
	if !ok {
		return &Error{Status: http.StatusBadRequest, Msg: "wrong code: enter the current code your authenticator app shows for Porthole", Fields: map[string]string{"code": "is wrong"}}
	}
	u, err := s.st.User(ctx, p.user.Username)
	if err != nil {
		return internal(err)
	}
	before := userInfo(u)
	u.TOTPSecret = secret
	actx, audited := s.audited(ctx, p.user.Username, "user.second_factor", u.Username, before, userInfo(u))
	if err := s.st.UpdateUser(actx, u); err != nil {
		return internal(err)
	}
	audited()
	s.totpSetups.drop(u.Username)
	if err := s.st.UseTOTPStep(ctx, u.Username, step); err != nil {
		s.log.Warn("record the second-factor code", "user", u.Username, "err", err)
	}
	s.changed(ctx)
	return nil
}

// SetSecondFactor sets (or with "" removes) a user's second-factor secret
// offline, for porthole-gateway user totp.
func (s *Server) SetSecondFactor(ctx context.Context, actor, username, secret string) error {
	u, err := s.st.User(ctx, username)
	if err != nil {
		return storeErr(err, fmt.Sprintf("user %q", username))
	}
	if u.Source == store.SourceDirectory {
		return errorf(http.StatusBadRequest, "%q is a directory account: a Porthole second factor is for local accounts", u.Username)
	}
	before := userInfo(u)
	u.TOTPSecret = secret
	actx, audited := s.audited(ctx, actor, "user.second_factor", u.Username, before, userInfo(u))
	if err := s.st.UpdateUser(actx, u); err != nil {
		return internal(err)
	}
	audited()
	s.changed(ctx)
	return nil
}

func (s *Server) beginSecondFactor(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	setup, err := s.BeginSecondFactor(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, setup)
	return nil
}

func (s *Server) confirmSecondFactor(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	var req struct {
		Code string `json:"code"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := s.ConfirmSecondFactor(r.Context(), p, req.Code); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "second factor on: signing in now asks for a code"})
	return nil
}
