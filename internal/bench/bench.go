// Package bench measures Porthole's tunnel against a direct TCP connection
// in the same run: throughput each way (ws:// and wss://), 64-byte round
// trips, connection setup, gateway memory per idle tunnel, tunnels held at
// once, CPU per GB, and real clients (pgbench, mysqlslap). Every load loop
// is bounded in count and time. The gateway and the client forwarder run
// as their own processes, so CPU and memory are read from /proc per
// process.
package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/porthole/porthole/internal/testcert"
	"github.com/porthole/porthole/tunnel"
)

// Config says what to measure. Zero fields mean the defaults.
type Config struct {
	BinDir string // porthole and porthole-gateway binaries (required)
	// Only, when set, names the groups to measure: throughput, rtt,
	// socat, setup, idle, db, sessions.
	Only        map[string]bool
	Rounds      int   // rounds per metric, alternating direct and tunnel; 0 means 8
	Bytes       int64 // bytes per throughput round; 0 means 256 MiB
	RoundTrips  int   // 64-byte round trips per round; 0 means 2000
	Setups      int   // connection setups per round; 0 means 200
	IdleTunnels int   // tunnels held at once; 0 means 10000
	// Postgres and MySQL are host:port of servers for pgbench and
	// mysqlslap ("" skips them), with DBUser, DBPassword and DBName.
	Postgres, MySQL, DBUser, DBPassword, DBName string
	// Chisel is a chisel binary to compare with ("" skips it).
	Chisel string
	Log    *slog.Logger
}

// Result is one metric.
type Result struct {
	Name    string
	Direct  float64 // the baseline measured in the same run (0: none)
	Tunnel  float64
	Unit    string
	Ratio   float64 // Tunnel/Direct (0: none)
	Target  string
	Pass    bool
	Comment string
}

func (c *Config) defaults() {
	if c.Rounds == 0 {
		c.Rounds = 8
	}
	if c.Bytes == 0 {
		c.Bytes = 256 << 20
	}
	if c.RoundTrips == 0 {
		c.RoundTrips = 2000
	}
	if c.Setups == 0 {
		c.Setups = 200
	}
	if c.IdleTunnels == 0 {
		c.IdleTunnels = 10000
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// env is the running setup: targets, gateways, forwarders.
type env struct {
	cfg       Config
	dir       string
	sink      string // reads to EOF, answers the count
	source    string // writes the number of bytes asked for
	echo      string // echoes
	plain     *proc  // gateway, ws://, under a 20,000-descriptor limit
	plainAddr string
	tls       *proc // gateway, wss://
	fwd       *proc // porthole open against plain
	fwdTLS    *proc // porthole open against tls
	addrs     map[string]string
	tlsAddr   map[string]string
	client    *tunnel.Client // signed in to the plain gateway
	stop      []func()
}

// Run measures everything and returns the results in order.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	cfg.defaults()
	e := &env{cfg: cfg}
	defer func() {
		for i := len(e.stop) - 1; i >= 0; i-- {
			e.stop[i]()
		}
	}()
	if err := e.setup(ctx); err != nil {
		return nil, err
	}
	var out []Result
	add := func(rs ...Result) { out = append(out, rs...) }
	want := func(g string) bool { return len(cfg.Only) == 0 || cfg.Only[g] }
	if want("throughput") {
		add(e.throughput(ctx)...)
	}
	if want("rtt") {
		add(e.roundTrip(ctx))
	}
	if want("socat") {
		add(e.socatReference(ctx)...)
	}
	if want("setup") {
		add(e.setupTime(ctx))
	}
	if want("idle") {
		add(e.idle(ctx)...)
	}
	if want("sessions") {
		add(e.sessionsGroup(ctx)...)
	}
	if want("db") && cfg.Postgres != "" {
		add(e.pgbench(ctx))
	}
	if want("db") && cfg.MySQL != "" {
		add(e.mysqlslap(ctx))
	}
	return out, nil
}

// proc is a child process whose output is watched for a line.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
	done  bool
}

// start runs a program of BinDir (or one given by absolute path).
func (e *env) start(name string, env []string, args ...string) (*proc, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(e.cfg.BinDir, name)
	}
	p := &proc{cmd: exec.Command(name, args...)}
	p.cond = sync.NewCond(&p.mu)
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.done = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	e.stop = append(e.stop, func() { p.cmd.Process.Signal(os.Interrupt); p.cmd.Wait(); pw.Close() })
	return p, nil
}

