//go:build windows

package tunnel

import (
	"encoding/base64"
	"fmt"

	"github.com/alexbrainman/sspi/negotiate"
)

// negotiateToken makes the SPNEGO token for spn with the Windows login's
// own credentials, through SSPI: no password, no kinit.
func negotiateToken(spn string) (string, error) {
	cred, err := negotiate.AcquireCurrentUserCredentials()
	if err != nil {
		return "", fmt.Errorf("the Windows login's credentials: %w", err)
	}
	defer cred.Release()
	ctx, token, err := negotiate.NewClientContext(cred, spn)
	if err != nil {
		return "", fmt.Errorf("get a Kerberos ticket for %s (is this computer in the domain, and is %s registered?): %w", spn, spn, err)
	}
	defer ctx.Release()
	return base64.StdEncoding.EncodeToString(token), nil
}
