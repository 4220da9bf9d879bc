package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/porthole/porthole/connstr"
	"github.com/porthole/porthole/gateway/acl"
	"github.com/porthole/porthole/gateway/store"
	"github.com/porthole/porthole/internal/format"
	"github.com/porthole/porthole/wire"
)

// The admin portal: server-rendered pages over the same admin operations
// as the JSON API (service.go), embedded in the binary, no external assets.

//go:embed web
var webFS embed.FS

// portalPages are the templates, each parsed with the layout.
var portalPages = []string{"login", "tunnels", "tunnel_form", "connections", "confirm", "users", "user_form",
	"groups", "environments", "audit", "my", "account", "error", "directory", "tokens"}

// portalFuncs are the templates' functions; times are shown against now,
// the gateway's clock.
func portalFuncs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"ago":   func(t time.Time) string { return humanDuration(now().Sub(t)) + " ago" },
		"bytes": format.Bytes,
		"details": func(d map[string]any) string {
			b, _ := json.Marshal(d)
			return string(b)
		},
	}
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func loadPortal(now func() time.Time) (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	funcs := portalFuncs(now)
	for _, name := range portalPages {
		t, err := template.New(name).Funcs(funcs).ParseFS(webFS, "web/templates/layout.html", "web/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("portal template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every portal template gets.
type page struct {
	Title string
	Nav   string
	User  *pageUser
	CSRF  string
	Flash string
	Data  any
}

type pageUser struct {
	Name  string
	Admin bool
}

// portalHeaders are the security headers of every portal response.
func portalHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// render writes a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, pg page) {
	if c, err := r.Cookie(flashCookie); err == nil && pg.Flash == "" {
		if v, err := url.QueryUnescape(c.Value); err == nil {
			pg.Flash = v
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", pg); err != nil {
		s.log.Error("render portal page", "page", name, "err", err)
		http.Error(w, "internal error; see the gateway log", http.StatusInternalServerError)
		return
	}
	portalHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

const flashCookie = "porthole_flash"

// redirect sends the browser to path with a message for the next page.
func redirect(w http.ResponseWriter, r *http.Request, path, flash string) {
	if flash != "" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(flash), Path: "/", MaxAge: 60,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// csrfToken is bound to the session: HMAC of its id under the CSRF key.
func (s *Server) csrfToken(session string) string {
	m := hmac.New(sha256.New, *s.csrfKey.Load())
	m.Write([]byte("csrf:" + session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// portalHandler is a portal page handler with its signed-in user. An
// error it returns is answered by the portal's one error writer
// (portalFail): logged when it is the gateway's fault, with Retry-After
// when it says when to come back.
type portalHandler func(w http.ResponseWriter, r *http.Request, p *principal, pg page) error

// portal wraps a page: it needs a signed-in user (else the sign-in page),
// an administrator when admin is set (else 403), and a valid CSRF token on
// every POST.
func (s *Server) portal(admin bool, h portalHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			if r.Method == http.MethodGet {
				redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), "")
				return
			}
			s.errorPage(w, r, nil, http.StatusUnauthorized, "Signed out", "Your session has ended. Sign in again.")
			return
		}
		pg := page{User: &pageUser{Name: p.user.Username, Admin: p.admin}, CSRF: s.csrfToken(p.session)}
		if admin && !p.admin {
			s.errorPage(w, r, &pg, http.StatusForbidden, "Administrators only", "Only members of admin@ROOT may open this page.")
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				s.errorPage(w, r, &pg, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(pg.CSRF)) {
				s.errorPage(w, r, &pg, http.StatusForbidden, "Form expired", "This form was not sent by this page (or your session changed). Go back, reload and try again.")
				return
			}
		}
		if err := h(w, r, p, pg); err != nil {
			s.portalFail(w, r, &pg, err)
		}
	}
}

// portalFail answers a page whose handler failed with err: the error page
// with the status err carries (500 for an error that is not an *Error),
// Retry-After, and a log line for the gateway's own faults (portalError).
func (s *Server) portalFail(w http.ResponseWriter, r *http.Request, pg *page, err error) {
	var he *Error
	if !errors.As(err, &he) {
		he = internal(err)
	}
	setRetryAfter(w, he)
	_, msg := s.portalError(r, he)
	s.errorPage(w, r, pg, he.Status, http.StatusText(he.Status), msg)
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, pg *page, status int, heading, msg string) {
	if pg == nil {
		pg = &page{}
	}
	pg.Title = heading
	pg.Data = map[string]string{"Heading": heading, "Message": msg}
	s.render(w, r, status, "error", *pg)
}

// portalError turns an operation's error into (field reasons, message)
// for a page; an error that is the gateway's fault (5xx, or not an
// *Error) is logged with its cause, since the page only says "see its log".
func (s *Server) portalError(r *http.Request, err error) (map[string]string, string) {
	var he *Error
	if !errors.As(err, &he) || he.Status >= 500 {
		s.log.Error("portal operation failed", "path", r.URL.Path, "err", err)
	}
	if errors.As(err, &he) {
		if he.Status >= 500 {
			return nil, "Something went wrong on the gateway; see its log."
		}
		if he.Fields != nil && he.Status != http.StatusConflict {
			return he.Fields, "Please correct the fields marked below."
		}
		if he.Fields != nil {
			return he.Fields, upperFirst(he.Msg) + "."
		}
		return nil, upperFirst(he.Msg) + "."
	}
	return nil, "Something went wrong on the gateway; see its log."
}

// statusOf is the HTTP status an operation's error carries, or def.
func statusOf(err error, def int) int {
	var he *Error
	if errors.As(err, &he) {
		return he.Status
	}
	return def
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Server) portalRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(webFS, "web/static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /{$}", s.portalHome)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginSubmit)
	mux.HandleFunc("POST /logout", s.portal(false, s.logoutSubmit))
	mux.HandleFunc("GET /my", s.portal(false, s.myPage))
	mux.HandleFunc("GET /account", s.portal(false, s.accountPage))
	mux.HandleFunc("POST /account", s.portal(false, s.accountPage))
	mux.HandleFunc("POST /account/second-factor", s.portal(false, s.secondFactorBegin))
	mux.HandleFunc("POST /account/second-factor/confirm", s.portal(false, s.secondFactorConfirm))
	mux.HandleFunc("GET /directory", s.portal(true, s.directoryPage))
	mux.HandleFunc("POST /directory", s.portal(true, s.directoryPage))
	mux.HandleFunc("GET /tokens", s.portal(true, s.tokensPage))
	mux.HandleFunc("POST /tokens", s.portal(true, s.tokensPage))
	mux.HandleFunc("GET /tunnels", s.portal(true, s.tunnelsPage))
	mux.HandleFunc("GET /tunnels/new", s.portal(true, s.tunnelFormPage))
	mux.HandleFunc("POST /tunnels/new", s.portal(true, s.tunnelFormSubmit))
	mux.HandleFunc("GET /tunnels/preview", s.portal(true, s.previewFragment))
	mux.HandleFunc("GET /tunnels/{context}/edit", s.portal(true, s.tunnelFormPage))
	mux.HandleFunc("POST /tunnels/{context}/edit", s.portal(true, s.tunnelFormSubmit))
	mux.HandleFunc("GET /tunnels/{context}/connections", s.portal(true, s.connectionsPage))
	mux.HandleFunc("GET /tunnels/{context}/delete", s.portal(true, s.confirmDelete("tunnel")))
	mux.HandleFunc("POST /tunnels/{context}/delete", s.portal(true, s.deleteSubmit("tunnel")))
	mux.HandleFunc("POST /connections/{id}/disconnect", s.portal(true, s.disconnectSubmit))
	mux.HandleFunc("GET /users", s.portal(true, s.usersPage))
	mux.HandleFunc("GET /users/new", s.portal(true, s.userFormPage))
	mux.HandleFunc("POST /users/new", s.portal(true, s.userFormSubmit))
	mux.HandleFunc("GET /users/{username}/edit", s.portal(true, s.userFormPage))
	mux.HandleFunc("POST /users/{username}/edit", s.portal(true, s.userFormSubmit))
	mux.HandleFunc("GET /users/{username}/delete", s.portal(true, s.confirmDelete("user")))
	mux.HandleFunc("POST /users/{username}/delete", s.portal(true, s.deleteSubmit("user")))
	mux.HandleFunc("GET /groups", s.portal(true, s.groupsPage))
	mux.HandleFunc("POST /groups", s.portal(true, s.groupsPage))
	mux.HandleFunc("GET /groups/{group}/delete", s.portal(true, s.confirmDelete("group")))
	mux.HandleFunc("POST /groups/{group}/delete", s.portal(true, s.deleteSubmit("group")))
	mux.HandleFunc("GET /environments", s.portal(true, s.environmentsPage))
	mux.HandleFunc("POST /environments", s.portal(true, s.environmentsPage))
	mux.HandleFunc("GET /environments/{name}/delete", s.portal(true, s.confirmDelete("environment")))
	mux.HandleFunc("POST /environments/{name}/delete", s.portal(true, s.deleteSubmit("environment")))
	mux.HandleFunc("GET /audit", s.portal(true, s.auditPage))
	mux.HandleFunc("GET /audit/export", s.portal(true, s.auditExport))
}

func (s *Server) portalHome(w http.ResponseWriter, r *http.Request) {
	p, err := s.authenticate(r)
	switch {
	case err != nil:
		redirect(w, r, "/login", "")
	case p.admin:
		redirect(w, r, "/tunnels", "")
	default:
		redirect(w, r, "/my", "")
	}
}

type loginData struct {
	Username, Error, Next string
	// NeedCode shows the second-factor code field.
	NeedCode bool
}

// safeNext keeps a post-sign-in redirect on this site.
// safeNext is where to go after signing in: next when it is a clean path
// on this gateway, else "/". Browsers drop tabs and line breaks from URLs
// and read '\\' as '/', so "/\t/evil.example" would leave the site: any
// control character, space or backslash is refused, as is a "//" start.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 || strings.HasPrefix(next, "//") {
		return "/"
	}
	for _, r := range next {
		if r <= ' ' || r == 0x7f || r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", page{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, nil, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	d := loginData{Username: r.PostForm.Get("username"), Next: safeNext(r.PostForm.Get("next"))}
	resp, err := s.signIn(r.Context(), credentials{username: d.Username, password: r.PostForm.Get("password"), otp: r.PostForm.Get("otp")}, clientAddr(r))
	if err != nil {
		status := statusOf(err, http.StatusUnauthorized)
		var he *Error
		if errors.As(err, &he) {
			setRetryAfter(w, he)
		}
		_, d.Error = s.portalError(r, err)
		if he != nil && he.Fields != nil {
			d.Error = "Enter your user name and password."
		}
		if he != nil && he.Fields["otp"] != "" {
			// The password was right (or the code wrong): ask for both
			// again, with the code.
			d.NeedCode, d.Error = true, he.Msg+"; enter your password again with it."
		}
		s.render(w, r, status, "login", page{Title: "Sign in", Data: d})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: wire.SessionCookie, Value: resp.Ticket, Path: "/", Expires: resp.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	next := d.Next
	if next == "/" {
		next = "/my"
		if resp.Admin {
			next = "/tunnels"
		}
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	if err := s.endSession(r.Context(), p); err != nil {
		s.log.Error("sign out", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: wire.SessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	redirect(w, r, "/login", "You are signed out.")
	return nil
}

// kindOf guesses the database behind a tunnel from its target port.
func kindOf(t store.Tunnel) connstr.Kind {
	a, err := acl.ParseSocketAddress(t.SocketAddress)
	if err != nil {
		return connstr.Unknown
	}
	return connstr.Guess(a.Port)
}

type myTunnel struct {
	Context, Description string
	LocalPort            int
	Examples             []connstr.Example
}

func (s *Server) myPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	ts, err := s.st.Tunnels(r.Context())
	if err != nil {
		return internal(err)
	}
	var mine []myTunnel
	for _, t := range ts {
		if s.mayUse(p, t) {
			mine = append(mine, myTunnel{Context: t.Context, Description: t.Description, LocalPort: t.LocalPort,
				Examples: connstr.For(kindOf(t), t.LocalPort)})
		}
	}
	pg.Title, pg.Nav = "My tunnels", "my"
	pg.Data = map[string]any{"Tunnels": mine}
	s.render(w, r, http.StatusOK, "my", pg)
	return nil
}

// accountForm is the Account page's password form after a failed try.
type accountForm struct {
	Error  string
	Fields map[string]string
	// Directory: the account's password is the directory's.
	Directory    bool
	SecondFactor bool
	// Setup is a second factor being set up, SetupQR its QR code.
	Setup     *SecondFactorSetup
	SetupQR   template.URL
	CodeError string
}

// accountPage lets every user change their own password.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	pg.Title, pg.Nav = "Account", "account"
	f := s.accountState(p)
	status := http.StatusOK
	if r.Method == http.MethodPost && !f.Directory {
		ch := PasswordChange{CurrentPassword: r.PostForm.Get("currentPassword"), NewPassword: r.PostForm.Get("newPassword")}
		var err error
		if ch.NewPassword != r.PostForm.Get("repeat") {
			err = invalid(map[string]string{"repeat": "The two new passwords differ"})
		} else {
			err = s.ChangeOwnPassword(r.Context(), p, ch, clientAddr(r))
		}
		if err == nil {
			redirect(w, r, "/account", "Your password was changed; your other sessions were signed out.")
			return nil
		}
		status = statusOf(err, http.StatusBadRequest)
		var he *Error
		if errors.As(err, &he) {
			setRetryAfter(w, he)
		}
		fields, msg := s.portalError(r, err)
		if fields != nil {
			f.Fields, msg = fields, "Please correct the fields marked below."
		}
		f.Error = msg
	}
	pg.Data = f
	s.render(w, r, status, "account", pg)
	return nil
}

func (s *Server) tunnelsPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	ts, err := s.Tunnels(r.Context())
	if err != nil {
		return internal(err)
	}
	pg.Title, pg.Nav = "Tunnels", "tunnels"
	pg.Data = map[string]any{"Tunnels": ts}
	s.render(w, r, http.StatusOK, "tunnels", pg)
	return nil
}

// preview says who the patterns admit.
type preview struct {
	Users []string
	Error string
}

// previewAccess lists the enabled users the patterns admit, with the same
// matcher the proxy uses.
func (s *Server) previewAccess(ctx context.Context, patterns string) preview {
	if patterns == "" {
		patterns = acl.DefaultPatterns
	}
	ps, err := acl.ParsePatterns(patterns)
	if err != nil {
		return preview{Error: "Fix the user groups to see who can reach this tunnel."}
	}
	users, err := s.st.Users(ctx)
	if err != nil {
		return preview{Error: "The gateway could not read its users."}
	}
	var out []string
	for _, u := range users {
		if !u.Disabled && ps.Allows(groupsOf(u)) {
			out = append(out, u.Username)
		}
	}
	return preview{Users: out}
}

func (s *Server) previewFragment(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	var buf bytes.Buffer
	if err := s.pages["tunnel_form"].ExecuteTemplate(&buf, "preview", s.previewAccess(r.Context(), r.URL.Query().Get("userGroups"))); err != nil {
		s.log.Error("render the access preview", "err", err)
		http.Error(w, "internal error; see the gateway log", http.StatusInternalServerError)
		return nil
	}
	portalHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
	return nil
}

type tunnelForm struct {
	Editing   string
	Spec      TunnelSpec
	LocalPort string
	Fields    map[string]string
	Error     string
	Test      string
	TestOK    bool
	Preview   preview
	// Denied lists the addresses the gateway refuses as targets.
	Denied string
}

func (s *Server) tunnelFormPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	f := tunnelForm{Spec: TunnelSpec{UserGroups: acl.DefaultPatterns}}
	if name := r.PathValue("context"); name != "" {
		t, err := s.st.Tunnel(r.Context(), name)
		if err != nil {
			return storeErr(err, fmt.Sprintf("tunnel %q", name))
		}
		f.Editing, f.Spec = t.Context, specOf(t)
		if t.LocalPort > 0 {
			f.LocalPort = strconv.Itoa(t.LocalPort)
		}
	}
	s.renderTunnelForm(w, r, pg, http.StatusOK, f)
	return nil
}

func (s *Server) renderTunnelForm(w http.ResponseWriter, r *http.Request, pg page, status int, f tunnelForm) {
	f.Preview = s.previewAccess(r.Context(), f.Spec.UserGroups)
	f.Denied = s.deny.String()
	if f.Fields == nil {
		f.Fields = map[string]string{}
	}
	pg.Title, pg.Nav, pg.Data = "Add a new tunnel", "tunnels", f
	if f.Editing != "" {
		pg.Title = "Edit tunnel " + f.Editing
	}
	s.render(w, r, status, "tunnel_form", pg)
}

func (s *Server) tunnelFormSubmit(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	f := tunnelForm{Editing: r.PathValue("context"), LocalPort: strings.TrimSpace(r.PostForm.Get("localPort")), Fields: map[string]string{},
		Spec: TunnelSpec{Context: strings.TrimSpace(r.PostForm.Get("context")), SocketAddress: strings.TrimSpace(r.PostForm.Get("socketAddress")),
			UserGroups: r.PostForm.Get("userGroups"), Description: r.PostForm.Get("description")}}
	if f.LocalPort != "" {
		n, err := strconv.Atoi(f.LocalPort)
		if err != nil || n < 1 || n > 65535 {
			f.Fields["localPort"] = "must be a number from 1 to 65535, or empty"
		}
		f.Spec.LocalPort = n
	}
	if r.PostForm.Get("action") == "test" {
		f.Test, f.TestOK = s.testDial(r.Context(), f.Spec.SocketAddress)
		s.renderTunnelForm(w, r, pg, http.StatusOK, f)
		return nil
	}
	if len(f.Fields) > 0 {
		// Let the operation add its own reasons for the other fields.
		_, err := s.checkTunnel(r.Context(), f.Spec)
		if fields, _ := s.portalError(r, err); fields != nil {
			for k, v := range fields {
				if k != "localPort" {
					f.Fields[k] = v
				}
			}
		}
		f.Error = "Please correct the fields marked below."
		s.renderTunnelForm(w, r, pg, http.StatusBadRequest, f)
		return nil
	}
	var err error
	if f.Editing == "" {
		_, err = s.CreateTunnel(r.Context(), p.user.Username, f.Spec)
	} else {
		_, err = s.UpdateTunnel(r.Context(), p.user.Username, f.Editing, TunnelPatch{Context: &f.Spec.Context,
			SocketAddress: &f.Spec.SocketAddress, UserGroups: &f.Spec.UserGroups, LocalPort: &f.Spec.LocalPort, Description: &f.Spec.Description})
	}
	if err != nil {
		status := statusOf(err, http.StatusBadRequest)
		f.Fields, f.Error = s.portalError(r, err)
		s.renderTunnelForm(w, r, pg, status, f)
		return nil
	}
	verb := "created; it works now"
	if f.Editing != "" {
		verb = "saved; the change applies now"
	}
	redirect(w, r, "/tunnels", fmt.Sprintf("Tunnel %s %s.", f.Spec.Context, verb))
	return nil
}

// testDial asks whether the gateway reaches addr, and how fast.
func (s *Server) testDial(ctx context.Context, addr string) (string, bool) {
	a, err := acl.ParseSocketAddress(addr)
	if err != nil {
		return "Socket address " + err.Error() + ".", false
	}
	dctx, cancel := context.WithTimeout(ctx, min(time.Duration(s.cfg.DialTimeout), 5*time.Second))
	defer cancel()
	start := time.Now()
	c, err := s.dialChecked(dctx, a.String())
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Sprintf("Not reachable: no answer within %s.", time.Since(start).Round(time.Second)), false
		}
		return fmt.Sprintf("Not reachable from the gateway: %s.", dialReason(err)), false
	}
	c.Close()
	ms := float64(time.Since(start).Microseconds()) / 1000
	return fmt.Sprintf("Reachable in %.1f ms.", ms), true
}

