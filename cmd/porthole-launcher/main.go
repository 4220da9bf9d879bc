// Command porthole-launcher starts the right program for each connection,
// by the path it asks for and the rule files it is given. On Windows it
// also runs as the service PortholeLauncher.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/porthole/porthole/internal/winsvc"
	"github.com/porthole/porthole/launcher"
)

func main() {
	err := winsvc.Run("PortholeLauncher", func(ctx context.Context) error {
		return launcher.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "porthole-launcher:", err)
		if errors.Is(err, launcher.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
