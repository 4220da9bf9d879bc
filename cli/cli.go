// Package cli is the porthole command: sign in, list tunnels and open them
// on local ports, for developers and scripts. It is a thin shell over
// package tunnel; cmd/porthole only wires it to the process.
package cli

import (
	"github.com/porthole/porthole/internal/prompt"
	"github.com/porthole/porthole/internal/version"

	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/porthole/porthole/internal/format"
	"github.com/porthole/porthole/tunnel"
)

// ErrUsage marks a command line that could not be understood (exit 2).
var ErrUsage = errors.New("usage")

// Env is what the command reads and writes. Zero fields mean the process's
// own: os.Stdin and friends, the settings file in the user's config
// folder, the OS keyring (or a private file when there is none).
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// SettingsPath is settings.json; "" means tunnel.SettingsPath().
	SettingsPath string
	// Tickets keeps the ticket; nil means tunnel.DefaultTicketStore.
	Tickets tunnel.TicketStore
	// Ready, if set, is called once `open` listens on every address.
	Ready func(addrs []net.Addr)
}

const usage = `porthole: open Porthole tunnels on this computer

  porthole login --gateway URL --user NAME [--password-stdin] [--otp CODE] [--ca FILE]
  porthole login --gateway URL --sso [--spn HTTP/HOST]    (Windows login or kinit ticket)
  porthole login --gateway URL --token-stdin              (an API token, for scripts)
  porthole logout
  porthole passwd [--password-stdin]
  porthole status
  porthole list
  porthole open CONTEXT[:PORT]... [--bind ADDR]
  porthole launch CONTEXT/PATH --port N [--bind ADDR]
  porthole launch tcp://HOST:PORT/PATH --port N [--bind ADDR]
  porthole agent     (serves TunnelStart/TunnelStop to other programs where no tray app runs)

open listens on 127.0.0.1 (or --bind) on the tunnel's local port: the
PORT you give, else the one in settings.json, else the gateway's
suggestion, else a free one. It runs until Ctrl-C, which closes every
tunnel and connection.

launch listens on --port; each connection there goes to a Porthole launcher
(through the gateway tunnel CONTEXT, or directly to HOST:PORT), asks it for
PATH, and then carries the program it started. A refusal is printed.
`

// Run runs the porthole command line.
func Run(ctx context.Context, args []string, env Env) error {
	if env.Stdin == nil {
		env.Stdin = os.Stdin
	}
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return fmt.Errorf("%w: name a command", ErrUsage)
	}
	if version.IsFlag(args[0]) {
		fmt.Fprintln(env.Stdout, version.String("porthole"))
		return nil
	}
	c := &command{env: env}
	switch args[0] {
	case "login":
		return c.login(ctx, args[1:])
	case "logout":
		return c.logout(ctx, args[1:])
	case "passwd":
		return c.passwd(ctx, args[1:])
	case "status":
		return c.status(ctx, args[1:])
	case "list", "ls":
		return c.list(ctx, args[1:])
	case "open":
		return c.open(ctx, args[1:])
	case "launch":
		return c.launch(ctx, args[1:])
	case "agent":
		return c.agent(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	fmt.Fprint(env.Stderr, usage)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

type command struct {
	env Env
	// brokenSettings says settings.json was broken when it was read.
	brokenSettings bool
}

func (c *command) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	return fs
}

// parse parses flags and positional arguments in any order.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *command) settingsPath() (string, error) {
	if c.env.SettingsPath != "" {
		return c.env.SettingsPath, nil
	}
	return tunnel.SettingsPath()
}

// settings loads settings.json; what is wrong with it (unknown keys, a
// broken file and where it was kept) is reported on stderr.
func (c *command) settings() (tunnel.Settings, string, error) {
	path, err := c.settingsPath()
	if err != nil {
		return tunnel.Settings{}, "", err
	}
	s, err := tunnel.LoadSettings(path)
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "warning: %v\n", err)
		c.brokenSettings = errors.Is(err, tunnel.ErrBrokenSettings)
	}
	return s, path, nil
}

