package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/porthole/porthole/wire"
)

func TestAPITokens(t *testing.T) {
	g := startGateway(t)
	admin := g.admin()
	echo := echoServer(t)
	g.addUser(admin, "nightly", "svc@Prod")
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "db", SocketAddress: echo, UserGroups: "svc@Prod"})
	g.mustCall(201, "POST", "/api/v1/admin/tunnels", admin, TunnelSpec{Context: "other", SocketAddress: echo, UserGroups: "svc@Prod"})

	for name, tc := range map[string]struct {
		spec  TokenSpec
		field string
	}{
		"no name":        {TokenSpec{User: "nightly", Tunnels: []string{"db"}}, "name"},
		"no tunnels":     {TokenSpec{Name: "x", User: "nightly"}, "tunnels"},
		"unknown tunnel": {TokenSpec{Name: "x", User: "nightly", Tunnels: []string{"nope"}}, "tunnels"},
		"unknown user":   {TokenSpec{Name: "x", User: "ghost", Tunnels: []string{"db"}}, "user"},
		"too long":       {TokenSpec{Name: "x", User: "nightly", Tunnels: []string{"db"}, ExpiresIn: Duration(400 * 24 * time.Hour)}, "expiresIn"},
		"control chars":  {TokenSpec{Name: "a\nb", User: "nightly", Tunnels: []string{"db"}}, "name"},
	} {
		t.Run(name, func(t *testing.T) {
			status, data, _ := g.call("POST", "/api/v1/admin/tokens", admin, tc.spec)
			if e := errBody(t, data); status != 400 || e.Fields[tc.field] == "" {
				t.Fatalf("%d %s, want 400 on %s", status, data, tc.field)
			}
		})
	}
	if n := g.auditedCount("token.create"); n != 0 {
		t.Fatalf("refused tokens were audited as made: %d", n)
	}

	var made TokenInfo
	json.Unmarshal(g.mustCall(201, "POST", "/api/v1/admin/tokens", admin, TokenSpec{Name: "nightly export", User: "nightly", Tunnels: []string{"DB"}, ExpiresIn: Duration(48 * time.Hour)}), &made)
	if made.Token == "" || made.User != "nightly" || len(made.Tunnels) != 1 || made.Tunnels[0] != "db" || made.CreatedBy != "admin" {
		t.Fatalf("made %+v", made)
	}
	var list []TokenInfo
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/admin/tokens", admin, nil), &list)
	if len(list) != 1 || list[0].Token != "" || list[0].Name != "nightly export" {
		t.Fatalf("token list %+v: the secret must be shown only once", list)
	}

	tok := made.Token
	var tunnels []UserTunnel
	json.Unmarshal(g.mustCall(200, "GET", "/api/v1/tunnels", tok, nil), &tunnels)
	if len(tunnels) != 1 || tunnels[0].Context != "db" {
		t.Fatalf("the token sees %+v, want only db", tunnels)
	}
	if _, resp, err := g.dialTunnel("other", tok, nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("a tunnel outside the scope: %v %v", resp, err)
	}
	// Renewal keeps the expiry; signing out keeps the token.
	var renewed LoginResponse
	json.Unmarshal(g.mustCall(200, "POST", "/api/v1/renew", tok, nil), &renewed)
	if !renewed.ExpiresAt.Equal(made.ExpiresAt.Truncate(time.Second)) {
		t.Fatalf("renewal moved the expiry from %s to %s", made.ExpiresAt, renewed.ExpiresAt)
	}
	g.mustCall(200, "POST", "/api/v1/logout", tok, nil)
	c := g.openStream("db", tok)
	c.Write([]byte("hi"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HI" {
		t.Fatalf("echo with the token: %q %v", buf, err)
	}
	errc := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, c); errc <- err }()

	// An administrator's token never administers.
	var adminTok TokenInfo
	json.Unmarshal(g.mustCall(201, "POST", "/api/v1/admin/tokens", admin, TokenSpec{Name: "all", Tunnels: []string{"*"}}), &adminTok)
	if status, _, _ := g.call("GET", "/api/v1/admin/users", adminTok.Token, nil); status != 403 {
		t.Fatalf("an admin's token reached the admin API: %d", status)
	}

	g.mustCall(204, "DELETE", "/api/v1/admin/tokens/"+made.ID, admin, nil)
	select {
	case err := <-errc:
		var ce *wire.CloseError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "revoked") {
			t.Fatalf("tunnel ended with %v, want the revocation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the token's tunnel outlived its revocation")
	}
	if status, _, _ := g.call("GET", "/api/v1/tunnels", tok, nil); status != 401 {
		t.Fatalf("a revoked token still works: %d", status)
	}
	if status, _, _ := g.call("DELETE", "/api/v1/admin/tokens/nope", admin, nil); status != 404 {
		t.Fatalf("revoking an unknown token: %d", status)
	}
	if g.auditedCount("token.create") != 2 || g.auditedCount("token.revoke") != 1 {
		t.Fatal("tokens made and revoked are audited")
	}
}
