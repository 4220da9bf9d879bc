//go:build !windows

package winsvc

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Run runs f with a context cancelled by SIGINT or SIGTERM.
func Run(name string, f func(ctx context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return f(ctx)
}

// DataDir is Windows' %ProgramData%\Porthole; "" elsewhere.
func DataDir() string { return "" }
