//go:build !linux && !windows

package launcher

import (
	"os"
	"os/exec"
)

// launchEnv is the environment variable that marks a launch's processes.
const launchEnv = "PORTHOLE_LAUNCH"

// prepare changes nothing here: Linux runs programs in their own group,
// Windows in a Job Object; other systems only stop the program itself.
func prepare(cmd *exec.Cmd) {}

// started does nothing here.
func started(p *os.Process) {}

// sweep cannot find a launch's leftover children here.
func sweep(pgid int, token string) {}

// countMarked counts nothing here: only the programs themselves count.
func countMarked(prefix string) int { return 0 }
