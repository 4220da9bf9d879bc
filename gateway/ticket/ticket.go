// Package ticket signs and verifies Porthole tickets: what a user holds
// after signing in. A ticket names the user and the session and carries an
// expiry; it is signed with HMAC-SHA256 under the gateway's key. Clients
// treat it as opaque. Revocation is the session's business (the store),
// not the ticket's: a valid signature says only who and until when.
//
// Format: "pt1." + base64url(JSON claims) + "." + base64url(MAC), where
// the MAC covers everything before the last dot.
package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors for errors.Is.
var (
	ErrInvalid = errors.New("invalid ticket")
	ErrExpired = errors.New("ticket expired")
)

const (
	prefix = "pt1."
	// MaxLen bounds what Verify reads.
	MaxLen = 2048
	// MinKeyLen is the shortest signing key accepted.
	MinKeyLen = 32
)

// Claims is what a ticket says.
type Claims struct {
	User      string    // user name
	Session   string    // session id
	IssuedAt  time.Time // when it was signed
	ExpiresAt time.Time // when it stops being valid
}

type wireClaims struct {
	U   string `json:"u"`
	S   string `json:"s"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// Signer signs and verifies tickets with one key.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer for key, which must be at least MinKeyLen
// random bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("ticket key is %d bytes, need at least %d", len(key), MinKeyLen)
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// Sign returns the ticket for c.
func (s *Signer) Sign(c Claims) string {
	payload, _ := json.Marshal(wireClaims{U: c.User, S: c.Session, Iat: c.IssuedAt.Unix(), Exp: c.ExpiresAt.Unix()})
	body := prefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body))
}

func (s *Signer) mac(body string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Verify checks tok's signature and expiry at now and returns its claims.
// Errors wrap ErrInvalid or ErrExpired.
func (s *Signer) Verify(tok string, now time.Time) (Claims, error) {
	if tok == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(tok) > MaxLen {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	if !strings.HasPrefix(tok, prefix) {
		return Claims{}, fmt.Errorf("%w: unknown format", ErrInvalid)
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot < len(prefix) {
		return Claims{}, fmt.Errorf("%w: no signature", ErrInvalid)
	}
	body, sig := tok[:dot], tok[dot+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(body)) {
		return Claims{}, fmt.Errorf("%w: bad signature", ErrInvalid)
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(prefix):])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: bad encoding", ErrInvalid)
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil || w.U == "" || w.S == "" || w.Exp == 0 {
		return Claims{}, fmt.Errorf("%w: bad claims", ErrInvalid)
	}
	c := Claims{User: w.U, Session: w.S, IssuedAt: time.Unix(w.Iat, 0), ExpiresAt: time.Unix(w.Exp, 0)}
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// Key returns the signing key, for deriving other secrets from it (the
// portal's CSRF tokens).
func (s *Signer) Key() []byte { return s.key }
