package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/internal/jsonpos"
)

// The seed's configuration shape, which import reads and export writes:
//
//	{"server": {"webSocketsProxy": {"socketBufferSize": "262144",
//	  "tunnels": [{"context": "mssql", "socketHost": "sqlserver",
//	               "socketPort": "1433", "userGroups": "Domain Users@PDT"}]}}}
//
// Numbers may be written as numbers or strings. Porthole adds the optional
// "localPort" and "description" to a tunnel entry. Keys outside
// webSocketsProxy are ignored (the seed's file holds much else).
type seedFile struct {
	Server struct {
		WebSocketsProxy seedProxy `json:"webSocketsProxy"`
	} `json:"server"`
}

type seedProxy struct {
	SocketBufferSize FlexInt      `json:"socketBufferSize"`
	Tunnels          []seedTunnel `json:"tunnels"`
}

type seedTunnel struct {
	Context     string  `json:"context"`
	SocketHost  string  `json:"socketHost"`
	SocketPort  FlexInt `json:"socketPort"`
	UserGroups  string  `json:"userGroups"`
	LocalPort   FlexInt `json:"localPort,omitempty"`
	Description string  `json:"description,omitempty"`
}

// seedEntry is a tunnel entry and the line it starts on.
type seedEntry struct {
	line int
	raw  json.RawMessage
}