type liveView struct {
	ID uint64 `json:"id"`
	// Gateway holds the connection (several gateways share a store).
	Gateway  string    `json:"gateway"`
	Context  string    `json:"context"`
	User     string    `json:"user"`
	Since    time.Time `json:"since"`
	Remote   string    `json:"remote"`
	Up, Down int64
}

func (s *Server) connectionsPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	t, err := s.st.Tunnel(r.Context(), r.PathValue("context"))
	if err != nil {
		return storeErr(err, fmt.Sprintf("tunnel %q", r.PathValue("context")))
	}
	conns := s.LiveConnections(r.Context(), t.Context)
	pg.Title, pg.Nav = "Live connections: "+t.Context, "tunnels"
	pg.Data = map[string]any{"Tunnel": specOf(t), "Conns": conns, "Shared": s.cfg.IsPostgres()}
	s.render(w, r, http.StatusOK, "connections", pg)
	return nil
}

// Disconnect closes one live connection on behalf of an administrator.
func (s *Server) Disconnect(ctx context.Context, actor string, id uint64) (string, error) {
	conns := s.liveSnapshot(func(lc *liveConn) bool { return lc.id == id })
	if len(conns) == 0 {
		return "", errorf(http.StatusNotFound, "that connection has already ended")
	}
	lc := conns[0]
	lc.cancel(&wire.CloseError{Code: wire.CloseDisconnected, Reason: "disconnected by an administrator"})
	s.audit.AdminChange(ctx, actor, "connection.disconnect", lc.context,
		map[string]any{"id": lc.id, "user": lc.user, "since": lc.started.UTC(), "bytesUp": lc.up.Load(), "bytesDown": lc.down.Load()}, nil)
	return lc.context, nil
}

