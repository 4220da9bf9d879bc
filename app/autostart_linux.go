package app

import (
	"fmt"
	"os"
	"path/filepath"
)

// xdgAutostart writes an XDG autostart entry for porthole-tray.
type xdgAutostart struct{}

func newOSAutostart() Autostart { return xdgAutostart{} }

func (xdgAutostart) path() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "autostart", "porthole-tray.desktop"), nil
}

func (a xdgAutostart) Enabled() bool {
	p, err := a.path()
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

func (a xdgAutostart) Set(on bool) error {
	p, err := a.path()
	if err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	if !on {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("start at login: %w", err)
		}
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("start at login: %w", err)
	}
	entry := fmt.Sprintf("[Desktop Entry]\nType=Application\nName=Porthole\nComment=Porthole tunnels\nExec=%q\nIcon=porthole\nX-GNOME-Autostart-enabled=true\n", exe)
	return os.WriteFile(p, []byte(entry), 0o644)
}
