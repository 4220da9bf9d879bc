// Package duration is the time.Duration Porthole's JSON files write as
// "90s" or "24h", or as a number of seconds.
package duration

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Duration is a time.Duration in JSON: "90s", "24h", or seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: write it like \"30s\" or \"24h\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("a duration is a string like \"30s\" or \"24h\", or a number of seconds")
	}
	*d = Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