func (s *Server) disconnectSubmit(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	back := "/tunnels/" + url.PathEscape(r.PostForm.Get("context")) + "/connections"
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		redirect(w, r, back, "No such connection.")
		return nil
	}
	gw := r.PostForm.Get("gateway")
	if err := s.DisconnectAnywhere(r.Context(), p.user.Username, gw, id); err != nil {
		_, msg := s.portalError(r, err)
		redirect(w, r, back, msg)
		return nil
	}
	if gw != "" && gw != s.cfg.Name {
		redirect(w, r, back, "Gateway "+gw+" was asked to close the connection; the list shows it within a few seconds.")
		return nil
	}
	redirect(w, r, back, "The connection was closed.")
	return nil
}

type confirmData struct {
	Question, Detail, Button, Back, Error string
}

// confirmDelete asks before deleting a tunnel, user, group or environment.
func (s *Server) confirmDelete(what string) portalHandler {
	return func(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
		d := s.deleteQuestion(r, what)
		pg.Title, pg.Nav, pg.Data = d.Question, navOf(what), d
		s.render(w, r, http.StatusOK, "confirm", pg)
		return nil
	}
}

func navOf(what string) string {
	if what == "environment" {
		return "environments"
	}
	return what + "s"
}

func (s *Server) deleteQuestion(r *http.Request, what string) confirmData {
	switch what {
	case "tunnel":
		name := r.PathValue("context")
		n := len(s.liveSnapshot(func(lc *liveConn) bool { return strings.EqualFold(lc.context, name) }))
		detail := "Clients can no longer open it."
		if n > 0 {
			detail = fmt.Sprintf("Its %d open connection(s) will be closed, and clients can no longer open it.", n)
		}
		return confirmData{Question: fmt.Sprintf("Delete tunnel %s?", name), Detail: detail, Button: "Delete tunnel", Back: "/tunnels"}
	case "user":
		name := r.PathValue("username")
		return confirmData{Question: fmt.Sprintf("Delete user %s?", name), Detail: "They are signed out everywhere and their open tunnels close.", Button: "Delete user", Back: "/users"}
	case "group":
		name := r.PathValue("group")
		return confirmData{Question: fmt.Sprintf("Delete group %s?", name), Detail: "Its members lose it and are signed out.", Button: "Delete group", Back: "/groups"}
	default:
		name := r.PathValue("name")
		return confirmData{Question: fmt.Sprintf("Delete environment %s?", name), Detail: "Only an environment without groups can be deleted.", Button: "Delete environment", Back: "/environments"}
	}
}

