package launcher

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestSeedRule: the seed's own example file loads unchanged.
func TestSeedRule(t *testing.T) {
	data, err := os.ReadFile("testdata/seed/aimmsifa-x64.rule")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseRule("aimmsifa-x64.rule", data, nil)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 8 || !strings.Contains(err.Error(), "${Compiler}") {
		t.Fatalf("without a Compiler variable: %v (want line 8 naming ${Compiler})", err)
	}
	r, err := ParseRule("aimmsifa-x64.rule", data, func(n string) bool { return n == "Compiler" })
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(map[string]any{"Name": r.Name, "Resource": r.Match.Resource, "Type": r.Action.Type, "Process": r.Process}, "", "  ")
	golden := "testdata/seed/aimmsifa-x64.golden.json"
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, _ := os.ReadFile(golden)
	if string(got) != string(want) {
		t.Fatalf("parsed seed rule:\n%s\nwant:\n%s", got, want)
	}
	groups, ok := r.Matches("/x64/4.60")
	if !ok || groups["SubFolder"] != "4.60" {
		t.Fatalf("match: %v %v", groups, ok)
	}
	for _, p := range []string{"/x64/4.60/extra", "/x86/4.60", "x/x64/4.60", "//x64/4.60"} {
		if _, ok := r.Matches(p); ok {
			t.Fatalf("%q matched: Resource must match the whole path", p)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := map[string]struct {
		body string
		line int
		want string
	}{
		"syntax":          {"{\n\"Name\": \"x\",\n}", 3, "invalid character"},
		"truncated":       {"{\n\"Name\": \"x\",", 2, "ends before"},
		"unknown field":   {"{\n\"Name\": \"x\",\n\"Macth\": {}\n}", 3, `unknown field "Macth"`},
		"no name":         {`{"Match":{"Resource":"/a"},"Action":{"Type":"Reject","Options":{"ErrorCode":410,"ErrorDesc":"x"}}}`, 1, "Name is required"},
		"bad regex":       {"{\"Name\":\"x\",\n\"Match\":{\"Resource\":\"/(a\"},\"Action\":{\"Type\":\"Reject\",\"Options\":{\"ErrorCode\":410}}}", 2, "not a valid regular expression"},
		"unknown type":    {"{\"Name\":\"x\",\"Match\":{\"Resource\":\"/a\"},\n\"Action\":{\"Type\":\"Fork\",\"Options\":{}}}", 2, `"Fork" is unknown`},
		"bad code":        {`{"Name":"x","Match":{"Resource":"/a"},"Action":{"Type":"Reject","Options":{"ErrorCode":42,"ErrorDesc":"x"}}}`, 1, "three-digit"},
		"no program":      {`{"Name":"x","Match":{"Resource":"/a"},"Action":{"Type":"CreateProcess","Options":{"Arguments":[]}}}`, 1, "name the program"},
		"undefined var":   {"{\"Name\":\"x\",\"Match\":{\"Resource\":\"/a\"},\"Action\":{\"Type\":\"CreateProcess\",\"Options\":{\n\"Arguments\":[\"${Nope}\"]}}}", 2, "${Nope}, which is not defined"},
		"open brace":      {`{"Name":"x","Match":{"Resource":"/a"},"Action":{"Type":"CreateProcess","Options":{"Arguments":["${Nope"]}}}`, 1, "without its"},
		"two rules":       {`{"Name":"x","Match":{"Resource":"/a"},"Action":{"Type":"Reject","Options":{"ErrorCode":410,"ErrorDesc":"x"}}} {}`, 0, "one rule per file"},
		"unknown options": {`{"Name":"x","Match":{"Resource":"/a"},"Action":{"Type":"Reject","Options":{"ErrorCod":410}}}`, 1, "ErrorCod"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseRule("t.rule", []byte(tc.body), nil)
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if fe.Line != tc.line || fe.File != "t.rule" {
				t.Fatalf("at %s:%d, want line %d", fe.File, fe.Line, tc.line)
			}
		})
	}
}

func writeRule(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rejectRule(name, resource string, code int) string {
	b, _ := json.Marshal(map[string]any{"Name": name, "Match": map[string]string{"Resource": resource},
		"Action": map[string]any{"Type": "Reject", "Options": map[string]any{"ErrorCode": code, "ErrorDesc": name}}})
	return string(b)
}

func TestAlphabeticalOrderAndKeepWorking(t *testing.T) {
	dir := t.TempDir()
	writeRule(t, dir, "20-general.rule", rejectRule("general", "/v/.*", 410))
	writeRule(t, dir, "10-specific.rule", rejectRule("specific", "/v/1", 411))
	writeRule(t, dir, "notes.txt", "not a rule")
	rs, errs := LoadRules(dir, nil, nil)
	if len(errs) != 0 || len(rs.Rules) != 2 || rs.Rules[0].File != "10-specific.rule" {
		t.Fatalf("rules %+v %v", rs.Rules, errs)
	}
	if r, _ := rs.Match("/v/1"); r.Name != "specific" {
		t.Fatalf("/v/1 -> %s: the first file in alphabetical order wins", r.Name)
	}
	if r, _ := rs.Match("/v/2"); r.Name != "general" {
		t.Fatalf("/v/2 -> %v", r)
	}
	// A broken edit keeps the last working version; a new broken file is
	// skipped; both are reported by file and line.
	writeRule(t, dir, "10-specific.rule", "{\n\"Name\": \"specific\",\n broken")
	writeRule(t, dir, "05-new.rule", "{ nope")
	rs2, errs := LoadRules(dir, nil, rs)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "05-new.rule:1") || !strings.Contains(errs[1].Error(), "10-specific.rule:3") {
		t.Fatalf("errors %v", errs)
	}
	if r, _ := rs2.Match("/v/1"); r == nil || r.Name != "specific" {
		t.Fatalf("a working rule was lost by a broken edit: %v", r)
	}
	os.Remove(filepath.Join(dir, "10-specific.rule"))
	rs3, _ := LoadRules(dir, nil, rs2)
	if r, _ := rs3.Match("/v/1"); r.Name != "general" {
		t.Fatalf("a deleted rule is still used: %v", r.Name)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	look := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	tests := map[string]struct{ in, out, err string }{
		"plain":     {in: "abc", out: "abc"},
		"one":       {in: "x${A}y", out: "x1y"},
		"two":       {in: "${A}${B}", out: "1two"},
		"dollar":    {in: "$A ${A}", out: "$A 1"},
		"undefined": {in: "${C}", err: "undefined variable ${C}"},
		"unclosed":  {in: "${A", err: "without its"},
		"empty":     {in: "${}", err: "empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Expand(tc.in, look)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.out {
				t.Fatalf("got %q %v", got, err)
			}
		})
	}
}

