package app

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/porthole/porthole/assets"
	"github.com/porthole/porthole/tunnel"
)

// Options configure the UI; zero fields mean the defaults.
type Options struct {
	// Do runs a UI change from a goroutine; nil means fyne.Do.
	Do func(func())
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// TrayAvailable says whether a system tray shows the menu; nil means
	// ask the desktop (see trayAvailable). Without a tray, closing the
	// window quits, so the app is never left running invisibly.
	TrayAvailable func() bool
	// Autostart switches starting at login; nil means the OS's mechanism.
	Autostart Autostart
	// Quit ends the app after Shutdown; nil means fyne.App.Quit.
	Quit func()
}

// Autostart turns starting the app at login on and off.
type Autostart interface {
	Enabled() bool
	Set(on bool) error
}

// UI is the running desktop UI.
type UI struct {
	app  fyne.App
	be   *tunnel.Service
	opts Options
	log  *slog.Logger
	win  fyne.Window
	tray bool

	ctx    context.Context
	cancel context.CancelFunc

	signIn   *signInForm
	tunnels  *tunnelList
	quitting sync.Once

	// icon is the tray state last shown ("idle", "open", "error").
	icon string
}

var (
	appIcon   = fyne.NewStaticResource("porthole.png", assets.AppIcon)
	trayIdle  = fyne.NewStaticResource("porthole-idle.png", assets.TrayIdle)
	trayOpen  = fyne.NewStaticResource("porthole-open.png", assets.TrayOpen)
	trayError = fyne.NewStaticResource("porthole-error.png", assets.TrayError)
)

