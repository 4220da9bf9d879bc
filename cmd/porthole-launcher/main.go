// Command porthole-launcher starts the right program for each connection,
// by the path it asks for and the rule files it is given.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/porthole/porthole/launcher"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := launcher.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-launcher:", err)
		if errors.Is(err, launcher.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
