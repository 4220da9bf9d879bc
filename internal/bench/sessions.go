package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// linkRTT is the round trip of the emulated WAN link (toxiproxy adds half
// of it each way between the client and its server).
const linkRTT = 30 * time.Millisecond

// way is one way of reaching the echo, sink and source targets.
type way struct {
	name   string
	addrs  map[string]string // local forwarder addresses by target
	server *proc             // the server process (gateway or chisel server), for memory
	client *proc             // the client process, for memory
}

// sessionsGroup compares, in one run, Porthole's tunnel sessions
// (porthole.mux.v2, the default), one WebSocket per connection
// (porthole.v1, PORTHOLE_SESSIONS=off) and chisel built from its source:
// a new connection's first round trip on loopback and over a 30 ms link,
// throughput, 64 B round trips, and idle memory per connection in the
// server and the client.
func (e *env) sessionsGroup(ctx context.Context) []Result {
	var out []Result
	perConn, err := e.forwarder("http://"+e.plainAddr, "perconn-home", []string{"PORTHOLE_SESSIONS=off"})
	if err != nil {
		return []Result{{Name: "sessions", Comment: err.Error()}}
	}
	ways := []way{
		{name: "session", addrs: e.addrs, server: e.plain, client: e.fwd},
		{name: "per-connection", addrs: perConn.addrs, server: e.plain, client: perConn.client},
	}
	var chisel *way
	if e.cfg.Chisel == "" {
		out = append(out, Result{Name: "chisel", Comment: "no chisel binary (-chisel): scripts/bench builds it from its source"})
	} else if cw, err := e.chiselWay(e.cfg.Chisel, ""); err != nil {
		out = append(out, Result{Name: "chisel", Comment: err.Error()})
	} else {
		chisel = cw
		ways = append(ways, *cw)
	}

	// A new connection's first round trip (connect, 1 byte there and back).
	first := func(addr string) (float64, error) {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{7}); err != nil {
			return 0, err
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, err
		}
		return float64(time.Since(start).Microseconds()) / 1000, nil
	}
	firsts := func(addr string, n int) (float64, error) {
		var xs []float64
		for range n {
			v, err := first(addr)
			if err != nil {
				return 0, err
			}
			xs = append(xs, v)
		}
		return median(xs), nil
	}
	setups := map[string]float64{}
	direct, _ := firsts(e.echo, e.cfg.Setups)
	for _, w := range ways {
		v, err := firsts(w.addrs["echo"], e.cfg.Setups)
		if err != nil {
			out = append(out, Result{Name: "new connection's first round trip, " + w.name, Comment: err.Error()})
			continue
		}
		setups[w.name] = v
	}
	for _, w := range ways {
		r := Result{Name: "new connection's first round trip p50, loopback, " + w.name, Direct: direct, Tunnel: setups[w.name], Unit: "ms",
			Comment: fmt.Sprintf("%d connections: connect, 1 byte there and back", e.cfg.Setups)}
		if direct > 0 {
			r.Ratio = r.Tunnel / direct
		}
		if c, ok := setups["chisel"]; ok && w.name != "chisel" {
			r.Target = fmt.Sprintf("< chisel (%.3g ms)", c)
			r.Pass = r.Tunnel < c
			r.Comment += fmt.Sprintf("; %.2f× chisel's", r.Tunnel/c)
		} else {
			r.Target, r.Pass = "(reference)", true
		}
		out = append(out, r)
	}

	// The same over a 30 ms link, in round trips of the link.
	out = append(out, e.overLink(ctx, chisel != nil, firsts)...)

	// Throughput and round trips.
	for _, w := range ways {
		var ups, downs, rt []float64
		for range max(2, e.cfg.Rounds/2) {
			if v, err := up(w.addrs["sink"], e.cfg.Bytes/2); err == nil {
				ups = append(ups, v/(1<<20))
			}
			if v, err := down(w.addrs["source"], e.cfg.Bytes/2); err == nil {
				downs = append(downs, v/(1<<20))
			}
			if v, err := rtts(w.addrs["echo"], e.cfg.RoundTrips); err == nil {
				rt = append(rt, median(v))
			}
		}
		out = append(out,
			Result{Name: "throughput up, " + w.name, Tunnel: median(ups), Unit: "MiB/s", Target: "(compared below)", Pass: true},
			Result{Name: "throughput down, " + w.name, Tunnel: median(downs), Unit: "MiB/s", Target: "(compared below)", Pass: true},
			Result{Name: "64 B round trip p50, " + w.name, Tunnel: median(rt), Unit: "µs", Target: "(compared below)", Pass: true})
	}

	// Idle memory per connection, server and client.
	held := min(e.cfg.IdleTunnels, 2000)
	for _, w := range ways {
		if w.name == "per-connection" {
			continue // the gateway's per-connection figure is the idle group's
		}
		srv, cli, err := holdIdle(w, held)
		if err != nil {
			out = append(out, Result{Name: "idle memory, " + w.name, Comment: err.Error()})
			continue
		}
		out = append(out, Result{Name: "idle memory per connection, " + w.name + " server", Tunnel: srv, Unit: "KiB", Target: "(compared below)", Pass: true,
			Comment: fmt.Sprintf("%d connections held, each after one round trip", held)},
			Result{Name: "idle memory per connection, " + w.name + " client", Tunnel: cli, Unit: "KiB", Target: "(compared below)", Pass: true})
	}
	return compareToChisel(out)
}