// New builds the UI over be; Start shows it.
func New(a fyne.App, be *tunnel.Service, opts Options) *UI {
	if opts.Do == nil {
		opts.Do = fyne.Do
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TrayAvailable == nil {
		opts.TrayAvailable = trayAvailable
	}
	if opts.Autostart == nil {
		opts.Autostart = osAutostart()
	}
	u := &UI{app: a, be: be, opts: opts, log: opts.Logger}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	a.SetIcon(appIcon)
	u.win = a.NewWindow("Porthole")
	u.win.SetIcon(appIcon)
	u.win.Resize(fyne.NewSize(760, 520))
	u.signIn = newSignInForm(u)
	u.tunnels = newTunnelList(u)
	if desk, ok := a.(desktop.App); ok && u.opts.TrayAvailable() {
		u.tray = true
		desk.SetSystemTrayIcon(trayIdle)
		u.refreshTray()
	}
	u.win.SetCloseIntercept(u.windowClosed)
	return u
}

// windowClosed is the window's close button: with a tray the app stays
// reachable from it, so the window only hides; without one the app quits,
// so it never keeps running where nobody can see it.
func (u *UI) windowClosed() {
	if u.tray {
		u.win.Hide()
		return
	}
	u.Quit()
}

// Window is the main window.
func (u *UI) Window() fyne.Window { return u.win }

// Start shows the UI: with a kept ticket it resumes (opening auto-start
// tunnels); otherwise it shows the sign-in form.
func (u *UI) Start() {
	// What was wrong with settings.json is shown where the user looks,
	// whichever page comes up.
	problem := u.be.SettingsProblem()
	u.tunnels.setNotice(problem)
	u.showSignIn(problem)
	u.win.Show()
	go func() {
		err := u.be.Resume(u.ctx)
		u.do(func() {
			if err != nil {
				if !isNoTicket(err) {
					u.signIn.setError(strings.TrimSpace(problem + "\n" + explain(err, u.be.Settings().Gateway)))
				}
				return
			}
			u.showTunnels()
			if u.tray {
				u.win.Hide()
			}
		})
	}()
}

// do runs f on the UI thread.
func (u *UI) do(f func()) { u.opts.Do(f) }

// Changed tells the UI that tunnel states changed (the backend's OnChange).
func (u *UI) Changed() {
	u.do(func() {
		u.tunnels.update()
		u.refreshTray()
	})
}

// Notify shows a desktop notification (the backend's OnNotify).
func (u *UI) Notify(title, body string) {
	u.do(func() { u.app.SendNotification(fyne.NewNotification(title, body)) })
}

// SignInNeeded asks the user to sign in again (the backend's
// OnSignInNeeded); connections that wait for the new ticket continue once
// they have.
func (u *UI) SignInNeeded(err error) {
	u.do(func() {
		u.app.SendNotification(fyne.NewNotification("Sign in to Porthole again", "Your session has ended. Connections wait for you to sign in."))
		u.showSignIn("Your session has ended; sign in again. Waiting connections continue once you have.")
		u.win.Show()
		u.win.RequestFocus()
	})
}

// SignedIn shows the tunnels again after a sign-in made elsewhere (the
// CLI's porthole login) was picked up (the backend's OnSignedIn).
func (u *UI) SignedIn() {
	u.do(func() {
		if u.win.Content() == u.signIn.content {
			u.showTunnels()
		}
	})
}

func (u *UI) showSignIn(msg string) {
	u.signIn.prefill()
	u.signIn.setError(msg)
	u.win.SetContent(u.signIn.content)
	u.win.Canvas().Focus(u.signIn.focusTarget())
}

func (u *UI) showTunnels() {
	u.tunnels.rebuild()
	u.win.SetContent(u.tunnels.content)
	u.refreshTray()
}

// Quit closes every tunnel and connection and ends the app, within two
// seconds whatever happens.
func (u *UI) Quit() {
	u.quitting.Do(func() {
		u.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		if err := u.be.Shutdown(ctx); err != nil {
			u.log.Warn("shutdown did not finish in time", "err", err)
		}
		if u.opts.Quit != nil {
			u.opts.Quit()
			return
		}
		u.app.Quit()
	})
}

// refreshTray rebuilds the tray menu and picks the icon for the overall
// state: none open, some open, or an error.
func (u *UI) refreshTray() {
	if !u.tray {
		return
	}
	desk := u.app.(desktop.App)
	desk.SetSystemTrayMenu(u.trayMenu())
	state, icon := trayState(u.be.Tunnels())
	if state != u.icon {
		u.icon = state
		desk.SetSystemTrayIcon(icon)
	}
}

func trayState(tvs []tunnel.TunnelView) (string, fyne.Resource) {
	open := false
	for _, tv := range tvs {
		switch tv.State {
		case tunnel.Failed, tunnel.Reconnecting:
			return "error", trayError
		case tunnel.Open:
			open = true
		}
	}
	if open {
		return "open", trayOpen
	}
	return "idle", trayIdle
}

// trayMenu is the tray's menu: who is signed in where, one item per
// tunnel (click toggles), then the app's actions.
func (u *UI) trayMenu() *fyne.Menu {
	var items []*fyne.MenuItem
	gw, user := u.be.Identity()
	if user == "" {
		who := fyne.NewMenuItem("Not signed in", nil)
		who.Disabled = true
		items = append(items, who, fyne.NewMenuItem("Sign in…", u.showWindowSignIn))
	} else {
		who := fyne.NewMenuItem(user+" @ "+strings.TrimPrefix(strings.TrimPrefix(gw, "https://"), "http://"), nil)
		who.Disabled = true
		items = append(items, who, fyne.NewMenuItemSeparator())
		for _, tv := range u.be.Tunnels() {
			name := tv.Info.Context
			it := fyne.NewMenuItem(menuLabel(tv), func() {
				go func() {
					if err := u.be.Toggle(u.ctx, name); err != nil {
						u.Notify("Could not open "+name, err.Error())
					}
				}()
			})
			it.Checked = tv.State == tunnel.Open || tv.State == tunnel.Reconnecting
			items = append(items, it)
		}
		items = append(items, fyne.NewMenuItemSeparator(), fyne.NewMenuItem("Open all", func() {
			go func() {
				if err := u.be.OpenAll(u.ctx); err != nil {
					u.Notify("Could not open every tunnel", err.Error())
				}
			}()
		}))
	}
	items = append(items, fyne.NewMenuItem("Porthole…", func() { u.win.Show(); u.win.RequestFocus() }))
	if user != "" {
		items = append(items, fyne.NewMenuItem("Sign out", u.signOut))
	}
	quit := fyne.NewMenuItem("Quit", u.Quit)
	quit.IsQuit = true
	items = append(items, fyne.NewMenuItemSeparator(), quit)
	return fyne.NewMenu("Porthole", items...)
}

func (u *UI) showWindowSignIn() {
	u.showSignIn("")
	u.win.Show()
	u.win.RequestFocus()
}

// menuLabel is a tunnel's tray entry: "mysql → localhost:13306 (open)".
func menuLabel(tv tunnel.TunnelView) string {
	port := "a free port"
	if tv.Port > 0 {
		port = "localhost:" + itoa(tv.Port)
	}
	return tv.Info.Context + " → " + port + " (" + tv.State.String() + ")"
}

func (u *UI) signOut() {
	go func() {
		err := u.be.SignOut(u.ctx)
		u.do(func() {
			msg := ""
			if err != nil {
				msg = "Signed out on this computer; the gateway did not confirm: " + err.Error()
			}
			u.showSignIn(msg)
			u.refreshTray()
		})
	}()
}

// label is a wrapping label.
func label(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}
