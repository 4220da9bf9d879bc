// Package packaging holds the installer sources (nfpm, systemd, wixl,
// signing, maintainer scripts) and, in its tests, the checks that the
// packages scripts/package writes to dist/ contain what IT relies on.
package packaging
