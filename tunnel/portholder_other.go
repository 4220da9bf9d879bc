//go:build !linux

package tunnel

// PortHolder names the process listening on a local TCP port where the
// operating system tells; on this system it cannot, so it returns "".
func PortHolder(port int) string { return "" }
