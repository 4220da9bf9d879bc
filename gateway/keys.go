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

// settingTicketKeys holds the ticket keys made by rotations, newest
// first, as JSON; the first key (settingTicketKey) is the oldest.
const settingTicketKeys = "ticket_keys"

// keyRetention is how long a rotated-out key still verifies: longer than
// any ticket or API token lives.
const keyRetention = maxTokenLifetime + 24*time.Hour

type storedKey struct {
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
}

// loadKeys builds the signer from the store's keys: the newest signs,
// all verify.
func (s *Server) loadKeys(ctx context.Context) error {
	first, err := s.st.Setting(ctx, settingTicketKey)
	if err != nil {
		return fmt.Errorf("read the ticket key: %w", err)
	}
	rotated, err := s.rotatedKeys(ctx)
	if err != nil {
		return err
	}
	var keys [][]byte
	for _, k := range rotated {
		b, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil {
			return fmt.Errorf("a stored ticket key is corrupt: %w", err)
		}
		keys = append(keys, b)
	}
	b, err := base64.StdEncoding.DecodeString(first)
	if err != nil {
		return fmt.Errorf("the stored ticket key is corrupt: %w", err)
	}
	keys = append(keys, b)
	signer, err := ticket.NewSigner(keys...)
	if err != nil {
		return err
	}
	s.signer.Store(signer)
	return nil
}

func (s *Server) rotatedKeys(ctx context.Context) ([]storedKey, error) {
	v, err := s.st.Setting(ctx, settingTicketKeys)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the ticket keys: %w", err)
	}
	var keys []storedKey
	if err := json.Unmarshal([]byte(v), &keys); err != nil {
		return nil, fmt.Errorf("the stored ticket keys are corrupt: %w", err)
	}
	return keys, nil
}

// RotateTicketKey makes a new ticket signing key. New tickets are signed
// with it at once, on every gateway sharing the store; tickets and API
// tokens signed with the older keys stay valid until they expire (keys
// older than a token can live are dropped). No one is signed out.
func (s *Server) RotateTicketKey(ctx context.Context, actor string) error {
	keys, err := s.rotatedKeys(ctx)
	if err != nil {
		return internal(err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	now := s.cfg.Now().UTC()
	next := []storedKey{{Key: base64.StdEncoding.EncodeToString(b), Created: now}}
	for _, k := range keys {
		if now.Sub(k.Created) < keyRetention {
			next = append(next, k)
		}
	}
	data, _ := json.Marshal(next)
	actx, audited := s.audited(ctx, actor, "ticket_key.rotate", "gateway", map[string]int{"keys": len(keys) + 1}, map[string]int{"keys": len(next) + 1})
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
