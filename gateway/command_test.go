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
		{args: []string{"tunnel", "add", "pg", "db.example.com:5432", "--groups", "dba@Prod", "--local-port", "15432"}, want: "created tunnel pg -> db.example.com:5432 for dba@Prod"},
		{args: []string{"tunnel", "add", "backend", "db:1"}, err: "reserved"},
		{args: []string{"tunnel", "add", "pg"}, err: "CONTEXT HOST:PORT"},
		{args: []string{"tunnel", "list"}, want: "pg       db.example.com:5432  dba@Prod     15432"},
		{args: []string{"export"}, want: `"socketHost": "db.example.com"`},
		{args: []string{"import", "testdata/seed-bad-entries.json"}, err: "nothing changed"},
		{args: []string{"tunnel", "rm", "pg"}, want: "deleted tunnel pg"},
		{args: []string{"tunnel", "rm", "pg"}, err: "does not exist"},
		{args: []string{"user", "rm", "alice"}, want: "deleted user alice"},
		{args: []string{"group", "rm", "dba@Prod"}, want: "deleted group dba@Prod"},
		{args: []string{"frobnicate"}, err: "unknown command"},
		{args: []string{"user"}, err: "add, list or rm"},
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
