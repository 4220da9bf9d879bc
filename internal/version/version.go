// Package version holds the version, commit and build date stamped into
// every Porthole binary at build time:
//
//	go build -ldflags "-X github.com/porthole/porthole/internal/version.Version=1.2.3
//	  -X github.com/porthole/porthole/internal/version.Commit=abc123
//	  -X github.com/porthole/porthole/internal/version.Date=2026-11-22T10:00:00Z"
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped at build time; the defaults mark a developer build.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// String is what `--version` prints, e.g.
// "porthole 1.2.3 (commit abc123, built 2026-11-22T10:00:00Z, go1.26.8 linux/amd64)".
func String(program string) string {
	commit, date := Commit, Date
	if commit == "" || date == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				switch {
				case s.Key == "vcs.revision" && commit == "":
					commit = s.Value
				case s.Key == "vcs.time" && date == "":
					date = s.Value
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s/%s)", program, Version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// IsFlag reports whether arg asks for the version.
func IsFlag(arg string) bool { return arg == "--version" || arg == "-version" || arg == "version" }
