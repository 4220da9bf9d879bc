package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCmd runs the porthole-gateway command line against a data folder.
func runCmd(t *testing.T, data, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	t.Setenv("PORTHOLE_ADMIN_PASSWORD", adminPassword)
	err := Run(t.Context(), append(args, "--data", data), IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return out.String() + errb.String(), err
}

func TestOfflineCommands(t *testing.T) {
	data := t.TempDir()
	steps := []struct {
		args  []string
		stdin string
		want  string
		err   string
	}{
		{args: []string{"group", "add", "dba@Prod"}, want: "created environment Prod"},
		{args: []string{"group", "list"}, want: "dba@Prod"},
		{args: []string{"user", "add", "alice", "--group", "dba@Prod", "--password-stdin"}, stdin: "alice-password\n", want: "created user alice in dba@Prod"},
		{args: []string{"user", "add", "bob"}, want: "password: "},
		{args: []string{"user", "add", "carol", "--group", "nope@Prod", "--password-stdin"}, stdin: "carol-password\n", err: `group "nope@Prod" does not exist`},
		{args: []string{"user", "list"}, want: "alice  dba@Prod"},
		{args: []string{"user", "passwd", "alice"}, stdin: "alice-new-password\n", want: "changed the password of alice"},
		{args: []string{"user", "passwd", "alice"}, stdin: "short\n", err: "at least 8 characters"},
		{args: []string{"user", "passwd", "nobody"}, stdin: "whatever-password\n", err: `user "nobody" does not exist`},
		{args: []string{"tunnel", "add", "pg", "db.example.com:5432", "--groups", "dba@Prod", "--local-port", "15432"}, want: "created tunnel pg -> db.example.com:5432 for dba@Prod"},
		{args: []string{"tunnel", "add", "backend", "db:1"}, err: "reserved"},
		{args: []string{"tunnel", "add", "pg"}, err: "CONTEXT HOST:PORT"},
		{args: []string{"tunnel", "list"}, want: "pg       db.example.com:5432  dba@Prod     15432"},
		{args: []string{"export"}, want: `"socketHost": "db.example.com"`},
		{args: []string{"import", "testdata/seed-bad-entries.json"}, err: "nothing changed"},
		{args: []string{"tunnel", "rm", "pg"}, want: "deleted tunnel pg"},
		{args: []string{"tunnel", "rm", "pg"}, err: "does not exist"},
		{args: []string{"user", "rm", "alice"}, want: "deleted user alice"},
		{args: []string{"group", "rm", "dba"}, err: `"dba" must be written Group@Environment`},
		{args: []string{"group", "rm", "dba@Prod"}, want: "deleted group dba@Prod"},
		{args: []string{"frobnicate"}, err: "unknown command"},
		{args: []string{"user"}, err: "add, passwd, totp, list or rm"},
	}
	for _, st := range steps {
		out, err := runCmd(t, data, st.stdin, st.args...)
		switch {
		case st.err != "":
			if err == nil || !strings.Contains(err.Error(), st.err) {
				t.Fatalf("%v: err %v, want %q (output %s)", st.args, err, st.err, out)
			}
		case err != nil:
			t.Fatalf("%v: %v (output %s)", st.args, err, out)
		case !strings.Contains(out, st.want):
			t.Fatalf("%v: output %q lacks %q", st.args, out, st.want)
		}
	}
	// The offline changes are audited as the local user.
	out, _ := runCmd(t, data, "", "tunnel", "list")
	if strings.Contains(out, "pg ") {
		t.Fatalf("pg still listed: %s", out)
	}
	s := newOfflineAt(t, data)
	evs, _ := s.events(t.Context(), eventFilter("tunnel."))
	if len(evs) != 2 || !strings.HasPrefix(evs[0].Actor, "local:") {
		t.Fatalf("audit %+v", evs)
	}
}

func newOfflineAt(t *testing.T, data string) *Server {
	s, err := New(t.Context(), Config{DataDir: data, AdminPassword: adminPassword, Logger: testLogger(t), PasswordCost: fastHash}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestServeCommand(t *testing.T) {
	data := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "gateway.json")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // serve must bind it itself: this is what a user's config names
	os.WriteFile(cfgFile, []byte(`{"listen": "`+addr+`", "ticketLifetime": "2h", "socketBufferSize": "65536"}`), 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var out syncBuffer
	t.Setenv("PORTHOLE_ADMIN_PASSWORD", "")
	go func() {
		done <- Run(ctx, []string{"serve", "--config", cfgFile, "--data", data}, IO{Stdout: &out, Stderr: &out})
	}()
	waitFor(t, 10*time.Second, "gateway up", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if !strings.Contains(out.String(), "It is shown only this once") {
		t.Fatalf("no one-time password announcement in %s", out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on cancel")
	}
}

// A first start that fails (a bad TLS file, a taken port) fails before it
// creates anything: no store, no printed administrator password that the
// next start would never show again.
func TestServeFailsBeforeCreatingAnything(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	must(t, os.WriteFile(garbage, []byte("not a certificate\n"), 0o600))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := map[string]struct{ config, want string }{
		"missing certificate": {`{"listen": "127.0.0.1:0", "tlsCert": "` + filepath.Join(dir, "nope.pem") + `", "tlsKey": "` + garbage + `"}`, "nope.pem"},
		"broken certificate":  {`{"listen": "127.0.0.1:0", "tlsCert": "` + garbage + `", "tlsKey": "` + garbage + `"}`, "load TLS certificate"},
		"port in use":         {`{"listen": "` + taken.Addr().String() + `"}`, "address already in use"},
	}
	t.Setenv("PORTHOLE_ADMIN_PASSWORD", "")
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cfg := filepath.Join(t.TempDir(), "gateway.json")
			must(t, os.WriteFile(cfg, []byte(tc.config), 0o600))
			var out bytes.Buffer
			err := Run(t.Context(), []string{"serve", "--config", cfg, "--data", data}, IO{Stdout: &out, Stderr: &out})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(out.String(), "shown only this once") {
				t.Fatalf("a failed start printed the one-time password:\n%s", out.String())
			}
			if _, err := os.Stat(filepath.Join(data, "porthole.db")); !os.IsNotExist(err) {
				t.Fatalf("a failed start created the store (%v)", err)
			}
			// The next, good start is still the first: it prints the password.
			var announce bytes.Buffer
			s, err := New(t.Context(), Config{DataDir: data, Logger: testLogger(t), PasswordCost: fastHash, Announce: &announce}, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if !strings.Contains(announce.String(), "shown only this once") {
				t.Fatalf("the first good start did not print the password: %q", announce.String())
			}
		})
	}
}

// A lost administrator password is recovered offline.
func TestUserPasswdRecoversAdmin(t *testing.T) {
	data := t.TempDir()
	if _, err := runCmd(t, data, "", "user", "list"); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, data, "recovered-password\n", "user", "passwd", "admin")
	if err != nil || !strings.Contains(out, "changed the password of admin") {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	s := newOfflineAt(t, data)
	if _, err := s.signIn(t.Context(), credentials{username: "admin", password: "recovered-password"}, "127.0.0.1"); err != nil {
		t.Fatalf("sign-in with the new password: %v", err)
	}
	if _, err := s.signIn(t.Context(), credentials{username: "admin", password: adminPassword}, "127.0.0.2"); err == nil {
		t.Fatal("the old password still works")
	}
	evs, _ := s.events(t.Context(), eventFilter("user.update"))
	if len(evs) != 1 || !strings.HasPrefix(evs[0].Actor, "local:") {
		t.Fatalf("audit %+v", evs)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		body, want string
	}{
		"unknown field": {`{"listn": ":1"}`, `unknown field "listn"`},
		"bad duration":  {`{"ticketLifetime": "forever"}`, "forever"},
		"syntax":        {"{\n\"listen\": \":1\",\n}", "line 3"},
		"cert only":     {`{"tlsCert": "a.pem"}`, "together"},
		"short ticket":  {`{"ticketLifetime": "10s"}`, "shorter than a minute"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".json")
			os.WriteFile(p, []byte(tc.body), 0o600)
			err := Run(t.Context(), []string{"serve", "--config", p, "--data", dir}, IO{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	err := Run(t.Context(), []string{"serve", "--nope"}, IO{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("bad flag: %v", err)
	}
}

func TestCreateConfigNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "gateway.json")
	if err := createDefault(p, `{"listen": ":8080"}`); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != `{"listen": ":8080"}` {
		t.Fatalf("default: %s", b)
	}
	os.WriteFile(p, []byte(`{"listen": ":9443"}`), 0o640)
	if err := createDefault(p, `{"listen": ":8080"}`); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != `{"listen": ":9443"}` {
		t.Fatalf("an administrator's config was overwritten: %s", b)
	}
}
