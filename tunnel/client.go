package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole/porthole/wire"
	"github.com/porthole/porthole/wire/mux"
)

// Sentinel errors; *APIError matches them with errors.Is by status.
var (
	// ErrUnauthorized: the ticket is missing, expired or revoked, or the
	// password was wrong. Sign in again.
	ErrUnauthorized = errors.New("not signed in")
	// ErrForbidden: the user may not use the tunnel (or do the thing).
	ErrForbidden = errors.New("access denied")
	// ErrNotFound: no such tunnel.
	ErrNotFound = errors.New("not found")
	// ErrTargetUnreachable: the gateway could not connect to the target.
	ErrTargetUnreachable = errors.New("target unreachable")
	// ErrRateLimited: too many failed sign-ins; see APIError.RetryAfter.
	ErrRateLimited = errors.New("rate limited")
	// ErrGatewayUnreachable: the gateway did not answer at all.
	ErrGatewayUnreachable = errors.New("gateway unreachable")
	// ErrCertificate: the gateway's TLS certificate is not trusted.
	ErrCertificate = errors.New("gateway certificate not trusted")
)

// APIError is an error answer from the gateway.
type APIError struct {
	Status     int
	Message    string
	Fields     map[string]string
	RetryAfter time.Duration
	// Code is the gateway's error code (wire.Code...), "" from older
	// gateways.
	Code string
}

func (e *APIError) Error() string { return e.Message }

// Is maps the status to the package's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrTargetUnreachable:
		return e.Status == http.StatusBadGateway
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// Ticket is what a sign-in returns.
type Ticket = wire.Ticket

// TunnelInfo is a tunnel the user may use.
type TunnelInfo = wire.UserTunnel

// Me is the signed-in user.
type Me = wire.Me

// ClientOptions configure a Client. The zero value means defaults.
type ClientOptions struct {
	// CAFile is a PEM file of extra CA certificates to trust for https
	// gateways; "" means the system's roots only.
	CAFile string
	// Timeout bounds API requests (not tunnels); 0 means 30s.
	Timeout time.Duration
	// PingPeriod and PongWait override the tunnel keepalive (tests).
	PingPeriod, PongWait time.Duration
	// PerConnection opens one WebSocket per connection (porthole.v1)
	// even where the gateway offers sessions (porthole.mux.v2); the
	// environment variable PORTHOLE_SESSIONS=off sets it too.
	PerConnection bool
	// ResumeLimit is how long a session whose WebSocket dropped keeps
	// trying to resume before its connections end; 0 means 10 minutes.
	ResumeLimit time.Duration
	// Logger is told when the tunnel session loses the gateway and gets
	// it back; nil means slog.Default().
	Logger *slog.Logger
}

// Client talks to one gateway. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	http   *http.Client
	dialer *websocket.Dialer
	opts   ClientOptions

	// mu guards ticket.
	mu     sync.Mutex
	ticket string

	// The tunnel session: one WebSocket for every connection, made on
	// the first and kept (resumed across drops) until Close.
	muxDialer *websocket.Dialer
	muxMu     sync.Mutex
	sess      *mux.Client
	noMux     atomic.Bool // the gateway offers no sessions
	// tlsResumed says whether the last session WebSocket resumed a TLS
	// session.
	tlsResumed atomic.Bool
}

