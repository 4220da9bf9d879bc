package prompt

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("first\r\nsecond\nlast without newline"))
	for _, want := range []string{"first", "second", "last without newline"} {
		got, err := Line(r)
		if err != nil || got != want {
			t.Fatalf("Line = %q, %v; want %q", got, err, want)
		}
	}
	if got, err := Line(r); err != io.EOF {
		t.Fatalf("after the end: %q, %v; want io.EOF", got, err)
	}
	// An empty line is a line (the caller decides whether it may be empty).
	if got, err := Line(bufio.NewReader(strings.NewReader("\n"))); err != nil || got != "" {
		t.Fatalf("empty line: %q, %v", got, err)
	}
}

func TestTerminal(t *testing.T) {
	if Terminal(&bytes.Buffer{}) != nil {
		t.Fatal("a buffer is not a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if Terminal(r) != nil {
		t.Fatal("a pipe is not a terminal")
	}
}
