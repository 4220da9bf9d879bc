//go:build unix

package gateway

import (
	"os"
	"os/signal"
	"syscall"
)

// notifyReload delivers SIGHUP on ch; stop undoes it.
func notifyReload(ch chan<- os.Signal) (stop func()) {
	signal.Notify(ch, syscall.SIGHUP)
	return func() { signal.Stop(ch) }
}