func TestResolveVariablesAndSafety(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	os.MkdirAll(filepath.Join(images, "x64", "4.60"), 0o755)
	t.Setenv("PORTHOLE_TEST_VAR", "from-env")
	rule := `{"Name":"all kinds","Match":{"Resource":"/x64/(?<SubFolder>[^/]*)(?<Rest>/.*)?"},"Action":{"Type":"CreateProcess","Options":{
		"Arguments":["${ServerPath}/bin/host-${Compiler}","--listenuri","tcp://${ListenAddress}:${ListenPort}","${SubFolder}"],
		"Environment":[["IMG","${ImageFolder}/x64/${SubFolder}"],["FROM_ENV","${Env.PORTHOLE_TEST_VAR}"]],
		"Requires":"${ImageFolder}/x64/${SubFolder}"}}}`
	writeRule(t, dir, "a.rule", rule)
	writeRule(t, dir, "b.rule", `{"Name":"env","Match":{"Resource":"/env"},"Action":{"Type":"CreateProcess","Options":{"Arguments":["x","${Env.PORTHOLE_NOT_SET_ANYWHERE}"]}}}`)
	s, err := New(Config{RulesDir: dir, ImageFolder: images, ServerPath: "/opt/porthole", Variables: map[string]string{"Compiler": "vc141"}, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.resolve("/x64/4.60", "40123")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/opt/porthole/bin/host-vc141", "--listenuri", "tcp://127.0.0.1:40123", "4.60"}
	if strings.Join(p.Argv, " ") != strings.Join(want, " ") {
		t.Fatalf("argv %q", p.Argv)
	}
	if p.Env[0][1] != images+"/x64/4.60" || p.Env[1][1] != "from-env" || p.Requires != images+"/x64/4.60" {
		t.Fatalf("env %q requires %q", p.Env, p.Requires)
	}
	refusals := map[string]struct {
		path string
		code int
		want string
	}{
		"dot dot":          {"/x64/..", 400, "'..'"},
		"dot dot deeper":   {"/x64/4.60/../../etc", 400, "'..'"},
		"backslash dotdot": {`/x64/..\..\etc`, 400, "'..'"},
		"control":          {"/x64/4.60\x01", 400, "control"},
		"nul":              {"/x64/4\x0060", 400, "control"},
		"not a path":       {"x64/4.60", 400, "starting with /"},
		"no rule":          {"/nothing", 404, "no rule matches"},
		"undefined env":    {"/env", 500, "${Env.PORTHOLE_NOT_SET_ANYWHERE}"},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			_, err := s.resolve(tc.path, "1")
			var le *Error
			if !errors.As(err, &le) || le.Code != tc.code || !strings.Contains(le.Desc, tc.want) {
				t.Fatalf("err %v, want %d %q", err, tc.code, tc.want)
			}
		})
	}
}

func FuzzParseRule(f *testing.F) {
	seed, _ := os.ReadFile("testdata/seed/aimmsifa-x64.rule")
	f.Add(seed)
	f.Add([]byte(rejectRule("x", "/a(?<B>.*)", 410)))
	f.Add([]byte(`{"Name":"x","Match":{"Resource":"/a"},"Action":{"Type":"CreateProcess","Options":{"Arguments":["${A}"]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRule("f.rule", data, func(n string) bool { return n == "Compiler" })
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != "f.rule" || fe.Line < 0 {
				t.Fatalf("error without a file and line: %v", err)
			}
			return
		}
		if r.Name == "" || r.re == nil {
			t.Fatalf("accepted an incomplete rule: %+v", r)
		}
		r.Matches("/x64/4.60")
	})
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"${A}", "a${B}c${A}", "${", "${}", "$${A}}", "${Env.PATH}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		look := func(n string) (string, bool) { return "<" + n + ">", n != "Undefined" }
		out, err := Expand(s, look)
		if err != nil {
			return
		}
		// What expands has no references left, unless values brought them.
		if !strings.Contains(s, "${") && out != s {
			t.Fatalf("%q changed to %q without references", s, out)
		}
		names, err := References(s)
		if err != nil {
			t.Fatalf("Expand accepted what References refuses: %v", err)
		}
		for _, n := range names {
			if !strings.Contains(out, "<"+n+">") {
				t.Fatalf("%s not expanded in %q", n, out)
			}
		}
	})
}