// NormalizeGateway checks a gateway URL and returns it without a trailing
// slash; a URL without a scheme gets https://.
func NormalizeGateway(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("no gateway URL: give one like https://gateway.example.com")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("gateway URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("gateway URL %q: use http:// or https://", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("gateway URL %q has no host", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// NewClient returns a client for the gateway at rawURL.
func NewClient(rawURL string, opts ClientOptions) (*Client, error) {
	norm, err := NormalizeGateway(rawURL)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(norm)
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if os.Getenv("PORTHOLE_SESSIONS") == "off" {
		opts.PerConnection = true
	}
	// A load balancer's affinity cookie (HAProxy's "cookie ... insert")
	// brings a resumed session back to the gateway that holds it.
	jar, _ := cookiejar.New(nil)
	// The session cache lets a new connection (the tunnel session after
	// the sign-in, a resume after a network change) skip a round trip of
	// the TLS handshake.
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(32)}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", opts.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	// Proxies (HTTPS_PROXY and the like) are reached with CONNECT by
	// proxyDialer, which also answers their Negotiate, NTLM or Basic
	// challenge; TLS to the gateway runs inside the tunnel.
	pd := newProxyDialer(base)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.Proxy = nil
	tr.DialContext = pd.DialContext
	return &Client{
		base: base,
		http: &http.Client{Transport: tr, Timeout: opts.Timeout},
		dialer: &websocket.Dialer{
			NetDialContext:   pd.DialContext,
			TLSClientConfig:  tlsConf,
			HandshakeTimeout: 20 * time.Second,
			Subprotocols:     []string{wire.Subprotocol},
			ReadBufferSize:   4096,
			// A client masks and frames through this buffer: one the size
			// of the pump's reads sends each read as one frame. It is
			// pooled, so idle tunnels hold none.
			WriteBufferSize: 128 << 10,
			WriteBufferPool: &sync.Pool{},
		},
		muxDialer: &websocket.Dialer{
			NetDialContext:   pd.DialContext,
			TLSClientConfig:  tlsConf,
			HandshakeTimeout: 20 * time.Second,
			Subprotocols:     []string{wire.MuxSubprotocol},
			Jar:              jar,
			ReadBufferSize:   256 << 10,
			WriteBufferSize:  256<<10 + 16,
		},
		opts: opts,
	}, nil
}

// Gateway returns the gateway's base URL.
func (c *Client) Gateway() string { return c.base.String() }

// SetTicket sets the ticket sent with requests.
func (c *Client) SetTicket(t string) {
	c.mu.Lock()
	c.ticket = t
	c.mu.Unlock()
}

// Ticket returns the current ticket.
func (c *Client) Ticket() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ticket
}

func (c *Client) url(path string) string { return c.base.String() + path }

// do sends a JSON request and decodes a JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t := c.Ticket(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return apiError(resp, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: the gateway's answer is not what Porthole expects (is %s a Porthole gateway?): %w", method, path, c.Gateway(), err)
		}
	}
	return nil
}

