package launcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Action types.
const (
	Reject        = "Reject"
	CreateProcess = "CreateProcess"
)

// Rule is one *.rule file, in the seed's format.
type Rule struct {
	Name  string `json:"Name"`
	Match struct {
		Resource string `json:"Resource"`
	} `json:"Match"`
	Action struct {
		Type    string          `json:"Type"`
		Options json.RawMessage `json:"Options"`
	} `json:"Action"`

	// Parsed from the above.
	File    string         `json:"-"` // base name of the file
	re      *regexp.Regexp // anchored Resource
	Reject  RejectOptions  `json:"-"`
	Process ProcessOptions `json:"-"`
}

// RejectOptions are a Reject action's.
type RejectOptions struct {
	ErrorCode int    `json:"ErrorCode"`
	ErrorDesc string `json:"ErrorDesc"`
}

// ProcessOptions are a CreateProcess action's.
type ProcessOptions struct {
	Arguments   []string    `json:"Arguments"`
	Environment [][2]string `json:"Environment"`
	Requires    string      `json:"Requires"`
}

// Predefined variable names; Env.NAME reads the environment.
var predefined = []string{"ServerPath", "ImageFolder", "ListenAddress", "ListenPort"}

// FileError is a problem in one rule file, with the line it is on.
type FileError struct {
	File string
	Line int
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// ParseRule reads one rule file's content. known says which variables
// (beyond the predefined ones, Env.* and the Resource's named groups) are
// defined, so an undefined one is caught now, with its line.
func ParseRule(name string, data []byte, known func(string) bool) (*Rule, error) {
	fail := func(line int, format string, args ...any) error {
		return &FileError{File: name, Line: line, Err: fmt.Errorf(format, args...)}
	}
	// lineOf is the line of needle, or of the rule's start (line 1) when
	// the file does not have it (a missing field).
	lineOf := func(needle string) int {
		i := bytes.Index(data, []byte(needle))
		if i < 0 {
			return 1
		}
		return bytes.Count(data[:i], []byte("\n")) + 1
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Rule
	if err := dec.Decode(&r); err != nil {
		line := 0
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line = bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n")) + 1
		case errors.As(err, &te):
			line = bytes.Count(data[:min(int(te.Offset), len(data))], []byte("\n")) + 1
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			line = bytes.Count(data, []byte("\n")) + 1
			err = errors.New("the file ends before the rule does")
		default:
			if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return nil, fail(lineOf(f), "unknown field %s", f)
			}
		}
		return nil, fail(line, "%v", err)
	}
	if dec.More() {
		return nil, fail(0, "one rule per file: there is more after the first object")
	}
	r.File = name
	if strings.TrimSpace(r.Name) == "" {
		return nil, fail(lineOf(`"Name"`), "Name is required")
	}
	if r.Match.Resource == "" {
		return nil, fail(lineOf(`"Match"`), "Match.Resource is required")
	}
	re, err := regexp.Compile(`^(?:` + r.Match.Resource + `)$`)
	if err != nil {
		return nil, fail(lineOf(`"Resource"`), "Match.Resource is not a valid regular expression: %v", err)
	}
	r.re = re
	groups := map[string]bool{}
	for _, g := range re.SubexpNames() {
		if g != "" {
			groups[g] = true
		}
	}
	optsLine := lineOf(`"Options"`)
	decodeOpts := func(v any) error {
		if len(r.Action.Options) == 0 {
			return fail(lineOf(`"Action"`), "Action.Options is required")
		}
		d := json.NewDecoder(bytes.NewReader(r.Action.Options))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fail(optsLine, "Action.Options: %v", err)
		}
		return nil
	}
	switch r.Action.Type {
	case Reject:
		if err := decodeOpts(&r.Reject); err != nil {
			return nil, err
		}
		if r.Reject.ErrorCode < 100 || r.Reject.ErrorCode > 999 {
			return nil, fail(lineOf(`"ErrorCode"`), "ErrorCode must be a three-digit number, like 410")
		}
		if strings.ContainsAny(r.Reject.ErrorDesc, "\r\n") {
			return nil, fail(lineOf(`"ErrorDesc"`), "ErrorDesc must be one line")
		}
	case CreateProcess:
		if err := decodeOpts(&r.Process); err != nil {
			return nil, err
		}
		if len(r.Process.Arguments) == 0 || r.Process.Arguments[0] == "" {
			return nil, fail(lineOf(`"Arguments"`), "Arguments must name the program to run")
		}
		check := func(field, s string) error {
			names, err := References(s)
			if err != nil {
				return fail(lineOf(field), "%s: %v", strings.Trim(field, `"`), err)
			}
			for _, n := range names {
				if groups[n] || strings.HasPrefix(n, "Env.") && len(n) > 4 || isPredefined(n) || known != nil && known(n) {
					continue
				}
				return fail(lineOf("${"+n+"}"), "%s uses ${%s}, which is not defined (not a named group of Resource, a predefined variable, Env.NAME or a variable in the config)", strings.Trim(field, `"`), n)
			}
			return nil
		}
		for _, a := range r.Process.Arguments {
			if err := check(`"Arguments"`, a); err != nil {
				return nil, err
			}
		}
		for _, kv := range r.Process.Environment {
			if kv[0] == "" || strings.ContainsAny(kv[0], "=\x00") {
				return nil, fail(lineOf(`"Environment"`), "Environment names must be non-empty without '='")
			}
			if err := check(`"Environment"`, kv[1]); err != nil {
				return nil, err
			}
		}
		if err := check(`"Requires"`, r.Process.Requires); err != nil {
			return nil, err
		}
	case "":
		return nil, fail(lineOf(`"Action"`), "Action.Type is required: Reject or CreateProcess")
	default:
		return nil, fail(lineOf(`"Type"`), "Action.Type %q is unknown: use Reject or CreateProcess", r.Action.Type)
	}
	return &r, nil
}

