//go:build !windows

package tunnel

// logonNTLM: only Windows has a logon to answer NTLM with; elsewhere the
// proxy user and password are needed.
func logonNTLM() ntlmExchange { return nil }
