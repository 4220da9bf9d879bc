package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the dependency graph honest: the gateway, the launcher and
// the CLI are pure Go (they build with CGO_ENABLED=0 and link no cgo
// package outside the standard library) and never link Fyne or OpenGL;
// only the tray does.
func TestDeps(t *testing.T) {
	cmds := []string{"../cmd/porthole", "../cmd/porthole-gateway"}
	if _, err := os.Stat("../cmd/porthole-launcher"); err == nil {
		cmds = append(cmds, "../cmd/porthole-launcher")
	}
	for _, c := range cmds {
		t.Run(strings.TrimPrefix(c, "../cmd/"), func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{len .CgoFiles}}", c)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			n := 0
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(line)
				pkg, std, cgo := f[0], f[1] == "true", f[2] != "0"
				n++
				for _, banned := range []string{"fyne.io/", "github.com/go-gl/", "fyne.io/systray"} {
					if strings.HasPrefix(pkg, banned) {
						t.Errorf("%s links %s", c, pkg)
					}
				}
				if cgo && !std {
					t.Errorf("%s links the cgo package %s", c, pkg)
				}
			}
			if n < 20 {
				t.Fatalf("suspiciously few dependencies (%d): %s", n, out)
			}
			build := exec.Command("go", "build", "-o", os.DevNull, c)
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("CGO_ENABLED=0 build: %v\n%s", err, out)
			}
		})
	}
	// And the tray does link Fyne, so the check above can fail.
	out, err := exec.Command("go", "list", "-deps", "../cmd/porthole-tray").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fyne.io/fyne/v2") {
		t.Fatalf("the tray does not link Fyne? %v", err)
	}
}
