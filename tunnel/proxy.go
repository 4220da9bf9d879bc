package tunnel

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/go-ntlmssp"
	"golang.org/x/net/http/httpproxy"
)

// proxyDialer reaches the gateway through the HTTP proxy the environment
// names (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, as curl and Go read them) with
// CONNECT, answering the proxy's challenge:
//
//   - Negotiate (Kerberos): the Windows logon, or kinit's ticket elsewhere,
//     for the proxy's service principal HTTP/<proxy host>;
//   - NTLM: the Windows logon, or the user and password given;
//   - Basic: the user and password given.
//
// The user and password come from the proxy URL (http://user:pass@host:port)
// or from PORTHOLE_PROXY_USER and PORTHOLE_PROXY_PASSWORD; a DOMAIN\user
// name sends its domain with NTLM.
type proxyDialer struct {
	// proxyFor picks the proxy for the gateway URL (nil: none).
	proxyFor func(*http.Request) (*url.URL, error)
	gateway  *url.URL
	dialer   net.Dialer
	// negotiate makes a SPNEGO token for a service principal.
	negotiate func(spn string) (string, error)
	// ntlm answers an NTLM exchange with the logon's credentials when no
	// password is given (Windows); nil elsewhere.
	ntlm func() ntlmExchange
}

// ntlmExchange is one NTLM handshake with the logon's credentials.
type ntlmExchange interface {
	Negotiate() ([]byte, error)
	Authenticate(challenge []byte) ([]byte, error)
	Close()
}

func newProxyDialer(gateway *url.URL) *proxyDialer {
	env := httpproxy.FromEnvironment().ProxyFunc()
	proxyFor := func(r *http.Request) (*url.URL, error) { return env(r.URL) }
	return &proxyDialer{proxyFor: proxyFor, gateway: gateway,
		dialer: net.Dialer{Timeout: 20 * time.Second, KeepAlive: 30 * time.Second}, negotiate: negotiateToken, ntlm: logonNTLM}
}

// DialContext connects to addr, through the proxy when there is one.
func (d *proxyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	proxy, err := d.proxyFor(&http.Request{URL: d.gateway})
	if err != nil {
		return nil, fmt.Errorf("the proxy setting: %w", err)
	}
	if proxy == nil {
		return d.dialer.DialContext(ctx, network, addr)
	}
	return d.connect(ctx, proxy, addr)
}

// ProxyError is a proxy that refused to connect to the gateway.
type ProxyError struct {
	Proxy  string
	Status string
	Detail string
}

func (e *ProxyError) Error() string {
	return fmt.Sprintf("the proxy %s refused to connect to the gateway: %s%s", e.Proxy, e.Status, e.Detail)
}

// connect opens a CONNECT tunnel to addr through proxy.
func (d *proxyDialer) connect(ctx context.Context, proxy *url.URL, addr string) (net.Conn, error) {
	if proxy.Scheme != "http" && proxy.Scheme != "" {
		return nil, fmt.Errorf("the proxy %s: only http:// proxies are supported", proxy.Redacted())
	}
	host := proxy.Host
	if proxy.Port() == "" {
		host = net.JoinHostPort(proxy.Hostname(), "80")
	}
	user, password := proxyCredentials(proxy)
	var (
		conn   net.Conn
		br     *bufio.Reader
		auth   string
		tried  = map[string]bool{}
		ntlmEx ntlmExchange
	)
	defer func() {
		if ntlmEx != nil {
			ntlmEx.Close()
		}
	}()
	fail := func(err error) (net.Conn, error) {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	for range 6 {
		if conn == nil {
			c, err := d.dialer.DialContext(ctx, "tcp", host)
			if err != nil {
				return nil, fmt.Errorf("cannot reach the proxy %s: %w", proxy.Redacted(), err)
			}
			conn, br = c, bufio.NewReader(c)
		}
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl)
		} else {
			conn.SetDeadline(time.Now().Add(30 * time.Second))
		}
		req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: porthole\r\nProxy-Connection: keep-alive\r\n"
		if auth != "" {
			req += "Proxy-Authorization: " + auth + "\r\n"
		}
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			return fail(fmt.Errorf("the proxy %s: %w", proxy.Redacted(), err))
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			return fail(fmt.Errorf("the proxy %s did not answer CONNECT: %w", proxy.Redacted(), err))
		}
		if resp.StatusCode == http.StatusOK {
			conn.SetDeadline(time.Time{})
			if br.Buffered() > 0 {
				return fail(fmt.Errorf("the proxy %s sent data before the gateway spoke: %w", proxy.Redacted(), errors.ErrUnsupported))
			}
			return conn, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusProxyAuthRequired {
			return fail(&ProxyError{Proxy: proxy.Redacted(), Status: resp.Status})
		}
		if resp.Close {
			conn.Close()
			conn = nil
		}
		challenges := resp.Header.Values("Proxy-Authenticate")
		next, err := d.answer(challenges, proxy, user, password, tried, &ntlmEx)
		if err != nil {
			return fail(err)
		}
		if next == "" {
			return fail(&ProxyError{Proxy: proxy.Redacted(), Status: resp.Status, Detail: authAdvice(challenges, tried, user)})
		}
		auth = next
	}
	return fail(&ProxyError{Proxy: proxy.Redacted(), Status: "407 Proxy Authentication Required", Detail: " (the sign-in with the proxy did not finish)"})
}

