package cli

import (
	"strings"
	"testing"

	"github.com/porthole/porthole/internal/usertest"
)

// TestOpenTakesOnlyTheUsersPrograms: `porthole open`'s ports refuse a
// connection another user of the computer makes, and say so on the
// terminal; --allow-other-users lets it in.
func TestOpenTakesOnlyTheUsersPrograms(t *testing.T) {
	url, _ := startGateway(t)
	r := newRunner(t)
	if out, err := r.run(t.Context(), "admin-password\n", "login", "--gateway", url, "--user", "admin", "--password-stdin"); err != nil {
		t.Fatalf("login: %v %s", err, out)
	}
	addrs, out := r.startOpen("echo:0")
	if got, err := echoThrough(addrs[0], "mine"); got != "MINE" {
		t.Fatalf("the user's own connection: %q %v", got, err)
	}
	if got := usertest.RoundTripAsNobody(t, addrs[0].String(), "theirs"); got != "" {
		t.Fatalf("another user's connection carried bytes: %q", got)
	}
	waitFor(t, "the refusal on the terminal", func() bool {
		return strings.Contains(out.String(), "opened by another user of this computer (uid 65534)")
	}, out)

	shared, _ := r.startOpen("--allow-other-users", "echo:0")
	if got := usertest.RoundTripAsNobody(t, shared[0].String(), "theirs"); got != "THEIRS" {
		t.Fatalf("with --allow-other-users: %q", got)
	}
}
