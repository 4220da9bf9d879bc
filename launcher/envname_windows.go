package launcher

import "strings"

// envNameEqual compares environment names without case, as Windows does.
func envNameEqual(entry, prefix string) bool {
	return len(entry) >= len(prefix) && strings.EqualFold(entry[:len(prefix)], prefix)
}