func (c *command) tickets() (tunnel.TicketStore, error) {
	if c.env.Tickets != nil {
		return c.env.Tickets, nil
	}
	ts, err := tunnel.DefaultTicketStore()
	if err != nil {
		return nil, err
	}
	c.env.Tickets = ts
	return ts, nil
}

// session returns a client for the signed-in gateway with its ticket.
func (c *command) session() (*tunnel.Client, tunnel.Ticket, tunnel.Settings, error) {
	s, _, err := c.settings()
	if err != nil {
		return nil, tunnel.Ticket{}, s, err
	}
	if s.Gateway == "" {
		if c.brokenSettings {
			return nil, tunnel.Ticket{}, s, errors.New("your gateway is not known: settings.json was broken (see the warning above); run porthole login --gateway URL --user NAME")
		}
		return nil, tunnel.Ticket{}, s, errors.New("not signed in: run porthole login --gateway URL --user NAME")
	}
	client, err := tunnel.NewClient(s.Gateway, tunnel.ClientOptions{CAFile: s.CA})
	if err != nil {
		return nil, tunnel.Ticket{}, s, err
	}
	store, err := c.tickets()
	if err != nil {
		return nil, tunnel.Ticket{}, s, err
	}
	t, err := store.Load(client.Gateway())
	if errors.Is(err, tunnel.ErrNoTicket) {
		return nil, t, s, fmt.Errorf("not signed in to %s: run porthole login", client.Gateway())
	}
	if err != nil {
		return nil, t, s, err
	}
	client.SetTicket(t.Ticket)
	return client, t, s, nil
}

// explain turns a gateway error into a sentence with what to do next.
func explain(err error) error {
	switch {
	case errors.Is(err, tunnel.ErrUnauthorized):
		return fmt.Errorf("%w (run porthole login)", err)
	case errors.Is(err, tunnel.ErrRateLimited):
		return err
	}
	return err
}

func (c *command) login(ctx context.Context, args []string) error {
	fs := c.flags("login")
	gateway := fs.String("gateway", "", "gateway URL, e.g. https://gateway.example.com")
	user := fs.String("user", "", "user name")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input (for scripts)")
	ca := fs.String("ca", "", "PEM file of a private CA that signed the gateway's certificate")
	sso := fs.Bool("sso", false, "sign in with your Windows login or Kerberos ticket (kinit), without a password")
	spn := fs.String("spn", "", "the gateway's Kerberos service principal for --sso (default HTTP/<gateway host>)")
	tokenStdin := fs.Bool("token-stdin", false, "read an API token an administrator made from standard input (for scripts and services)")
	otp := fs.String("otp", "", "the code from your authenticator app, for accounts with a second factor (asked when needed on a terminal)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: login takes no arguments, got %q", ErrUsage, pos)
	}
	ways := 0
	for _, b := range []bool{*sso, *tokenStdin, *pwStdin} {
		if b {
			ways++
		}
	}
	if ways > 1 {
		return fmt.Errorf("%w: choose one of --sso, --token-stdin and --password-stdin", ErrUsage)
	}
	s, path, err := c.settings()
	if err != nil {
		return err
	}
	if *gateway == "" {
		*gateway = s.Gateway
	}
	if *user == "" {
		*user = s.User
	}
	if *gateway == "" {
		return fmt.Errorf("%w: login needs --gateway URL", ErrUsage)
	}
	if *user == "" && !*sso && !*tokenStdin {
		return fmt.Errorf("%w: login needs --user NAME (or --sso, or --token-stdin)", ErrUsage)
	}
	caFile := *ca
	if caFile != "" {
		// Kept as an absolute path: settings.json is read from other
		// folders (the tray, a later porthole run elsewhere).
		if caFile, err = filepath.Abs(caFile); err != nil {
			return fmt.Errorf("--ca %s: %w", *ca, err)
		}
	}
	if caFile == "" && tunnel.SameGateway(*gateway, s.Gateway) {
		caFile = s.CA
	}
	client, err := tunnel.NewClient(*gateway, tunnel.ClientOptions{CAFile: caFile})
	if err != nil {
		return err
	}
	var t tunnel.Ticket
	switch {
	case *tokenStdin:
		token, rerr := prompt.Line(bufio.NewReader(c.env.Stdin))
		if token = strings.TrimSpace(token); rerr == nil && token == "" {
			rerr = errors.New("the line is empty")
		}
		if rerr != nil {
			return fmt.Errorf("read the API token from standard input: %w", rerr)
		}
		t, err = client.UseToken(ctx, token)
	case *sso:
		t, err = client.LoginKerberos(ctx, *spn)
	default:
		t, err = c.passwordLogin(ctx, client, *user, *pwStdin, *otp)
	}
	if err != nil {
		var ae *tunnel.APIError
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			return fmt.Errorf("sign-in refused: %s", ae.Message)
		}
		return fmt.Errorf("sign-in refused: %w", err)
	}
	store, err := c.tickets()
	if err != nil {
		return err
	}
	if err := store.Save(client.Gateway(), t); err != nil {
		return err
	}
	if w := tunnel.FallbackWarning(store); w != "" {
		fmt.Fprintln(c.env.Stderr, w)
	}
	// Per-tunnel choices are kept: they are keyed by context.
	s.Gateway, s.User, s.CA = client.Gateway(), t.User, caFile
	if err := tunnel.SaveSettings(path, s); err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "Signed in to %s as %s (%s); the ticket is valid until %s.\n",
		client.Gateway(), t.User, strings.Join(t.Groups, ", "), t.ExpiresAt.Local().Format("2006-01-02 15:04"))
	return nil
}

