package tunnel

import (
	"errors"
	"os"
	"testing"
	"time"
)

// TestKeyringStore stores, reads and deletes a ticket in a real Secret
// Service: scripts/test runs it under dbus-run-session with
// gnome-keyring-daemon (and sets PORTHOLE_REQUIRE_KEYRING). Without a
// session bus it skips, saying how to run it.
func TestKeyringStore(t *testing.T) {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		if os.Getenv("PORTHOLE_REQUIRE_KEYRING") != "" {
			t.Fatal("no D-Bus session bus although a keyring was required")
		}
		t.Skip("no D-Bus session: run under dbus-run-session with gnome-keyring-daemon (scripts/test does)")
	}
	if !keyringUsable() {
		t.Fatal("a session bus is there but no Secret Service answers")
	}
	ts, err := DefaultTicketStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.(KeyringStore); !ok {
		t.Fatalf("DefaultTicketStore = %T, want the keyring", ts)
	}
	gw := "https://keyring-test.example:" + time.Now().Format("150405.000000")
	tk := Ticket{Ticket: "pt1.keyring.test", User: "alice", ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second), Groups: []string{"staff@Prod"}}
	if err := ts.Save(gw, tk); err != nil {
		t.Fatal(err)
	}
	got, err := ts.Load(gw)
	if err != nil || got.Ticket != tk.Ticket || got.User != "alice" || !got.ExpiresAt.Equal(tk.ExpiresAt) {
		t.Fatalf("load: %+v %v", got, err)
	}
	if err := ts.Delete(gw); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Load(gw); !errors.Is(err, ErrNoTicket) {
		t.Fatalf("after delete: %v", err)
	}
	if err := ts.Delete(gw); err != nil {
		t.Fatalf("deleting a missing ticket: %v", err)
	}
}

// TestFileFallback: with no keyring answering, tickets go to a private
// file and callers get the one-line warning.
func TestFileFallback(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	ts, err := DefaultTicketStore()
	if err != nil {
		t.Fatal(err)
	}
	fs, ok := ts.(*FileStore)
	if !ok {
		t.Fatalf("DefaultTicketStore = %T, want the file fallback", ts)
	}
	if err := fs.Save("https://gw", Ticket{Ticket: "pt1.a.b"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(fs.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ticket file %v %v", fi, err)
	}
	if w := FallbackWarning(ts); w == "" {
		t.Fatal("no warning")
	}
}