// wait returns the first submatch of the first line matching re.
func (p *proc) wait(re *regexp.Regexp, d time.Duration) (string, error) {
	t := time.AfterFunc(d, func() { p.mu.Lock(); p.done = true; p.cond.Broadcast(); p.mu.Unlock() })
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for next := 0; ; {
		for ; next < len(p.lines); next++ {
			if m := re.FindStringSubmatch(p.lines[next]); m != nil {
				return m[len(m)-1], nil
			}
		}
		if p.done {
			return "", fmt.Errorf("no line matching %q in:\n%s", re, strings.Join(p.lines, "\n"))
		}
		p.cond.Wait()
	}
}

func (e *env) run(name string, stdin string, env []string, args ...string) error {
	cmd := exec.Command(filepath.Join(e.cfg.BinDir, name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

const adminPassword = "bench-password"

func (e *env) setup(ctx context.Context) error {
	var err error
	if e.dir, err = os.MkdirTemp("", "porthole-bench"); err != nil {
		return err
	}
	e.stop = append(e.stop, func() { os.RemoveAll(e.dir) })
	if e.sink, err = e.serve(serveSink); err != nil {
		return err
	}
	if e.source, err = e.serve(serveSource); err != nil {
		return err
	}
	if e.echo, err = e.serve(serveEcho); err != nil {
		return err
	}
	cert, key, err := testcert.Write(e.dir)
	if err != nil {
		return err
	}
	os.WriteFile(filepath.Join(e.dir, "tls.json"), []byte(fmt.Sprintf(`{"tlsCert": %q, "tlsKey": %q}`, cert, key)), 0o600)
	tunnels := [][2]string{{"sink", e.sink}, {"source", e.source}, {"echo", e.echo}}
	if e.cfg.Postgres != "" {
		tunnels = append(tunnels, [2]string{"pg", e.cfg.Postgres})
	}
	if e.cfg.MySQL != "" {
		tunnels = append(tunnels, [2]string{"mysql", e.cfg.MySQL})
	}
	gwEnv := []string{"PORTHOLE_ADMIN_PASSWORD=" + adminPassword}
	startGW := func(name string, extra ...string) (*proc, string, error) {
		data := filepath.Join(e.dir, name)
		for _, t := range tunnels {
			if err := e.run("porthole-gateway", "", gwEnv, "tunnel", "add", t[0], t[1], "--data", data); err != nil {
				return nil, "", err
			}
		}
		args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, extra...)
		bin := "porthole-gateway"
		if prlimit, err := exec.LookPath("prlimit"); err == nil {
			// 10,000 tunnels within 20,000 descriptors (a common limit).
			args = append([]string{"--nofile=20000:20000", "--", filepath.Join(e.cfg.BinDir, bin)}, args...)
			bin = prlimit
		}
		p, err := e.start(bin, gwEnv, args...)
		if err != nil {
			return nil, "", err
		}
		addr, err := p.wait(regexp.MustCompile(`porthole gateway listening"? addr=(\S+)`), 30*time.Second)
		return p, addr, err
	}
	plainAddr, tlsAddr := "", ""
	if e.plain, plainAddr, err = startGW("plain"); err != nil {
		return err
	}
	e.plainAddr = plainAddr
	if e.tls, tlsAddr, err = startGW("tls", "--config", filepath.Join(e.dir, "tls.json")); err != nil {
		return err
	}
	names := []string{"sink:0", "source:0", "echo:0"}
	if e.cfg.Postgres != "" {
		names = append(names, "pg:0")
	}
	if e.cfg.MySQL != "" {
		names = append(names, "mysql:0")
	}
	openFwd := func(url, home string, extra ...string) (*proc, map[string]string, error) {
		env := []string{"XDG_CONFIG_HOME=" + filepath.Join(e.dir, home), "PORTHOLE_NO_KEYRING=1"}
		if err := e.run("porthole", adminPassword+"\n", env, append([]string{"login", "--gateway", url, "--user", "admin", "--password-stdin"}, extra...)...); err != nil {
			return nil, nil, err
		}
		p, err := e.start("porthole", env, append([]string{"open"}, names...)...)
		if err != nil {
			return nil, nil, err
		}
		addrs := map[string]string{}
		for _, n := range names {
			name := strings.TrimSuffix(n, ":0")
			a, err := p.wait(regexp.MustCompile(`^`+name+` -> (\S+)$`), 30*time.Second)
			if err != nil {
				return nil, nil, err
			}
			addrs[name] = a
		}
		return p, addrs, nil
	}
	if e.fwd, e.addrs, err = openFwd("http://"+plainAddr, "plain-home"); err != nil {
		return err
	}
	if e.fwdTLS, e.tlsAddr, err = openFwd("https://"+tlsAddr, "tls-home", "--ca", cert); err != nil {
		return err
	}
	if e.client, err = tunnel.NewClient("http://"+plainAddr, tunnel.ClientOptions{}); err != nil {
		return err
	}
	_, err = e.client.Login(ctx, "admin", adminPassword)
	return err
}

// serve starts a target server in this process.
func (e *env) serve(handle func(net.Conn)) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	e.stop = append(e.stop, func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String(), nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// serveSink reads to EOF and answers with the count (8 bytes).
func serveSink(c net.Conn) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, *bp)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	c.Write(b[:])
}

// serveSource reads an 8-byte count and writes that many bytes.
func serveSource(c net.Conn) {
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint64(b[:]))
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for n > 0 {
		w, err := c.Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			return
		}
		n -= int64(w)
	}
}

