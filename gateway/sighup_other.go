//go:build !unix

package gateway

import "os"

// notifyReload: there is no SIGHUP here; the certificate files are
// watched instead.
func notifyReload(chan<- os.Signal) (stop func()) { return func() {} }