func (s *Server) deleteSubmit(what string) portalHandler {
	return func(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
		ctx, actor := r.Context(), p.user.Username
		var err error
		var name string
		switch what {
		case "tunnel":
			name = r.PathValue("context")
			err = s.DeleteTunnel(ctx, actor, name)
		case "user":
			name = r.PathValue("username")
			err = s.DeleteUser(ctx, actor, name)
		case "group":
			name = r.PathValue("group")
			err = s.DeleteGroupNamed(ctx, actor, name)
		default:
			name = r.PathValue("name")
			err = s.DeleteEnvironment(ctx, actor, name)
		}
		d := s.deleteQuestion(r, what)
		if err != nil {
			status := statusOf(err, http.StatusConflict)
			_, d.Error = s.portalError(r, err)
			pg.Title, pg.Nav, pg.Data = d.Question, navOf(what), d
			s.render(w, r, status, "confirm", pg)
			return nil
		}
		redirect(w, r, d.Back, fmt.Sprintf("Deleted %s %s.", what, name))
		return nil
	}
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	us, err := s.st.Users(r.Context())
	if err != nil {
		return internal(err)
	}
	infos := make([]UserInfo, len(us))
	for i, u := range us {
		infos[i] = userInfo(u)
	}
	pg.Title, pg.Nav, pg.Data = "Users", "users", map[string]any{"Users": infos}
	s.render(w, r, http.StatusOK, "users", pg)
	return nil
}

