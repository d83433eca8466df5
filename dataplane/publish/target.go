//go:build linux

package publish

import (
	"net"
	"net/netip"
)

// Target is the endpoint a published port leads to, as the bridge driver
// knows it: where translated packets go and what they look like on the wire.
type Target struct {
	NetworkID   string
	EndpointID  string
	Addr        netip.Addr       // the container's address
	MAC         net.HardwareAddr // the container's MAC
	HostIfindex int              // host side of the container's veth (redirect_peer target)
	BridgeMAC   net.HardwareAddr // the network's bridge: the container's gateway MAC
	Gateway     netip.Addr       // the bridge's address: source of translated container-to-published-port flows
	// SandboxPath and IfName locate the container side of the veth (for
	// --xdp-publish, which needs NAPI there: GRO is turned on).
	SandboxPath string
	IfName      string
}
