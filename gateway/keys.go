package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/gateway/ticket"
)

// settingTicketKeys holds every ticket key once a rotation happened,
// newest first, as JSON; before that the one key is settingTicketKey.
const settingTicketKeys = "ticket_keys"

// settingCSRFKey is the portal's CSRF secret: separate from the ticket
// keys, so rotating them neither breaks open forms nor keeps an old key.
const settingCSRFKey = "csrf_key"

// keyRetention is how long a key still verifies after it stopped
// signing: longer than any ticket or API token it signed can live.
const keyRetention = maxTokenLifetime + 24*time.Hour

type storedKey struct {
	Key string `json:"key"`
	// Retired is when a newer key took over signing; zero for the newest.
	Retired time.Time `json:"retired,omitzero"`
}

// loadKeys builds the signer from the store's keys (the newest signs, all
// verify) and reads the CSRF secret, making it on first use.
func (s *Server) loadKeys(ctx context.Context) error {
	keys, err := s.storedKeys(ctx)
	if err != nil {
		return err
	}
	var raw [][]byte
	for _, k := range keys {
		b, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil {
			return fmt.Errorf("a stored ticket key is corrupt: %w", err)
		}
		raw = append(raw, b)
	}
	signer, err := ticket.NewSigner(raw...)
	if err != nil {
		return err
	}
	b := make([]byte, 32)
	rand.Read(b)
	enc, err := s.st.SetSettingIfAbsent(ctx, settingCSRFKey, base64.StdEncoding.EncodeToString(b))
	if err != nil {
		return fmt.Errorf("the CSRF key: %w", err)
	}
	csrf, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(csrf) < 16 {
		return errors.New("the stored CSRF key is corrupt")
	}
	s.csrfKey.Store(&csrf)
	s.signer.Store(signer)
	return nil
}

// storedKeys are the ticket keys, newest first.
func (s *Server) storedKeys(ctx context.Context) ([]storedKey, error) {
	v, err := s.st.Setting(ctx, settingTicketKeys)
	if errors.Is(err, store.ErrNotFound) {
		first, err := s.st.Setting(ctx, settingTicketKey)
		if err != nil {
			return nil, fmt.Errorf("read the ticket key: %w", err)
		}
		return []storedKey{{Key: first}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the ticket keys: %w", err)
	}
	var keys []storedKey
	if err := json.Unmarshal([]byte(v), &keys); err != nil || len(keys) == 0 {
		return nil, fmt.Errorf("the stored ticket keys are corrupt: %v", err)
	}
	return keys, nil
}

// RotateTicketKey makes a new ticket signing key. New tickets are signed
// with it at once, on every gateway sharing the store; tickets and API
// tokens signed with the older keys stay valid until they expire, and a
// key is dropped once nothing it signed can still be valid. No one is
// signed out.
func (s *Server) RotateTicketKey(ctx context.Context, actor string) error {
	keys, err := s.storedKeys(ctx)
	if err != nil {
		return internal(err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	now := s.cfg.Now().UTC()
	next := []storedKey{{Key: base64.StdEncoding.EncodeToString(b)}}
	for _, k := range keys {
		if k.Retired.IsZero() {
			k.Retired = now
		}
		if now.Sub(k.Retired) < keyRetention {
			next = append(next, k)
		}
	}
	data, _ := json.Marshal(next)
	actx, audited := s.audited(ctx, actor, "ticket_key.rotate", "gateway", map[string]int{"keys": len(keys)}, map[string]int{"keys": len(next)})
	if err := s.st.SetSetting(actx, settingTicketKeys, string(data)); err != nil {
		return internal(err)
	}
	audited()
	if err := s.loadKeys(ctx); err != nil {
		return internal(err)
	}
	s.changed(ctx)
	return nil
}

// reloadKeys picks up a rotation another gateway (or an offline command)
// made; on failure the keys in use stay.
func (s *Server) reloadKeys(ctx context.Context) {
	if err := s.loadKeys(ctx); err != nil {
		s.log.Error("reload the ticket keys; the ones in use stay", "err", err)
	}
}
