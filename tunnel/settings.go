package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/porthole/porthole/internal/jsonpos"
)

// TunnelSettings are a user's choices for one tunnel. Keys this version
// does not know are kept and written back unchanged.
type TunnelSettings struct {
	// LocalPort is the port to listen on; 0 means the gateway's suggestion.
	LocalPort int `json:"localPort,omitempty"`
	// AutoStart opens the tunnel when the tray app starts.
	AutoStart bool `json:"autoStart,omitempty"`

	extra map[string]json.RawMessage
}

// MarshalJSON writes known and kept unknown fields.
func (t TunnelSettings) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	for k, v := range t.extra {
		out[k] = v
	}
	if t.LocalPort != 0 {
		out["localPort"] = t.LocalPort
	}
	if t.AutoStart {
		out["autoStart"] = t.AutoStart
	}
	return json.Marshal(out)
}

// Settings is settings.json, shared by the CLI and the tray app. Fields
// this version does not know are kept and written back unchanged.
type Settings struct {
	Gateway string                    `json:"gateway,omitempty"`
	User    string                    `json:"user,omitempty"`
	CA      string                    `json:"ca,omitempty"`
	Tunnels map[string]TunnelSettings `json:"tunnels,omitempty"`
	// AllowOtherUsers lets other users of this computer use the local
	// ports; by default only the user's own programs may.
	AllowOtherUsers bool `json:"allowOtherUsers,omitempty"`

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

var (
	knownSettings       = []string{"gateway", "user", "ca", "tunnels", "allowOtherUsers"}
	knownTunnelSettings = []string{"localPort", "autoStart"}
)

// ErrBrokenSettings marks a settings file that exists but cannot be read
// as a whole (see SettingsProblem).
var ErrBrokenSettings = errors.New("settings file is broken")

// SettingsProblem is what was wrong with settings.json. LoadSettings
// returns it beside the settings it could use; errors.Is(p,
// ErrBrokenSettings) holds when the file could not be read as a whole.
type SettingsProblem struct {
	Path string
	// Broken says why the file, or part of it, could not be used; "" when
	// only Unknown is set.
	Broken string
	// Backup is where the broken file was kept, untouched ("" when it was
	// not moved).
	Backup string
	// Kept says what of a broken file was still used ("" when nothing).
	Kept string
	// Unknown lists keys this version does not know ("gatway",
	// "tunnels.mysql.localport"): kept in the file, not used.
	Unknown []string
}

func (p *SettingsProblem) Error() string {
	var b strings.Builder
	if p.Broken != "" {
		fmt.Fprintf(&b, "%s is broken: %s", p.Path, p.Broken)
		switch {
		case p.Backup != "":
			fmt.Fprintf(&b, "; the file was kept as %s", p.Backup)
		default:
			b.WriteString("; the file was left as it is")
		}
		if p.Kept != "" {
			fmt.Fprintf(&b, "; still used: %s", p.Kept)
		} else {
			b.WriteString("; Porthole uses its defaults (sign in again)")
		}
	}
	if len(p.Unknown) > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s has keys Porthole does not know, kept but not used: %s", p.Path, strings.Join(p.Unknown, ", "))
	}
	return b.String()
}

// Is makes errors.Is(p, ErrBrokenSettings) true for a broken file.
func (p *SettingsProblem) Is(target error) bool { return target == ErrBrokenSettings && p.Broken != "" }

// LoadSettings reads the settings at path, with the machine-wide gateway
// IT may have set (see machineGateway) when the user's file names none. A
// missing file gives those defaults and no error.
//
// Whatever is wrong comes back as a *SettingsProblem beside the settings
// that could be used, for the caller to show: keys this version does not
// know (kept, not used), or a broken file. A broken file is moved aside,
// untouched, to settings.json.broken-TIME; what could still be read of it
// (a valid gateway, user or tunnel entry) is kept and saved in its place,
// so the user stays signed in where possible and nothing is lost.
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
		return s, &SettingsProblem{Path: path, Broken: err.Error()}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	s, broken, unknown := decodeSettings(b)
	if broken == "" {
		if len(unknown) > 0 {
			return s, &SettingsProblem{Path: path, Unknown: unknown}
		}
		return s, nil
	}
	p := &SettingsProblem{Path: path, Broken: broken, Unknown: unknown, Kept: s.describe()}
	backup, err := keepBroken(path)
	if err != nil {
		p.Broken += fmt.Sprintf(" (and it could not be kept aside: %v)", err)
		return s, p
	}
	p.Backup = backup
	if p.Kept != "" {
		if err := SaveSettings(path, s); err != nil {
			p.Broken += fmt.Sprintf(" (what could be read was not saved: %v)", err)
		}
	}
	return s, p
}

