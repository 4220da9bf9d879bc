package gateway

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/porthole/porthole/gateway/store"
)

// The portal's pages for sign-in methods: directory group mappings, API
// tokens, and each user's second factor on the Account page.

// accountState is what the Account page shows about p.
func (s *Server) accountState(p *principal) accountForm {
	f := accountForm{Fields: map[string]string{}, Directory: p.user.Source == store.SourceDirectory, SecondFactor: p.user.TOTPSecret != ""}
	if setup, ok := s.pendingSecondFactor(p); ok && !f.SecondFactor {
		f.Setup, f.SetupQR = &setup, qrDataURL(setup.URL)
	}
	return f
}

// qrDataURL draws an otpauth:// URL as a QR code in a data: URL ("" when
// it cannot).
func qrDataURL(url string) template.URL {
	key, err := otp.NewKeyFromURL(url)
	if err != nil {
		return ""
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return ""
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()))
}

func (s *Server) secondFactorBegin(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	if _, err := s.BeginSecondFactor(r.Context(), p); err != nil {
		_, msg := s.portalError(r, err)
		redirect(w, r, "/account", msg)
		return nil
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}

func (s *Server) secondFactorConfirm(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	err := s.ConfirmSecondFactor(r.Context(), p, r.PostForm.Get("code"))
	if err == nil {
		redirect(w, r, "/account", "Second factor on: signing in now asks for a code from your authenticator app.")
		return nil
	}
	pg.Title, pg.Nav = "Account", "account"
	f := s.accountState(p)
	_, f.CodeError = s.portalError(r, err)
	pg.Data = f
	s.render(w, r, statusOf(err, http.StatusBadRequest), "account", pg)
	return nil
}

type directoryPageData struct {
	Info                  DirectoryInfo
	Groups                []string
	DirectoryGroup, Group string
	Error                 string
}

func (s *Server) directoryPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	ctx := r.Context()
	info, err := s.Directory(ctx)
	if err != nil {
		return internal(err)
	}
	d := directoryPageData{Info: info}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		ms := info.Mappings
		switch r.PostForm.Get("action") {
		case "add":
			d.DirectoryGroup, d.Group = strings.TrimSpace(r.PostForm.Get("directoryGroup")), r.PostForm.Get("group")
			ms = append(ms, GroupMapping{DirectoryGroup: d.DirectoryGroup, Group: d.Group})
		case "remove":
			i, err := strconv.Atoi(r.PostForm.Get("index"))
			if err != nil || i < 0 || i >= len(ms) {
				redirect(w, r, "/directory", "That mapping was already gone.")
				return nil
			}
			ms = append(ms[:i:i], ms[i+1:]...)
		}
		if _, err := s.SetGroupMappings(ctx, p.user.Username, ms); err != nil {
			status = statusOf(err, http.StatusBadRequest)
			fields, msg := s.portalError(r, err)
			for _, v := range fields {
				msg = v
			}
			d.Error = msg
		} else {
			redirect(w, r, "/directory", "Mappings saved: users get them at their next sign-in or re-check.")
			return nil
		}
	}
	gs, _ := s.st.Groups(ctx)
	for _, g := range gs {
		d.Groups = append(d.Groups, g.Name+"@"+g.Environment)
	}
	pg.Title, pg.Nav, pg.Data = "Directory", "directory", d
	s.render(w, r, status, "directory", pg)
	return nil
}

type tokensPageData struct {
	Tokens                     []TokenInfo
	Users                      []string
	Made                       *TokenInfo
	Name, User, Tunnels, Error string
	Fields                     map[string]string
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, p *principal, pg page) error {
	ctx := r.Context()
	d := tokensPageData{Fields: map[string]string{}, User: p.user.Username}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		switch r.PostForm.Get("action") {
		case "revoke":
			if err := s.RevokeToken(ctx, p.user.Username, r.PostForm.Get("id")); err != nil {
				_, msg := s.portalError(r, err)
				redirect(w, r, "/tokens", msg)
				return nil
			}
			redirect(w, r, "/tokens", "Token revoked; the tunnels it had open were closed.")
			return nil
		case "create":
			d.Name, d.User, d.Tunnels = r.PostForm.Get("name"), r.PostForm.Get("user"), r.PostForm.Get("tunnels")
			life, _ := time.ParseDuration(r.PostForm.Get("expiresIn"))
			var tunnels []string
			for _, t := range strings.Split(d.Tunnels, ",") {
				if t = strings.TrimSpace(t); t != "" {
					tunnels = append(tunnels, t)
				}
			}
			made, err := s.CreateToken(ctx, p.user.Username, TokenSpec{Name: d.Name, User: d.User, Tunnels: tunnels, ExpiresIn: Duration(life)})
			if err != nil {
				status = statusOf(err, http.StatusBadRequest)
				fields, msg := s.portalError(r, err)
				if fields != nil {
					d.Fields, msg = fields, "Please correct the fields marked below."
				}
				d.Error = msg
			} else {
				// Shown once, in this answer; never in a redirect's URL.
				d.Made, d.Name, d.Tunnels = &made, "", ""
				w.Header().Set("Cache-Control", "no-store")
			}
		}
	}
	var err error
	if d.Tokens, err = s.Tokens(ctx); err != nil {
		return internal(err)
	}
	us, _ := s.st.Users(ctx)
	for _, u := range us {
		d.Users = append(d.Users, u.Username)
	}
	pg.Title, pg.Nav, pg.Data = "API tokens", "tokens", d
	s.render(w, r, status, "tokens", pg)
	return nil
}
