package tunnel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/zalando/go-keyring"
)

// ErrNoTicket means no ticket is stored: sign in first.
var ErrNoTicket = errors.New("not signed in")

// keyringService is the service name under which tickets are kept.
const keyringService = "porthole"

// TicketStore keeps the signed-in ticket per gateway.
type TicketStore interface {
	// Load returns the stored ticket for gateway, or ErrNoTicket.
	Load(gateway string) (Ticket, error)
	// Save stores t for gateway.
	Save(gateway string, t Ticket) error
	// Delete forgets the ticket for gateway; no ticket is not an error.
	Delete(gateway string) error
	// Name says where tickets are kept, for messages.
	Name() string
}

// KeyringStore keeps tickets in the OS keyring (Secret Service on Linux,
// Credential Manager on Windows, Keychain on macOS).
type KeyringStore struct{}

// Name implements TicketStore.
func (KeyringStore) Name() string { return "the system keyring" }

// Load implements TicketStore.
func (KeyringStore) Load(gateway string) (Ticket, error) {
	v, err := keyring.Get(keyringService, gateway)
	if errors.Is(err, keyring.ErrNotFound) {
		return Ticket{}, ErrNoTicket
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("read ticket from keyring: %w", err)
	}
	return decodeTicket(v)
}

// Save implements TicketStore.
func (KeyringStore) Save(gateway string, t Ticket) error {
	b, _ := json.Marshal(t)
	if err := keyring.Set(keyringService, gateway, string(b)); err != nil {
		return fmt.Errorf("store ticket in keyring: %w", err)
	}
	return nil
}

// Delete implements TicketStore.
func (KeyringStore) Delete(gateway string) error {
	err := keyring.Delete(keyringService, gateway)
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("delete ticket from keyring: %w", err)
	}
	return nil
}

func decodeTicket(v string) (Ticket, error) {
	var t Ticket
	if err := json.Unmarshal([]byte(v), &t); err != nil || t.Ticket == "" {
		return Ticket{}, fmt.Errorf("%w (the stored ticket is unreadable)", ErrNoTicket)
	}
	return t, nil
}

// FileStore keeps tickets in a JSON file that only the user can read, for
// systems without a keyring.
type FileStore struct {
	Path string

	mu sync.Mutex
}

// Name implements TicketStore.
func (f *FileStore) Name() string { return f.Path }

func (f *FileStore) read() (map[string]Ticket, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Ticket{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tickets: %w", err)
	}
	m := map[string]Ticket{}
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]Ticket{}, nil // unreadable: treat as signed out
	}
	return m, nil
}

func (f *FileStore) write(m map[string]Ticket) error {
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("store ticket: %w", err)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("store ticket: %w", err)
	}
	if err := os.Rename(tmp, f.Path); err != nil {
		return fmt.Errorf("store ticket: %w", err)
	}
	return nil
}

// Load implements TicketStore.
func (f *FileStore) Load(gateway string) (Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return Ticket{}, err
	}
	t, ok := m[gateway]
	if !ok || t.Ticket == "" {
		return Ticket{}, ErrNoTicket
	}
	return t, nil
}

// Save implements TicketStore.
func (f *FileStore) Save(gateway string, t Ticket) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return err
	}
	m[gateway] = t
	return f.write(m)
}

// Delete implements TicketStore.
func (f *FileStore) Delete(gateway string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return err
	}
	if _, ok := m[gateway]; !ok {
		return nil
	}
	delete(m, gateway)
	return f.write(m)
}

// keyringUsable reports whether the OS keyring answers. On Linux without a
// D-Bus session bus it does not even try (that could start a bus daemon).
func keyringUsable() bool {
	if os.Getenv("PORTHOLE_NO_KEYRING") != "" {
		return false
	}
	if runtime.GOOS == "linux" || runtime.GOOS == "freebsd" {
		if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
			return false
		}
	}
	_, err := keyring.Get(keyringService, "porthole-probe")
	return err == nil || errors.Is(err, keyring.ErrNotFound)
}

// DefaultTicketStore returns the OS keyring when it answers, otherwise a
// file in the config folder that only the user can read. Callers that
// store a ticket in a FileStore should say so once (see FallbackWarning).
func DefaultTicketStore() (TicketStore, error) {
	if keyringUsable() {
		return KeyringStore{}, nil
	}
	dir, err := ConfigDir()
	if err != nil {
		return nil, err
	}
	return &FileStore{Path: filepath.Join(dir, "tickets.json")}, nil
}

// FallbackWarning is the one-line warning for a ticket kept in a file, or
// "" when ts is not a FileStore.
func FallbackWarning(ts TicketStore) string {
	fs, ok := ts.(*FileStore)
	if !ok {
		return ""
	}
	return fmt.Sprintf("warning: no system keyring answered; the ticket is kept in %s (readable only by you)", fs.Path)
}

// SameGateway reports whether two gateway URLs name the same gateway.
func SameGateway(a, b string) bool {
	na, err1 := NormalizeGateway(a)
	nb, err2 := NormalizeGateway(b)
	return err1 == nil && err2 == nil && strings.EqualFold(na, nb)
}
