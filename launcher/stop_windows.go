package launcher

import "os"

// interrupt asks a process to stop; Windows has no interrupt for another
// process's console, so it is killed (after which Wait reaps it).
func interrupt(p *os.Process) error { return p.Kill() }
