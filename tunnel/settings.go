package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// TunnelSettings are a user's choices for one tunnel.
type TunnelSettings struct {
	// LocalPort is the port to listen on; 0 means the gateway's suggestion.
	LocalPort int `json:"localPort,omitempty"`
	// AutoStart opens the tunnel when the tray app starts.
	AutoStart bool `json:"autoStart,omitempty"`
}

// Settings is settings.json, shared by the CLI and the tray app. Fields
// this version does not know are kept and written back unchanged.
type Settings struct {
	Gateway string                    `json:"gateway,omitempty"`
	User    string                    `json:"user,omitempty"`
	CA      string                    `json:"ca,omitempty"`
	Tunnels map[string]TunnelSettings `json:"tunnels,omitempty"`

	extra map[string]json.RawMessage
}

// SettingsPath is porthole/settings.json in the user's config folder.
func SettingsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the settings folder: %w", err)
	}
	return filepath.Join(dir, "porthole", "settings.json"), nil
}

// ConfigDir is the folder that holds settings.json.
func ConfigDir() (string, error) {
	p, err := SettingsPath()
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

var knownSettings = map[string]bool{"gateway": true, "user": true, "ca": true, "tunnels": true}

// ErrBrokenSettings marks a settings file that exists but cannot be read;
// LoadSettings then returns safe defaults, and SaveSettings first keeps a
// copy of the broken file.
var ErrBrokenSettings = errors.New("settings file is broken")

// LoadSettings reads the settings at path, with the machine-wide gateway
// IT may have set (see machineGateway) when the user's file names none. A
// missing file gives those defaults and no error. A broken one gives empty settings and an error
// wrapping ErrBrokenSettings that says what is wrong, so the caller can
// tell the user and carry on.
func LoadSettings(path string) (Settings, error) {
	s, err := loadUserSettings(path)
	if s.Gateway == "" {
		s.Gateway = machineGateway()
	}
	return s, err
}

func loadUserSettings(path string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("%w: %s: %v", ErrBrokenSettings, path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Settings{}, fmt.Errorf("%w: %s is not valid JSON (%v); using defaults", ErrBrokenSettings, path, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, fmt.Errorf("%w: %s: %v; using defaults", ErrBrokenSettings, path, err)
	}
	for k, v := range raw {
		if !knownSettings[k] {
			if s.extra == nil {
				s.extra = map[string]json.RawMessage{}
			}
			s.extra[k] = v
		}
	}
	return s, nil
}

// MarshalJSON writes known and kept unknown fields.
func (s Settings) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	for k, v := range s.extra {
		out[k] = v
	}
	if s.Gateway != "" {
		out["gateway"] = s.Gateway
	}
	if s.User != "" {
		out["user"] = s.User
	}
	if s.CA != "" {
		out["ca"] = s.CA
	}
	if len(s.Tunnels) > 0 {
		out["tunnels"] = s.Tunnels
	}
	return json.Marshal(out)
}

// SaveSettings writes s to path atomically (a temporary file renamed over
// it). If the file there is broken, it is first kept as
// settings.json.broken-TIME so nothing it held is lost.
func SaveSettings(path string, s Settings) error {
	if _, err := LoadSettings(path); errors.Is(err, ErrBrokenSettings) {
		keep := path + ".broken-" + time.Now().Format("20060102-150405")
		if err := os.Rename(path, keep); err != nil {
			return fmt.Errorf("save settings: keep the broken file: %w", err)
		}
	}
	compact, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	var b bytes.Buffer
	json.Indent(&b, compact, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".settings-*.json")
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	defer os.Remove(tmp.Name())
	b.WriteByte('\n')
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("save settings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}
