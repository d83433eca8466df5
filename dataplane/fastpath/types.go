//go:build linux

package fastpath

import (
	"net"
	"net/netip"
)

// Network is what the data path knows of one network: its index (the key
// of every per-network map entry), policy and subnet.
type Network struct {
	Index    uint32
	Name     string
	Subnet   netip.Prefix
	Gateway  netip.Addr // the host's own address on the network; zero: none
	ICC      bool       // inter-container traffic allowed
	Internal bool       // nothing beyond the subnet
}

// Endpoint is one container interface whose host side carries the program.
type Endpoint struct {
	ID          string
	ContainerID string
	HostIfName  string // host side of the veth, where from_container runs
	MAC         net.HardwareAddr
	Addr        netip.Prefix
}

// Status is what GET /v1/dataplane shows of the fast path; the daemon
// renders it as api.DataplaneStatus.
type Status struct {
	PinDir    string
	Programs  []Attachment
	Endpoints []EndpointCounters
}

// Attachment says which program is attached where.
type Attachment struct {
	Interface string
	Ifindex   int
	Hook      string // HookTCXIngress, HookTCIngress
	Program   string
	ProgramID uint32
	LinkID    uint32 // 0 for a tc filter
	Pinned    string // link pin path, "" for a tc filter
}

// EndpointCounters are one endpoint's counters summed over CPUs.
type EndpointCounters struct {
	Network     string
	Container   string
	Interface   string
	MacAddress  string
	FastPackets uint64
	FastBytes   uint64
	SlowPackets uint64
	Drops       map[string]uint64 // reason name -> count
}
