// Package toxitest puts Shopify's toxiproxy (run in the test's process)
// between a client and a server, for latency, bandwidth and fault tests.
package toxitest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is a toxiproxy listening on 127.0.0.1 in front of an upstream.
type Proxy struct {
	p    *toxiproxy.Proxy
	t    testing.TB
	addr string
}

// New starts a proxy to upstream; it stops when the test ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, "porthole", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{p: p, t: t, addr: p.Listen}
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes every connection through the proxy and refuses new ones until
// Restore (a network that is gone).
func (p *Proxy) Cut() { p.p.Stop() }

// Restore listens again on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	if err := p.p.Start(); err != nil {
		p.t.Fatalf("toxiproxy restart: %v", err)
	}
}

// Add adds a toxic, for example Add("latency", "downstream", `"latency": 15`).
func (p *Proxy) Add(kind, stream, attributes string) string {
	p.t.Helper()
	name := fmt.Sprintf("%s_%s_%d", kind, stream, len(p.p.Toxics.GetToxicArray()))
	body := fmt.Sprintf(`{"name": %q, "type": %q, "stream": %q, "attributes": {%s}}`, name, kind, stream, attributes)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		p.t.Fatalf("toxiproxy: add %s: %v", body, err)
	}
	return name
}

// Remove removes the toxic that Add named.
func (p *Proxy) Remove(name string) {
	p.t.Helper()
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		p.t.Fatalf("toxiproxy: remove %s: %v", name, err)
	}
}

// Latency delays each direction by ms, so a round trip takes 2*ms more.
func (p *Proxy) Latency(ms int) {
	p.Add("latency", "upstream", fmt.Sprintf(`"latency": %d`, ms))
	p.Add("latency", "downstream", fmt.Sprintf(`"latency": %d`, ms))
}
