package wire

import (
	"errors"
	"fmt"
	"time"
)

// Names both sides use.
const (
	// Subprotocol is the Sec-WebSocket-Protocol value that turns on the
	// half-close signal described in the package comment.
	Subprotocol = "porthole.v1"
	// ProxyPath is the path prefix of tunnel endpoints; the context follows it.
	ProxyPath = "/ws-proxy/"
	// EOFMessage is the payload of the text message that signals the end of
	// one direction of the stream.
	EOFMessage = "eof"
	// SessionCookie is the cookie that carries a ticket for browsers.
	SessionCookie = "porthole_session"
	// KerberosLoginPath signs in with "Authorization: Negotiate <token>"
	// (Kerberos single sign-on).
	KerberosLoginPath = "/api/v1/login/kerberos"
	// NegotiateScheme is the HTTP authentication scheme of SPNEGO.
	NegotiateScheme = "Negotiate"
)

// Close codes sent in the WebSocket close frame. Codes below 4000 are the
// standard ones; 4xxx are Porthole's, modelled on HTTP status codes.
const (
	CloseNormal        = 1000 // both directions ended
	CloseGoingAway     = 1001 // gateway or client shutting down
	CloseProtocolError = 1002 // the peer broke this protocol
	CloseTooBig        = 1009 // a message over MaxMessageSize
	CloseUnauthorized  = 4401 // the ticket was revoked or expired
	CloseForbidden     = 4403 // access to the tunnel was removed
	CloseDisconnected  = 4410 // an administrator closed this connection
	ClosePeerError     = 4502 // the connection at the far end of the tunnel failed
)

// Keepalive and deadline timings. Each side pings every PingPeriod; a peer
// from which nothing arrived for PongWait (while nothing we sent made
// progress either) is dead. Liveness is checked at every ping, so a dead peer
// is noticed within PongWait+PingPeriod, under a minute.
const (
	PingPeriod = 15 * time.Second
	PongWait   = 40 * time.Second
	WriteWait  = 10 * time.Second
	// CloseWait bounds how long Close waits for the peer's close frame.
	CloseWait = 2 * time.Second
)

// Message sizes.
const (
	// MaxMessageSize is the largest message a side accepts; a larger one
	// closes the stream with CloseTooBig.
	MaxMessageSize = 1 << 20
	// maxControlMessage bounds text (control) messages.
	maxControlMessage = 256
)

// Error is the JSON body of every error the gateway answers with, before or
// instead of an upgrade.
type Error struct {
	// Error is a message that is safe to show to the user.
	Error string `json:"error"`
	// Fields maps request fields to what is wrong with each, for forms.
	Fields map[string]string `json:"fields,omitempty"`
	// Code names the refusal for programs, so clients never match the
	// English message; "" when the status says enough.
	Code string `json:"code,omitempty"`
}

// Error codes (Error.Code) of refused sign-ins.
const (
	CodeWrongCredentials = "wrong_credentials" // 401: the user name or password is wrong
	CodeOTPRequired      = "otp_required"      // 401: the account needs its second-factor code
	CodeOTPWrong         = "otp_wrong"         // 401: the code is wrong or was used already
	CodeAccountDisabled  = "account_disabled"  // 403: the account is disabled (here or in the directory)
	CodeRateLimited      = "rate_limited"      // 429: too many failures; see Retry-After
	CodeUnavailable      = "unavailable"       // 503: busy, or the directory does not answer; see Retry-After
	// 404 at MuxPath: the client offered no session protocol this gateway
	// speaks; it uses one WebSocket per connection instead.
	CodeUnsupportedProtocol = "unsupported_protocol"
)

// ErrProtocol is returned when the peer breaks the stream protocol.
var ErrProtocol = errors.New("tunnel protocol error")

// CloseError is how a stream that the peer ended with a reason surfaces to
// the reader: the code and the reason from its close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("closed by peer (code %d)", e.Code)
	}
	return fmt.Sprintf("closed by peer: %s (code %d)", e.Reason, e.Code)
}

// Names of the multiplexed session protocol (package wire/mux).
const (
	// MuxSubprotocol is the Sec-WebSocket-Protocol of a session that
	// carries many streams and survives a dropped WebSocket. (v1 ran the
	// streams on yamux; v2 has its own records, see package wire/mux. A
	// gateway answers a client that offers only another version with 404,
	// so that client falls back to one WebSocket per connection.)
	MuxSubprotocol = "porthole.mux.v2"
	// MuxPath is where sessions are opened and resumed.
	MuxPath = "/ws-mux"
)