// passwordLogin signs in with a password, and with the second-factor code
// when the account has one: given with --otp, or asked on the terminal.
func (c *command) passwordLogin(ctx context.Context, client *tunnel.Client, user string, pwStdin bool, otp string) (tunnel.Ticket, error) {
	pw, err := c.readPassword(pwStdin, user, client.Gateway())
	if err != nil {
		return tunnel.Ticket{}, err
	}
	t, err := client.LoginWithCode(ctx, user, pw, otp)
	var ae *tunnel.APIError
	if err == nil || !errors.As(err, &ae) || !ae.NeedsCode() || otp != "" {
		return t, err
	}
	f, ok := c.env.Stdin.(*os.File)
	if pwStdin || !ok || !term.IsTerminal(int(f.Fd())) {
		return t, fmt.Errorf("%s has a second factor: pass the code from the authenticator app with --otp CODE", user)
	}
	fmt.Fprintf(c.env.Stderr, "Code from your authenticator app: ")
	code, err := prompt.Line(bufio.NewReader(f))
	if err != nil {
		return t, fmt.Errorf("read the code: %w", err)
	}
	return client.LoginWithCode(ctx, user, pw, strings.TrimSpace(code))
}

func (c *command) readPassword(fromStdin bool, user, gateway string) (string, error) {
	if fromStdin {
		pw, err := prompt.Line(bufio.NewReader(c.env.Stdin))
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		if pw == "" {
			return "", errors.New("the password on standard input is empty")
		}
		return pw, nil
	}
	tty := prompt.Terminal(c.env.Stdin)
	if tty == nil {
		return "", fmt.Errorf("%w: no terminal to ask for the password: pipe it in with --password-stdin", ErrUsage)
	}
	pw, err := prompt.Password(tty, c.env.Stderr, fmt.Sprintf("Password for %s at %s: ", user, gateway))
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return pw, nil
}

