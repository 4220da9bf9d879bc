package gateway

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
	"os"
	"os/user"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/porthole/porthole/gateway/acl"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/internal/conffile"
)

// ErrUsage marks a command line that could not be understood; main exits
// with status 2 for it.
var ErrUsage = errors.New("usage")

// IO is what a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

const gatewayUsage = `porthole-gateway: the Porthole gateway

  porthole-gateway serve [--config FILE] [--data DIR] [--listen ADDR]
  porthole-gateway user add NAME [--group G@ENV]... [--password-stdin]
  porthole-gateway user passwd NAME  (the new password from standard input, or asked)
  porthole-gateway user totp NAME [--off]  (sets up, or removes, a second factor)
  porthole-gateway user list | user rm NAME
  porthole-gateway group add NAME@ENV | group list | group rm NAME@ENV
  porthole-gateway tunnel add CONTEXT HOST:PORT [--groups PATTERNS] [--local-port N] [--description TEXT]
  porthole-gateway tunnel list | tunnel rm CONTEXT
  porthole-gateway import FILE [--dry-run]   (the webSocketsProxy JSON; "-" reads stdin)
  porthole-gateway export          (writes it to stdout)
  porthole-gateway rotate-key      (a new ticket signing key; no one is signed out)
  porthole-gateway migrate --to postgres://USER@HOST/DB [--to-password-file FILE]
                                   (copies this gateway's SQLite store into an empty PostgreSQL database)

Every command takes --config FILE and --data DIR. With no flags, serve
listens on :8080 and keeps its SQLite store in the default data folder.
`

// Run runs the porthole-gateway command line.
func Run(ctx context.Context, args []string, io IO) error {
	if len(args) == 0 {
		fmt.Fprint(io.Stderr, gatewayUsage)
		return fmt.Errorf("%w: name a command", ErrUsage)
	}
	cmd, rest := args[0], args[1:]
	if version.IsFlag(cmd) {
		fmt.Fprintln(io.Stdout, version.String("porthole-gateway"))
		return nil
	}
	switch cmd {
	case "serve":
		return runServe(ctx, rest, io)
	case "user", "group", "tunnel":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			verbs := "add, list or rm"
			if cmd == "user" {
				verbs = "add, passwd, totp, list or rm"
			}
			return fmt.Errorf("%w: %s needs %s", ErrUsage, cmd, verbs)
		}
		return runAdmin(ctx, cmd, rest[0], rest[1:], io)
	case "import":
		return runAdmin(ctx, "import", "", rest, io)
	case "export":
		return runAdmin(ctx, "export", "", rest, io)
	case "migrate":
		return runMigrate(ctx, rest, io)
	case "rotate-key":
		return runAdmin(ctx, "rotate-key", "", rest, io)
	case "help", "-h", "--help":
		fmt.Fprint(io.Stdout, gatewayUsage)
		return nil
	}
	fmt.Fprint(io.Stderr, gatewayUsage)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, cmd)
}

// commonFlags are the flags every command takes.
type commonFlags struct {
	config, data, listen string
}

func newFlagSet(name string, io IO, cf *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	fs.StringVar(&cf.config, "config", "", "JSON configuration file")
	fs.StringVar(&cf.data, "data", "", "data folder (default: "+DefaultDataDir()+")")
	return fs
}

// parseFlags parses flags and positional arguments in any order.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
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

func (cf commonFlags) load(io IO) (Config, error) {
	var cfg Config
	if cf.config != "" {
		var err error
		if cfg, err = LoadConfig(cf.config); err != nil {
			return cfg, err
		}
	}
	if cf.data != "" {
		cfg.DataDir = cf.data
	}
	if cf.listen != "" {
		cfg.Listen = cf.listen
	}
	cfg.Announce = io.Stderr
	return cfg, nil
}

func runServe(ctx context.Context, args []string, io IO) error {
	var cf commonFlags
	fs := newFlagSet("serve", io, &cf)
	fs.StringVar(&cf.listen, "listen", "", "address to listen on (default :8080)")
	create := fs.Bool("create-config", false, "write a default --config file first if there is none (services do)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *create {
		if err := createDefault(cf.config, "{\n  \"listen\": \":8080\"\n}\n"); err != nil {
			return err
		}
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", ErrUsage, pos)
	}
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The port is taken before New creates the store: a gateway that
	// cannot serve never creates an administrator whose password it
	// printed (New checks the TLS files first for the same reason).
	ln, err := Listen(cfg)
	if err != nil {
		return err
	}
	s, err := New(ctx, cfg, nil)
	if err != nil {
		ln.Close()
		return err
	}
	defer s.Close()
	if s.certs != nil {
		// SIGHUP reloads the TLS certificate (the files are watched too).
		hup := make(chan os.Signal, 1)
		defer notifyReload(hup)()
		hctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { stop(); wg.Wait() }()
		wg.Go(func() {
			for {
				select {
				case <-hctx.Done():
					return
				case <-hup:
					s.ReloadCertificate()
				}
			}
		})
	}
	return s.Serve(ctx, ln)
}

// actorName is who offline commands act as in the audit log.
func actorName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return "local:" + name
}

