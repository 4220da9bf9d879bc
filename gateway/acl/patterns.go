package acl

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Pattern is one `Group@Environment` entry of a tunnel's user groups. Each
// side is a regular expression that must match the whole name,
// case-insensitively (names are unique regardless of case).
type Pattern struct {
	Group, Env       string
	group, env       *regexp.Regexp
	litGroup, litEnv bool
}

// Patterns is a parsed user-groups value.
type Patterns []Pattern

// Directory says which groups and environments exist, for validation.
type Directory interface {
	// HasEnvironment reports whether the environment exists.
	HasEnvironment(name string) bool
	// HasGroup reports whether a group of that name exists in env, or in any
	// environment when env is "".
	HasGroup(name, env string) bool
}

// ParsePatterns parses a `;`-separated list of Group@Environment patterns.
// It checks syntax only; Check also checks named groups exist.
func ParsePatterns(s string) (Patterns, error) {
	if s == "" {
		return nil, errors.New("is required (use .*@.* for everyone)")
	}
	entries := strings.Split(s, ";")
	ps := make(Patterns, 0, len(entries))
	for i, e := range entries {
		p, err := parsePattern(e)
		if err != nil {
			if len(entries) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("entry %d (%q): %w", i+1, e, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func parsePattern(e string) (Pattern, error) {
	switch {
	case e == "":
		return Pattern{}, errors.New("is empty: remove the extra ';'")
	case strings.TrimSpace(e) != e:
		return Pattern{}, errors.New("has spaces around it: write group1@ROOT;group2@Test without spaces")
	}
	g, env, ok := strings.Cut(e, "@")
	if !ok {
		return Pattern{}, errors.New("must be written Group@Environment")
	}
	if strings.Contains(env, "@") {
		return Pattern{}, errors.New("has more than one '@'")
	}
	if g == "" || env == "" {
		return Pattern{}, errors.New("needs both a group and an environment, like admins@ROOT or .*@Prod")
	}
	p := Pattern{Group: g, Env: env}
	var err error
	if p.group, p.litGroup, err = compileSide(g); err != nil {
		return Pattern{}, fmt.Errorf("group %q is not a valid regular expression: %w", g, err)
	}
	if p.env, p.litEnv, err = compileSide(env); err != nil {
		return Pattern{}, fmt.Errorf("environment %q is not a valid regular expression: %w", env, err)
	}
	return p, nil
}

// compileSide compiles one side anchored to the whole name and says
// whether it is a plain name (no regular-expression metacharacters). The
// side must be a regular expression on its own before it is anchored:
// otherwise "admin)|(.*" would close the anchoring group and match any
// name.
func compileSide(s string) (*regexp.Regexp, bool, error) {
	_, err := regexp.Compile(s)
	var re *regexp.Regexp
	if err == nil {
		re, err = regexp.Compile(`^(?i:(?:` + s + `))$`)
	}
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, false, errors.New(se.Code.String())
		}
		return nil, false, err
	}
	return re, regexp.QuoteMeta(s) == s, nil
}

// String writes the patterns back in their `;`-separated form.
func (ps Patterns) String() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Group + "@" + p.Env
	}
	return strings.Join(parts, ";")
}

// Check reports, for each entry naming a group or environment without
// regular-expression metacharacters, whether it exists in dir.
func (ps Patterns) Check(dir Directory) error {
	var problems []string
	for _, p := range ps {
		switch {
		case p.litEnv && !dir.HasEnvironment(p.Env):
			problems = append(problems, fmt.Sprintf("environment %q does not exist", p.Env))
		case p.litGroup && p.litEnv && !dir.HasGroup(p.Group, p.Env):
			problems = append(problems, fmt.Sprintf("group %q does not exist", p.Group+"@"+p.Env))
		case p.litGroup && !p.litEnv && !dir.HasGroup(p.Group, ""):
			problems = append(problems, fmt.Sprintf("no environment has a group %q", p.Group))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// LiteralGroup reports whether the group side is a plain name.
func (p Pattern) LiteralGroup() bool { return p.litGroup }

// LiteralEnv reports whether the environment side is a plain name.
func (p Pattern) LiteralEnv() bool { return p.litEnv }

// Matches reports whether the pattern admits a member of g.
func (p Pattern) Matches(g Group) bool {
	return p.group.MatchString(g.Name) && p.env.MatchString(g.Env)
}

// Allows reports whether a member of groups may use a tunnel with these
// patterns: some pattern matches some group.
func (ps Patterns) Allows(groups []Group) bool {
	for _, g := range groups {
		for _, p := range ps {
			if p.Matches(g) {
				return true
			}
		}
	}
	return false
}
