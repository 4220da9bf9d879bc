// Command porthole-tray is Porthole's desktop app: a tray icon and a
// window that open tunnels on fixed local ports with one click.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	fyneapp "fyne.io/fyne/v2/app"

	"github.com/porthole/porthole/app"
	"github.com/porthole/porthole/internal/version"
)

func main() {
	if len(os.Args) > 1 && version.IsFlag(os.Args[1]) {
		fmt.Println(version.String("porthole-tray"))
		return
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
	if err := app.Run(ctx, fyneapp.NewWithID("dev.porthole.tray"), nil); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-tray:", err)
		os.Exit(1)
	}
}