func serveEcho(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// up sends n bytes to the sink at addr and returns the rate in bytes/s.
func up(addr string, n int64) (float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	start := time.Now()
	for left := n; left > 0; {
		w, err := c.Write(buf[:min(int64(len(buf)), left)])
		if err != nil {
			return 0, err
		}
		left -= int64(w)
	}
	c.(*net.TCPConn).CloseWrite()
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, fmt.Errorf("read the sink's count: %w", err)
	}
	if got := int64(binary.BigEndian.Uint64(b[:])); got != n {
		return 0, fmt.Errorf("the sink got %d bytes, want %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// down receives n bytes from the source at addr: bytes/s.
func down(addr string, n int64) (float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	start := time.Now()
	c.Write(b[:])
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, *bp)
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("got %d bytes from the source, want %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (e *env) throughput(ctx context.Context) []Result {
	type variant struct {
		name  string
		addrs map[string]string
		pids  []int
	}
	vs := []variant{{"ws", e.addrs, []int{e.plain.cmd.Process.Pid, e.fwd.cmd.Process.Pid}},
		{"wss", e.tlsAddr, []int{e.tls.cmd.Process.Pid, e.fwdTLS.cmd.Process.Pid}}}
	var out []Result
	cpuTotal, bytesTotal := 0.0, 0.0
	for _, v := range vs {
		for _, dir := range []string{"up", "down"} {
			var direct, tun []float64
			for r := 0; r < e.cfg.Rounds; r++ {
				f, target := up, e.sink
				taddr := v.addrs["sink"]
				if dir == "down" {
					f, target, taddr = down, e.source, v.addrs["source"]
				}
				d, err := f(target, e.cfg.Bytes)
				if err != nil {
					e.cfg.Log.Error("direct throughput", "err", err)
					continue
				}
				cpu0 := 0.0
				for _, pid := range v.pids {
					c, _ := cpuSeconds(pid)
					cpu0 += c
				}
				t, err := f(taddr, e.cfg.Bytes)
				if err != nil {
					e.cfg.Log.Error("tunnel throughput", "variant", v.name, "dir", dir, "err", err)
					continue
				}
				cpu1 := 0.0
				for _, pid := range v.pids {
					c, _ := cpuSeconds(pid)
					cpu1 += c
				}
				if v.name == "ws" {
					cpuTotal += cpu1 - cpu0
					bytesTotal += float64(e.cfg.Bytes)
				}
				direct, tun = append(direct, d), append(tun, t)
			}
			md, mt := median(direct)/(1<<20), median(tun)/(1<<20)
			target, min := 0.38, "≥ 0.38× direct"
			if v.name == "wss" {
				target, min = 0.25, "≥ 0.25× direct"
			}
			ratio := 0.0
			if md > 0 {
				ratio = mt / md
			}
			out = append(out, Result{Name: fmt.Sprintf("throughput %s, %s", dir, v.name), Direct: md, Tunnel: mt, Unit: "MiB/s",
				Ratio: ratio, Target: min, Pass: ratio >= target, Comment: fmt.Sprintf("median of %d rounds of %d MiB", len(tun), e.cfg.Bytes>>20)})
		}
	}
	perGB := 0.0
	if bytesTotal > 0 {
		perGB = cpuTotal / (bytesTotal / (1 << 30))
	}
	out = append(out, Result{Name: "CPU per GiB, client + gateway (ws)", Tunnel: perGB, Unit: "core-s", Target: "≤ 1.25 core-s", Pass: perGB > 0 && perGB <= 1.25,
		Comment: "utime+stime of both processes from /proc over the ws rounds"})
	return out
}

// rtts measures n 64-byte round trips on one connection.
func rtts(addr string, n int) ([]float64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	msg, got := make([]byte, 64), make([]byte, 64)
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return nil, err
		}
		out = append(out, float64(time.Since(start).Microseconds()))
	}
	return out, nil
}

func (e *env) roundTrip(ctx context.Context) Result {
	var direct, tun []float64
	for r := 0; r < e.cfg.Rounds; r++ {
		d, err := rtts(e.echo, e.cfg.RoundTrips)
		if err == nil {
			direct = append(direct, median(d))
		}
		t, err := rtts(e.addrs["echo"], e.cfg.RoundTrips)
		if err != nil {
			e.cfg.Log.Error("round trips", "err", err)
			continue
		}
		tun = append(tun, median(t))
	}
	md, mt := median(direct), median(tun)
	return Result{Name: "64 B round trip p50", Direct: md, Tunnel: mt, Unit: "µs", Ratio: mt / md, Target: "≤ 2.5× direct", Pass: mt/md <= 2.5,
		Comment: fmt.Sprintf("%d round trips per round, one connection", e.cfg.RoundTrips)}
}

// setupTime measures a new connection through the tunnel (ticket check,
// access check, the gateway's dial to the target, on the client's tunnel
// session) up to its first byte back, against a direct TCP connection's.
func (e *env) setupTime(ctx context.Context) Result {
	var direct, tun []float64
	echo := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{1}); err != nil {
			return err
		}
		var b [1]byte
		_, err := io.ReadFull(c, b[:])
		return err
	}
	for i := 0; i < e.cfg.Setups; i++ {
		start := time.Now()
		c, err := net.Dial("tcp", e.echo)
		if err == nil && echo(c) == nil {
			direct = append(direct, float64(time.Since(start).Microseconds())/1000)
		}
		if c != nil {
			c.Close()
		}
		start = time.Now()
		w, err := e.client.Dial(ctx, "echo")
		if err == nil {
			err = echo(w)
		}
		if err != nil {
			e.cfg.Log.Error("setup", "err", err)
			continue
		}
		tun = append(tun, float64(time.Since(start).Microseconds())/1000)
		w.Close()
	}
	md, mt := median(direct), median(tun)
	return Result{Name: "setup p50: a new connection's first byte back (ticket, access check, dial)", Direct: md, Tunnel: mt, Unit: "ms", Ratio: mt / md,
		Target: "≤ 0.8 ms", Pass: mt <= 0.8, Comment: fmt.Sprintf("%d setups on the client's tunnel session", len(tun))}
}