// passwd changes the signed-in user's password: asked on the terminal
// (the new one twice), or for scripts two lines on standard input, the
// current password and the new one.
func (c *command) passwd(ctx context.Context, args []string) error {
	fs := c.flags("passwd")
	fromStdin := fs.Bool("password-stdin", false, "read the current and the new password from standard input, one per line")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: passwd takes no arguments, got %q", ErrUsage, pos)
	}
	client, t, _, err := c.session()
	if err != nil {
		return err
	}
	var current, next string
	if *fromStdin {
		in := bufio.NewReader(c.env.Stdin)
		lines := make([]string, 2)
		for i := range lines {
			if lines[i], err = prompt.Line(in); err != nil {
				return fmt.Errorf("read the %s password from standard input: %w", []string{"current", "new"}[i], err)
			}
		}
		current, next = lines[0], lines[1]
	} else {
		tty := prompt.Terminal(c.env.Stdin)
		if tty == nil {
			return fmt.Errorf("%w: no terminal to ask for the passwords: pipe them in with --password-stdin (current, then new, one per line)", ErrUsage)
		}
		ask := func(p string) (string, error) { return prompt.Password(tty, c.env.Stderr, p) }
		if current, err = ask("Current password for " + t.User + ": "); err != nil {
			return err
		}
		if next, err = ask("New password: "); err != nil {
			return err
		}
		again, err := ask("New password again: ")
		if err != nil {
			return err
		}
		if again != next {
			return errors.New("the two new passwords differ; nothing changed")
		}
	}
	if err := client.ChangePassword(ctx, current, next); err != nil {
		return fmt.Errorf("password not changed: %w", err)
	}
	fmt.Fprintf(c.env.Stdout, "Changed the password of %s at %s; your other sessions were signed out, this computer stays signed in.\n", t.User, client.Gateway())
	return nil
}

func (c *command) logout(ctx context.Context, args []string) error {
	if _, err := parse(c.flags("logout"), args); err != nil {
		return err
	}
	client, _, s, err := c.session()
	if err != nil {
		return err
	}
	lerr := client.Logout(ctx)
	store, _ := c.tickets()
	if err := store.Delete(client.Gateway()); err != nil {
		return err
	}
	if lerr != nil && !errors.Is(lerr, tunnel.ErrUnauthorized) {
		fmt.Fprintf(c.env.Stderr, "warning: the gateway did not confirm the sign-out (%v); the ticket was removed from this computer\n", lerr)
	}
	fmt.Fprintf(c.env.Stdout, "Signed out of %s.\n", s.Gateway)
	return nil
}

// status says who is signed in where, then what every running porthole
// open is doing: each tunnel's connections, traffic and last error. The
// tunnels are shown even when the sign-in is the problem.
func (c *command) status(ctx context.Context, args []string) error {
	if _, err := parse(c.flags("status"), args); err != nil {
		return err
	}
	serr := c.signedInStatus(ctx)
	path, err := c.settingsPath()
	if err != nil {
		return err
	}
	states, err := tunnel.ReadRunStates(tunnel.RunStateDir(path))
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "warning: %v\n", err)
	}
	if len(states) == 0 {
		fmt.Fprintln(c.env.Stdout, "No porthole open is running.")
	}
	for _, st := range states {
		fmt.Fprintf(c.env.Stdout, "porthole open (pid %d, since %s), %s as %s:\n", st.PID, st.Started.Local().Format("2006-01-02 15:04"), st.Gateway, st.User)
		w := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
		for _, t := range st.Tunnels {
			fmt.Fprintf(w, "  %s -> %s\t%d open, %d in all\tsent %s, received %s\t%s\n", t.Context, t.Listen, t.Open, t.Accepted,
				format.Bytes(t.BytesUp), format.Bytes(t.BytesDown), t.Target)
			if t.LastError != "" {
				fmt.Fprintf(w, "    last error at %s: %s\n", t.LastErrorAt.Local().Format("15:04:05"), t.LastError)
			}
		}
		w.Flush()
	}
	return serr
}

func (c *command) signedInStatus(ctx context.Context) error {
	client, _, _, err := c.session()
	if err != nil {
		return err
	}
	me, err := client.Me(ctx)
	if err != nil {
		return explain(err)
	}
	fmt.Fprintf(c.env.Stdout, "Signed in to %s as %s (%s); the ticket is valid until %s.\n",
		client.Gateway(), me.User, strings.Join(me.Groups, ", "), me.ExpiresAt.Local().Format("2006-01-02 15:04"))
	return nil
}