type groupChoice struct {
	Name    string
	Checked bool
}

type userForm struct {
	Editing   string
	Username  string
	Disabled  bool
	AllGroups []groupChoice
	Fields    map[string]string
	Error     string
}

func (s *Server) groupChoices(ctx context.Context, checked []string) []groupChoice {
	gs, _ := s.st.Groups(ctx)
	var out []groupChoice
	for _, g := range gs {
		name := g.Name + "@" + g.Environment
		out = append(out, groupChoice{Name: name, Checked: slices.ContainsFunc(checked, func(c string) bool { return strings.EqualFold(c, name) })})
	}
	return out
}

func (s *Server) userFormPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	f := userForm{}
	if name := r.PathValue("username"); name != "" {
		u, err := s.st.User(r.Context(), name)
		if err != nil {
			return storeErr(err, fmt.Sprintf("user %q", name))
		}
		info := userInfo(u)
		f.Editing, f.Disabled = u.Username, u.Disabled
		f.AllGroups = s.groupChoices(r.Context(), info.Groups)
	} else {
		f.AllGroups = s.groupChoices(r.Context(), nil)
	}
	s.renderUserForm(w, r, pg, http.StatusOK, f)
	return nil
}

func (s *Server) renderUserForm(w http.ResponseWriter, r *http.Request, pg page, status int, f userForm) {
	if f.Fields == nil {
		f.Fields = map[string]string{}
	}
	pg.Title, pg.Nav, pg.Data = "Add a user", "users", f
	if f.Editing != "" {
		pg.Title = "Edit user " + f.Editing
	}
	s.render(w, r, status, "user_form", pg)
}