// idle holds IdleTunnels tunnels open at once and reads the gateway's
// memory growth per tunnel.
// goMemory reads the gateway's Go stack and heap in use from /metrics.
func (e *env) goMemory() (stack, heap float64) {
	resp, err := http.Get(e.client.Gateway() + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_stack_inuse_bytes":
			stack = v
		case "go_memstats_heap_inuse_bytes":
			heap = v
		}
	}
	return stack, heap
}

func (e *env) idle(ctx context.Context) []Result {
	pid := e.plain.cmd.Process.Pid
	rss0, _ := rssBytes(pid)
	stack0, heap0 := e.goMemory()
	n := e.cfg.IdleTunnels
	conns := make([]net.Conn, 0, n)
	errs := 0
	var firstErr error
	deadline := time.Now().Add(5 * time.Minute)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := e.client.Dial(ctx, "echo")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	// Every tunnel still works: one byte round trip on a sample of them.
	broken := 0
	var brokenErr error
	for i := 0; i < len(conns); i += max(1, len(conns)/200) {
		c := conns[i]
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Write([]byte{1})
		if err == nil {
			var b [1]byte
			_, err = io.ReadFull(c, b[:])
		}
		if err != nil {
			broken++
			if brokenErr == nil {
				brokenErr = err
			}
		}
		c.SetDeadline(time.Time{})
	}
	time.Sleep(2 * time.Second) // let the gateway settle (GC) before reading its RSS
	rss1, _ := rssBytes(pid)
	stack1, heap1 := e.goMemory()
	held := len(conns)
	for _, c := range conns {
		c.Close()
	}
	perTunnel := 0.0
	if held > 0 {
		perTunnel = float64(rss1-rss0) / float64(held) / 1024
	}
	comment := fmt.Sprintf("RSS %d MiB -> %d MiB", rss0>>20, rss1>>20)
	if held > 0 {
		comment += fmt.Sprintf("; per tunnel: goroutine stacks %.1f KiB, heap in use %.1f KiB",
			(stack1-stack0)/float64(held)/1024, (heap1-heap0)/float64(held)/1024)
	}
	if firstErr != nil {
		comment += "; first error: " + firstErr.Error()
	}
	brokenNote := ""
	if brokenErr != nil {
		brokenNote = " (first: " + brokenErr.Error() + ")"
	}
	return []Result{
		{Name: "gateway memory per idle tunnel", Tunnel: perTunnel, Unit: "KiB", Target: "≤ 16 KiB", Pass: perTunnel > 0 && perTunnel <= 16, Comment: comment},
		{Name: "tunnels held open at once", Tunnel: float64(held), Unit: "tunnels", Target: fmt.Sprintf("%d, 0 errors", n),
			Pass: held == n && errs == 0 && broken == 0, Comment: fmt.Sprintf("%d errors opening, %d of a sample broken%s", errs, broken, brokenNote)},
	}
}

