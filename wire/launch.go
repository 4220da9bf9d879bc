package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// The launcher's answer to the path line a connection starts with
// (package launcher writes it, tunnel.LaunchHandshake reads it): "OK\n"
// followed by the started program's stream, or "ERR <code> <description>\n"
// and the end of the connection.

// LaunchOK is the launcher's answer when the program runs.
const LaunchOK = "OK\n"

// LaunchError is the launcher's refusal, with an HTTP-like code (400 bad
// path, 404 no rule, 410 retired, 424 requirement missing, 500 could not
// start, 504 did not listen).
type LaunchError struct {
	Code int
	Desc string
}

func (e *LaunchError) Error() string {
	return fmt.Sprintf("the launcher refused: %d %s", e.Code, e.Desc)
}

// Line is the refusal as the launcher sends it; a description is kept to
// one line, so it cannot break the answer.
func (e *LaunchError) Line() string {
	desc := strings.Join(strings.Fields(e.Desc), " ")
	return fmt.Sprintf("ERR %d %s\n", e.Code, desc)
}

// ParseLaunchAnswer reads the launcher's answer line (without its
// newline): nil for OK, a *LaunchError for ERR, and an error saying so for
// anything else.
func ParseLaunchAnswer(line string) error {
	line = strings.TrimSuffix(line, "\r")
	if line+"\n" == LaunchOK {
		return nil
	}
	if rest, ok := strings.CutPrefix(line, "ERR "); ok {
		codeText, desc, _ := strings.Cut(rest, " ")
		if code, err := strconv.Atoi(codeText); err == nil && code >= 100 && code <= 999 {
			return &LaunchError{Code: code, Desc: desc}
		}
	}
	return fmt.Errorf("the launcher answered %q, which is neither OK nor ERR <code> <description>: %w", clipLine(line), ErrProtocol)
}

func clipLine(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
