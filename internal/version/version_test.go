package version

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	Version, Commit, Date = "1.2.3", "abc123", "2026-11-22T10:00:00Z"
	defer func() { Version, Commit, Date = "dev", "", "" }()
	s := String("porthole")
	for _, want := range []string{"porthole 1.2.3", "commit abc123", "built 2026-11-22T10:00:00Z"} {
		if !strings.Contains(s, want) {
			t.Fatalf("%q lacks %q", s, want)
		}
	}
	if !IsFlag("--version") || IsFlag("--verbose") {
		t.Fatal("IsFlag")
	}
}
