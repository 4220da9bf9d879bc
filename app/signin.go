package app

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/porthole/porthole/tunnel"
)

// signInForm asks for the gateway, user name and password.
type signInForm struct {
	u        *UI
	gateway  *widget.Entry
	user     *widget.Entry
	password *widget.Entry
	button   *widget.Button
	errLabel *widget.Label
	content  fyne.CanvasObject
}

func newSignInForm(u *UI) *signInForm {
	f := &signInForm{u: u, gateway: widget.NewEntry(), user: widget.NewEntry(), password: widget.NewPasswordEntry()}
	f.gateway.SetPlaceHolder("https://gateway.example.com")
	f.errLabel = label("")
	f.errLabel.Importance = widget.DangerImportance
	f.button = widget.NewButton("Sign in", f.submit)
	f.button.Importance = widget.HighImportance
	f.password.OnSubmitted = func(string) { f.submit() }
	form := widget.NewForm(
		widget.NewFormItem("Gateway", f.gateway),
		widget.NewFormItem("User name", f.user),
		widget.NewFormItem("Password", f.password),
	)
	title := widget.NewLabelWithStyle("Sign in to Porthole", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	f.content = container.NewPadded(container.NewVBox(title, form, f.errLabel, container.NewHBox(f.button)))
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
	f.button.Enable()
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
	f.button.Disable()
	f.setError("")
	go func() {
		err := f.u.be.SignIn(f.u.ctx, gw, user, pw)
		f.u.do(func() {
			f.button.Enable()
			if err != nil {
				f.setError(explain(err, gw))
				f.password.SetText("")
				return
			}
			f.password.SetText("")
			f.u.showTunnels()
		})
	}()
}
