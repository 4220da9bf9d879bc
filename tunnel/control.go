package tunnel

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/porthole/porthole/control"
)

// Control is the Service as the control API's backend (TunnelStart and
// friends for other programs; see package control).
func (s *Service) Control() control.Backend { return serviceControl{s} }

type serviceControl struct{ s *Service }

func (c serviceControl) find(name string) (TunnelView, bool) {
	for _, tv := range c.s.Tunnels() {
		if strings.EqualFold(tv.Info.Context, name) {
			return tv, true
		}
	}
	return TunnelView{}, false
}

// Start opens a tunnel for a program: on port when given (not kept as the
// user's choice), else on its usual port; an open tunnel answers its
// port.
func (c serviceControl) Start(ctx context.Context, name string, port int) (int, bool, error) {
	c.s.mu.Lock()
	signedIn := c.s.mgr != nil
	c.s.mu.Unlock()
	if !signedIn {
		return 0, false, errors.New("Porthole is not signed in: sign in with the tray app or porthole login")
	}
	tv, ok := c.find(name)
	if !ok {
		c.s.Refresh(ctx) // a tunnel made since the list was read
		if tv, ok = c.find(name); !ok {
			return 0, false, fmt.Errorf("no tunnel %q that you may use", name)
		}
	}
	if tv.State == Open || tv.State == Reconnecting {
		if port != 0 && port != tv.Port {
			return 0, true, fmt.Errorf("tunnel %s is already open on port %d", tv.Info.Context, tv.Port)
		}
		return tv.Port, true, nil
	}
	got, err := c.s.open(ctx, tv.Info.Context, port)
	if err != nil {
		return 0, false, err
	}
	return got, false, nil
}

func (c serviceControl) Stop(name string) error {
	tv, ok := c.find(name)
	if !ok {
		return fmt.Errorf("no tunnel %q that you may use", name)
	}
	return c.s.Close(tv.Info.Context)
}

func (c serviceControl) StopAll() (int, error) {
	n := 0
	var first error
	for _, tv := range c.s.Tunnels() {
		if tv.State == Open || tv.State == Reconnecting {
			n++
			if err := c.s.Close(tv.Info.Context); err != nil && first == nil {
				first = err
			}
		}
	}
	return n, first
}

func (c serviceControl) List() []control.Status {
	var out []control.Status
	for _, tv := range c.s.Tunnels() {
		port := tv.Port
		out = append(out, control.Status{Context: tv.Info.Context, State: strings.ToLower(tv.State.String()), Port: port})
	}
	return out
}
