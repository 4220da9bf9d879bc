package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
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
	res, err := s.ImportSeed(ctx, "test", data)
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
	// Importing again updates in place.
	res, err = s.ImportSeed(ctx, "test", data)
	if err != nil || len(res.Updated) != 2 || len(res.Created) != 0 {
		t.Fatalf("reimport %+v %v", res, err)
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
	if _, err := s.ImportSeed(ctx, "test", out); err != nil {
		t.Fatalf("round trip: %v", err)
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
			_, err := s.ImportSeed(t.Context(), "test", data)
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
		res, err := s.ImportSeed(context.Background(), "fuzz", data)
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