func isPredefined(n string) bool {
	for _, p := range predefined {
		if p == n {
			return true
		}
	}
	return false
}

// Matches returns the named groups if the rule's Resource matches the
// whole path.
func (r *Rule) Matches(path string) (map[string]string, bool) {
	m := r.re.FindStringSubmatch(path)
	if m == nil {
		return nil, false
	}
	groups := map[string]string{}
	for i, name := range r.re.SubexpNames() {
		if name != "" {
			groups[name] = m[i]
		}
	}
	return groups, true
}

// RuleSet is the rules in force, in alphabetical order of file name.
type RuleSet struct {
	Rules []*Rule
}

// Match returns the first rule whose Resource matches the whole path.
func (rs *RuleSet) Match(path string) (*Rule, map[string]string) {
	for _, r := range rs.Rules {
		if groups, ok := r.Matches(path); ok {
			return r, groups
		}
	}
	return nil, nil
}

// LoadRules reads every *.rule file in dir. It returns the rules that
// parsed and one error per broken file; for a broken file, prev's version
// (the last one that worked) is kept, so a bad edit never takes a working
// rule away.
func LoadRules(dir string, known func(string) bool, prev *RuleSet) (*RuleSet, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return prev, []error{fmt.Errorf("read rules folder: %w", err)}
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".rule") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	old := map[string]*Rule{}
	if prev != nil {
		for _, r := range prev.Rules {
			old[r.File] = r
		}
	}
	rs := &RuleSet{}
	var errs []error
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		var r *Rule
		if err == nil {
			r, err = ParseRule(n, data, known)
		}
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				err = &FileError{File: n, Err: err}
			}
			errs = append(errs, err)
			if o, ok := old[n]; ok {
				rs.Rules = append(rs.Rules, o)
			}
			continue
		}
		rs.Rules = append(rs.Rules, r)
	}
	return rs, errs
}