// transportError explains a failure to reach the gateway.
func (c *Client) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var uae x509.UnknownAuthorityError
	var hve x509.HostnameError
	var cie x509.CertificateInvalidError
	var tve *tls.CertificateVerificationError
	if errors.As(err, &uae) || errors.As(err, &hve) || errors.As(err, &cie) || errors.As(err, &tve) {
		return fmt.Errorf("%w: %s presented a certificate this computer does not trust (%v); if your company uses its own certificate authority, get its CA file from IT and pass it with --ca", ErrCertificate, c.base.Host, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: cannot reach %s: %w", ErrGatewayUnreachable, c.Gateway(), err)
}

func apiError(resp *http.Response, data []byte) error {
	var body wire.Error
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		e.Message, e.Fields, e.Code = body.Error, body.Fields, body.Code
	} else {
		e.Message = fmt.Sprintf("the gateway answered %s", resp.Status)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return e
}

// Login signs in and keeps the ticket for later requests.
func (c *Client) Login(ctx context.Context, user, password string) (Ticket, error) {
	return c.LoginWithCode(ctx, user, password, "")
}

// LoginWithCode signs in with a second-factor code as well ("" for none).
// An account that needs one answers an *APIError whose NeedsCode is true.
func (c *Client) LoginWithCode(ctx context.Context, user, password, code string) (Ticket, error) {
	var t Ticket
	req := wire.LoginRequest{Username: user, Password: password, OTP: code}
	if err := c.do(ctx, http.MethodPost, "/api/v1/login", req, &t); err != nil {
		return t, err
	}
	c.SetTicket(t.Ticket)
	return t, nil
}

// NeedsCode reports whether the gateway asks for a second-factor code.
func (e *APIError) NeedsCode() bool {
	if e.Code != "" {
		return e.Code == wire.CodeOTPRequired
	}
	return e.Status == http.StatusUnauthorized && e.Fields["otp"] == "is required" // a gateway without codes
}

// LoginKerberos signs in with the user's Kerberos credentials (single
// sign-on): on Windows the login session's, through SSPI; elsewhere the
// ticket cache kinit fills (KRB5CCNAME, KRB5_CONFIG). spn is the
// gateway's service principal; "" means HTTP/<the gateway's host name>.
func (c *Client) LoginKerberos(ctx context.Context, spn string) (Ticket, error) {
	if spn == "" {
		spn = "HTTP/" + c.base.Hostname()
	}
	token, err := negotiateToken(spn)
	if err != nil {
		return Ticket{}, fmt.Errorf("single sign-on: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(wire.KerberosLoginPath), nil)
	if err != nil {
		return Ticket{}, err
	}
	req.Header.Set("Authorization", wire.NegotiateScheme+" "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return Ticket{}, c.transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Ticket{}, fmt.Errorf("single sign-on: read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return Ticket{}, apiError(resp, data)
	}
	var t Ticket
	if err := json.Unmarshal(data, &t); err != nil {
		return Ticket{}, fmt.Errorf("single sign-on: the gateway's answer is not what Porthole expects: %w", err)
	}
	c.SetTicket(t.Ticket)
	return t, nil
}

// UseToken signs in with an API token an administrator made: the token
// is the ticket. It is checked with the gateway, which says whose it is
// and until when it is valid.
func (c *Client) UseToken(ctx context.Context, token string) (Ticket, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return Ticket{}, errors.New("the API token is empty")
	}
	c.SetTicket(token)
	me, err := c.Me(ctx)
	if err != nil {
		c.SetTicket("")
		return Ticket{}, err
	}
	return Ticket{Ticket: token, User: me.User, Groups: me.Groups, ExpiresAt: me.ExpiresAt, Admin: me.Admin}, nil
}

// Renew exchanges the current ticket for a fresh one.
func (c *Client) Renew(ctx context.Context) (Ticket, error) {
	var t Ticket
	if err := c.do(ctx, http.MethodPost, "/api/v1/renew", nil, &t); err != nil {
		return t, err
	}
	c.SetTicket(t.Ticket)
	return t, nil
}

// Logout ends the session on the gateway.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v1/logout", nil, nil)
}

// Me returns the signed-in user.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var m Me
	return m, c.do(ctx, http.MethodGet, "/api/v1/me", nil, &m)
}

// Tunnels lists the tunnels the user may use.
func (c *Client) Tunnels(ctx context.Context) ([]TunnelInfo, error) {
	var ts []TunnelInfo
	return ts, c.do(ctx, http.MethodGet, "/api/v1/tunnels", nil, &ts)
}

// Tunnel returns one tunnel if the user may use it (ErrNotFound,
// ErrForbidden otherwise).
func (c *Client) Tunnel(ctx context.Context, name string) (TunnelInfo, error) {
	var t TunnelInfo
	return t, c.do(ctx, http.MethodGet, "/api/v1/tunnels/"+url.PathEscape(name), nil, &t)
}

// ChangePassword changes the signed-in user's own password. The ticket in
// use stays valid; the user's other sessions are signed out.
func (c *Client) ChangePassword(ctx context.Context, current, newPassword string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/password", wire.PasswordChange{CurrentPassword: current, NewPassword: newPassword}, nil)
}

// TargetCheck says whether the gateway reaches a tunnel's target.
type TargetCheck = wire.TargetCheck

// CheckTarget asks the gateway whether it reaches the tunnel's target now.
func (c *Client) CheckTarget(ctx context.Context, name string) (TargetCheck, error) {
	var tc TargetCheck
	return tc, c.do(ctx, http.MethodPost, "/api/v1/tunnels/"+url.PathEscape(name)+"/check", nil, &tc)
}

// Dial opens a connection through the tunnel named name: a stream of the
// client's session where the gateway offers sessions (the first Dial starts
// it), else a WebSocket of its own. On a session the stream's first bytes
// travel with the open, and a refusal comes back from the first Read as an
// *APIError; on a WebSocket of its own Dial returns the refusal.
func (c *Client) Dial(ctx context.Context, name string) (net.Conn, error) {
	if !c.opts.PerConnection && !c.noMux.Load() {
		st, err := c.openStream(ctx, name)
		if !errors.Is(err, errNoSessions) {
			return st, err
		}
	}
	return c.dialWebSocket(ctx, name)
}

// errNoSessions says the gateway offers no sessions.
var errNoSessions = errors.New("the gateway offers no tunnel sessions")

// openStream opens a stream on the session, starting one when there is
// none or the last one ended.
func (c *Client) openStream(ctx context.Context, name string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		sess, err := c.session(ctx)
		if err != nil {
			return nil, err
		}
		st, err := sess.Open(name, c.Ticket())
		if err == nil {
			st.MapRefusal = refusalError
			return st, nil
		}
		if attempt > 0 {
			return nil, fmt.Errorf("open a stream on the tunnel session: %w", err)
		}
		// The session ended between session() and Open: start a new one.
	}
}