func (c *command) list(ctx context.Context, args []string) error {
	if _, err := parse(c.flags("list"), args); err != nil {
		return err
	}
	client, _, s, err := c.session()
	if err != nil {
		return err
	}
	ts, err := client.Tunnels(ctx)
	if err != nil {
		return explain(err)
	}
	if len(ts) == 0 {
		fmt.Fprintln(c.env.Stdout, "No tunnels are open to you on this gateway.")
		return nil
	}
	w := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTEXT\tLOCAL PORT\tDESCRIPTION")
	for _, t := range ts {
		port := "-"
		if p := localPort(s, t); p > 0 {
			port = strconv.Itoa(p)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", t.Context, port, t.Description)
	}
	return w.Flush()
}

// localPort is the port a tunnel opens on by default: the user's choice in
// settings, else the gateway's suggestion (0: none).
func localPort(s tunnel.Settings, t tunnel.TunnelInfo) int {
	for name, ts := range s.Tunnels {
		if strings.EqualFold(name, t.Context) && ts.LocalPort > 0 {
			return ts.LocalPort
		}
	}
	return t.LocalPort
}

func (c *command) open(ctx context.Context, args []string) error {
	fs := c.flags("open")
	bind := fs.String("bind", "127.0.0.1", "local address to listen on")
	verbose := fs.Bool("v", false, "log every connection")
	allowOthers := fs.Bool("allow-other-users", false, "let other users of this computer (and other computers, with --bind) connect; by default only your own programs may")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: open needs at least one CONTEXT[:PORT]", ErrUsage)
	}
	client, t, s, err := c.session()
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: level}))
	client.SetLogger(log)
	store, _ := c.tickets()
	m, err := tunnel.NewManager(tunnel.ManagerConfig{
		Client:          client,
		Logger:          log,
		ExpiresAt:       t.ExpiresAt,
		AllowOtherUsers: *allowOthers || s.AllowOtherUsers,
		OnTicket: func(nt tunnel.Ticket) {
			if err := store.Save(client.Gateway(), nt); err != nil {
				log.Warn("could not store the renewed ticket", "err", err)
			}
		},
		OnAuthLost: func(err error) {
			fmt.Fprintf(c.env.Stderr, "porthole: the gateway no longer accepts your ticket (%v): run porthole login in another terminal; the tunnels here carry on with it\n", err)
		},
		// A sign-in made elsewhere (porthole login, the tray) is used as
		// soon as the gateway refuses the old ticket.
		LoadTicket: func() (tunnel.Ticket, error) { return store.Load(client.Gateway()) },
		OnTicketPickedUp: func(nt tunnel.Ticket) {
			fmt.Fprintf(c.env.Stderr, "porthole: using the new sign-in of %s\n", nt.User)
		},
		OnConnError: func(name string, err error) {
			hint := ""
			if errors.Is(err, tunnel.ErrUnauthorized) {
				hint = "; run porthole login (this tunnel keeps listening and uses the new sign-in)"
			}
			fmt.Fprintf(c.env.Stderr, "porthole: %s: %v%s\n", name, err, hint)
		},
	})
	if err != nil {
		return err
	}
	defer m.Close()
	var addrs []net.Addr
	targets := map[string]string{} // context -> what the reachability check said
	for _, arg := range pos {
		name, port, err := tunnel.ParseTarget(arg)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		if port == 0 {
			if info, err := client.Tunnel(ctx, name); err == nil {
				port = localPort(s, info)
			}
		}
		f, err := m.Start(ctx, name, net.JoinHostPort(*bind, strconv.Itoa(port)))
		if err != nil {
			return explain(err)
		}
		addrs = append(addrs, f.Addr())
		// Say now whether the target answers, rather than letting a
		// database client meet a refusal on its first connection.
		check := "the gateway did not say whether it reaches the target"
		if tc, err := client.CheckTarget(ctx, f.Context()); err == nil {
			check = tc.Message
			if !tc.Reachable {
				fmt.Fprintf(c.env.Stderr, "porthole: warning: %s: %s The tunnel stays open; connections fail until the target answers.\n", f.Context(), tc.Message)
			}
		} else {
			fmt.Fprintf(c.env.Stderr, "porthole: warning: %s: %s (%v)\n", f.Context(), check, err)
		}
		targets[f.Context()] = check
		// The first line stays "CONTEXT -> ADDR" alone: scripts read it.
		fmt.Fprintf(c.env.Stdout, "%s -> %s\n  target: %s\n", f.Context(), f.Addr(), lowerFirst(strings.TrimSuffix(check, ".")))
	}
	fmt.Fprintln(c.env.Stdout, "Tunnels are open; press Ctrl-C to close them.")
	// porthole status, in another terminal, reads what this process
	// reports: each tunnel's connections, traffic and last error.
	stopReport := c.reportRunState(m, client.Gateway(), t.User, targets)
	defer stopReport()
	if c.env.Ready != nil {
		c.env.Ready(addrs)
	}
	<-ctx.Done()
	start := time.Now()
	m.Close()
	fmt.Fprintf(c.env.Stdout, "Closed every tunnel in %s.\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// lowerFirst puts a sentence inside another one: "Reachable" -> "reachable".
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// runStatePeriod is how often a running open refreshes its run state.
const runStatePeriod = time.Second

// reportRunState keeps this process's run state file current until the
// returned function is called, which removes it.
func (c *command) reportRunState(m *tunnel.Manager, gateway, user string, targets map[string]string) (stop func()) {
	path, err := c.settingsPath()
	if err != nil {
		return func() {}
	}
	dir := tunnel.RunStateDir(path)
	st := tunnel.RunState{PID: os.Getpid(), Gateway: gateway, User: user, Started: time.Now().UTC()}
	written, warned := false, false
	write := func() {
		var tunnels []tunnel.RunTunnel
		for _, f := range m.Forwarders() {
			fs := f.Stats()
			rt := tunnel.RunTunnel{Context: f.Context(), Listen: f.Addr().String(), Open: fs.Open, Accepted: fs.Accepted,
				BytesUp: fs.BytesUp, BytesDown: fs.BytesDown, Target: targets[f.Context()], LastErrorAt: fs.LastErrorAt}
			if fs.LastError != nil {
				rt.LastError = fs.LastError.Error()
			}
			tunnels = append(tunnels, rt)
		}
		if written && slices.Equal(tunnels, st.Tunnels) {
			return // an idle tunnel costs no write a second
		}
		st.Tunnels = tunnels
		err := tunnel.WriteRunState(dir, st)
		written = err == nil
		if err != nil && !warned {
			warned = true
			fmt.Fprintf(c.env.Stderr, "porthole: warning: porthole status will not see these tunnels: %v\n", err)
		}
	}
	write()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(runStatePeriod)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				write()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		tunnel.RemoveRunState(dir, st.PID)
	}
}

