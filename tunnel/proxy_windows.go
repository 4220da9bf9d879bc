package tunnel

import (
	"github.com/alexbrainman/sspi"
	"github.com/alexbrainman/sspi/ntlm"
)

// logonNTLM answers a proxy's NTLM challenge with the Windows logon's
// credentials (SSPI): no password asked.
func logonNTLM() ntlmExchange {
	cred, err := ntlm.AcquireCurrentUserCredentials()
	if err != nil {
		return nil
	}
	return &sspiNTLM{cred: cred}
}

type sspiNTLM struct {
	cred *sspi.Credentials
	ctx  *ntlm.ClientContext
}

func (s *sspiNTLM) Negotiate() ([]byte, error) {
	ctx, msg, err := ntlm.NewClientContext(s.cred)
	if err != nil {
		return nil, err
	}
	s.ctx = ctx
	return msg, nil
}

func (s *sspiNTLM) Authenticate(challenge []byte) ([]byte, error) {
	return s.ctx.Update(challenge)
}

func (s *sspiNTLM) Close() {
	if s.ctx != nil {
		s.ctx.Release()
	}
	s.cred.Release()
}
