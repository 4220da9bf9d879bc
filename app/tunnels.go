package app

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/porthole/porthole/connstr"
	"github.com/porthole/porthole/internal/format"
	"github.com/porthole/porthole/tunnel"
)

// tunnelList is the main window: one row per tunnel the user may use.
type tunnelList struct {
	u         *UI
	who       *widget.Label
	notice    *widget.Label // a problem to know about (a broken settings.json)
	empty     *widget.Label
	rowsBox   *fyne.Container
	rows      map[string]*tunnelRow
	order     []string
	autostart *widget.Check
	content   fyne.CanvasObject
}

func newTunnelList(u *UI) *tunnelList {
	l := &tunnelList{u: u, who: label(""), notice: label(""), rows: map[string]*tunnelRow{}, rowsBox: container.NewVBox()}
	l.notice.Importance = widget.WarningImportance
	l.notice.Hide()
	l.empty = label("No tunnels are open to you on this gateway yet. Ask an administrator to add you to a group that a tunnel admits.")
	l.autostart = widget.NewCheck("Start Porthole when I log in", func(on bool) {
		if err := u.opts.Autostart.Set(on); err != nil {
			u.app.SendNotification(fyne.NewNotification("Start at login", err.Error()))
		}
	})
	l.autostart.Checked = u.opts.Autostart.Enabled()
	refresh := widget.NewButton("Refresh", func() {
		go func() {
			if err := u.be.Refresh(u.ctx); err != nil {
				u.Notify("Could not list tunnels", err.Error())
			}
		}()
	})
	openAll := widget.NewButton("Open all", func() {
		go func() {
			if err := u.be.OpenAll(u.ctx); err != nil {
				u.Notify("Could not open every tunnel", err.Error())
			}
		}()
	})
	signOut := widget.NewButton("Sign out", u.signOut)
	top := container.NewVBox(container.NewBorder(nil, nil, nil, container.NewHBox(openAll, refresh, signOut), l.who), l.notice)
	l.content = container.NewBorder(top, container.NewPadded(l.autostart), nil, nil,
		container.NewVScroll(container.NewVBox(l.empty, l.rowsBox)))
	return l
}

// setNotice shows msg above the tunnels ("" hides it).
func (l *tunnelList) setNotice(msg string) {
	l.notice.SetText(msg)
	if msg == "" {
		l.notice.Hide()
	} else {
		l.notice.Show()
	}
}

// rebuild makes rows for the current tunnels.
func (l *tunnelList) rebuild() {
	views := l.u.be.Tunnels()
	l.rows = map[string]*tunnelRow{}
	l.order = nil
	l.rowsBox.RemoveAll()
	for _, tv := range views {
		r := newTunnelRow(l.u, tv.Info.Context)
		l.rows[strings.ToLower(tv.Info.Context)] = r
		l.order = append(l.order, strings.ToLower(tv.Info.Context))
		l.rowsBox.Add(r.box)
		l.rowsBox.Add(widget.NewSeparator())
	}
	l.update()
}

// update shows the current states, rebuilding only when the set changed.
func (l *tunnelList) update() {
	gw, user := l.u.be.Identity()
	if user == "" {
		return
	}
	l.who.SetText(fmt.Sprintf("Signed in as %s at %s", user, gw))
	views := l.u.be.Tunnels()
	if len(views) != len(l.order) {
		l.rebuild()
		return
	}
	for i, tv := range views {
		if strings.ToLower(tv.Info.Context) != l.order[i] {
			l.rebuild()
			return
		}
	}
	for _, tv := range views {
		l.rows[strings.ToLower(tv.Info.Context)].set(tv)
	}
	if len(views) == 0 {
		l.empty.Show()
	} else {
		l.empty.Hide()
	}
}

// tunnelRow is one tunnel: open toggle, local port, auto-start, state,
// and connection strings to copy.
type tunnelRow struct {
	u        *UI
	name     string
	title    *widget.Label
	toggle   *widget.Check
	port     *widget.Entry
	apply    *widget.Button
	portMsg  *widget.Label
	auto     *widget.Check
	status   *widget.Label
	strings  *widget.Select
	copy     *widget.Button
	box      fyne.CanvasObject
	view     tunnel.TunnelView
	copied   int  // copies made; a reset of the button is for the last one only
	updating bool // set while the row shows new state, so handlers ignore it
	edited   bool // the user is typing a port
}