func (s *Server) userFormSubmit(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	groups := r.PostForm["groups"]
	if groups == nil {
		groups = []string{}
	}
	f := userForm{Editing: r.PathValue("username"), Username: strings.TrimSpace(r.PostForm.Get("username")),
		Disabled: r.PostForm.Get("disabled") != "", AllGroups: s.groupChoices(r.Context(), groups)}
	password := r.PostForm.Get("password")
	var err error
	if f.Editing == "" {
		_, err = s.CreateUser(r.Context(), p.user.Username, UserSpec{Username: f.Username, Password: password, Groups: groups})
	} else {
		patch := UserPatch{Groups: &groups, Disabled: &f.Disabled}
		if password != "" {
			patch.Password = &password
		}
		_, err = s.UpdateUser(r.Context(), p.user.Username, f.Editing, patch)
	}
	if err != nil {
		status := statusOf(err, http.StatusBadRequest)
		f.Fields, f.Error = s.portalError(r, err)
		s.renderUserForm(w, r, pg, status, f)
		return nil
	}
	name := f.Username
	if f.Editing != "" {
		name = f.Editing
	}
	redirect(w, r, "/users", fmt.Sprintf("User %s saved.", name))
	return nil
}

func (s *Server) groupsPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	data := map[string]any{"Fields": map[string]string{}}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		name, env := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("environment")
		if err := s.CreateGroup(r.Context(), p.user.Username, name, env); err != nil {
			status = statusOf(err, http.StatusBadRequest)
			fields, msg := s.portalError(r, err)
			if fields != nil {
				data["Fields"] = fields
			}
			data["Error"], data["Name"], data["Environment"] = msg, name, env
		} else {
			redirect(w, r, "/groups", fmt.Sprintf("Group %s@%s added.", name, env))
			return nil
		}
	}
	gs, err := s.groupInfos(r.Context())
	if err != nil {
		return internal(err)
	}
	envs, _ := s.st.Environments(r.Context())
	var names []string
	for _, e := range envs {
		names = append(names, e.Name)
	}
	data["Groups"], data["Environments"] = gs, names
	pg.Title, pg.Nav, pg.Data = "Groups", "groups", data
	s.render(w, r, status, "groups", pg)
	return nil
}

