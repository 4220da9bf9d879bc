// Package app is Porthole's desktop UI, built with Fyne: the sign-in form,
// the main window with one row per tunnel, and the tray menu. It is a view
// over a tunnel.Service; it holds no tunnel logic of its own. It takes a fyne.App, so tests run it with Fyne's test
// driver; only cmd/porthole-tray creates the real app.
//
// Every UI change made from a goroutine goes through Options.Do (fyne.Do
// in the real app), so widgets are only touched on the UI thread.
package app