// keepBroken moves a broken settings file aside, untouched, to a name no
// earlier copy has.
func keepBroken(path string) (string, error) {
	base := path + ".broken-" + time.Now().Format("20060102-150405")
	keep := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(keep); errors.Is(err, os.ErrNotExist) {
			break
		}
		keep = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, keep); err != nil {
		return "", err
	}
	return keep, nil
}

// decodeSettings reads as much of a settings file as it can: broken says
// what could not be read ("" when all of it could), unknown lists keys
// this version does not know.
func decodeSettings(b []byte) (s Settings, broken string, unknown []string) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		var v any
		if json.Unmarshal(b, &v) == nil {
			return Settings{}, "it must hold a JSON object like {\"gateway\": \"https://...\"}", nil
		}
		return Settings{}, "it is not valid JSON (" + jsonpos.Describe(b, err).Error() + ")", nil
	}
	var problems []string
	field := func(key string, into any) {
		v, ok := raw[key]
		if !ok {
			return
		}
		if err := json.Unmarshal(v, into); err != nil {
			problems = append(problems, fmt.Sprintf("%q must be %s", key, jsonKind(into)))
		}
	}
	field("gateway", &s.Gateway)
	field("user", &s.User)
	field("ca", &s.CA)
	field("allowOtherUsers", &s.AllowOtherUsers)
	if v, ok := raw["tunnels"]; ok {
		var tunnels map[string]json.RawMessage
		if err := json.Unmarshal(v, &tunnels); err != nil {
			problems = append(problems, `"tunnels" must be an object like {"mysql": {"localPort": 13306}}`)
		}
		for _, name := range slices.Sorted(maps.Keys(tunnels)) {
			ts, bad, unk := decodeTunnelSettings(tunnels[name])
			for _, k := range unk {
				unknown = append(unknown, "tunnels."+name+"."+k)
			}
			if bad != "" {
				problems = append(problems, fmt.Sprintf("tunnels.%s: %s", name, bad))
				continue
			}
			if s.Tunnels == nil {
				s.Tunnels = map[string]TunnelSettings{}
			}
			s.Tunnels[name] = ts
		}
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if !slices.Contains(knownSettings, k) {
			if s.extra == nil {
				s.extra = map[string]json.RawMessage{}
			}
			s.extra[k] = raw[k]
			unknown = append(unknown, k+suggest(k, knownSettings))
		}
	}
	return s, strings.Join(problems, "; "), unknown
}

func decodeTunnelSettings(b []byte) (t TunnelSettings, broken string, unknown []string) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return t, `must be an object like {"localPort": 13306, "autoStart": true}`, nil
	}
	if v, ok := raw["localPort"]; ok {
		if err := json.Unmarshal(v, &t.LocalPort); err != nil || t.LocalPort < 0 || t.LocalPort > 65535 {
			return TunnelSettings{}, `"localPort" must be a number from 1 to 65535`, nil
		}
	}
	if v, ok := raw["autoStart"]; ok {
		if err := json.Unmarshal(v, &t.AutoStart); err != nil {
			return TunnelSettings{}, `"autoStart" must be true or false`, nil
		}
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if !slices.Contains(knownTunnelSettings, k) {
			if t.extra == nil {
				t.extra = map[string]json.RawMessage{}
			}
			t.extra[k] = raw[k]
			unknown = append(unknown, k+suggest(k, knownTunnelSettings))
		}
	}
	return t, "", unknown
}

// suggest names the known key an unknown one was probably meant to be.
func suggest(k string, known []string) string {
	for _, name := range known {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

func jsonKind(v any) string {
	switch v.(type) {
	case *string:
		return "a string"
	}
	return "of another type"
}

// describe says which settings s holds, for a message: "gateway
// https://gw, user alice, 2 tunnels".
func (s Settings) describe() string {
	var parts []string
	if s.Gateway != "" {
		parts = append(parts, "gateway "+s.Gateway)
	}
	if s.User != "" {
		parts = append(parts, "user "+s.User)
	}
	if len(s.Tunnels) > 0 {
		parts = append(parts, fmt.Sprintf("%d tunnel setting(s)", len(s.Tunnels)))
	}
	return strings.Join(parts, ", ")
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
	if s.AllowOtherUsers {
		out["allowOtherUsers"] = true
	}
	return json.Marshal(out)
}

// SaveSettings writes s to path atomically (a temporary file renamed over
// it). If the file there is broken (someone edited it since it was
// loaded), it is first kept as settings.json.broken-TIME so nothing it
// held is lost.
func SaveSettings(path string, s Settings) error {
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		if _, broken, _ := decodeSettings(b); broken != "" {
			if _, err := keepBroken(path); err != nil {
				return fmt.Errorf("save settings: keep the broken file: %w", err)
			}
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
