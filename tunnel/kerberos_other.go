//go:build !windows

package tunnel

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// negotiateToken makes the SPNEGO token for spn from the ticket cache
// kinit fills: $KRB5CCNAME (FILE: caches), else /tmp/krb5cc_<uid>; the
// realm's KDCs come from $KRB5_CONFIG, else /etc/krb5.conf.
func negotiateToken(spn string) (string, error) {
	confPath := os.Getenv("KRB5_CONFIG")
	if confPath == "" {
		confPath = "/etc/krb5.conf"
	}
	kc, err := config.Load(confPath)
	if err != nil {
		return "", fmt.Errorf("read the Kerberos configuration %s: %w (set KRB5_CONFIG or ask IT for krb5.conf)", confPath, err)
	}
	ccPath := os.Getenv("KRB5CCNAME")
	switch {
	case ccPath == "":
		ccPath = fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid())
	case strings.HasPrefix(ccPath, "FILE:"):
		ccPath = strings.TrimPrefix(ccPath, "FILE:")
	case strings.Contains(ccPath, ":"):
		return "", fmt.Errorf("the Kerberos ticket cache %s is not a file: Porthole reads file caches; run kinit with KRB5CCNAME=FILE:/tmp/krb5cc_%d", ccPath, os.Getuid())
	}
	cc, err := credentials.LoadCCache(ccPath)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no Kerberos ticket (%s does not exist): run kinit first", ccPath)
	}
	if err != nil {
		return "", fmt.Errorf("read the Kerberos ticket cache %s: %w", ccPath, err)
	}
	cl, err := client.NewFromCCache(cc, kc, client.DisablePAFXFAST(true))
	if err != nil {
		return "", fmt.Errorf("use the Kerberos ticket in %s: %w (has it expired? run kinit)", ccPath, err)
	}
	defer cl.Destroy()
	s := spnego.SPNEGOClient(cl, spn)
	if err := s.AcquireCred(); err != nil {
		return "", fmt.Errorf("Kerberos credentials: %w", err)
	}
	st, err := s.InitSecContext()
	if err != nil {
		return "", fmt.Errorf("get a Kerberos ticket for %s: %w", spn, err)
	}
	b, err := st.Marshal()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
