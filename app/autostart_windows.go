package app

import (
	"fmt"
	"os"

	"golang.org/x/sys/windows/registry"
)

// runKey starts the app at login through HKCU\...\Run.
type runKey struct{}

func newOSAutostart() Autostart { return runKey{} }

const runPath = `Software\Microsoft\Windows\CurrentVersion\Run`

func (runKey) Enabled() bool {
	k, err := registry.OpenKey(registry.CURRENT_USER, runPath, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	defer k.Close()
	_, _, err = k.GetStringValue("Porthole")
	return err == nil
}

func (runKey) Set(on bool) error {
	k, _, err := registry.CreateKey(registry.CURRENT_USER, runPath, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	defer k.Close()
	if !on {
		if err := k.DeleteValue("Porthole"); err != nil && err != registry.ErrNotExist {
			return fmt.Errorf("start at login: %w", err)
		}
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	return k.SetStringValue("Porthole", `"`+exe+`"`)
}
