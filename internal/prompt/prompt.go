// Package prompt reads what a person types for the command-line tools:
// passwords without echo on a terminal, or lines on standard input for
// scripts.
package prompt

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Terminal returns r as the terminal a person types at, or nil when r is
// not one (a pipe, a file, a test's buffer).
func Terminal(r io.Reader) *os.File {
	f, ok := r.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return f
}

// Password writes prompt to w and reads a line from the terminal tty
// without echoing it.
func Password(tty *os.File, w io.Writer, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(w) // the Enter the terminal did not echo
	return string(b), err
}

// Line reads one line from r without its line ending. A last line without
// one counts; an error comes back only when there was no line at all.
func Line(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