// answer picks the next Proxy-Authorization value for the challenges, or ""
// when there is nothing (more) to try.
func (d *proxyDialer) answer(challenges []string, proxy *url.URL, user, password string, tried map[string]bool, ntlmEx *ntlmExchange) (string, error) {
	offered := map[string]string{}
	for _, c := range challenges {
		scheme, data, _ := strings.Cut(strings.TrimSpace(c), " ")
		offered[strings.ToLower(scheme)] = strings.TrimSpace(data)
	}
	// The second leg of NTLM: the proxy's challenge.
	if data, ok := offered["ntlm"]; ok && tried["ntlm"] && !tried["ntlm2"] && data != "" {
		tried["ntlm2"] = true
		challenge, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return "", fmt.Errorf("the proxy %s sent a broken NTLM challenge: %w", proxy.Redacted(), err)
		}
		var msg []byte
		if *ntlmEx != nil {
			msg, err = (*ntlmEx).Authenticate(challenge)
		} else {
			msg, err = ntlmssp.NewAuthenticateMessage(challenge, user, password, nil)
		}
		if err != nil {
			return "", fmt.Errorf("NTLM with the proxy %s: %w", proxy.Redacted(), err)
		}
		return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
	}
	if _, ok := offered["negotiate"]; ok && !tried["negotiate"] && d.negotiate != nil {
		tried["negotiate"] = true
		if tok, err := d.negotiate("HTTP/" + proxy.Hostname()); err == nil {
			return "Negotiate " + tok, nil
		}
		// No Kerberos ticket for the proxy: fall through to the others.
	}
	if _, ok := offered["ntlm"]; ok && !tried["ntlm"] {
		tried["ntlm"] = true
		if user == "" && d.ntlm != nil {
			if ex := d.ntlm(); ex != nil {
				*ntlmEx = ex
				msg, err := ex.Negotiate()
				if err != nil {
					return "", fmt.Errorf("NTLM with the logon's credentials: %w", err)
				}
				return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
			}
		}
		if user != "" {
			msg, err := ntlmssp.NewNegotiateMessage("", "")
			if err != nil {
				return "", err
			}
			return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
		}
	}
	if _, ok := offered["basic"]; ok && !tried["basic"] && user != "" {
		tried["basic"] = true
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password)), nil
	}
	return "", nil
}

// proxyCredentials are the user and password for the proxy: from its URL,
// else from PORTHOLE_PROXY_USER and PORTHOLE_PROXY_PASSWORD.
func proxyCredentials(proxy *url.URL) (string, string) {
	if proxy.User != nil {
		pw, _ := proxy.User.Password()
		return proxy.User.Username(), pw
	}
	return os.Getenv("PORTHOLE_PROXY_USER"), os.Getenv("PORTHOLE_PROXY_PASSWORD")
}

// authAdvice says what to do when the proxy wants a sign-in Porthole could
// not give.
func authAdvice(challenges []string, tried map[string]bool, user string) string {
	var schemes []string
	for _, c := range challenges {
		s, _, _ := strings.Cut(strings.TrimSpace(c), " ")
		schemes = append(schemes, s)
	}
	if len(tried) > 0 {
		return fmt.Sprintf(" (it did not accept the sign-in (%s); check the proxy user and password, or your Kerberos ticket)", strings.Join(schemes, ", "))
	}
	if user == "" {
		return fmt.Sprintf(" (it asks for a sign-in (%s): put the user and password in the proxy URL or in PORTHOLE_PROXY_USER and PORTHOLE_PROXY_PASSWORD)", strings.Join(schemes, ", "))
	}
	return fmt.Sprintf(" (it asks for a sign-in Porthole cannot give: %s)", strings.Join(schemes, ", "))
}
