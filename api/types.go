// Package api holds the JSON wire types of netd's unix-socket API and the Go
// client the CLI uses. It is a leaf package: both the daemon and the CLI
// import it, and it imports nothing of netd.
//
// Routes (all under /v1, JSON bodies, errors as ErrorResponse):
//
//	GET    /v1/version                        -> Version
//	GET    /v1/networks?filters=<json>        -> []Network   (filters: map[string][]string)
//	POST   /v1/networks/create                NetworkCreateRequest -> NetworkCreateResponse
//	GET    /v1/networks/{idOrName}            -> Network
//	DELETE /v1/networks/{idOrName}            -> 204
//	POST   /v1/networks/prune?filters=<json>  -> NetworksPruneReport
//	POST   /v1/networks/{idOrName}/connect    NetworkConnectRequest -> 200
//	POST   /v1/networks/{idOrName}/disconnect NetworkDisconnectRequest -> 200
//	GET    /v1/containers                     -> []Container
//	POST   /v1/containers/create              ContainerCreateRequest -> ContainerCreateResponse
//	GET    /v1/containers/{idOrName}          -> Container
//	GET    /v1/containers/{idOrName}/netns    Upgrade: netd-netns-fd -> 101 + the netns fd (SCM_RIGHTS)
//	DELETE /v1/containers/{idOrName}?force=1  -> 204
//	GET    /v1/dataplane                      -> DataplaneStatus
package api

import "time"

// Version is the API version this package speaks; it is the path prefix.
const Version = "v1"

// Dataplane names, chosen per network with -o netd.dataplane=...
const (
	DataplaneEBPF   = "ebpf"
	DataplaneKernel = "kernel"
)

// Option keys understood by the drivers (Docker's where Docker has one).
const (
	OptBridgeName     = "com.docker.network.bridge.name"
	OptEnableICC      = "com.docker.network.bridge.enable_icc"
	OptEnableMasq     = "com.docker.network.bridge.enable_ip_masquerade"
	OptMTU            = "com.docker.network.driver.mtu"
	OptDataplane      = "netd.dataplane"
	OptMacvlanParent  = "parent"
	OptMacvlanMode    = "macvlan_mode"
	OptOverlayVNI     = "com.docker.network.driver.overlay.vxlanid_list"
	DefaultBridgeName = "netd0"
)

// ErrorResponse is the body of every non-2xx answer, as Docker's API.
type ErrorResponse struct {
	Message string `json:"message"`
}

// VersionInfo answers GET /v1/version.
type VersionInfo struct {
	Version    string `json:"Version"`
	APIVersion string `json:"ApiVersion"`
	NodeName   string `json:"NodeName"`
	Dataplane  string `json:"Dataplane"` // default dataplane for new networks
	GoVersion  string `json:"GoVersion"`
}

// IPAMConfig is one address block of a network (Docker's IPAM.Config[]).
type IPAMConfig struct {
	Subnet             string            `json:"Subnet,omitempty"`
	IPRange            string            `json:"IPRange,omitempty"`
	Gateway            string            `json:"Gateway,omitempty"`
	AuxiliaryAddresses map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

// IPAM is Docker's IPAM section of a network.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// EndpointResource is one entry of Network.Containers, keyed by container ID.
type EndpointResource struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"` // CIDR form, e.g. 172.18.0.2/16
	IPv6Address string `json:"IPv6Address"`
}

// ConfigReference is Docker's ConfigFrom.
type ConfigReference struct {
	Network string `json:"Network"`
}

// Network is Docker's network resource: the body of inspect and of each ls row.
type Network struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    time.Time                   `json:"Created"`
	Scope      string                      `json:"Scope"` // local | swarm (overlay: "global")
	Driver     string                      `json:"Driver"`
	EnableIPv4 bool                        `json:"EnableIPv4"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       IPAM                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	ConfigFrom ConfigReference             `json:"ConfigFrom"`
	ConfigOnly bool                        `json:"ConfigOnly"`
	Containers map[string]EndpointResource `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
	// Peers are the hosts with endpoints on a cluster-wide network.
	Peers []PeerInfo `json:"Peers,omitempty"`
	// Services (inspect --verbose of a cluster-wide network): Docker's
	// shape; every endpoint of every host is a task of the "" service.
	Services map[string]ServiceInfo `json:"Services,omitempty"`
}

// PeerInfo is a host of a cluster-wide network and its VTEP address.
type PeerInfo struct {
	Name string `json:"Name"`
	IP   string `json:"IP"`
}

