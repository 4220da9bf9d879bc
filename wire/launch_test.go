package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestLaunchAnswers(t *testing.T) {
	if err := ParseLaunchAnswer(strings.TrimSuffix(LaunchOK, "\n")); err != nil {
		t.Fatalf("OK: %v", err)
	}
	if err := ParseLaunchAnswer("OK\r"); err != nil {
		t.Fatalf("OK with CR: %v", err)
	}
	// A refusal survives the line it is sent as, a multi-line
	// description included.
	e := &LaunchError{Code: 410, Desc: "Version 3 was retired;\nuse /v4"}
	line := e.Line()
	if line != "ERR 410 Version 3 was retired; use /v4\n" {
		t.Fatalf("Line = %q", line)
	}
	var got *LaunchError
	if err := ParseLaunchAnswer(strings.TrimSuffix(line, "\n")); !errors.As(err, &got) || got.Code != 410 || got.Desc != "Version 3 was retired; use /v4" {
		t.Fatalf("parse %q: %v", line, err)
	}
	if got.Error() != "the launcher refused: 410 Version 3 was retired; use /v4" {
		t.Fatalf("Error() = %q", got.Error())
	}
	for _, bad := range []string{"", "ok", "ERR", "ERR x bad code", "ERR 42 too short a code", "HTTP/1.1 200 OK"} {
		err := ParseLaunchAnswer(bad)
		if err == nil || errors.As(err, &got) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
