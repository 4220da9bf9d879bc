// Package winsvc runs a command under the Windows service manager when it
// was started by it, and as a console program otherwise. Either way the
// command's context is cancelled on stop: a service stop, Ctrl-C and
// SIGTERM all cancel the same context.
package winsvc
