package app

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2"

	"github.com/porthole/porthole/control"
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
	// Other programs start tunnels through the tray (TunnelStart; see
	// package control). Where another Porthole already serves that, the
	// tray works without it.
	cctx, stopControl := context.WithCancel(ctx)
	controlDone := make(chan struct{})
	if ln, err := control.Listen(); err != nil {
		log.Warn("the control API for other programs is not served", "err", err)
		close(controlDone)
	} else {
		go func() {
			defer close(controlDone)
			srv := &control.Server{Backend: svc.Control(), Logger: log}
			if err := srv.Serve(cctx, ln); err != nil {
				log.Warn("control API", "err", err)
			}
		}()
	}
	defer func() { stopControl(); <-controlDone }()
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
