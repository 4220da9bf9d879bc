//go:build !linux

package launcher

import "os/exec"

// launchEnv is the environment variable that marks a launch's processes.
const launchEnv = "PORTHOLE_LAUNCH"

// prepare changes nothing here: only Linux runs programs in their own
// group (Windows would need a Job Object, not done yet).
func prepare(cmd *exec.Cmd) {}

// sweep cannot find a launch's leftover children here.
func sweep(pgid int, token string) {}

// countMarked counts nothing here: only the programs themselves count.
func countMarked(prefix string) int { return 0 }