func newTunnelRow(u *UI, name string) *tunnelRow {
	r := &tunnelRow{u: u, name: name, title: widget.NewLabelWithStyle(name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		status: label(""), portMsg: label("")}
	r.portMsg.Importance = widget.DangerImportance
	r.portMsg.Hide()
	r.toggle = widget.NewCheck("Open", r.toggled)
	r.auto = widget.NewCheck("Start automatically", func(on bool) {
		if r.updating {
			return
		}
		go func() {
			if err := u.be.SetAutoStart(name, on); err != nil {
				u.Notify("Could not save settings", err.Error())
			}
		}()
	})
	r.port = widget.NewEntry()
	r.port.SetPlaceHolder("free port")
	r.port.OnChanged = func(string) {
		if !r.updating {
			r.edited = true
		}
	}
	r.port.OnSubmitted = func(string) { r.applyPort() }
	r.apply = widget.NewButton("Use port", r.applyPort)
	r.strings = widget.NewSelect(nil, func(string) {
		if !r.updating { // the user chose another string: offer to copy it
			r.copy.SetText(copyLabel)
		}
	})
	r.strings.PlaceHolder = "Connection string…"
	r.copy = widget.NewButton(copyLabel, r.copyString)
	portBox := container.NewHBox(widget.NewLabel("Local port"), container.NewGridWrap(fyne.NewSize(110, r.port.MinSize().Height), r.port), r.apply)
	r.box = container.NewVBox(
		container.NewHBox(r.title, r.toggle, r.auto),
		portBox, r.portMsg, r.status,
		container.NewBorder(nil, nil, nil, r.copy, r.strings),
	)
	return r
}

func (r *tunnelRow) set(tv tunnel.TunnelView) {
	r.updating = true
	defer func() { r.updating = false }()
	r.view = tv
	title := tv.Info.Context
	if tv.Info.Description != "" {
		title += " — " + tv.Info.Description
	}
	r.title.SetText(title)
	r.toggle.SetChecked(tv.State == tunnel.Open || tv.State == tunnel.Reconnecting)
	r.auto.SetChecked(tv.AutoStart)
	if !r.edited {
		if tv.Port > 0 {
			r.port.SetText(strconv.Itoa(tv.Port))
		} else {
			r.port.SetText("")
		}
	}
	r.status.SetText(statusText(tv))
	if tv.State == tunnel.Failed {
		r.status.Importance = widget.DangerImportance
	} else {
		r.status.Importance = widget.MediumImportance
	}
	r.status.Refresh()
	var labels []string
	for _, e := range connstr.For(connstr.Kind(tv.Info.Kind), tv.Port) {
		labels = append(labels, e.Label)
	}
	sel := r.strings.Selected
	r.strings.SetOptions(labels)
	if sel == "" && len(labels) > 0 {
		sel = labels[0]
	}
	r.strings.SetSelected(sel)
}

// statusText says what the tunnel is doing, with its traffic.
func statusText(tv tunnel.TunnelView) string {
	switch tv.State {
	case tunnel.Open, tunnel.Reconnecting:
		s := "Open on " + tv.Addr
		if tv.State == tunnel.Reconnecting {
			s = "Reconnecting: the gateway does not answer; listening on " + tv.Addr + " and retrying"
		}
		conns := "connections"
		if tv.Stats.Open == 1 {
			conns = "connection"
		}
		s += fmt.Sprintf(" · %d %s · sent %s · received %s", tv.Stats.Open, conns, format.Bytes(tv.Stats.BytesUp), format.Bytes(tv.Stats.BytesDown))
		if tv.LastError != "" {
			s += "\nLast error: " + tv.LastError
		}
		return s
	case tunnel.Failed:
		return "Error: " + tv.LastError
	}
	if tv.Port > 0 {
		return fmt.Sprintf("Closed · opens on localhost:%d", tv.Port)
	}
	return "Closed · opens on a free port, which is then kept"
}

func (r *tunnelRow) toggled(on bool) {
	if r.updating {
		return
	}
	go func() {
		var err error
		if on {
			err = r.u.be.Open(r.u.ctx, r.name)
		} else {
			err = r.u.be.Close(r.name)
		}
		if err != nil {
			r.u.Notify("Could not open "+r.name, err.Error())
		}
		r.u.Changed()
	}()
}

func (r *tunnelRow) applyPort() {
	text := strings.TrimSpace(r.port.Text)
	p, err := strconv.Atoi(text)
	if err != nil || p < 1 || p > 65535 {
		r.showPortMsg("The port must be a number from 1 to 65535.")
		return
	}
	go func() {
		err := r.u.be.SetLocalPort(r.u.ctx, r.name, p)
		r.u.do(func() {
			if err != nil {
				r.showPortMsg(upper(err.Error()) + ".")
				return
			}
			r.edited = false
			r.showPortMsg("")
			r.u.tunnels.update()
		})
	}()
}

func (r *tunnelRow) showPortMsg(msg string) {
	r.portMsg.SetText(msg)
	if msg == "" {
		r.portMsg.Hide()
	} else {
		r.portMsg.Show()
	}
}

// copyLabel is the copy button's text; copiedLabel replaces it for
// copiedFor after a copy.
const (
	copyLabel   = "Copy connection string"
	copiedLabel = "Copied"
)

var copiedFor = 2 * time.Second

func (r *tunnelRow) copyString() {
	for _, e := range connstr.For(connstr.Kind(r.view.Info.Kind), r.view.Port) {
		if e.Label == r.strings.Selected {
			r.u.app.Clipboard().SetContent(e.Text)
			r.copy.SetText(copiedLabel)
			r.copied++
			n := r.copied
			time.AfterFunc(copiedFor, func() {
				r.u.do(func() {
					if r.copied == n { // not copied again since
						r.copy.SetText(copyLabel)
					}
				})
			})
			return
		}
	}
}
