// Package control is Porthole's local control API, the seed library's
// TunnelStart / TunnelStop / TunnelStopAll for programs in any language:
// the tray app (or `porthole agent` where no tray runs) listens on an
// endpoint only the same OS user can open, and a program asks it to open
// a tunnel and gets the local port back.
//
// Endpoint: on Linux and macOS a Unix socket, Path(), in a folder only
// the user can enter (the socket is 0600 and the peer's uid is checked);
// on Windows the named pipe \\.\pipe\porthole-control-USER, whose access
// list admits only the user's SID.
//
// Protocol: one request per line, one answer per line, UTF-8, at most
// 1 KiB a line:
//
//	HELLO                        -> OK porthole-control 1
//	START <context> [<port>] [HOLD]
//	                             -> OK <port>   (the tunnel listens on 127.0.0.1:<port>)
//	STOP <context>               -> OK
//	STOPALL                      -> OK <how many were open>
//	LIST                         -> OK <n>, then n lines "<context> <state> <port>"
//
// and on any failure ERR <message>. START opens the tunnel (port 0 or
// none: its usual port) or, if it is already open, answers its port. With
// HOLD the tunnel belongs to this connection as well: when the last
// connection holding it closes (the program exited, however it ended),
// the tunnel is closed, unless it was open before anyone held it. Thin
// clients keep one connection for their process for that reason (see
// sdk/).
package control