// groupInfos lists groups with member counts.
func (s *Server) groupInfos(ctx context.Context) ([]GroupInfo, error) {
	gs, err := s.st.Groups(ctx)
	if err != nil {
		return nil, internal(err)
	}
	users, err := s.st.Users(ctx)
	if err != nil {
		return nil, internal(err)
	}
	out := []GroupInfo{}
	for _, g := range gs {
		n := 0
		for _, u := range users {
			if slices.ContainsFunc(u.Groups, func(m store.GroupRef) bool {
				return strings.EqualFold(m.Name, g.Name) && strings.EqualFold(m.Environment, g.Environment)
			}) {
				n++
			}
		}
		out = append(out, GroupInfo{Name: g.Name, Environment: g.Environment, Members: n, CreatedAt: g.CreatedAt})
	}
	return out, nil
}

// environmentInfos lists environments with group counts.
func (s *Server) environmentInfos(ctx context.Context) ([]EnvironmentInfo, error) {
	d, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	out := []EnvironmentInfo{}
	for _, e := range d.envs {
		n := 0
		for _, g := range d.groups {
			if strings.EqualFold(g.Environment, e.Name) {
				n++
			}
		}
		out = append(out, EnvironmentInfo{Name: e.Name, Groups: n, CreatedAt: e.CreatedAt})
	}
	return out, nil
}

