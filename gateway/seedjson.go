package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/porthole/porthole/gateway/store"
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
		return 0, nil, describeJSONError(data, err)
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

// ImportResult says what an import changed.
type ImportResult struct {
	Created, Updated []string
	SocketBufferSize int
}

// ImportSeed reads the seed's webSocketsProxy JSON and creates or replaces
// its tunnels, all or nothing: any broken entry is reported with its line
// and reason and nothing changes.
func (s *Server) ImportSeed(ctx context.Context, actor string, data []byte) (ImportResult, error) {
	var res ImportResult
	bufSize, entries, err := parseSeed(data)
	if err != nil {
		return res, &Error{Status: http.StatusBadRequest, Msg: "import refused, nothing changed: " + err.Error()}
	}
	var problems []string
	seen := map[string]int{}
	var ts []store.Tunnel
	for i, e := range entries {
		var st seedTunnel
		dec := json.NewDecoder(bytes.NewReader(e.raw))
		dec.DisallowUnknownFields()
		where := fmt.Sprintf("line %d (tunnel %d)", e.line, i+1)
		if err := dec.Decode(&st); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		if st.Context != "" {
			where = fmt.Sprintf("line %d (tunnel %q)", e.line, st.Context)
		}
		if st.SocketHost == "" {
			problems = append(problems, where+": socketHost is required")
			continue
		}
		spec := TunnelSpec{Context: st.Context, SocketAddress: net.JoinHostPort(st.SocketHost, strconv.Itoa(int(st.SocketPort))),
			UserGroups: st.UserGroups, LocalPort: int(st.LocalPort), Description: st.Description}
		spec, err := s.checkTunnel(ctx, spec)
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
		ts = append(ts, store.Tunnel{Context: spec.Context, SocketAddress: spec.SocketAddress, UserGroups: spec.UserGroups,
			LocalPort: spec.LocalPort, Description: spec.Description})
	}
	if len(problems) > 0 {
		return res, &Error{Status: http.StatusBadRequest, Msg: "import refused, nothing changed:\n  " + strings.Join(problems, "\n  ")}
	}
	before := map[string]store.Tunnel{}
	for _, t := range ts {
		if old, err := s.st.Tunnel(ctx, t.Context); err == nil {
			before[strings.ToLower(t.Context)] = old
		}
	}
	if err := s.st.PutTunnels(ctx, ts); err != nil {
		return res, internal(err)
	}
	if bufSize > 0 {
		if err := s.st.SetSetting(ctx, settingSocketBuf, strconv.Itoa(bufSize)); err != nil {
			return res, internal(err)
		}
		res.SocketBufferSize = bufSize
	}
	for _, t := range ts {
		if old, ok := before[strings.ToLower(t.Context)]; ok {
			res.Updated = append(res.Updated, t.Context)
			s.audit.AdminChange(ctx, actor, "tunnel.update", t.Context, specOf(old), specOf(t))
		} else {
			res.Created = append(res.Created, t.Context)
			s.audit.AdminChange(ctx, actor, "tunnel.create", t.Context, nil, specOf(t))
		}
	}
	s.changed(ctx)
	s.recheckLive(ctx, nil)
	return res, nil
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
