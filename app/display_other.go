//go:build !(linux || freebsd || openbsd || netbsd)

package app

import "errors"

// ErrNoDisplay means there is no desktop session to show the app in.
var ErrNoDisplay = errors.New("no display")

// CheckDisplay reports nil: Windows and macOS always have a desktop for
// a user's program.
func CheckDisplay(getenv func(string) string) error { return nil }
