package app

import (
	"errors"
	"runtime"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/porthole/porthole/tunnel"
)

// signInForm asks for the gateway, user name and password, and the
// second-factor code when the gateway asks for one; or signs in with the
// Windows login (Kerberos single sign-on).
type signInForm struct {
	u        *UI
	gateway  *widget.Entry
	user     *widget.Entry
	password *widget.Entry
	code     *widget.Entry
	codeForm *widget.Form
	button   *widget.Button
	sso      *widget.Button
	errLabel *widget.Label
	content  fyne.CanvasObject
}

// ssoLabel names single sign-on as users know it.
func ssoLabel() string {
	if runtime.GOOS == "windows" {
		return "Sign in with Windows"
	}
	return "Sign in with Kerberos"
}

func newSignInForm(u *UI) *signInForm {
	f := &signInForm{u: u, gateway: widget.NewEntry(), user: widget.NewEntry(), password: widget.NewPasswordEntry(), code: widget.NewEntry()}
	f.gateway.SetPlaceHolder("https://gateway.example.com")
	f.errLabel = label("")
	f.errLabel.Importance = widget.DangerImportance
	f.button = widget.NewButton("Sign in", f.submit)
	f.button.Importance = widget.HighImportance
	f.password.OnSubmitted = func(string) { f.submit() }
	f.code.OnSubmitted = func(string) { f.submit() }
	f.code.SetPlaceHolder("6 digits")
	f.sso = widget.NewButton(ssoLabel(), f.submitSSO)
	form := widget.NewForm(
		widget.NewFormItem("Gateway", f.gateway),
		widget.NewFormItem("User name", f.user),
		widget.NewFormItem("Password", f.password),
	)
	// Shown when the gateway asks for a code.
	f.codeForm = widget.NewForm(widget.NewFormItem("Code", f.code))
	f.codeForm.Hide()
	title := widget.NewLabelWithStyle("Sign in to Porthole", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	f.content = container.NewPadded(container.NewVBox(title, form, f.codeForm, f.errLabel, container.NewHBox(f.button, f.sso)))
	return f
}

// prefill puts the gateway and user from settings.json in empty fields.
func (f *signInForm) prefill() {
	st := f.u.be.Settings()
	if f.gateway.Text == "" {
		f.gateway.SetText(st.Gateway)
	}
	if f.user.Text == "" {
		f.user.SetText(st.User)
	}
	f.password.SetText("")
	f.code.SetText("")
	f.codeForm.Hide()
	f.button.Enable()
	f.sso.Enable()
}

func (f *signInForm) focusTarget() fyne.Focusable {
	switch {
	case f.gateway.Text == "":
		return f.gateway
	case f.user.Text == "":
		return f.user
	}
	return f.password
}

func (f *signInForm) setError(msg string) {
	f.errLabel.SetText(msg)
	if msg == "" {
		f.errLabel.Hide()
	} else {
		f.errLabel.Show()
	}
}

func (f *signInForm) submit() {
	gw, user, pw := f.gateway.Text, f.user.Text, f.password.Text
	if _, err := tunnel.NormalizeGateway(gw); err != nil {
		f.setError("Enter the gateway's address, like https://gateway.example.com.")
		return
	}
	if user == "" || pw == "" {
		f.setError("Enter your user name and password.")
		return
	}
	f.run(gw, tunnel.Login{User: user, Password: pw, Code: strings.TrimSpace(f.code.Text)})
}

// submitSSO signs in with the Windows login (or a kinit ticket).
func (f *signInForm) submitSSO() {
	gw := f.gateway.Text
	if _, err := tunnel.NormalizeGateway(gw); err != nil {
		f.setError("Enter the gateway's address, like https://gateway.example.com.")
		return
	}
	f.run(gw, tunnel.Login{SSO: true})
}

func (f *signInForm) run(gw string, l tunnel.Login) {
	f.button.Disable()
	f.sso.Disable()
	f.setError("")
	go func() {
		err := f.u.be.SignInWith(f.u.ctx, gw, l)
		f.u.do(func() {
			f.button.Enable()
			f.sso.Enable()
			var ae *tunnel.APIError
			if errors.As(err, &ae) && ae.NeedsCode() {
				// The password was right: keep it, ask for the code.
				f.codeForm.Show()
				f.setError("Enter the code from your authenticator app.")
				f.u.win.Canvas().Focus(f.code)
				return
			}
			f.code.SetText("")
			if err != nil {
				f.setError(explain(err, gw))
				f.password.SetText("")
				return
			}
			f.password.SetText("")
			f.codeForm.Hide()
			f.u.showTunnels()
		})
	}()
}
