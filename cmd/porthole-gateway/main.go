// Command porthole-gateway runs the Porthole gateway and its offline
// administration commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/porthole/porthole/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := gateway.Run(ctx, os.Args[1:], gateway.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "porthole-gateway:", err)
		if errors.Is(err, gateway.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
