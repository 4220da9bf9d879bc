// Package tunnel is Porthole's client library, shared by the porthole CLI
// and the tray app: the gateway API client (sign-in, renewal, the tunnel
// list), the dialer that opens a tunnel stream, local forwarders on fixed
// ports, the Manager that runs them and renews the ticket, and the settings
// file and ticket storage that CLI and tray share.
//
// The Manager owns its forwarders and their connections: Stop and StopAll
// close the listeners, end every connection and wait for them.
package tunnel
