// Package jsonpos says where in a JSON document a decoding error is, for
// messages people can act on ("line 3, column 5: ..."), the same way for
// the gateway's files and the clients' settings.json.
package jsonpos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Describe adds the line and column of err within data to a JSON
// decoding error; an error without a position comes back as it is.
func Describe(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var off int64 = -1
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || (err != nil && err.Error() == "unexpected end of JSON input") {
		off = int64(len(data))
	}
	if off < 0 {
		return err
	}
	line, col := 1, 1
	for _, c := range data[:min(int(off), len(data))] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
