package jsonpos

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	for in, want := range map[string]string{
		"{\n  \"a\": 1,\n}":      "line 3, column 2",
		"{\"a\": ":               "line 1, column 7",
		"{\n\"a\": [1]}":         "", // valid
		"{\"a\": [1, 2, \"x\"]}": "line 1, column",
	} {
		var v struct{ A []int }
		err := json.Unmarshal([]byte(in), &v)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
			continue
		}
		if got := Describe([]byte(in), err); got == nil || !strings.HasPrefix(got.Error(), want) {
			t.Errorf("Describe(%q) = %v, want prefix %q", in, got, want)
		}
	}
}
