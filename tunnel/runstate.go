package tunnel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RunState is what a running `porthole open` reports about its tunnels,
// for `porthole status` in another terminal. Each process keeps one file,
// open-PID.json, in RunStateDir, and removes it when it ends.
type RunState struct {
	PID     int         `json:"pid"`
	Gateway string      `json:"gateway"`
	User    string      `json:"user,omitempty"`
	Started time.Time   `json:"started"`
	Tunnels []RunTunnel `json:"tunnels"`
}

// RunTunnel is one open tunnel in a RunState.
type RunTunnel struct {
	Context   string `json:"context"`
	Listen    string `json:"listen"`
	Open      int    `json:"open"`
	Accepted  int64  `json:"accepted"`
	BytesUp   int64  `json:"bytesUp"`
	BytesDown int64  `json:"bytesDown"`
	// Target is what the gateway said of the target when the tunnel
	// opened ("Reachable in 0.4 ms.", or why not).
	Target string `json:"target,omitempty"`
	// LastError is the last failed connection, until one goes through.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// RunStateDir is the folder of the run state files: run/ beside
// settings.json, so everything a user's Porthole keeps is in one place.
func RunStateDir(settingsPath string) string {
	return filepath.Join(filepath.Dir(settingsPath), "run")
}

func runStateFile(dir string, pid int) string {
	return filepath.Join(dir, "open-"+strconv.Itoa(pid)+".json")
}

// WriteRunState writes st as this process's run state, atomically.
func WriteRunState(dir string, st RunState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".open-*.json")
	if err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write run state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	if err := os.Rename(tmp.Name(), runStateFile(dir, st.PID)); err != nil {
		return fmt.Errorf("write run state: %w", err)
	}
	return nil
}

// RemoveRunState removes the run state of process pid.
func RemoveRunState(dir string, pid int) {
	os.Remove(runStateFile(dir, pid))
}

// ReadRunStates returns the run states of the `porthole open` processes
// that are running, oldest first; files left by processes that are gone
// (a crash, a power cut) are removed.
func ReadRunStates(dir string) ([]RunState, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run states: %w", err)
	}
	var out []RunState
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "open-") || !strings.HasSuffix(name, ".json") {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "open-"), ".json"))
		if err != nil {
			continue
		}
		if !processAlive(pid) {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var st RunState
		if json.Unmarshal(b, &st) == nil {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}
