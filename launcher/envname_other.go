//go:build !windows

package launcher

import "strings"

// envNameEqual compares environment names exactly.
func envNameEqual(entry, prefix string) bool { return strings.HasPrefix(entry, prefix) }
