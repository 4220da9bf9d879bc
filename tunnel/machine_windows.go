package tunnel

import "golang.org/x/sys/windows/registry"

// machineGateway is the gateway URL IT set for every user of this computer:
// HKLM\Software\Porthole\GatewayURL, written by the MSI's GATEWAY_URL.
func machineGateway() string {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `Software\Porthole`, registry.QUERY_VALUE)
	if err != nil {
		return ""
	}
	defer k.Close()
	v, _, err := k.GetStringValue("GatewayURL")
	if err != nil {
		return ""
	}
	return v
}