func runAdmin(ctx context.Context, noun, verb string, args []string, io IO) error {
	var cf commonFlags
	fs := newFlagSet(strings.TrimSpace(noun+" "+verb), io, &cf)
	var groups multiFlag
	var passwordStdin bool
	var patterns, description string
	var localPort int
	var dryRun, off bool
	switch noun + " " + verb {
	case "user totp":
		fs.BoolVar(&off, "off", false, "remove the user's second factor instead")
	case "import ":
		fs.BoolVar(&dryRun, "dry-run", false, "show what the import would change, and change nothing")
	case "user add":
		fs.Var(&groups, "group", "group membership NAME@ENV (repeat for several)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	case "user passwd":
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (the default when it is not a terminal)")
	case "tunnel add":
		fs.StringVar(&patterns, "groups", acl.DefaultPatterns, "user groups allowed, ;-separated Group@Environment patterns")
		fs.IntVar(&localPort, "local-port", 0, "suggested local port for clients")
		fs.StringVar(&description, "description", "", "description")
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	actor := actorName()
	need := func(n int, what string) error {
		if len(pos) != n {
			return fmt.Errorf("%w: %s %s takes %s", ErrUsage, noun, verb, what)
		}
		return nil
	}
	out := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	defer out.Flush()

	switch noun + " " + verb {
	case "user add":
		if err := need(1, "a user name"); err != nil {
			return err
		}
		pw, generated, err := readNewPassword(io, passwordStdin)
		if err != nil {
			return err
		}
		info, err := s.CreateUser(ctx, actor, UserSpec{Username: pos[0], Password: pw, Groups: groups})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created user %s in %s\n", info.Username, strings.Join(info.Groups, ", "))
		if generated {
			fmt.Fprintf(out, "password: %s\n", pw)
		}
	case "user passwd":
		if err := need(1, "a user name"); err != nil {
			return err
		}
		if _, err := s.st.User(ctx, pos[0]); err != nil {
			return storeErr(err, fmt.Sprintf("user %q", pos[0]))
		}
		if !passwordStdin && prompt.Terminal(io.Stdin) == nil {
			passwordStdin = true
		}
		pw, generated, err := readNewPassword(io, passwordStdin)
		if err != nil {
			return err
		}
		info, err := s.UpdateUser(ctx, actor, pos[0], UserPatch{Password: &pw})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "changed the password of %s; their sessions were signed out\n", info.Username)
		if generated {
			fmt.Fprintf(out, "password: %s\n", pw)
		}
	case "rotate-key ":
		if err := need(0, "no arguments"); err != nil {
			return err
		}
		if err := s.RotateTicketKey(ctx, actor); err != nil {
			return err
		}
		fmt.Fprintln(out, "new ticket signing key: new tickets use it; tickets and API tokens signed before stay valid until they expire")
	case "user totp":
		if err := need(1, "a user name"); err != nil {
			return err
		}
		if off {
			if err := s.SetSecondFactor(ctx, actor, pos[0], ""); err != nil {
				return err
			}
			fmt.Fprintf(out, "removed the second factor of %s: signing in asks for the password only\n", pos[0])
			return nil
		}
		key, err := newTOTPKey(pos[0])
		if err != nil {
			return err
		}
		if err := s.SetSecondFactor(ctx, actor, pos[0], key.Secret()); err != nil {
			return err
		}
		fmt.Fprintf(out, "second factor on for %s: add this secret to an authenticator app; signing in now asks for its code\n\n", pos[0])
		fmt.Fprintf(out, "secret: %s\nURL:    %s\n", key.Secret(), key.URL())
	case "user list":
		users, err := s.st.Users(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "USER\tGROUPS\tSTATE")
		for _, u := range users {
			info := userInfo(u)
			state := "enabled"
			if u.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(out, "%s\t%s\t%s\n", info.Username, strings.Join(info.Groups, ", "), state)
		}
	case "user rm":
		if err := need(1, "a user name"); err != nil {
			return err
		}
		if err := s.DeleteUser(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted user %s\n", pos[0])
	case "group add":
		if err := need(1, "NAME@ENV"); err != nil {
			return err
		}
		g, err := acl.ParseGroup(pos[0])
		if err != nil {
			return err
		}
		dir, err := s.catalog(ctx)
		if err != nil {
			return err
		}
		if !dir.HasEnvironment(g.Env) {
			if err := s.CreateEnvironment(ctx, actor, g.Env); err != nil {
				return err
			}
			fmt.Fprintf(out, "created environment %s\n", g.Env)
		}
		if err := s.CreateGroup(ctx, actor, g.Name, g.Env); err != nil {
			return err
		}
		fmt.Fprintf(out, "created group %s\n", g)
	case "group list":
		gs, err := s.st.Groups(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "GROUP")
		for _, g := range gs {
			fmt.Fprintf(out, "%s@%s\n", g.Name, g.Environment)
		}
	case "group rm":
		if err := need(1, "NAME@ENV"); err != nil {
			return err
		}
		if _, err := acl.ParseGroup(pos[0]); err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		if err := s.DeleteGroupNamed(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted group %s\n", pos[0])
	case "tunnel add":
		if err := need(2, "CONTEXT HOST:PORT"); err != nil {
			return err
		}
		spec, err := s.CreateTunnel(ctx, actor, TunnelSpec{Context: pos[0], SocketAddress: pos[1], UserGroups: patterns, LocalPort: localPort, Description: description})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created tunnel %s -> %s for %s\n", spec.Context, spec.SocketAddress, spec.UserGroups)
	case "tunnel list":
		ts, err := s.st.Tunnels(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "CONTEXT\tSOCKET ADDRESS\tUSER GROUPS\tLOCAL PORT\tDESCRIPTION")
		for _, t := range ts {
			lp := "-"
			if t.LocalPort > 0 {
				lp = fmt.Sprint(t.LocalPort)
			}
			fmt.Fprintf(out, "%s\t%s\t%s\t%s\t%s\n", t.Context, t.SocketAddress, t.UserGroups, lp, t.Description)
		}
	case "tunnel rm":
		if err := need(1, "a context"); err != nil {
			return err
		}
		if err := s.DeleteTunnel(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "deleted tunnel %s\n", pos[0])
	case "import ":
		if err := need(1, "a file (or - for standard input)"); err != nil {
			return err
		}
		var data []byte
		if pos[0] == "-" {
			data, err = io.readAll()
		} else {
			data, err = os.ReadFile(pos[0])
		}
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		res, err := s.ImportSeed(ctx, actor, data, ImportOptions{DryRun: dryRun})
		if err != nil {
			return err
		}
		res.WritePlan(io.Stdout)
	case "export ":
		if err := need(0, "no arguments"); err != nil {
			return err
		}
		b, err := s.ExportSeed(ctx)
		if err != nil {
			return err
		}
		out.Write(b)
	default:
		return fmt.Errorf("%w: unknown command %q", ErrUsage, strings.TrimSpace(noun+" "+verb))
	}
	return nil
}

func (io IO) readAll() ([]byte, error) {
	if io.Stdin == nil {
		return nil, errors.New("no standard input")
	}
	return readAllLimited(io.Stdin, 16<<20)
}

func readAllLimited(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, fmt.Errorf("input is larger than %d bytes", n)
	}
	return b, nil
}

// readNewPassword reads a password from stdin (--password-stdin), asks for
// it on a terminal, or generates one.
func readNewPassword(io IO, fromStdin bool) (pw string, generated bool, err error) {
	if fromStdin {
		line, err := prompt.Line(bufio.NewReader(io.Stdin))
		if err != nil {
			return "", false, fmt.Errorf("read password from standard input: %w", err)
		}
		return line, false, nil
	}
	if tty := prompt.Terminal(io.Stdin); tty != nil {
		pw, err := prompt.Password(tty, io.Stderr, "Password (empty to generate one): ")
		if err != nil {
			return "", false, err
		}
		if pw != "" {
			return pw, false, nil
		}
	}
	return generatePassword(), true, nil
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// createDefault writes content to path unless a file is already there; it
// never overwrites what an administrator wrote.
func createDefault(path, content string) error {
	if path == "" {
		return fmt.Errorf("%w: --create-config needs --config FILE", ErrUsage)
	}
	return conffile.WriteIfAbsent(path, content)
}

// runMigrate copies the configured SQLite store into an empty PostgreSQL
// database, completely (ticket key, users, tunnels, sessions, audit), in
// one transaction. Stop the gateways using the SQLite store first; then
// point them at the new store ("store": "postgres://...").
func runMigrate(ctx context.Context, args []string, io IO) error {
	var cf commonFlags
	fs := newFlagSet("migrate", io, &cf)
	to := fs.String("to", "", "the PostgreSQL store: postgres://USER@HOST:5432/DATABASE")
	pwFile := fs.String("to-password-file", "", "file with the PostgreSQL password (else $PGPASSWORD)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *to == "" {
		return fmt.Errorf("%w: migrate takes --to postgres://USER@HOST:5432/DATABASE", ErrUsage)
	}
	cfg, err := cf.load(io)
	if err != nil {
		return err
	}
	if cfg.IsPostgres() {
		return fmt.Errorf("migrate: the configured store is already PostgreSQL (%s)", cfg.StoreName())
	}
	if _, err := os.Stat(cfg.StorePath()); err != nil {
		return fmt.Errorf("migrate: no SQLite store at %s: %w", cfg.StorePath(), err)
	}
	src, err := store.OpenSQLite(ctx, cfg.StorePath())
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := store.OpenPostgres(ctx, *to, *pwFile)
	if err != nil {
		return err
	}
	defer dst.Close()
	counts, err := store.Copy(ctx, src, dst)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "copied %s into %s:\n", cfg.StorePath(), store.Redact(*to))
	for _, t := range []string{"environments", "groups", "users", "memberships", "tunnels", "sessions", "audit", "settings"} {
		fmt.Fprintf(io.Stdout, "  %-12s %d\n", t, counts[t])
	}
	fmt.Fprintf(io.Stdout, "Point the gateways at it with \"store\": %q (signed-in users stay signed in).\n", store.Redact(*to))
	return nil
}
