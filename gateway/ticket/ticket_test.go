package ticket

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 32)
	t0   = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
)

func mustSigner(t testing.TB, key []byte) *Signer {
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	s := mustSigner(t, key1)
	good := s.Sign(Claims{User: "alice", Session: "s1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	dot := strings.LastIndexByte(good, '.')
	tests := map[string]struct {
		tok    string
		signer *Signer
		now    time.Time
		want   error
	}{
		"valid":            {good, s, t0.Add(time.Minute), nil},
		"expired":          {good, s, t0.Add(time.Hour), ErrExpired},
		"wrong key":        {good, mustSigner(t, key2), t0, ErrInvalid},
		"tampered payload": {good[:5] + "x" + good[6:], s, t0, ErrInvalid},
		"tampered sig":     {good[:dot+1] + "AAAA" + good[dot+5:], s, t0, ErrInvalid},
		"truncated":        {good[:dot], s, t0, ErrInvalid},
		"empty":            {"", s, t0, ErrInvalid},
		"other format":     {"Bearer xyz", s, t0, ErrInvalid},
		"too long":         {prefix + strings.Repeat("a", MaxLen), s, t0, ErrInvalid},
		"no claims":        {s.Sign(Claims{}), s, t0, ErrInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := tc.signer.Verify(tc.tok, tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.User != "alice" || c.Session != "s1" || !c.ExpiresAt.Equal(t0.Add(time.Hour)) {
					t.Fatalf("claims = %+v", c)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestShortKey(t *testing.T) {
	if _, err := NewSigner(make([]byte, 16)); err == nil {
		t.Fatal("accepted a 16-byte key")
	}
}

func FuzzVerify(f *testing.F) {
	s := mustSigner(f, key1)
	f.Add(s.Sign(Claims{User: "alice", Session: "s1", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	f.Add("pt1..")
	f.Add("pt1.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok, t0)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Whatever verifies must be what we signed: re-signing its claims
		// gives a ticket that verifies to the same claims.
		c2, err := s.Verify(s.Sign(c), t0)
		if err != nil || c2 != c {
			t.Fatalf("re-sign: %+v %v", c2, err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	s := mustSigner(b, key1)
	tok := s.Sign(Claims{User: "alice", Session: "0123456789abcdef", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(tok, t0); err != nil {
			b.Fatal(err)
		}
	}
}
