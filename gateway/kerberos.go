package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	krbcreds "github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/service"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/porthole/porthole/gateway/directory"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/wire"
)

// Single sign-on: POST /api/v1/login/kerberos with "Authorization:
// Negotiate <SPNEGO token>" (the Windows login through SSPI, or a kinit
// ticket) signs the user in without a password. The gateway proves the
// Kerberos ticket with its keytab, then reads the account from the
// directory (groups, disabled) exactly as for a password sign-in; without
// a directory, the ticket's user must be a local account.

// spnegoCredentials is the context key under which gokrb5's SPNEGO
// service puts the proven identity (spnego.ctxCredentials, unexported).
const spnegoCredentials = "github.com/jcmturner/gokrb5/v8/ctxCredentials"

// kerberos proves SPNEGO tokens with the gateway's keytab.
type kerberos struct {
	kt  *keytab.Keytab
	spn string
}

func newKerberos(c *KerberosConfig) (*kerberos, error) {
	kt, err := keytab.Load(c.Keytab)
	if err != nil {
		return nil, fmt.Errorf("kerberos: keytab %s: %w", c.Keytab, err)
	}
	if len(kt.Entries) == 0 {
		return nil, fmt.Errorf("kerberos: keytab %s holds no keys", c.Keytab)
	}
	return &kerberos{kt: kt, spn: c.ServicePrincipal}, nil
}

// errNoNegotiate: the request carried no Negotiate token.
var errNoNegotiate = errors.New("no Negotiate token")

// accept proves the request's SPNEGO token and returns the Kerberos user
// name and realm.
func (k *kerberos) accept(r *http.Request) (user, realm string, err error) {
	h, ok := strings.CutPrefix(r.Header.Get("Authorization"), wire.NegotiateScheme+" ")
	if !ok {
		return "", "", errNoNegotiate
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h))
	if err != nil {
		return "", "", fmt.Errorf("the Negotiate token is not base64: %w", err)
	}
	var st spnego.SPNEGOToken
	if err := st.Unmarshal(b); err != nil {
		// Some clients send the bare Kerberos token.
		var k5 spnego.KRB5Token
		if k5.Unmarshal(b) != nil {
			return "", "", fmt.Errorf("the Negotiate token is neither SPNEGO nor Kerberos: %w", err)
		}
		st.Init = true
		st.NegTokenInit = spnego.NegTokenInit{MechTypes: []asn1.ObjectIdentifier{k5.OID}, MechTokenBytes: b}
	}
	opts := []func(*service.Settings){service.DecodePAC(false)}
	if k.spn != "" {
		opts = append(opts, service.KeytabPrincipal(k.spn))
	}
	sp := spnego.SPNEGOService(k.kt, opts...)
	authed, ctx, status := sp.AcceptSecContext(&st)
	if !authed || status.Code != gssapi.StatusComplete {
		return "", "", fmt.Errorf("the Kerberos ticket was not accepted: %s", status.Message)
	}
	id, ok := ctx.Value(spnegoCredentials).(*krbcreds.Credentials)
	if !ok || id.UserName() == "" {
		return "", "", errors.New("the Kerberos ticket names no user")
	}
	return id.UserName(), id.Domain(), nil
}

// loginKerberos signs in with a Kerberos ticket.
func (s *Server) loginKerberos(w http.ResponseWriter, r *http.Request) error {
	if s.krb == nil {
		return errorf(http.StatusNotFound, "single sign-on (Kerberos) is not configured on this gateway: sign in with a user name and password")
	}
	addr := clientAddr(r)
	user, realm, err := s.krb.accept(r)
	if errors.Is(err, errNoNegotiate) {
		w.Header().Set("WWW-Authenticate", wire.NegotiateScheme)
		return unauthorized("send a Kerberos ticket: \"Authorization: Negotiate <token>\"", nil)
	}
	if err != nil {
		s.metrics.signinFailed.Inc()
		s.audit.SignIn(r.Context(), "", addr, false, "kerberos: "+err.Error())
		return unauthorized("single sign-on failed: "+err.Error(), err)
	}
	ctx := r.Context()
	var u store.User
	if s.dir != nil {
		acct, err := s.dir.Lookup(ctx, user)
		switch {
		case errors.Is(err, directory.ErrNoSuchUser):
			s.audit.SignIn(ctx, user, addr, false, "kerberos: not in the directory")
			return unauthorized(fmt.Sprintf("%s@%s is not an account in the directory", user, realm), err)
		case errors.Is(err, directory.ErrDisabled):
			s.audit.SignIn(ctx, user, addr, false, "kerberos: account disabled in the directory")
			return errorf(http.StatusForbidden, "this account is disabled in the directory; ask your IT department")
		case err != nil:
			s.metrics.directoryErrors.Inc()
			s.log.Error("kerberos sign-in: directory", "user", user, "err", err)
			return &Error{Status: http.StatusServiceUnavailable, RetryAfter: 30 * time.Second, Err: err,
				Msg: "the directory (" + s.dir.URL() + ") is not answering: try again later"}
		}
		if u, err = s.syncDirectoryAccount(ctx, acct); err != nil {
			return err
		}
	} else {
		if u, err = s.st.User(ctx, user); err != nil {
			s.audit.SignIn(ctx, user, addr, false, "kerberos: no such local account")
			return unauthorized(fmt.Sprintf("%s@%s has no Porthole account", user, realm), err)
		}
	}
	if u.Disabled {
		s.audit.SignIn(ctx, u.Username, addr, false, "account disabled")
		return errorf(http.StatusForbidden, "this account is disabled; ask an administrator")
	}
	resp, err := s.startSession(ctx, u, addr, "kerberos")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
