package app

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/porthole/porthole/tunnel"
	"github.com/porthole/porthole/wire"
)

func itoa(n int) string { return strconv.Itoa(n) }

func isNoTicket(err error) bool { return errors.Is(err, tunnel.ErrNoTicket) }

// explain says in plain words what went wrong signing in, and what to do.
func explain(err error, gateway string) string {
	var ae *tunnel.APIError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, tunnel.ErrRateLimited):
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			return fmt.Sprintf("Too many failed attempts. Wait %d seconds, then try again.", int(ae.RetryAfter.Seconds()))
		}
		return "Too many failed attempts. Wait a minute, then try again."
	case errors.Is(err, tunnel.ErrUnauthorized):
		if errors.As(err, &ae) && ae.Code == wire.CodeWrongCredentials {
			return "Wrong user name or password."
		}
		if errors.As(err, &ae) {
			return upper(ae.Message) + "."
		}
		return "Sign in again."
	case errors.Is(err, tunnel.ErrCertificate):
		return "The gateway's certificate is not trusted by this computer. Ask IT for your company's CA certificate, " +
			"then sign in once with: porthole login --gateway " + gateway + " --ca FILE (the tray uses it too)."
	case errors.Is(err, tunnel.ErrGatewayUnreachable):
		return "Cannot reach the gateway at " + gateway + ". Check the address and your network connection."
	case errors.As(err, &ae):
		return upper(ae.Message) + "."
	}
	return upper(err.Error()) + "."
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
