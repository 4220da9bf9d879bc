// Package gateway is Porthole's server: it signs users in and hands out
// tickets, keeps tunnels, users and groups (package store), decides per
// tunnel which Group@Environment may use it (package acl), carries each
// TCP stream over a WebSocket at /ws-proxy/{context} (package wire), and
// writes every change and every tunnel to the audit log.
//
// The admin operations (service.go) are shared by the JSON API, the
// offline subcommands and the portal, so validation lives in one place.
//
// Server owns its HTTP server and every live tunnel: Close stops accepting,
// then drops live tunnels, then waits for them.
package gateway