func (s *Server) environmentsPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	data := map[string]any{"Fields": map[string]string{}}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		name := strings.TrimSpace(r.PostForm.Get("name"))
		if err := s.CreateEnvironment(r.Context(), p.user.Username, name); err != nil {
			status = statusOf(err, http.StatusBadRequest)
			fields, msg := s.portalError(r, err)
			if fields != nil {
				data["Fields"] = fields
			}
			data["Error"], data["Name"] = msg, name
		} else {
			redirect(w, r, "/environments", fmt.Sprintf("Environment %s added.", name))
			return nil
		}
	}
	envs, err := s.environmentInfos(r.Context())
	if err != nil {
		return internal(err)
	}
	data["Environments"] = envs
	pg.Title, pg.Nav, pg.Data = "Environments", "environments", data
	s.render(w, r, status, "environments", pg)
	return nil
}

// auditKinds are the event kinds the audit filter offers.
var auditKinds = []string{"tunnel.", "tunnel.open", "tunnel.close", "tunnel.denied", "tunnel.create", "tunnel.update", "tunnel.delete",
	"user.", "group.", "environment.", "connection.disconnect", "auth.", "auth.login", "auth.login_failed", "auth.logout"}

const auditPageSize = 50

func auditFilter(q url.Values) store.EventFilter {
	f := store.EventFilter{Actor: strings.TrimSpace(q.Get("actor")), Target: strings.TrimSpace(q.Get("target")), Kind: q.Get("kind")}
	if n, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && n > 0 {
		f.BeforeID = n
	}
	return f
}

func filterQuery(f store.EventFilter) url.Values {
	q := url.Values{}
	if f.Actor != "" {
		q.Set("actor", f.Actor)
	}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	return q
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	f := auditFilter(r.URL.Query())
	f.Limit = auditPageSize + 1
	evs, err := s.events(r.Context(), f)
	if err != nil {
		return internal(err)
	}
	// Links are built here, encoded, and marked safe: html/template would
	// otherwise escape the '=' and '&' of a query inserted after '?'.
	q := filterQuery(f)
	data := map[string]any{"Filter": f, "Kinds": auditKinds, "Filtered": len(q) > 0,
		"ExportURL": template.URL("/audit/export?" + q.Encode())}
	if f.BeforeID > 0 {
		data["NewerURL"] = template.URL("/audit?" + q.Encode())
	}
	if len(evs) > auditPageSize {
		evs = evs[:auditPageSize]
		older := filterQuery(f)
		older.Set("before", strconv.FormatInt(evs[len(evs)-1].ID, 10))
		data["OlderURL"] = template.URL("/audit?" + older.Encode())
	}
	data["Events"] = evs
	pg.Title, pg.Nav, pg.Data = "Audit", "audit", data
	s.render(w, r, http.StatusOK, "audit", pg)
	return nil
}

// auditExport writes every matching event, newest first, as JSON lines.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	f := auditFilter(r.URL.Query())
	f.Limit = 1000
	w.Header().Set("Content-Type", "application/x-ndjson; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="porthole-audit-`+s.cfg.Now().UTC().Format("20060102-150405")+`.jsonl"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	for {
		evs, err := s.events(r.Context(), f)
		if err != nil {
			s.log.Error("audit export", "err", err)
			return nil
		}
		for _, e := range evs {
			enc.Encode(e)
		}
		if len(evs) < f.Limit {
			return nil
		}
		f.BeforeID = evs[len(evs)-1].ID
	}
}