// ServiceInfo is Docker's verbose-inspect service entry.
type ServiceInfo struct {
	VIP          string   `json:"VIP"`
	Ports        []string `json:"Ports"`
	LocalLBIndex int      `json:"LocalLBIndex"`
	Tasks        []Task   `json:"Tasks"`
}

// Task is one endpoint in verbose inspect: Info has "Host IP" (the VTEP,
// as Docker), "Host", "MAC" and "State" (live or withdrawn).
type Task struct {
	Name       string            `json:"Name"`
	EndpointID string            `json:"EndpointID"`
	EndpointIP string            `json:"EndpointIP"`
	Info       map[string]string `json:"Info"`
}

// NetworkCreateRequest is the body of POST /v1/networks/create.
type NetworkCreateRequest struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"` // default "bridge"
	Internal   bool              `json:"Internal"`
	Attachable bool              `json:"Attachable"`
	IPAM       *IPAM             `json:"IPAM,omitempty"`
	Options    map[string]string `json:"Options,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// NetworkCreateResponse answers a create with the full ID.
type NetworkCreateResponse struct {
	ID      string `json:"Id"`
	Warning string `json:"Warning,omitempty"`
}

// NetworksPruneReport lists the names of the networks prune removed.
type NetworksPruneReport struct {
	NetworksDeleted []string `json:"NetworksDeleted"`
}

// EndpointIPAMConfig asks for a fixed address on connect/create.
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
}

// EndpointSettings is what a caller asks for when attaching a container.
type EndpointSettings struct {
	IPAMConfig *EndpointIPAMConfig `json:"IPAMConfig,omitempty"`
	Aliases    []string            `json:"Aliases,omitempty"`
	MacAddress string              `json:"MacAddress,omitempty"`
}

// NetworkConnectRequest is the body of POST /v1/networks/{id}/connect.
type NetworkConnectRequest struct {
	Container      string            `json:"Container"`
	EndpointConfig *EndpointSettings `json:"EndpointConfig,omitempty"`
}

// NetworkDisconnectRequest is the body of POST /v1/networks/{id}/disconnect.
type NetworkDisconnectRequest struct {
	Container string `json:"Container"`
	Force     bool   `json:"Force"`
}

// ContainerNetworkRequest attaches a new container to one network.
type ContainerNetworkRequest struct {
	Network  string           `json:"Network"`
	Settings EndpointSettings `json:"Settings"`
}

// ContainerCreateRequest is the body of POST /v1/containers/create.
// Networks are attached in order: the first becomes eth0 and carries the
// default route. No networks means the default "bridge" network; a single
// "none" means loopback only.
type ContainerCreateRequest struct {
	Name     string                    `json:"Name"`
	Networks []ContainerNetworkRequest `json:"Networks,omitempty"`
	Labels   map[string]string         `json:"Labels,omitempty"`
	// PortBindings are the -p options, Docker's HostConfig.PortBindings:
	// keyed by "PORT/PROTO" of the container; an empty HostPort asks for
	// one from the ephemeral range, an empty HostIp for the network's
	// default host address (0.0.0.0 unless host_binding_ipv4 says otherwise).
	PortBindings PortMap `json:"PortBindings,omitempty"`
}

// PortBinding is one host address and port a container port is published
// on (Docker's nat.PortBinding).
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// PortMap is Docker's nat.PortMap: "80/tcp" -> its host bindings.
type PortMap map[string][]PortBinding

// ContainerCreateResponse carries the new container's full ID.
type ContainerCreateResponse struct {
	ID       string   `json:"Id"`
	Warnings []string `json:"Warnings,omitempty"`
}

// ContainerEndpoint is one attachment of a container (Docker's
// NetworkSettings.Networks[name]).
type ContainerEndpoint struct {
	NetworkID   string   `json:"NetworkID"`
	EndpointID  string   `json:"EndpointID"`
	Interface   string   `json:"Interface"` // eth0, eth1, ... inside the sandbox
	HostIfName  string   `json:"HostInterface,omitempty"`
	Gateway     string   `json:"Gateway"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int      `json:"IPPrefixLen"`
	MacAddress  string   `json:"MacAddress"`
	Aliases     []string `json:"Aliases,omitempty"`
}

// NetworkSettings mirrors the part of docker inspect that describes networking.
type NetworkSettings struct {
	SandboxID  string                       `json:"SandboxID"`
	SandboxKey string                       `json:"SandboxKey"` // path of the netns, e.g. /run/netns/node1-web
	Networks   map[string]ContainerEndpoint `json:"Networks"`   // keyed by network name
	// Ports are the published ports as bound (host ports allocated),
	// Docker's NetworkSettings.Ports.
	Ports PortMap `json:"Ports"`
}

