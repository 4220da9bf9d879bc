// Package assets holds Porthole's icons, embedded: the app icon and the
// tray icon for each overall state. go run gen.go redraws them.
package assets

import _ "embed"

// AppIcon is the application icon (256x256 PNG).
//
//go:embed app.png
var AppIcon []byte

// TrayIdle is the tray icon when no tunnel is open.
//
//go:embed tray-idle.png
var TrayIdle []byte

// TrayOpen is the tray icon when some tunnels are open.
//
//go:embed tray-open.png
var TrayOpen []byte

// TrayError is the tray icon when a tunnel has an error.
//
//go:embed tray-error.png
var TrayError []byte