// refusalError turns the gateway's refusal of a stream into the *APIError
// a refused WebSocket gives.
func refusalError(r *mux.Refusal) error {
	return &APIError{Status: r.Status, Message: r.Message, Code: r.Code}
}

// session returns the live session, starting one if needed.
func (c *Client) session(ctx context.Context) (*mux.Client, error) {
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	if c.sess != nil && c.sess.Err() == nil {
		return c.sess, nil
	}
	if c.sess != nil {
		c.sess.Close()
		c.sess = nil
	}
	u := c.wsURL(wire.MuxPath)
	dial := func(ctx context.Context, h http.Header) (*websocket.Conn, *http.Response, error) {
		if t := c.Ticket(); t != "" {
			h.Set("Authorization", "Bearer "+t)
		}
		ws, resp, err := c.muxDialer.DialContext(ctx, u, h)
		if err == nil {
			nc := ws.NetConn()
			if tc, ok := nc.(*tls.Conn); ok {
				c.tlsResumed.Store(tc.ConnectionState().DidResume)
				nc = tc.NetConn()
			}
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
		}
		return ws, resp, err
	}
	log := c.opts.Logger
	if log == nil {
		log = slog.Default()
	}
	sess, resp, err := mux.Dial(ctx, dial, mux.Config{
		Log:         log,
		ResumeLimit: c.opts.ResumeLimit,
		PingPeriod:  c.opts.PingPeriod,
		PongWait:    c.opts.PongWait,
	})
	if err != nil {
		if mux.IsUnsupported(err, resp) {
			c.noMux.Store(true)
			return nil, errNoSessions
		}
		if resp != nil {
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, apiError(resp, data)
		}
		return nil, c.transportError(err)
	}
	c.sess = sess
	return sess, nil
}

// Session returns the current tunnel session, or nil (tests, diagnostics).
func (c *Client) Session() *mux.Client {
	c.muxMu.Lock()
	defer c.muxMu.Unlock()
	return c.sess
}

// SetLogger sets ClientOptions.Logger; call it before the first Dial.
func (c *Client) SetLogger(l *slog.Logger) { c.opts.Logger = l }

// TLSResumed reports whether the last WebSocket of the tunnel session
// resumed an earlier TLS session (one round trip fewer to connect).
func (c *Client) TLSResumed() bool { return c.tlsResumed.Load() }

// Close ends the tunnel session and with it every connection on it.
func (c *Client) Close() {
	c.muxMu.Lock()
	sess := c.sess
	c.sess = nil
	c.muxMu.Unlock()
	if sess != nil {
		sess.Close()
	}
	c.http.CloseIdleConnections()
}

func (c *Client) wsURL(path string) string {
	u := *c.base
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	return u.String()
}

// dialWebSocket opens a WebSocket of its own for one connection
// (porthole.v1). A refusal comes back as an *APIError with the gateway's
// reason.
func (c *Client) dialWebSocket(ctx context.Context, name string) (*wire.Conn, error) {
	h := http.Header{}
	if t := c.Ticket(); t != "" {
		h.Set("Authorization", "Bearer "+t)
	}
	ws, resp, err := c.dialer.DialContext(ctx, c.wsURL(wire.ProxyPath+url.PathEscape(name)), h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, apiError(resp, data)
		}
		return nil, c.transportError(err)
	}
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return wire.NewConn(ws, wire.Options{
		HalfClose:  ws.Subprotocol() == wire.Subprotocol,
		PingPeriod: c.opts.PingPeriod,
		PongWait:   c.opts.PongWait,
	}), nil
}
