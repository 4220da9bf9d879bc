// Package e2e holds Porthole's end-to-end tests: the real binaries as
// separate processes, on 127.0.0.1, against real database servers that
// scripts/test starts from Debian's packages.
package e2e