// compareToChisel fills ratio, target and verdict of the session rows
// against chisel's rows of the same measure.
func compareToChisel(rs []Result) []Result {
	byName := map[string]float64{}
	for _, r := range rs {
		byName[r.Name] = r.Tunnel
	}
	for i, r := range rs {
		var base, suffix string
		found := false
		for _, sfx := range []string{"", " server", " client"} {
			if b, ok := strings.CutSuffix(r.Name, ", session"+sfx); ok {
				base, suffix, found = b, sfx, true
				break
			}
		}
		c, okc := byName[base+", chisel"+suffix]
		if !found || !okc || c == 0 || strings.Contains(r.Name, "first round trip") {
			continue
		}
		rs[i].Direct, rs[i].Ratio = c, r.Tunnel/c
		rs[i].Comment = strings.TrimPrefix(rs[i].Comment+"; baseline: chisel", "; ")
		switch {
		case strings.HasPrefix(r.Name, "throughput"):
			rs[i].Target, rs[i].Pass = "≥ chisel", r.Tunnel >= c
		default: // round trips and memory: lower is better
			rs[i].Target, rs[i].Pass = "≤ chisel", r.Tunnel <= c
		}
	}
	return rs
}

// forwarded is a `porthole open` of sink, source and echo.
type forwarded struct {
	client *proc
	addrs  map[string]string
}

// forwarder signs in to gateway in a home of its own and opens the three
// benchmark tunnels.
func (e *env) forwarder(gateway, home string, extraEnv []string) (*forwarded, error) {
	env := append([]string{"XDG_CONFIG_HOME=" + filepath.Join(e.dir, home), "PORTHOLE_NO_KEYRING=1"}, extraEnv...)
	if err := e.run("porthole", adminPassword+"\n", env, "login", "--gateway", gateway, "--user", "admin", "--password-stdin"); err != nil {
		return nil, err
	}
	p, err := e.start("porthole", env, "open", "sink:0", "source:0", "echo:0")
	if err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for _, n := range []string{"sink", "source", "echo"} {
		a, err := p.wait(regexp.MustCompile(`^`+n+` -> (\S+)$`), 30*time.Second)
		if err != nil {
			return nil, err
		}
		addrs[n] = a
	}
	return &forwarded{client: p, addrs: addrs}, nil
}

// chiselWay runs a chisel server on listen and a chisel client to it
// (through via, when set: a toxiproxy in front of the server) forwarding
// local ports to the three targets.
func (e *env) chiselWay(bin, via string) (*way, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv, err := e.start(bin, nil, "server", "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	if err != nil {
		return nil, err
	}
	server := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitListen(server); err != nil {
		return nil, fmt.Errorf("chisel server: %w", err)
	}
	if via != "" {
		if server, err = e.toxic(server, via); err != nil {
			return nil, err
		}
	}
	addrs := map[string]string{}
	args := []string{"client", "http://" + server}
	for _, n := range []string{"sink", "source", "echo"} {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		addrs[n] = fmt.Sprintf("127.0.0.1:%d", p)
		target := map[string]string{"sink": e.sink, "source": e.source, "echo": e.echo}[n]
		args = append(args, fmt.Sprintf("127.0.0.1:%d:%s", p, target))
	}
	cli, err := e.start(bin, nil, args...)
	if err != nil {
		return nil, err
	}
	if _, err := cli.wait(regexp.MustCompile(`Connected \(Latency`), 30*time.Second); err != nil {
		return nil, fmt.Errorf("chisel client: %w", err)
	}
	return &way{name: "chisel", addrs: addrs, server: srv, client: cli}, nil
}

