//go:build !windows

package tunnel

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMachineGateway(t *testing.T) {
	dir := t.TempDir()
	old := machineSettingsPath
	machineSettingsPath = filepath.Join(dir, "client.json")
	defer func() { machineSettingsPath = old }()
	os.WriteFile(machineSettingsPath, []byte(`{"gateway": "https://gw.corp.example"}`), 0o644)
	s, err := LoadSettings(filepath.Join(dir, "missing.json"))
	if err != nil || s.Gateway != "https://gw.corp.example" {
		t.Fatalf("machine default not used: %+v %v", s, err)
	}
	user := filepath.Join(dir, "settings.json")
	os.WriteFile(user, []byte(`{"gateway": "https://mine.example"}`), 0o644)
	if s, _ := LoadSettings(user); s.Gateway != "https://mine.example" {
		t.Fatalf("the user's choice must win: %+v", s)
	}
}
