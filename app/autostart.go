package app

// osAutostart returns the operating system's start-at-login switch.
func osAutostart() Autostart { return newOSAutostart() }
