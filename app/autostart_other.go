//go:build !linux && !windows

package app

import "errors"

// noAutostart is used where Porthole does not know the mechanism.
type noAutostart struct{}

func newOSAutostart() Autostart { return noAutostart{} }

func (noAutostart) Enabled() bool { return false }

func (noAutostart) Set(bool) error {
	return errors.New("starting at login is not supported on this system yet")
}
