package app

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := map[string]struct {
		args    []string
		err     error
		out     string
		level   slog.Level
		errText string
	}{
		"none":         {args: nil, level: slog.LevelInfo},
		"debug":        {args: []string{"--debug"}, level: slog.LevelDebug},
		"help":         {args: []string{"--help"}, err: ErrHandled, out: "needs a desktop session"},
		"short help":   {args: []string{"-h"}, err: ErrHandled, out: "-debug"},
		"version":      {args: []string{"--version"}, err: ErrHandled, out: "porthole-tray"},
		"unknown flag": {args: []string{"--frob"}, err: ErrUsage, errText: "frob"},
		"an argument":  {args: []string{"mysql"}, err: ErrUsage, errText: "takes no arguments"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			a, err := ParseArgs(tc.args, &out, &errOut)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.errText != "" && !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("err %q lacks %q", err, tc.errText)
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Fatalf("stdout %q lacks %q", out.String(), tc.out)
			}
			if tc.err == nil && a.LogLevel != tc.level {
				t.Fatalf("level %v, want %v", a.LogLevel, tc.level)
			}
		})
	}
}

func TestCheckDisplay(t *testing.T) {
	// A Wayland compositor's socket that accepts.
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "wayland-0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := map[string]struct {
		getenv func(string) string
		want   string // "" for no error
	}{
		"wayland":               {env("WAYLAND_DISPLAY", "wayland-0", "XDG_RUNTIME_DIR", dir), ""},
		"nothing set":           {env(), "neither DISPLAY nor WAYLAND_DISPLAY is set"},
		"X server not running":  {env("DISPLAY", ":9876"), `the X server of DISPLAY=":9876" does not answer`},
		"a DISPLAY of nonsense": {env("DISPLAY", "nonsense"), `not of the form`},
		"a dead wayland":        {env("WAYLAND_DISPLAY", "wayland-9", "XDG_RUNTIME_DIR", dir), "neither DISPLAY"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckDisplay(tc.getenv)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNoDisplay) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %v, want one line with %q", err, tc.want)
			}
		})
	}
}

func TestXServerAddr(t *testing.T) {
	for in, want := range map[string]string{":0": "unix /tmp/.X11-unix/X0", "unix:3.1": "unix /tmp/.X11-unix/X3", "remote:2": "tcp remote:6002", "[::1]:1": "tcp [::1]:6001"} {
		network, addr, err := xServerAddr(in)
		if got := network + " " + addr; err != nil || got != want {
			t.Errorf("xServerAddr(%q) = %q %v, want %q", in, got, err, want)
		}
	}
}
