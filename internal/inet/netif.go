package inet

import (
	"fmt"
	"net"
)

// interfaceName names the interface of an IPv6 scope (link-local zone).
func interfaceName(index int) (string, error) {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return "", fmt.Errorf("interface %d: %w", index, err)
	}
	return ifi.Name, nil
}

// interfaceIndex is the index of the named interface, for an IPv6 zone.
func interfaceIndex(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return ifi.Index, nil
}
