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

// Signer signs tickets with the newest of its keys and verifies them
// with any: a key rotation signs no one out.
type Signer struct {
	keys [][]byte // newest first
}

// NewSigner returns a Signer that signs with keys[0] and verifies with
// all of them. Each must be at least MinKeyLen random bytes.
func NewSigner(keys ...[]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no ticket key")
	}
	s := &Signer{}
	for _, key := range keys {
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("ticket key is %d bytes, need at least %d", len(key), MinKeyLen)
		}
		s.keys = append(s.keys, append([]byte(nil), key...))
	}
	return s, nil
}

// Sign returns the ticket for c.
func (s *Signer) Sign(c Claims) string {
	payload, _ := json.Marshal(wireClaims{U: c.User, S: c.Session, Iat: c.IssuedAt.Unix(), Exp: c.ExpiresAt.Unix()})
	body := prefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(mac(s.keys[0], body))
}

func mac(key []byte, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// signedByAny reports whether sig is body's MAC under one of the keys.
func (s *Signer) signedByAny(body string, sig []byte) bool {
	ok := false
	for _, k := range s.keys {
		if hmac.Equal(sig, mac(k, body)) {
			ok = true
		}
	}
	return ok
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
	if err != nil || !s.signedByAny(body, got) {
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

// Keys says how many keys verify.
func (s *Signer) Keys() int { return len(s.keys) }
