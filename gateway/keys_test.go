package gateway

import (
	"errors"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/ticket"
)

// TestTicketKeysRetire: after a rotation the old key still verifies what
// it signed; once nothing it signed can be valid any more, the next
// rotation drops it (a leaked key stops working). The portal's CSRF
// tokens do not change with the ticket keys.
func TestTicketKeysRetire(t *testing.T) {
	clock := &testClock{t: time.Now()}
	g := startGateway(t, func(c *Config) { c.Now = clock.Now })
	t0 := clock.Now()
	old := g.admin()
	csrf := g.csrfToken("session")
	if err := g.RotateTicketKey(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.signer.Load().Verify(old, t0.Add(time.Minute)); err != nil {
		t.Fatalf("the old key no longer verifies right after a rotation: %v", err)
	}
	if g.csrfToken("session") != csrf {
		t.Fatal("a rotation changed the portal's CSRF tokens")
	}
	clock.Add(keyRetention + time.Hour)
	if err := g.RotateTicketKey(t.Context(), "test"); err != nil {
		t.Fatal(err)
	}
	if n := g.signer.Load().Keys(); n != 2 {
		t.Fatalf("%d keys verify, want 2 (the original was retired long enough to go)", n)
	}
	if _, err := g.signer.Load().Verify(old, t0.Add(time.Minute)); !errors.Is(err, ticket.ErrInvalid) {
		t.Fatalf("a ticket of the dropped key: %v, want invalid", err)
	}
}
