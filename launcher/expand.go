package launcher

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUndefined is wrapped by expansion errors for unknown variables.
var ErrUndefined = errors.New("undefined variable")

// Lookup finds a variable's value.
type Lookup func(name string) (string, bool)

// Expand replaces every ${Name} in s with its value. A reference to a
// variable lookup does not know is an error naming it; a "${" without its
// "}" is an error too. There is no escape: "$" alone is kept as is.
func Expand(s string, lookup Lookup) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			return "", fmt.Errorf("%q has a \"${\" without its \"}\"", s)
		}
		name := s[i+2 : i+2+j]
		if name == "" {
			return "", fmt.Errorf("%q has an empty ${}", s)
		}
		v, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("%w ${%s}", ErrUndefined, name)
		}
		b.WriteString(v)
		s = s[i+2+j+1:]
	}
}

// References lists the variable names s refers to, for checking a rule
// before it is used.
func References(s string) ([]string, error) {
	var names []string
	_, err := Expand(s, func(name string) (string, bool) {
		names = append(names, name)
		return "", true
	})
	return names, err
}