// overLink measures a new connection's first round trip over a 30 ms link
// (toxiproxy between client and server), in round trips of the link.
func (e *env) overLink(ctx context.Context, withChisel bool, firsts func(string, int) (float64, error)) []Result {
	const n = 15
	var out []Result
	res := func(name string, v float64, err error, target string, pass func(float64) bool) {
		r := Result{Name: "new connection's first round trip over a 30 ms link, " + name, Unit: "RTT"}
		if err != nil {
			r.Comment = err.Error()
		} else {
			r.Tunnel = v / float64(linkRTT.Milliseconds())
			r.Target = target
			r.Pass = pass(r.Tunnel)
			r.Comment = fmt.Sprintf("%.1f ms, median of %d (the session already open)", v, n)
		}
		out = append(out, r)
	}
	always := func(float64) bool { return true }
	directAddr, err := e.toxic(e.echo, "direct")
	if err != nil {
		return []Result{{Name: "30 ms link", Comment: err.Error()}}
	}
	v, err := firsts(directAddr, n)
	res("direct TCP", v, err, "(the floor: 1 RTT)", always)

	gw, err := e.toxic(e.plainAddr, "gateway")
	if err != nil {
		return append(out, Result{Name: "30 ms link", Comment: err.Error()})
	}
	for _, c := range []struct {
		name string
		env  []string
	}{{"session", nil}, {"per-connection", []string{"PORTHOLE_SESSIONS=off"}}} {
		f, err := e.forwarder("http://"+gw, "link-"+c.name, c.env)
		if err != nil {
			res(c.name, 0, err, "", always)
			continue
		}
		firsts(f.addrs["echo"], 1) // the session opens with the first connection
		v, err := firsts(f.addrs["echo"], n)
		if c.name == "session" {
			res(c.name, v, err, "≤ 1.1 RTT", func(x float64) bool { return x <= 1.1 })
		} else {
			res(c.name, v, err, "(reference)", always)
		}
	}
	if withChisel {
		w, err := e.chiselWay(e.cfg.Chisel, "chisel")
		if err != nil {
			res("chisel", 0, err, "", always)
		} else {
			v, err := firsts(w.addrs["echo"], n)
			res("chisel", v, err, "(reference)", always)
		}
	}
	return out
}

// toxic puts a toxiproxy with half of linkRTT each way in front of addr.
func (e *env) toxic(addr, name string) (string, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", addr)
	if err := p.Start(); err != nil {
		return "", err
	}
	e.stop = append(e.stop, p.Stop)
	for _, stream := range []string{"upstream", "downstream"} {
		body := fmt.Sprintf(`{"name": "lat_%s", "type": "latency", "stream": %q, "attributes": {"latency": %d}}`, stream, stream, linkRTT.Milliseconds()/2)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			return "", err
		}
	}
	return p.Listen, nil
}

// holdIdle opens n connections through w, one round trip each, and returns
// the server's and the client's memory growth per connection in KiB.
func holdIdle(w way, n int) (server, client float64, err error) {
	s0, _ := rssBytes(w.server.cmd.Process.Pid)
	c0, _ := rssBytes(w.client.cmd.Process.Pid)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", w.addrs["echo"], 10*time.Second)
		if err != nil {
			return 0, 0, err
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{1}); err != nil {
			return 0, 0, err
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, 0, fmt.Errorf("connection %d: %w", len(conns), err)
		}
		c.SetDeadline(time.Time{})
	}
	time.Sleep(2 * time.Second)
	s1, _ := rssBytes(w.server.cmd.Process.Pid)
	c1, _ := rssBytes(w.client.cmd.Process.Pid)
	return float64(s1-s0) / float64(n) / 1024, float64(c1-c0) / float64(n) / 1024, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitListen(addr string) error {
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}
