// Command porthole-tray is Porthole's desktop app: a tray icon and a
// window that open tunnels on fixed local ports with one click.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	fyneapp "fyne.io/fyne/v2/app"

	"github.com/porthole/porthole/app"
)

func main() {
	args, err := app.ParseArgs(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, app.ErrHandled):
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "porthole-tray:", err)
		os.Exit(2)
	}
	// Checked before the toolkit starts, which would panic without one.
	if err := app.CheckDisplay(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-tray:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// Whatever hangs, a signal ends the process within two seconds.
		<-ctx.Done()
		time.Sleep(2 * time.Second)
		fmt.Fprintln(os.Stderr, "porthole-tray: did not stop in time; exiting")
		os.Exit(1)
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: args.LogLevel}))
	if err := app.Run(ctx, fyneapp.NewWithID("dev.porthole.tray"), log); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-tray:", err)
		os.Exit(1)
	}
}
