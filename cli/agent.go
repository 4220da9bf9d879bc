package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/porthole/porthole/control"
	"github.com/porthole/porthole/tunnel"
)

// agent serves the control API (TunnelStart/TunnelStop for other
// programs; see package control) where no tray app runs: on a server, in
// a terminal session, for a script. It uses the sign-in the CLI or the
// tray made and runs until Ctrl-C, which closes every tunnel.
func (c *command) agent(ctx context.Context, args []string) error {
	fs := c.flags("agent")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	path, err := c.settingsPath()
	if err != nil {
		return err
	}
	tickets, err := c.tickets()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := tunnel.NewService(tunnel.ServiceConfig{SettingsPath: path, Tickets: tickets, Logger: log})
	if err != nil {
		return err
	}
	defer svc.Shutdown(context.WithoutCancel(ctx))
	if err := svc.Resume(ctx); err != nil {
		if errors.Is(err, tunnel.ErrNoTicket) {
			return fmt.Errorf("not signed in: run porthole login first")
		}
		return fmt.Errorf("resume the sign-in: %w", explain(err))
	}
	ln, err := control.Listen()
	if err != nil {
		return err
	}
	gw, user := svc.Identity()
	fmt.Fprintf(c.env.Stdout, "Porthole agent: signed in to %s as %s; programs start tunnels through %s. Ctrl-C stops.\n", gw, user, control.Path())
	srv := &control.Server{Backend: svc.Control(), Logger: log}
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	fmt.Fprintln(c.env.Stdout, "Porthole agent stopped; its tunnels are closed.")
	return nil
}
