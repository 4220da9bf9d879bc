package app

import "github.com/godbus/dbus/v5"

// trayAvailable reports whether a system tray host (a StatusNotifier
// watcher on the session bus) will show the tray menu.
func trayAvailable() bool {
	conn, err := dbus.SessionBus()
	if err != nil {
		return false
	}
	var owner string
	err = conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, "org.kde.StatusNotifierWatcher").Store(&owner)
	return err == nil && owner != ""
}
