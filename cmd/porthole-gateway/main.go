// Command porthole-gateway runs the Porthole gateway and its offline
// administration commands. On Windows it also runs as the service
// PortholeGateway; a service stop cancels the same context as Ctrl-C.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/porthole/porthole/gateway"
	"github.com/porthole/porthole/internal/winsvc"
)

func main() {
	err := winsvc.Run("PortholeGateway", func(ctx context.Context) error {
		return gateway.Run(ctx, os.Args[1:], gateway.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "porthole-gateway:", err)
		if errors.Is(err, gateway.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
