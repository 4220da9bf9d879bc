package launcher

import (
	"github.com/porthole/porthole/internal/conffile"
	"github.com/porthole/porthole/internal/version"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// ErrUsage marks a command line that could not be understood (exit 2).
var ErrUsage = errors.New("usage")

// ErrRules is returned by check when a rule file is broken (exit 1).
var ErrRules = errors.New("some rule files are broken")

const usage = `porthole-launcher: start the right program for each connection

  porthole-launcher serve --config FILE
  porthole-launcher check --config FILE [PATH...]

check validates every rule file (naming file and line) and, for each PATH,
shows which rule matches and the program, environment and requirement it
would start, without starting anything.
`

// Run runs the porthole-launcher command line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: name a command", ErrUsage)
	}
	if version.IsFlag(args[0]) {
		fmt.Fprintln(stdout, version.String("porthole-launcher"))
		return nil
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "JSON configuration file")
	create := fs.Bool("create-config", false, "write a default --config file (and rules folder) first if there is none (services do)")
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: %v", ErrUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *cfgPath == "" && (args[0] == "serve" || args[0] == "check") {
		return fmt.Errorf("%w: %s needs --config FILE", ErrUsage, args[0])
	}
	switch args[0] {
	case "serve":
		if len(pos) > 0 {
			return fmt.Errorf("%w: serve takes no arguments", ErrUsage)
		}
		if *create {
			if err := createDefault(*cfgPath); err != nil {
				return err
			}
		}
		cfg, err := LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
		return serve(ctx, cfg)
	case "check":
		cfg, err := LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		cfg.Logger = slog.New(slog.DiscardHandler)
		return check(cfg, pos, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

func serve(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				s.log.Info("SIGHUP: reloading rules")
				s.Reload()
			case <-ctx.Done():
				return
			}
		}
	}()
	return s.Serve(ctx, ln)
}

// check validates the rules and explains what each path would do.
func check(cfg Config, paths []string, out io.Writer) error {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	rs, errs := LoadRules(cfg.RulesDir, s.knownVariable, nil)
	s.rules.Store(rs)
	fmt.Fprintf(out, "rules in %s (in the order they are tried):\n", cfg.RulesDir)
	for _, r := range rs.Rules {
		fmt.Fprintf(out, "  %-28s %-10s %q  Resource %s\n", r.File, r.Action.Type, r.Name, r.Match.Resource)
	}
	for _, err := range errs {
		fmt.Fprintf(out, "error: %v\n", err)
	}
	for _, p := range paths {
		fmt.Fprintf(out, "\n%s\n", p)
		plan, err := s.resolve(p, "${ListenPort}")
		if err != nil {
			var le *Error
			if errors.As(err, &le) {
				fmt.Fprintf(out, "  -> ERR %d %s\n", le.Code, le.Desc)
			} else {
				fmt.Fprintf(out, "  -> error: %v\n", err)
			}
			continue
		}
		r := plan.Rule
		fmt.Fprintf(out, "  -> %s (%q)\n", r.File, r.Name)
		if r.Action.Type == Reject {
			fmt.Fprintf(out, "  answers: ERR %d %s\n", r.Reject.ErrorCode, r.Reject.ErrorDesc)
			continue
		}
		var groups []string
		for k, v := range plan.Groups {
			groups = append(groups, k+"="+v)
		}
		sort.Strings(groups)
		if len(groups) > 0 {
			fmt.Fprintf(out, "  groups:   %s\n", strings.Join(groups, " "))
		}
		fmt.Fprintf(out, "  argv:     %q\n", plan.Argv)
		for _, kv := range plan.Env {
			fmt.Fprintf(out, "  env:      %s=%s\n", kv[0], kv[1])
		}
		if plan.Requires != "" {
			state := "present"
			if err := checkRequires(plan); err != nil {
				state = "MISSING: the launcher would answer ERR 424"
			}
			fmt.Fprintf(out, "  requires: %s (%s)\n", plan.Requires, state)
		}
		fmt.Fprintln(out, "  (ListenPort is picked when the process starts)")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %d", ErrRules, len(errs))
	}
	return nil
}

// createDefault writes a default config and an empty rules folder beside
// it unless a config is already there; it never overwrites one.
func createDefault(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(filepath.Dir(path), "rules"), 0o750); err != nil {
		return fmt.Errorf("create config: %w", err)
	}
	return conffile.WriteIfAbsent(path, "{\n  \"listen\": \"127.0.0.1:19340\",\n  \"rulesDir\": \"rules\",\n  \"imageFolder\": \"images\"\n}\n")
}
