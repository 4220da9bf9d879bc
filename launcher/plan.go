package launcher

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/porthole/porthole/wire"
)

// Error is a refusal sent to the client as "ERR <Code> <Desc>".
type Error = wire.LaunchError

// Plan is what a path resolves to: the rule and, for CreateProcess, the
// expanded program, environment and requirement.
type Plan struct {
	Rule     *Rule
	Groups   map[string]string
	Argv     []string
	Env      [][2]string // the rule's variables, expanded (merged over the launcher's own at start)
	Requires string
}

// unsafeValue says why a value taken from the path may not be used: it
// could leave imageFolder (a ".." element) or confuse programs (control
// characters, NUL).
func unsafeValue(v string) string {
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "control characters"
	}
	for _, el := range strings.FieldsFunc(v, func(r rune) bool { return r == '/' || r == '\\' }) {
		if el == ".." {
			return "'..'"
		}
	}
	return ""
}

// resolve finds the rule for path and, for a process, expands its options
// with listenPort. It returns an *Error for every refusal.
func (s *Server) resolve(path string, listenPort string) (*Plan, error) {
	if path == "" || path[0] != '/' {
		return nil, &Error{Code: 400, Desc: "the first line must be a path starting with /"}
	}
	if why := unsafeValue(path); why != "" {
		return nil, &Error{Code: 400, Desc: "the path may not contain " + why}
	}
	rs := s.rules.Load()
	r, groups := rs.Match(path)
	if r == nil {
		return nil, &Error{Code: 404, Desc: "no rule matches " + path}
	}
	p := &Plan{Rule: r, Groups: groups}
	if r.Action.Type == Reject {
		return p, nil
	}
	for name, v := range groups {
		if why := unsafeValue(v); why != "" {
			return nil, &Error{Code: 400, Desc: fmt.Sprintf("the path's %s may not contain %s", name, why)}
		}
	}
	lookup := func(name string) (string, bool) {
		switch name {
		case "ServerPath":
			return s.cfg.ServerPath, true
		case "ImageFolder":
			return s.cfg.ImageFolder, true
		case "ListenAddress":
			return s.cfg.ListenAddress, true
		case "ListenPort":
			return listenPort, true
		}
		if v, ok := groups[name]; ok {
			return v, true
		}
		if v, ok := s.cfg.Variables[name]; ok {
			return v, true
		}
		if env, ok := strings.CutPrefix(name, "Env."); ok && env != "" {
			return os.LookupEnv(env)
		}
		return "", false
	}
	expand := func(what, v string) (string, error) {
		out, err := Expand(v, lookup)
		if err != nil {
			return "", &Error{Code: 500, Desc: fmt.Sprintf("rule %q (%s): %s: %v", r.Name, r.File, what, err)}
		}
		return out, nil
	}
	for i, a := range r.Process.Arguments {
		v, err := expand("argument "+strconv.Itoa(i+1), a)
		if err != nil {
			return nil, err
		}
		p.Argv = append(p.Argv, v)
	}
	for _, kv := range r.Process.Environment {
		v, err := expand("environment "+kv[0], kv[1])
		if err != nil {
			return nil, err
		}
		p.Env = append(p.Env, [2]string{kv[0], v})
	}
	req, err := expand("Requires", r.Process.Requires)
	if err != nil {
		return nil, err
	}
	p.Requires = req
	if err := s.insideImageFolder(p); err != nil {
		return nil, err
	}
	return p, nil
}

// insideImageFolder refuses a plan whose Requires or arguments start in
// imageFolder but lead out of it. Both / and \ count as separators, so
// rules written for Windows (like the seed's) are checked the same way.
func (s *Server) insideImageFolder(p *Plan) error {
	if s.cfg.ImageFolder == "" {
		return nil
	}
	slash := func(v string) string { return path.Clean(strings.ReplaceAll(v, `\`, "/")) }
	root := slash(s.cfg.ImageFolder)
	for _, v := range append([]string{p.Requires}, p.Argv...) {
		if !strings.HasPrefix(v, s.cfg.ImageFolder) {
			continue
		}
		clean := slash(v)
		if clean != root && !strings.HasPrefix(clean, root+"/") {
			return &Error{Code: 400, Desc: "the path leads outside the image folder"}
		}
	}
	return nil
}

// checkRequires answers 424 when the plan's requirement is missing.
func checkRequires(p *Plan) error {
	if p.Requires == "" {
		return nil
	}
	if _, err := os.Stat(p.Requires); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &Error{Code: 424, Desc: fmt.Sprintf("%s is not installed here (%s is missing)", p.Rule.Name, p.Requires)}
		}
		return &Error{Code: 424, Desc: fmt.Sprintf("cannot check %s: %v", p.Requires, err)}
	}
	return nil
}

// mergeEnv sets vars over base (later entries win, names compared as the
// OS does).
func mergeEnv(base []string, vars [][2]string) []string {
	out := append([]string(nil), base...)
	for _, kv := range vars {
		prefix := kv[0] + "="
		replaced := false
		for i, e := range out {
			if envNameEqual(e, prefix) {
				out[i] = prefix + kv[1]
				replaced = true
			}
		}
		if !replaced {
			out = append(out, prefix+kv[1])
		}
	}
	return out
}
