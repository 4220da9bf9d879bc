package tunnel

import "golang.org/x/sys/windows/registry"

// machineGateway is the gateway URL IT set for every user of this computer:
// by Group Policy (HKLM\Software\Policies\Porthole\GatewayURL, from
// packaging/windows/policy/porthole.admx), else by the MSI's GATEWAY_URL
// (HKLM\Software\Porthole\GatewayURL). Policy wins.
func machineGateway() string {
	for _, key := range []string{`Software\Policies\Porthole`, `Software\Porthole`} {
		if v := registryString(key, "GatewayURL"); v != "" {
			return v
		}
	}
	return ""
}

func registryString(key, name string) string {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE)
	if err != nil {
		return ""
	}
	defer k.Close()
	v, _, err := k.GetStringValue(name)
	if err != nil {
		return ""
	}
	return v
}
