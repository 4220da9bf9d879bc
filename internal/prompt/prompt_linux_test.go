package prompt

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a real pseudo-terminal: the controller (what a terminal
// emulator holds) and the terminal a program reads from.
func openPTY(t *testing.T) (controller, tty *os.File) {
	t.Helper()
	c, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := unix.IoctlSetPointerInt(int(c.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(c.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return c, tty
}

// TestPasswordOnATerminal types a password at a real terminal: it comes
// back without its newline, and the terminal does not echo it.
func TestPasswordOnATerminal(t *testing.T) {
	controller, tty := openPTY(t)
	if Terminal(tty) != tty {
		t.Fatal("a pseudo-terminal is not taken for a terminal")
	}
	var shown bytes.Buffer
	got := make(chan string, 1)
	go func() {
		pw, err := Password(tty, &shown, "Password: ")
		if err != nil {
			pw = "error: " + err.Error()
		}
		got <- pw
	}()
	// Type once the terminal's echo is off, as a person would after the
	// prompt appears.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Password never turned the terminal's echo off")
		}
	}
	controller.Write([]byte("s3cret pass\n"))
	select {
	case pw := <-got:
		if pw != "s3cret pass" {
			t.Fatalf("Password = %q", pw)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Password did not return after Enter")
	}
	if shown.String() != "Password: \n" {
		t.Fatalf("the prompt written: %q", shown.String())
	}
	// What the terminal showed (its echo) must not hold the password:
	// with the program's side closed, the controller reads what is left
	// and then fails (EIO).
	tty.Close()
	var echo []byte
	buf := make([]byte, 256)
	for {
		n, err := controller.Read(buf)
		echo = append(echo, buf[:n]...)
		if err != nil {
			break
		}
	}
	if strings.Contains(string(echo), "s3cret") {
		t.Fatalf("the terminal echoed the password: %q", echo)
	}
}
