package mux

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrSessionGone ends a client session whose gateway no longer knows it
// (the gateway restarted, or the session waited longer than its limit).
var ErrSessionGone = errors.New("the gateway no longer has this tunnel session (it restarted or waited too long)")

// DialFunc opens a WebSocket to the gateway's session endpoint, sending
// header (with the ticket added by the caller). On a refusal it returns
// the response.
type DialFunc func(ctx context.Context, header http.Header) (*websocket.Conn, *http.Response, error)

// Client is the client's end of a session. Open streams on it from any
// goroutine; when its WebSocket drops it dials again (with backoff) for up
// to the resume limit, and the streams wait meanwhile.
type Client struct {
	*session
	id     string
	dial   DialFunc
	ctx    context.Context
	cancel context.CancelFunc

	reconnecting atomic.Bool
	// Resumes counts successful resumes.
	resumes atomic.Int64
}

// Dial starts a session. A refusal of the WebSocket comes back as the
// DialFunc's error and response.
func Dial(ctx context.Context, dial DialFunc, cfg Config) (*Client, *http.Response, error) {
	cfg = cfg.withDefaults()
	ws, resp, err := dial(ctx, http.Header{})
	if err != nil {
		return nil, resp, err
	}
	id := resp.Header.Get(SessionHeader)
	if id == "" || ws.Subprotocol() == "" {
		ws.Close()
		return nil, resp, fmt.Errorf("the gateway did not start a tunnel session: %w", errNoSession)
	}
	lctx, cancel := context.WithCancel(context.Background())
	c := &Client{id: id, dial: dial, ctx: lctx, cancel: cancel}
	c.session = newSession(cfg, c.lost, false)
	if err := c.link.attach(ws, 0); err != nil {
		c.link.Close()
		cancel()
		return nil, resp, err
	}
	go func() {
		<-c.over
		cancel()
	}()
	return c, resp, nil
}

// errNoSession is a gateway that answered the upgrade without a session:
// one that does not speak the protocol.
var errNoSession = errors.New("no session id in the answer")

// IsUnsupported reports whether err says the gateway does not offer
// sessions, so the caller should use one WebSocket per connection.
func IsUnsupported(err error, resp *http.Response) bool {
	if errors.Is(err, errNoSession) {
		return true
	}
	return resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed)
}

// ID is the session's id.
func (c *Client) ID() string { return c.id }

// Resumes says how many times the session moved to a new WebSocket.
func (c *Client) Resumes() int64 { return c.resumes.Load() }

// Open starts a stream to the tunnel context. The OPEN line and whatever is
// written next travel at once; the gateway's refusal, if any, is the
// stream's first Read error (a *Refusal).
func (c *Client) Open(contextName, ticket string) (*Stream, error) {
	r, err := c.open()
	if err != nil {
		return nil, err
	}
	st := newStream(r, c.session)
	st.status, st.name = true, contextName
	st.answered.Store(false)
	if _, err := fmt.Fprintf(r, "OPEN %s %s\n", contextName, ticket); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// Done is closed when the session has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.ctx.Done() }

// Err says why the session ended, or nil while it lives.
func (c *Client) Err() error {
	if err := c.link.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// Close ends the session and every stream on it.
func (c *Client) Close() error {
	c.cancel()
	c.link.Close()
	return nil
}

// lost runs when the WebSocket dropped: it dials again until a new one
// carries the session, the gateway says the session is gone, or the resume
// limit passes.
func (c *Client) lost() {
	if c.ctx.Err() != nil || !c.reconnecting.CompareAndSwap(false, true) {
		return
	}
	c.cfg.Log.Warn("lost the connection to the gateway; reconnecting (connections wait)", "for_up_to", c.cfg.ResumeLimit)
	deadline := time.Now().Add(c.cfg.ResumeLimit)
	delay := 50 * time.Millisecond
	for {
		h := http.Header{}
		h.Set(SessionHeader, c.id)
		h.Set(ReceivedHeader, strconv.FormatUint(c.link.Received(), 10))
		dctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		ws, resp, err := c.dial(dctx, h)
		cancel()
		if err == nil {
			peer, perr := strconv.ParseUint(resp.Header.Get(ReceivedHeader), 10, 64)
			if perr != nil {
				ws.Close()
				c.link.fail(fmt.Errorf("the gateway resumed without saying what it received: %w", perr))
				return
			}
			c.reconnecting.Store(false)
			// Counted before the link carries bytes again, so whoever sees
			// them arrive also sees the resume.
			c.resumes.Add(1)
			if err := c.link.attach(ws, peer); err != nil {
				c.link.fail(err)
				return
			}
			c.cfg.Log.Warn("the connection to the gateway is back; every connection carried on")
			return
		}
		if resp != nil && resp.StatusCode == http.StatusGone {
			c.cfg.Log.Warn("the gateway no longer has the tunnel session: its connections ended; new ones start a new session")
			c.link.fail(ErrSessionGone)
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			c.cfg.Log.Warn("the gateway stayed unreachable for longer than the resume limit: the tunnel session's connections ended", "limit", c.cfg.ResumeLimit)
			c.link.fail(ErrLinkExpired)
			return
		}
		c.cfg.Log.Debug("tunnel session: reconnecting", "session", c.id, "err", err, "retry_in", delay)
		select {
		case <-time.After(delay + rand.N(delay/4+1)):
		case <-c.ctx.Done():
			return
		}
		delay = min(delay*2, 2*time.Second)
	}
}
