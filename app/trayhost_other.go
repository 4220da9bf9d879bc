//go:build !linux

package app

// trayAvailable reports whether a system tray shows the menu: Windows and
// macOS always have one.
func trayAvailable() bool { return true }