func (c *command) launch(ctx context.Context, args []string) error {
	fs := c.flags("launch")
	bind := fs.String("bind", "127.0.0.1", "local address to listen on")
	port := fs.Int("port", 0, "local port to listen on (required)")
	allowOthers := fs.Bool("allow-other-users", false, "let other users of this computer (and other computers, with --bind) connect; by default only your own programs may")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: launch takes one CONTEXT/PATH or tcp://HOST:PORT/PATH", ErrUsage)
	}
	if *port < 1 || *port > 65535 {
		return fmt.Errorf("%w: launch needs --port N (1-65535)", ErrUsage)
	}
	target, err := tunnel.ParseLaunchTarget(pos[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	st, _, err := c.settings()
	if err != nil {
		return err
	}
	cfg := tunnel.LaunchConfig{Target: target, Local: net.JoinHostPort(*bind, strconv.Itoa(*port)), AllowOtherUsers: *allowOthers || st.AllowOtherUsers,
		Logger: slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnConnError: func(name string, err error) {
			fmt.Fprintf(c.env.Stderr, "porthole: launch %s%s: %v\n", name, target.Path, err)
		}}
	if target.Context != "" {
		client, _, _, err := c.session()
		if err != nil {
			return err
		}
		if _, err := client.Tunnel(ctx, target.Context); err != nil {
			return explain(fmt.Errorf("launch through tunnel %q: %w", target.Context, err))
		}
		cfg.Client = client
	}
	f, err := tunnel.ListenLaunch(cfg)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(c.env.Stdout, "%s%s -> %s\n", f.Context(), target.Path, f.Addr())
	fmt.Fprintln(c.env.Stdout, "Listening; press Ctrl-C to stop.")
	if c.env.Ready != nil {
		c.env.Ready([]net.Addr{f.Addr()})
	}
	<-ctx.Done()
	f.Close()
	return nil
}