// HostConfig is the part of Docker's HostConfig netd has: the port
// bindings as requested.
type HostConfig struct {
	PortBindings PortMap `json:"PortBindings"`
}

// Container is a sandbox: a named network namespace with its attachments.
type Container struct {
	ID              string            `json:"Id"`
	Name            string            `json:"Name"`
	Created         time.Time         `json:"Created"`
	Labels          map[string]string `json:"Labels"`
	NetworkSettings NetworkSettings   `json:"NetworkSettings"`
	HostConfig      HostConfig        `json:"HostConfig"`
	// DNS is the embedded DNS server of a container on a user-defined
	// network (netd's own field; absent otherwise).
	DNS *ContainerDNS `json:"DNS,omitempty"`
}

// ContainerDNS is a container's embedded DNS server and its counters.
type ContainerDNS struct {
	Address     string `json:"Address"` // 127.0.0.11:53, UDP and TCP
	Queries     uint64 `json:"Queries"`
	Answered    uint64 `json:"Answered"`  // from the container table
	NXDomain    uint64 `json:"NXDomain"`  // container-like names nothing has
	Forwarded   uint64 `json:"Forwarded"` // answered by the host's resolvers
	ServFail    uint64 `json:"ServFail"`  // no upstream answered
	Refused     uint64 `json:"Refused"`
	Malformed   uint64 `json:"Malformed"`   // dropped
	RateLimited uint64 `json:"RateLimited"` // dropped
}

// ProgramAttachment says which eBPF program is attached where.
type ProgramAttachment struct {
	Interface string `json:"Interface"`
	Ifindex   int    `json:"Ifindex"`
	Hook      string `json:"Hook"` // tcx-ingress, tc-ingress, xdp
	Program   string `json:"Program"`
	ProgramID uint32 `json:"ProgramID"`
	LinkID    uint32 `json:"LinkID,omitempty"`
	Pinned    string `json:"Pinned,omitempty"`
}

// EndpointCounters are the per-endpoint eBPF counters.
type EndpointCounters struct {
	Network     string            `json:"Network"`
	Container   string            `json:"Container"`
	Interface   string            `json:"Interface"` // host side
	MacAddress  string            `json:"MacAddress"`
	FastPackets uint64            `json:"FastPackets"`
	FastBytes   uint64            `json:"FastBytes"`
	SlowPackets uint64            `json:"SlowPackets"`
	Drops       map[string]uint64 `json:"Drops"` // reason -> count
	// Overlay endpoints on the eBPF dataplane: Fast* count what went to a
	// local endpoint or into the tunnel, Slow* what went to the bridge.
	EncapPackets uint64 `json:"EncapPackets,omitempty"`
	DecapPackets uint64 `json:"DecapPackets,omitempty"`
	ARPReplies   uint64 `json:"ARPReplies,omitempty"` // ARP requests answered in eBPF
}

// TunnelCounters are one overlay network's traffic through the host's
// VXLAN device on the eBPF dataplane (VNI 0: frames of no network here).
type TunnelCounters struct {
	Network      string            `json:"Network"`
	VNI          uint32            `json:"VNI"`
	Interface    string            `json:"Interface"`
	EncapPackets uint64            `json:"EncapPackets"`
	EncapBytes   uint64            `json:"EncapBytes"`
	DecapPackets uint64            `json:"DecapPackets"`
	DecapBytes   uint64            `json:"DecapBytes"`
	Drops        map[string]uint64 `json:"Drops"` // reason -> count
}

// DataplaneStatus answers GET /v1/dataplane.
type DataplaneStatus struct {
	Default   string              `json:"Default"`
	PinDir    string              `json:"PinDir"`
	Programs  []ProgramAttachment `json:"Programs"`
	Endpoints []EndpointCounters  `json:"Endpoints"`
	Tunnels   []TunnelCounters    `json:"Tunnels,omitempty"` // overlay networks on the eBPF dataplane
}

// Drift is one difference between the daemon's records and the kernel.
type Drift struct {
	Object  string `json:"Object"`
	Problem string `json:"Problem"`
}

// SystemCheck answers GET /v1/system/check: every drift found (none: consistent).
type SystemCheck struct {
	Drifts []Drift `json:"Drifts"`
}

// SystemPruneReport answers POST /v1/system/prune: the kernel objects of
// this node that had no record, removed or (without this node's mark) kept.
type SystemPruneReport struct {
	Removed []string `json:"Removed"`
	Kept    []string `json:"Kept"`
}
