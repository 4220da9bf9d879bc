package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porthole/porthole/gateway/store"
)

// cacheTTL bounds how long a verified ticket or a tunnel is reused without
// asking the store. Changes made through this gateway clear the cache at
// once; changes made elsewhere (another gateway, an offline command) are
// seen within cacheTTL, and live tunnels are rechecked every recheckPeriod.
const cacheTTL = 2 * time.Second

// lookupCache keeps verified principals by ticket and tunnels by context,
// so opening a tunnel usually needs no store query. Invalidate clears it.
type lookupCache struct {
	now func() time.Time
	gen atomic.Uint64

	// mu guards the maps.
	mu         sync.Mutex
	principals map[string]cachedPrincipal
	tunnels    map[string]cachedTunnel
}

type cachedPrincipal struct {
	p   *principal
	at  time.Time
	gen uint64
}

type cachedTunnel struct {
	t   store.Tunnel
	at  time.Time
	gen uint64
}

func newLookupCache(now func() time.Time) *lookupCache {
	return &lookupCache{now: now, principals: map[string]cachedPrincipal{}, tunnels: map[string]cachedTunnel{}}
}

// Invalidate forgets everything; call it after any change that could
// revoke or move access.
func (c *lookupCache) Invalidate() {
	c.gen.Add(1)
	c.mu.Lock()
	clear(c.principals)
	clear(c.tunnels)
	c.mu.Unlock()
}

func (c *lookupCache) principal(tok string) (*principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.principals[tok]
	if !ok || e.gen != c.gen.Load() || c.now().Sub(e.at) > cacheTTL || !c.now().Before(e.p.expires) {
		return nil, false
	}
	return e.p, true
}

// putPrincipal stores p if no invalidation happened since gen was read.
func (c *lookupCache) putPrincipal(tok string, p *principal, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen.Load() {
		return
	}
	if len(c.principals) > 100000 {
		clear(c.principals)
	}
	c.principals[tok] = cachedPrincipal{p: p, at: c.now(), gen: gen}
}

func (c *lookupCache) tunnel(key string) (store.Tunnel, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.tunnels[key]
	if !ok || e.gen != c.gen.Load() || c.now().Sub(e.at) > cacheTTL {
		return store.Tunnel{}, false
	}
	return e.t, true
}

func (c *lookupCache) putTunnel(key string, t store.Tunnel, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen.Load() {
		return
	}
	if len(c.tunnels) > 10000 {
		clear(c.tunnels)
	}
	c.tunnels[key] = cachedTunnel{t: t, at: c.now(), gen: gen}
}

// settingGeneration is a store setting every change to access bumps, so
// gateways (and this one, after offline commands) know when to recheck.
const settingGeneration = "change_generation"

// changed records a change that can move or revoke access: it clears this
// gateway's cache and bumps the store's generation for every process that
// shares the store.
func (s *Server) changed(ctx context.Context) {
	s.cache.Invalidate()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.st.SetSetting(wctx, settingGeneration, randomID(8)); err != nil {
		s.log.Error("record a change for other gateways", "err", err)
	}
	if feed, ok := s.st.(store.ChangeFeed); ok {
		if err := feed.Announce(wctx); err != nil {
			s.log.Warn("announce a change to other gateways (they see it within the poll period)", "err", err)
		}
	}
}
