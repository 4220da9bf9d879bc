package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/gateway/store"
)

func newOffline(t *testing.T) *Server {
	t.Helper()
	s, err := New(t.Context(), Config{DataDir: t.TempDir(), AdminPassword: adminPassword, Logger: testLogger(t), PasswordCost: fastHash}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestImportSeed(t *testing.T) {
	s := newOffline(t)
	ctx := t.Context()
	for _, g := range []string{"users@ROOT", "Domain Users@PDT"} {
		name, env, _ := strings.Cut(g, "@")
		if env != "ROOT" {
			must(t, s.CreateEnvironment(ctx, "test", env))
		}
		must(t, s.CreateGroup(ctx, "test", name, env))
	}
	data, _ := os.ReadFile("testdata/seed-valid.json")
	res, err := s.ImportSeed(ctx, "test", data, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 2 || res.SocketBufferSize != 262144 {
		t.Fatalf("result %+v", res)
	}
	ts, _ := s.Tunnels(ctx)
	if len(ts) != 2 || ts[0].SocketAddress != "someSocketHost:234" || ts[1].SocketAddress != "sqlserver:1433" || ts[1].LocalPort != 11433 || ts[1].UserGroups != "Domain Users@PDT" {
		t.Fatalf("tunnels %+v", ts)
	}
	// Importing the same file again changes nothing and audits nothing.
	before, _ := s.events(ctx, eventFilter("tunnel."))
	res, err = s.ImportSeed(ctx, "test", data, ImportOptions{})
	if err != nil || len(res.Unchanged) != 2 || len(res.Updated) != 0 || len(res.Created) != 0 {
		t.Fatalf("reimport %+v %v", res, err)
	}
	if after, _ := s.events(ctx, eventFilter("tunnel.")); len(after) != len(before) {
		t.Fatalf("an import that changed nothing wrote %d audit rows", len(after)-len(before))
	}
	// Export writes the same shape back, and it imports again.
	out, err := s.ExportSeed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var back seedFile
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("export is not valid: %v\n%s", err, out)
	}
	p := back.Server.WebSocketsProxy
	if p.SocketBufferSize != 262144 || len(p.Tunnels) != 2 || p.Tunnels[1].SocketHost != "sqlserver" || p.Tunnels[1].SocketPort != 1433 {
		t.Fatalf("export %s", out)
	}
	if !strings.Contains(string(out), `"socketPort": "1433"`) {
		t.Fatalf("export does not write ports as the seed does: %s", out)
	}
	if _, err := s.ImportSeed(ctx, "test", out, ImportOptions{}); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}

// An entry for an existing tunnel changes only what it carries: a file
// without userGroups, localPort or description (the seed's own shape)
// never resets them, and a change of access is listed and audited.
func TestImportKeepsWhatTheFileDoesNotCarry(t *testing.T) {
	data := t.TempDir()
	s := newOfflineAt(t, data)
	ctx := t.Context()
	must(t, s.CreateGroup(ctx, "test", "dba", RootEnv))
	if _, err := s.CreateTunnel(ctx, "test", TunnelSpec{Context: "mssql", SocketAddress: "sqlserver:1433", UserGroups: "dba@ROOT",
		LocalPort: 11433, Description: "Orders"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	file := filepath.Join(t.TempDir(), "seed.json")
	write := func(body string) {
		t.Helper()
		must(t, os.WriteFile(file, []byte(`{"server": {"webSocketsProxy": {"tunnels": [`+body+`]}}}`), 0o600))
	}
	tunnel := func() TunnelSpec {
		t.Helper()
		s := newOfflineAt(t, data)
		defer s.Close()
		tn, err := s.st.Tunnel(ctx, "mssql")
		if err != nil {
			t.Fatal(err)
		}
		return specOf(tn)
	}

	// The seed's shape, with a new host only.
	write(`{"context": "mssql", "socketHost": "sql2", "socketPort": "1433"}`)
	out, err := runCmd(t, data, "", "import", file)
	if err != nil {
		t.Fatal(err)
	}
	want := TunnelSpec{Context: "mssql", SocketAddress: "sql2:1433", UserGroups: "dba@ROOT", LocalPort: 11433, Description: "Orders"}
	if got := tunnel(); got != want {
		t.Fatalf("after import: %+v, want %+v", got, want)
	}
	for _, w := range []string{"update     mssql", "socketAddress: sqlserver:1433 -> sql2:1433", "1 updated"} {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "userGroups") {
		t.Fatalf("output reports an access change that did not happen:\n%s", out)
	}

	// A dry run of an access change shows it and changes nothing.
	write(`{"context": "MSSQL", "userGroups": ".*@.*"}`)
	out, err = runCmd(t, data, "", "import", "--dry-run", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"userGroups: dba@ROOT -> .*@.*   <- access changes", "dry run, nothing changed"} {
		if !strings.Contains(out, w) {
			t.Fatalf("dry-run output lacks %q:\n%s", w, out)
		}
	}
	if got := tunnel(); got != want {
		t.Fatalf("a dry run changed the tunnel: %+v", got)
	}

	// The real import applies it and audits the before and after.
	out, err = runCmd(t, data, "", "import", file)
	if err != nil || !strings.Contains(out, "userGroups: dba@ROOT -> .*@.*") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got := tunnel(); got.UserGroups != ".*@.*" || got.LocalPort != 11433 || got.Description != "Orders" || got.SocketAddress != "sql2:1433" {
		t.Fatalf("after the access change: %+v", got)
	}
	s = newOfflineAt(t, data)
	evs, _ := s.events(ctx, eventFilter("tunnel.update"))
	if len(evs) != 2 {
		t.Fatalf("audit has %d tunnel updates, want 2: %+v", len(evs), evs)
	}
	b, _ := json.Marshal(evs[0].Details)
	if !strings.Contains(string(b), `"userGroups":"dba@ROOT"`) || !strings.Contains(string(b), `"userGroups":".*@.*"`) {
		t.Fatalf("the audit row does not show the access before and after: %s", b)
	}

	// A new tunnel without userGroups gets the default, and says so.
	s.Close()
	write(`{"context": "pg", "socketHost": "db", "socketPort": 5432}`)
	out, err = runCmd(t, data, "", "import", file)
	if err != nil || !strings.Contains(out, "create     pg -> db:5432 for .*@.* (the file names no userGroups: every signed-in user)") {
		t.Fatalf("import of a new tunnel: %v\n%s", err, out)
	}
	// A new tunnel needs its address.
	write(`{"context": "nohost", "socketPort": 5432}`)
	if _, err := runCmd(t, data, "", "import", file); err == nil || !strings.Contains(err.Error(), `(tunnel "nohost"): socketHost is required`) {
		t.Fatalf("a new tunnel without socketHost: %v", err)
	}
}

func TestImportSeedRefusals(t *testing.T) {
	tests := map[string]struct {
		file string
		data string
		want []string
	}{
		"the seed's own excerpt, as printed": {file: "testdata/seed-as-printed.json", want: []string{"line 1"}},
		"bad entries":                        {file: "testdata/seed-bad-entries.json", want: []string{`line 6 (tunnel "backend"): context "backend" is reserved`, `line 7 (tunnel "port"): socketHost/socketPort port 99999 is outside 1-65535`, `line 8 (tunnel "FINE"): context "FINE" is also used by tunnel 1`, `line 9 (tunnel 5): json: unknown field "socketHst"`, `line 10 (tunnel "groups"): userGroups environment "Nowhere" does not exist`}},
		"not an object":                      {data: `[1,2]`, want: []string{"JSON object"}},
		"no proxy section":                   {data: `{"server": {}}`, want: []string{"webSocketsProxy"}},
		"tunnels not a list":                 {data: "{\"server\": {\"webSocketsProxy\": {\n\"tunnels\": {}}}}", want: []string{"line 2", "list"}},
		"bad buffer size":                    {data: `{"server": {"webSocketsProxy": {"socketBufferSize": "lots"}}}`, want: []string{"socketBufferSize"}},
		"truncated":                          {data: "{\"server\": {\n\"webSocketsProxy\": {", want: []string{"line 2"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newOffline(t)
			data := []byte(tc.data)
			if tc.file != "" {
				data, _ = os.ReadFile(tc.file)
			}
			_, err := s.ImportSeed(t.Context(), "test", data, ImportOptions{})
			if err == nil {
				t.Fatal("import accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "nothing changed") {
				t.Fatalf("error does not say nothing changed: %v", err)
			}
			ts, _ := s.Tunnels(t.Context())
			if len(ts) != 0 {
				t.Fatalf("a refused import stored %+v", ts)
			}
		})
	}
}

func FuzzImportSeed(f *testing.F) {
	for _, file := range []string{"testdata/seed-valid.json", "testdata/seed-as-printed.json", "testdata/seed-bad-entries.json"} {
		data, _ := os.ReadFile(file)
		f.Add(data)
	}
	f.Add([]byte(`{"server":{"webSocketsProxy":{"tunnels":[{"context":"a","socketHost":"h","socketPort":1}]}}}`))
	s, err := New(context.Background(), Config{DataDir: f.TempDir(), AdminPassword: adminPassword, Logger: slog.New(slog.DiscardHandler), PasswordCost: fastHash}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		bufSize, entries, err := parseSeed(data)
		if err != nil {
			return
		}
		if bufSize < 0 {
			t.Fatalf("negative buffer size accepted")
		}
		for _, e := range entries {
			if e.line < 0 {
				t.Fatalf("bad line %d", e.line)
			}
		}
		// Whatever import accepts must be valid tunnels.
		res, err := s.ImportSeed(context.Background(), "fuzz", data, ImportOptions{})
		var he *Error
		if err != nil && !errors.As(err, &he) {
			t.Fatalf("import error without a status: %v", err)
		}
		for _, c := range append(res.Created, res.Updated...) {
			tn, err := s.st.Tunnel(context.Background(), c)
			if err != nil {
				t.Fatalf("imported %q not stored: %v", c, err)
			}
			if _, err := s.checkTunnel(context.Background(), specOf(tn)); err != nil {
				t.Fatalf("imported an invalid tunnel %+v: %v", tn, err)
			}
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// An import killed half-way leaves tunnels and their audit rows in step:
// both are written in one transaction.
func TestImportKilledHalfWayKeepsAuditInStep(t *testing.T) {
	if dir := os.Getenv("PORTHOLE_IMPORT_HELPER"); dir != "" {
		// The child: import, and be killed by the parent meanwhile.
		err := Run(context.Background(), []string{"import", filepath.Join(dir, "seed.json"), "--data", dir}, IO{Stdout: io.Discard, Stderr: io.Discard})
		fmt.Println("import finished:", err)
		return
	}
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(`{"server": {"webSocketsProxy": {"tunnels": [`)
	for i := range 3000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"context": "t%d", "socketHost": "db%d", "socketPort": 5432}`, i, i)
	}
	b.WriteString("]}}}")
	must(t, os.WriteFile(filepath.Join(dir, "seed.json"), []byte(b.String()), 0o600))
	newOfflineAt(t, dir).Close() // the store exists before the child opens it
	cmd := exec.Command(os.Args[0], "-test.run=^TestImportKilledHalfWayKeepsAuditInStep$")
	cmd.Env = append(os.Environ(), "PORTHOLE_IMPORT_HELPER="+dir, "PORTHOLE_ADMIN_PASSWORD="+adminPassword)
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Kill it the moment tunnels appear in the store.
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, "porthole.db"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ts, err := st.Tunnels(t.Context()); err == nil && len(ts) > 0 {
			cmd.Process.Kill()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the import ended before any tunnel appeared: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no tunnel appeared within a minute")
		}
		time.Sleep(time.Millisecond)
	}
	<-exited
	st.Close()
	s := newOfflineAt(t, dir)
	ts, _ := s.st.Tunnels(t.Context())
	evs, _ := s.st.Events(t.Context(), store.EventFilter{Kind: "tunnel.create", Limit: 5000})
	if len(ts) != len(evs) {
		t.Fatalf("after the kill: %d tunnels but %d audit rows for them", len(ts), len(evs))
	}
	t.Logf("killed after commit: %d tunnels, %d audit rows", len(ts), len(evs))
}
