// Package launcher is Porthole's rule-based process launcher (the "SDK
// server" of seed 001). A client connects and sends a URI path as its first
// line; the launcher finds the first rule file (in alphabetical order)
// whose Resource regular expression matches the whole path, and either
// rejects the connection with the rule's code, or starts the rule's program
// on a free loopback port, waits until it listens, answers "OK" and pipes
// the connection to it. The program is stopped when the client goes, and
// the client is closed when the program exits.
//
// Wire (see DESIGN.md): the client sends "PATH\n" (at most 4 KiB, within a
// deadline); the launcher answers "OK\n" followed by the program's stream,
// or "ERR <code> <description>\n" and closes.
//
// Rules are re-read when the rules folder changes (and on Reload): a broken
// file is logged by name and line and the rules that worked keep working.
package launcher