// parseSeed walks the file to server.webSocketsProxy and returns its
// socketBufferSize (0 if absent) and tunnel entries with their lines.
func parseSeed(data []byte) (bufSize int, entries []seedEntry, err error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return 0, nil, jsonpos.Describe(data, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return 0, nil, errors.New("the file must hold a JSON object with a \"server\" key")
	}
	var server map[string]json.RawMessage
	if err := json.Unmarshal(top["server"], &server); err != nil || server == nil {
		return 0, nil, errors.New(`no "server" object: expected {"server": {"webSocketsProxy": {...}}}`)
	}
	proxyRaw, ok := server["webSocketsProxy"]
	if !ok {
		return 0, nil, errors.New(`no "server.webSocketsProxy" object`)
	}
	var proxy map[string]json.RawMessage
	if err := json.Unmarshal(proxyRaw, &proxy); err != nil {
		return 0, nil, errors.New(`"server.webSocketsProxy" must be an object`)
	}
	if b, ok := proxy["socketBufferSize"]; ok {
		var n FlexInt
		if err := json.Unmarshal(b, &n); err != nil {
			return 0, nil, fmt.Errorf("line %d: socketBufferSize: %w", lineOf(data, b), err)
		}
		if n < 0 {
			return 0, nil, fmt.Errorf("line %d: socketBufferSize must not be negative", lineOf(data, b))
		}
		bufSize = int(n)
	}
	tunnelsRaw, ok := proxy["tunnels"]
	if !ok {
		return bufSize, nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(tunnelsRaw, &list); err != nil {
		return 0, nil, fmt.Errorf("line %d: \"tunnels\" must be a list of objects", lineOf(data, tunnelsRaw))
	}
	for _, raw := range list {
		entries = append(entries, seedEntry{line: lineOf(data, raw), raw: raw})
	}
	return bufSize, entries, nil
}

// lineOf finds the line on which sub (a slice of data) starts. RawMessage
// values from json.Unmarshal are copies, so it searches for them; the
// first occurrence after the previous ones is good enough for messages.
func lineOf(data, sub []byte) int {
	i := bytes.Index(data, sub)
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// ImportOptions change how ImportSeed works.
type ImportOptions struct {
	// DryRun works out and returns the plan but changes nothing.
	DryRun bool
}

// ImportResult says what an import changed (or, in a dry run, would
// change), tunnel by tunnel in the file's order.
type ImportResult struct {
	Created, Updated, Unchanged []string
	Tunnels                     []ImportedTunnel
	// SocketBufferSize is the imported value, 0 when the file has none;
	// OldSocketBufferSize is the value it replaces.
	SocketBufferSize, OldSocketBufferSize int
	DryRun                                bool
}

// ImportedTunnel is one tunnel entry's outcome.
type ImportedTunnel struct {
	Action        string // "create", "update" or "unchanged"
	Before, After TunnelSpec
	// Changes lists the fields that differ, in a fixed order.
	Changes []FieldChange
	// AccessChanged says the tunnel's userGroups changed.
	AccessChanged bool
	// DefaultAccess says a new tunnel got the default userGroups because
	// the file named none.
	DefaultAccess bool
}

// FieldChange is one field's value before and after.
type FieldChange struct {
	Field, Before, After string
}

// ImportSeed reads the seed's webSocketsProxy JSON and creates or updates
// its tunnels, all or nothing: any broken entry is reported with its line
// and reason and nothing changes. An entry for an existing tunnel changes
// only the fields it carries (a file without "userGroups" never resets a
// tunnel's access); every change of access is listed and audited with
// its before and after.
func (s *Server) ImportSeed(ctx context.Context, actor string, data []byte, opts ImportOptions) (ImportResult, error) {
	res := ImportResult{DryRun: opts.DryRun}
	bufSize, entries, err := parseSeed(data)
	if err != nil {
		return res, &Error{Status: http.StatusBadRequest, Msg: "import refused, nothing changed: " + err.Error()}
	}
	var problems []string
	seen := map[string]int{}
	var put []store.Tunnel
	for i, e := range entries {
		where := fmt.Sprintf("line %d (tunnel %d)", e.line, i+1)
		st, has, err := decodeSeedTunnel(e.raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if st.Context != "" {
			where = fmt.Sprintf("line %d (tunnel %q)", e.line, st.Context)
		}
		old, err := s.st.Tunnel(ctx, st.Context)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, internal(err)
		}
		spec, missing := mergeSeedTunnel(st, has, old, exists)
		if missing != "" {
			problems = append(problems, where+": "+missing)
			continue
		}
		spec, err = s.checkTunnel(ctx, spec)
		if err != nil {
			var he *Error
			if errors.As(err, &he) && he.Fields != nil {
				for _, k := range sortedKeys(he.Fields) {
					name := k
					if k == "socketAddress" {
						name = "socketHost/socketPort"
					}
					problems = append(problems, fmt.Sprintf("%s: %s %s", where, name, he.Fields[k]))
				}
				continue
			}
			return res, err
		}
		key := strings.ToLower(spec.Context)
		if prev, dup := seen[key]; dup {
			problems = append(problems, fmt.Sprintf("%s: context %q is also used by tunnel %d", where, spec.Context, prev))
			continue
		}
		seen[key] = i + 1
		it := ImportedTunnel{Action: "create", After: spec, DefaultAccess: !has["userGroups"]}
		if exists {
			it.Action, it.Before, it.DefaultAccess = "unchanged", specOf(old), false
			it.Changes = specChanges(it.Before, spec)
			if len(it.Changes) > 0 {
				it.Action = "update"
			}
			it.AccessChanged = it.Before.UserGroups != spec.UserGroups
		}
		res.Tunnels = append(res.Tunnels, it)
		switch it.Action {
		case "create":
			res.Created = append(res.Created, spec.Context)
		case "update":
			res.Updated = append(res.Updated, spec.Context)
		default:
			res.Unchanged = append(res.Unchanged, spec.Context)
			continue
		}
		put = append(put, store.Tunnel{Context: spec.Context, SocketAddress: spec.SocketAddress, UserGroups: spec.UserGroups,
			LocalPort: spec.LocalPort, Description: spec.Description})
	}
	if len(problems) > 0 {
		return ImportResult{DryRun: opts.DryRun}, &Error{Status: http.StatusBadRequest, Msg: "import refused, nothing changed:\n  " + strings.Join(problems, "\n  ")}
	}
	if bufSize > 0 {
		res.SocketBufferSize = bufSize
		if v, err := s.st.Setting(ctx, settingSocketBuf); err == nil {
			res.OldSocketBufferSize, _ = strconv.Atoi(v)
		}
	}
	if opts.DryRun {
		return res, nil
	}
	// The audit rows are stored in the transaction that stores the
	// tunnels: an import stopped half-way leaves neither.
	type change struct {
		kind, target  string
		before, after any
	}
	var changes []change
	for _, it := range res.Tunnels {
		switch it.Action {
		case "update":
			changes = append(changes, change{"tunnel.update", it.After.Context, it.Before, it.After})
		case "create":
			changes = append(changes, change{"tunnel.create", it.After.Context, nil, it.After})
		}
	}
	sa, inTx := s.audit.(*storeAudit)
	var events []store.Event
	if inTx {
		for _, c := range changes {
			events = append(events, sa.event(actor, c.kind, c.target, "ok", map[string]any{"before": c.before, "after": c.after}))
		}
	}
	if len(put) > 0 {
		if err := s.st.PutTunnels(ctx, put, events); err != nil {
			return res, internal(err)
		}
	}
	for _, e := range events {
		sa.logEvent(ctx, e)
	}
	if !inTx {
		for _, c := range changes {
			s.audit.AdminChange(ctx, actor, c.kind, c.target, c.before, c.after)
		}
	}
	if bufSize > 0 && bufSize != res.OldSocketBufferSize {
		if err := s.st.SetSetting(ctx, settingSocketBuf, strconv.Itoa(bufSize)); err != nil {
			return res, internal(err)
		}
		s.audit.AdminChange(ctx, actor, "setting.update", "socketBufferSize", res.OldSocketBufferSize, bufSize)
	}
	if len(put) > 0 || bufSize > 0 {
		s.changed(ctx)
		s.recheckLive(ctx, nil)
	}
	return res, nil
}

// decodeSeedTunnel decodes one tunnel entry, refusing unknown keys, and
// says which keys it carries.
func decodeSeedTunnel(raw json.RawMessage) (seedTunnel, map[string]bool, error) {
	var st seedTunnel
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return st, nil, err
	}
	has := map[string]bool{}
	for k, v := range keys {
		// JSON keys match struct fields case-insensitively; name them as
		// the seed does, and count an explicit null as absent.
		if string(v) != "null" {
			has[seedKey(k)] = true
		}
	}
	return st, has, nil
}

// seedKey is the seed's spelling of a tunnel entry's key.
func seedKey(k string) string {
	for _, name := range []string{"context", "socketHost", "socketPort", "userGroups", "localPort", "description"} {
		if strings.EqualFold(k, name) {
			return name
		}
	}
	return k
}

// mergeSeedTunnel is the tunnel an entry describes: for an existing
// tunnel, the fields the entry carries over the ones it has. It returns
// what is missing for a new tunnel ("" when nothing is).
func mergeSeedTunnel(st seedTunnel, has map[string]bool, old store.Tunnel, exists bool) (TunnelSpec, string) {
	spec := TunnelSpec{Context: st.Context, UserGroups: st.UserGroups, LocalPort: int(st.LocalPort), Description: st.Description}
	host, port := st.SocketHost, strconv.Itoa(int(st.SocketPort))
	if !exists {
		if !has["socketHost"] || st.SocketHost == "" {
			return spec, "socketHost is required"
		}
		if !has["socketPort"] {
			return spec, "socketPort is required"
		}
		spec.SocketAddress = net.JoinHostPort(host, port)
		return spec, ""
	}
	oldHost, oldPort, _ := net.SplitHostPort(old.SocketAddress)
	if !has["socketHost"] {
		host = oldHost
	}
	if !has["socketPort"] {
		port = oldPort
	}
	spec.SocketAddress = net.JoinHostPort(host, port)
	if !has["userGroups"] {
		spec.UserGroups = old.UserGroups
	}
	if !has["localPort"] {
		spec.LocalPort = old.LocalPort
	}
	if !has["description"] {
		spec.Description = old.Description
	}
	return spec, ""
}

// specChanges lists the fields of a tunnel that differ.
func specChanges(a, b TunnelSpec) []FieldChange {
	var out []FieldChange
	add := func(field, before, after string) {
		if before != after {
			out = append(out, FieldChange{field, before, after})
		}
	}
	port := func(p int) string {
		if p == 0 {
			return "none"
		}
		return strconv.Itoa(p)
	}
	add("context", a.Context, b.Context)
	add("socketAddress", a.SocketAddress, b.SocketAddress)
	add("userGroups", a.UserGroups, b.UserGroups)
	add("localPort", port(a.LocalPort), port(b.LocalPort))
	add("description", strconv.Quote(a.Description), strconv.Quote(b.Description))
	return out
}

// WritePlan writes what an import changed (or would change) for people:
// one line per tunnel, each changed field with its before and after, and
// every change of access called out.
func (r ImportResult) WritePlan(w io.Writer) {
	for _, it := range r.Tunnels {
		switch it.Action {
		case "create":
			fmt.Fprintf(w, "  create     %s -> %s for %s", it.After.Context, it.After.SocketAddress, it.After.UserGroups)
			if it.DefaultAccess {
				fmt.Fprintf(w, " (the file names no userGroups: every signed-in user)")
			}
			fmt.Fprintln(w)
		case "update":
			fmt.Fprintf(w, "  update     %s\n", it.After.Context)
			for _, c := range it.Changes {
				note := ""
				if c.Field == "userGroups" {
					note = "   <- access changes"
				}
				fmt.Fprintf(w, "               %s: %s -> %s%s\n", c.Field, c.Before, c.After, note)
			}
		default:
			fmt.Fprintf(w, "  unchanged  %s\n", it.After.Context)
		}
	}
	if r.SocketBufferSize > 0 && r.SocketBufferSize != r.OldSocketBufferSize {
		fmt.Fprintf(w, "  socketBufferSize: %d -> %d\n", r.OldSocketBufferSize, r.SocketBufferSize)
	}
	verb := "imported"
	if r.DryRun {
		verb = "dry run, nothing changed; would import"
	}
	fmt.Fprintf(w, "%s %d tunnel(s): %d created, %d updated, %d unchanged\n", verb,
		len(r.Tunnels), len(r.Created), len(r.Updated), len(r.Unchanged))
}

// ExportSeed writes every tunnel in the seed's shape.
func (s *Server) ExportSeed(ctx context.Context) ([]byte, error) {
	ts, err := s.st.Tunnels(ctx)
	if err != nil {
		return nil, internal(err)
	}
	var f seedFile
	f.Server.WebSocketsProxy.SocketBufferSize = FlexInt(s.socketBufferSize(ctx))
	f.Server.WebSocketsProxy.Tunnels = []seedTunnel{}
	for _, t := range ts {
		host, port, err := net.SplitHostPort(t.SocketAddress)
		if err != nil {
			return nil, internal(fmt.Errorf("stored tunnel %q has a bad address: %w", t.Context, err))
		}
		p, _ := strconv.Atoi(port)
		f.Server.WebSocketsProxy.Tunnels = append(f.Server.WebSocketsProxy.Tunnels, seedTunnel{Context: t.Context, SocketHost: host,
			SocketPort: FlexInt(p), UserGroups: t.UserGroups, LocalPort: FlexInt(t.LocalPort), Description: t.Description})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, internal(err)
	}
	return append(b, '\n'), nil
}

// MarshalJSON writes FlexInt as a string, as the seed does.
func (n FlexInt) MarshalJSON() ([]byte, error) { return json.Marshal(strconv.Itoa(int(n))) }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortedStrings(keys)
}
