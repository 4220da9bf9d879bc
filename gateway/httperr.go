package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/porthole/porthole/internal/jsonpos"
	"github.com/porthole/porthole/wire"
)

// Error is what handlers and admin operations return: an HTTP status, a
// message safe to show, per-field reasons for forms, and the inner cause
// (logged, never shown).
type Error struct {
	Status int
	Msg    string
	Fields map[string]string
	Err    error
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Code is the wire error code (wire.Code...); "" for none.
	Code string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Msg)
	for k, v := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", k, v)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// invalid is a 400 with a reason per field; the message lists them all.
func invalid(fields map[string]string) *Error {
	parts := make([]string, 0, len(fields))
	for _, k := range sortedKeys(fields) {
		parts = append(parts, k+" "+fields[k])
	}
	return &Error{Status: http.StatusBadRequest, Msg: strings.Join(parts, "; "), Fields: fields}
}

func internal(err error) *Error {
	return &Error{Status: http.StatusInternalServerError, Msg: "internal error; see the gateway log", Err: err}
}

// setRetryAfter sends he's RetryAfter, if any, in whole seconds.
func setRetryAfter(w http.ResponseWriter, he *Error) {
	if he.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((he.RetryAfter+time.Second-1)/time.Second)))
	}
}

// handlerFunc is an HTTP handler that returns its error to one central
// writer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// writeError logs err and answers it as JSON.
func writeError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var he *Error
	if !errors.As(err, &he) {
		he = internal(err)
	}
	level := slog.LevelDebug
	if he.Status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "request failed", "method", r.Method, "path", clip(r.URL.Path, maxAuditName), "status", he.Status, "err", he.Error())
	if he.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		// RFC 6750: say how to authenticate (unless the handler named
		// another scheme, as the Kerberos sign-in does).
		w.Header().Set("WWW-Authenticate", `Bearer realm="porthole"`)
	}
	setRetryAfter(w, he)
	writeJSON(w, he.Status, wire.Error{Error: he.Msg, Fields: he.Fields, Code: errorCode(he)})
}

// errorCode is the wire error code of he: its own, else the one its status
// implies.
func errorCode(he *Error) string {
	if he.Code != "" {
		return he.Code
	}
	switch he.Status {
	case http.StatusTooManyRequests:
		return wire.CodeRateLimited
	case http.StatusServiceUnavailable:
		return wire.CodeUnavailable
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// decodeJSON reads one JSON object from r's body into v: the body must be
// application/json, at most maxBody bytes, with no unknown fields and
// nothing after the object.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "send the body as application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", maxBody)
		}
		return errorf(http.StatusBadRequest, "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, "the request body is empty: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &Error{Status: http.StatusBadRequest, Msg: "some fields are not valid",
				Fields: map[string]string{te.Field: fmt.Sprintf("must be a %s", jsonKind(te.Type.Kind().String()))}}
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("unknown field %q", f),
				Fields: map[string]string{f: "is not a known field"}}
		}
		return errorf(http.StatusBadRequest, "the body is not valid JSON: %v", jsonpos.Describe(body, err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "the body has data after the JSON object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint16":
		return "number"
	case "slice":
		return "list"
	case "struct", "map":
		return "object"
	case "bool":
		return "true or false"
	}
	return k
}

// methods dispatches on the request method and answers anything else with
// 405 and an Allow header, in JSON.
type methods map[string]handlerFunc

func (s *Server) route(m methods) http.Handler {
	allow := make([]string, 0, len(m))
	for k := range m {
		allow = append(allow, k)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", strings.Join(sortedStrings(allow), ", "))
			writeError(s.log, w, r, errorf(http.StatusMethodNotAllowed, "method %s is not allowed here", r.Method))
			return
		}
		if err := h(w, r); err != nil {
			writeError(s.log, w, r, err)
		}
	})
}
