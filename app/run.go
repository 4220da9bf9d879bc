package app

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"

	"github.com/porthole/porthole/tunnel"
)

// Run wires the desktop app: a tunnel.Service as the backend, the UI over
// it, a refresh of the tunnel counters every second, and Quit when ctx is
// done (SIGINT, SIGTERM, logout). It returns when the app has ended.
func Run(ctx context.Context, a fyne.App, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var ui atomic.Pointer[UI]
	svc, err := tunnel.NewService(tunnel.ServiceConfig{
		Logger: log,
		OnChange: func() {
			if u := ui.Load(); u != nil {
				u.Changed()
			}
		},
		OnNotify: func(title, body string) {
			if u := ui.Load(); u != nil {
				u.Notify(title, body)
			}
		},
		OnSignInNeeded: func(err error) {
			if u := ui.Load(); u != nil {
				u.SignInNeeded(err)
			}
		},
		OnSignedIn: func() {
			if u := ui.Load(); u != nil {
				u.SignedIn()
			}
		},
	})
	if err != nil {
		return err
	}
	u := New(a, svc, Options{Logger: log})
	ui.Store(u)
	a.Lifecycle().SetOnStopped(func() {
		// The window system is going away (quit, logout): close tunnels.
		sctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		svc.Shutdown(sctx)
	})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				u.do(u.Quit)
				return
			case <-u.ctx.Done():
				return
			case <-t.C:
				u.Changed()
			}
		}
	}()
	u.Start()
	a.Run()
	return nil
}
