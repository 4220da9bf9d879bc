package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/porthole/porthole/internal/version"
)

// ErrUsage marks a command line that could not be understood (exit 2).
var ErrUsage = errors.New("usage")

// ErrHandled means the command line was answered without starting the
// app (--help, --version): exit 0.
var ErrHandled = errors.New("handled")

// Args are porthole-tray's command-line settings.
type Args struct {
	// LogLevel is the level of the log on standard error.
	LogLevel slog.Level
}

const trayUsage = `porthole-tray: Porthole's desktop app, a tray icon and a window that open
tunnels on fixed local ports with one click.

  porthole-tray [--debug]
  porthole-tray --version

It shares the sign-in and settings.json with the porthole command, and
needs a desktop session (an X11 or Wayland display); without one, use
the porthole command.

Flags:
`

// ParseArgs reads porthole-tray's command line. --help and --version are
// answered on stdout and return ErrHandled; a bad flag returns an error
// wrapping ErrUsage.
func ParseArgs(args []string, stdout, stderr io.Writer) (Args, error) {
	var a Args
	fs := flag.NewFlagSet("porthole-tray", flag.ContinueOnError)
	fs.SetOutput(stderr)
	debug := fs.Bool("debug", false, "log every connection and state change on standard error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), trayUsage)
		fs.PrintDefaults()
	}
	if len(args) > 0 && version.IsFlag(args[0]) {
		*showVersion = true
	} else if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return a, ErrHandled
		}
		return a, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("porthole-tray"))
		return a, ErrHandled
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("%w: porthole-tray takes no arguments, got %q (see porthole-tray --help)", ErrUsage, fs.Args())
	}
	a.LogLevel = slog.LevelInfo
	if *debug {
		a.LogLevel = slog.LevelDebug
	}
	return a, nil
}
