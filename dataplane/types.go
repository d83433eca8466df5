//go:build linux

// Package dataplane owns every kernel object netd creates on a host: network
// namespaces (sandboxes), Linux bridges, veth pairs, macvlan links, nftables
// rules and the eBPF programs and maps of the fast path.
package dataplane

import (
	"net"
	"net/netip"
)

// NetworkConfig is everything a driver needs to build one network on this host.
// The daemon fills it from its store; drivers never read the store themselves.
type NetworkConfig struct {
	ID         string // full 64-hex network ID
	Name       string
	Driver     string // bridge | overlay | macvlan
	Dataplane  string // api.DataplaneEBPF | api.DataplaneKernel
	Index      uint32 // small number unique per network on this host (eBPF map keys, VNI defaults)
	BridgeName string // bridge device (bridge driver) or empty
	Subnet     netip.Prefix
	Gateway    netip.Addr // zero for networks without a gateway
	MTU        int        // 0 means the default (1500)
	Internal   bool       // no traffic beyond the subnet
	ICC        bool       // inter-container traffic allowed
	Masquerade bool       // masquerade egress from the subnet
	Options    map[string]string
}

// EndpointConfig is one attachment of a sandbox to a network.
type EndpointConfig struct {
	ID          string // full 64-hex endpoint ID
	NetworkID   string
	ContainerID string
	HostIfName  string // host side of the veth: "nd" + ID[:12]
	IfName      string // name inside the sandbox: eth0, eth1, ...
	MAC         net.HardwareAddr
	Addr        netip.Prefix // address with the subnet's prefix length
	Gateway     netip.Addr   // gateway of the network (zero: none)
	DefaultGW   bool         // install the default route via Gateway in the sandbox
	SandboxPath string       // bind-mounted netns, e.g. /run/netns/node1-web
}

// Accelerator is the hook through which an eBPF fast path rides on a driver's
// kernel objects. The bridge driver calls it for networks whose Dataplane is
// "ebpf"; a nil Accelerator means the kernel path only.
type Accelerator interface {
	// NetworkUp prepares per-network state (policy: ICC, isolation).
	NetworkUp(n *NetworkConfig) error
	// NetworkDown removes per-network state.
	NetworkDown(n *NetworkConfig) error
	// EndpointUp programs the endpoint table and attaches the programs to
	// the host-side interface. It must be idempotent: at start-up the
	// daemon calls it for every endpoint, and pinned state is adopted.
	EndpointUp(n *NetworkConfig, ep *EndpointConfig, hostIfindex int) error
	// EndpointDown removes the endpoint's entries and detaches.
	EndpointDown(n *NetworkConfig, ep *EndpointConfig) error
	// Prune runs once after start-up reconcile brought every live network
	// and endpoint up: it removes pinned state of everything else.
	Prune() error
}