var pgTPS = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

func (e *env) pgbench(ctx context.Context) Result {
	envs := []string{"PGPASSWORD=" + e.cfg.DBPassword}
	pg := func(addr string, args ...string) (string, error) {
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.CommandContext(ctx, "pgbench", append([]string{"-h", host, "-p", port, "-U", e.cfg.DBUser}, append(args, e.cfg.DBName)...)...)
		cmd.Env = append(os.Environ(), envs...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := pg(e.cfg.Postgres, "-i", "-q", "-s", "10"); err != nil {
		return Result{Name: "pgbench -S TPS", Comment: "pgbench -i failed: " + err.Error() + " " + out}
	}
	var direct, tun []float64
	for r := 0; r < min(e.cfg.Rounds, 4); r++ {
		for _, target := range []string{e.cfg.Postgres, e.addrs["pg"]} {
			out, err := pg(target, "-S", "-n", "-c", "4", "-j", "2", "-T", "5")
			m := pgTPS.FindStringSubmatch(out)
			if err != nil || m == nil {
				e.cfg.Log.Error("pgbench", "err", err, "out", out)
				continue
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			if target == e.cfg.Postgres {
				direct = append(direct, v)
			} else {
				tun = append(tun, v)
			}
		}
	}
	md, mt := median(direct), median(tun)
	return Result{Name: "pgbench -S TPS", Direct: md, Tunnel: mt, Unit: "TPS", Ratio: mt / md, Target: "≥ 0.6× direct", Pass: mt/md >= 0.6,
		Comment: fmt.Sprintf("4 clients, 5 s per round, %d rounds", len(tun))}
}

var slapAvg = regexp.MustCompile(`Average number of seconds to run all queries: ([0-9.]+) seconds`)

func (e *env) mysqlslap(ctx context.Context) Result {
	slap := func(addr string) (float64, error) {
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.CommandContext(ctx, "mysqlslap", "--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", e.cfg.DBUser,
			"--password="+e.cfg.DBPassword, "--concurrency=4", "--iterations=3", "--number-of-queries=4000",
			"--auto-generate-sql", "--auto-generate-sql-load-type=read", "--create-schema=porthole_slap")
		out, err := cmd.CombinedOutput()
		m := slapAvg.FindStringSubmatch(string(out))
		if err != nil || m == nil {
			return 0, fmt.Errorf("mysqlslap: %v %s", err, out)
		}
		s, _ := strconv.ParseFloat(m[1], 64)
		return 4000 / s, nil
	}
	var direct, tun []float64
	for r := 0; r < min(e.cfg.Rounds, 4); r++ {
		if d, err := slap(e.cfg.MySQL); err == nil {
			direct = append(direct, d)
		} else {
			e.cfg.Log.Error("mysqlslap direct", "err", err)
		}
		if t, err := slap(e.addrs["mysql"]); err == nil {
			tun = append(tun, t)
		} else {
			e.cfg.Log.Error("mysqlslap tunnel", "err", err)
		}
	}
	md, mt := median(direct), median(tun)
	return Result{Name: "mysqlslap read queries/s", Direct: md, Tunnel: mt, Unit: "q/s", Ratio: mt / md, Target: "(reported)", Pass: true,
		Comment: "4 clients, 4000 queries, 3 iterations per round"}
}

// Table writes the results as a Markdown table.
func Table(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| metric | direct | tunnel | ratio | target | met | notes |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rs {
		direct, ratio := "", ""
		if r.Direct > 0 {
			direct = fmt.Sprintf("%.4g %s", r.Direct, r.Unit)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		met := "no"
		if r.Pass {
			met = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %.4g %s | %s | %s | %s | %s |\n", r.Name, direct, r.Tunnel, r.Unit, ratio, r.Target, met, r.Comment)
	}
}

// socatReference measures two chained socat relays (separate processes, no
// WebSocket: the same two hops as client and gateway), the practical limit
// of a two-hop relay on this machine, when socat is installed.
func (e *env) socatReference(ctx context.Context) []Result {
	if _, err := exec.LookPath("socat"); err != nil {
		return []Result{{Name: "two socat relays (reference)", Comment: "socat is not installed", Pass: true}}
	}
	chain := func(target string) (string, error) {
		free := func() (int, error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			defer ln.Close()
			return ln.Addr().(*net.TCPAddr).Port, nil
		}
		p1, err := free()
		if err != nil {
			return "", err
		}
		p2, err := free()
		if err != nil {
			return "", err
		}
		hop := func(listen int, to string) error {
			cmd := exec.Command("socat", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,nodelay", listen), "TCP:"+to+",nodelay")
			if err := cmd.Start(); err != nil {
				return err
			}
			e.stop = append(e.stop, func() { cmd.Process.Kill(); cmd.Wait() })
			addr := fmt.Sprintf("127.0.0.1:%d", listen)
			for i := 0; i < 200; i++ {
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					return nil
				}
				time.Sleep(10 * time.Millisecond)
			}
			return fmt.Errorf("socat on %s did not start", addr)
		}
		if err := hop(p2, target); err != nil {
			return "", err
		}
		if err := hop(p1, fmt.Sprintf("127.0.0.1:%d", p2)); err != nil {
			return "", err
		}
		return fmt.Sprintf("127.0.0.1:%d", p1), nil
	}
	echo, err1 := chain(e.echo)
	sink, err2 := chain(e.sink)
	if err := errors.Join(err1, err2); err != nil {
		return []Result{{Name: "two socat relays (reference)", Comment: err.Error(), Pass: true}}
	}
	var direct, via, dRTT, vRTT []float64
	for r := 0; r < e.cfg.Rounds; r++ {
		if d, err := up(e.sink, e.cfg.Bytes); err == nil {
			direct = append(direct, d)
		}
		if v, err := up(sink, e.cfg.Bytes); err == nil {
			via = append(via, v)
		}
		if d, err := rtts(e.echo, e.cfg.RoundTrips); err == nil {
			dRTT = append(dRTT, median(d))
		}
		if v, err := rtts(echo, e.cfg.RoundTrips); err == nil {
			vRTT = append(vRTT, median(v))
		}
	}
	md, mv := median(direct)/(1<<20), median(via)/(1<<20)
	rd, rv := median(dRTT), median(vRTT)
	return []Result{
		{Name: "reference: two socat relays, throughput up", Direct: md, Tunnel: mv, Unit: "MiB/s", Ratio: mv / md, Target: "(reference)", Pass: true, Comment: "no WebSocket; the same two process hops"},
		{Name: "reference: two socat relays, 64 B round trip p50", Direct: rd, Tunnel: rv, Unit: "µs", Ratio: rv / rd, Target: "(reference)", Pass: true, Comment: "the floor for two process hops here"},
	}
}
