package launcher

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// On Linux each started program runs in its own process group, and it
// and everything it starts carries PORTHOLE_LAUNCH=<token> in its
// environment. When the client goes, the group is interrupted; once the
// program has exited, whatever is left of the group, and any descendant
// that left it (setsid, a double fork) but kept the environment, is
// killed. The same mark counts a program's children toward maxProcesses.

// launchEnv is the environment variable that marks a launch's processes.
const launchEnv = "PORTHOLE_LAUNCH"

// prepare makes cmd start in its own process group.
func prepare(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// started does nothing more on Linux: the group was made at the start.
func started(p *os.Process) {}

// interrupt asks the program and its process group to stop.
func interrupt(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGINT); err != nil {
		return p.Signal(os.Interrupt)
	}
	return nil
}

// sweep kills what is left of a launch after its program exited: its
// process group and every process marked with token.
func sweep(pgid int, token string) {
	syscall.Kill(-pgid, syscall.SIGKILL)
	for _, pid := range marked(launchEnv + "=" + token) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// countMarked counts the running processes whose mark starts with prefix
// (the launcher's own prefix: every process of every launch).
func countMarked(prefix string) int {
	return len(marked(launchEnv + "=" + prefix))
}

// marked lists the processes (not zombies) whose environment has a
// variable starting with entry.
func marked(entry string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	want := []byte(entry)
	var out []int
	for _, d := range dirs {
		env, err := os.ReadFile(d + "/environ")
		if err != nil || len(env) == 0 {
			continue // gone, another user's, or a zombie
		}
		found := bytes.HasPrefix(env, want)
		if !found {
			found = bytes.Contains(env, append([]byte{0}, want...))
		}
		if !found {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
