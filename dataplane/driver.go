// Package dataplane is the driver contract of netd, after libnetwork's
// driverapi: the Driver interface every network driver implements, the
// network and endpoint configs the daemon hands it, the capabilities a
// driver declares, and the optional interfaces the daemon finds by type
// assertion. It is a leaf: the drivers live in dataplane/<job>/ packages
// (bridge, host, null, ...) and import it; the daemon imports it and the
// drivers it registers, and never names a driver's options.
package dataplane

import (
	"context"
	"net"
	"net/netip"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
)

// Scopes of a driver's networks, as Docker's DataScope.
const (
	ScopeLocal  = "local"  // the network exists on this host only
	ScopeGlobal = "global" // the network exists on every host of the cluster
)

// Dataplane names a network runs on, chosen with -o netd.dataplane=...
const (
	DataplaneEBPF   = api.DataplaneEBPF
	DataplaneKernel = api.DataplaneKernel
)

// ParseDataplane checks a dataplane name (-o netd.dataplane, --dataplane).
func ParseDataplane(s string) (string, error) {
	switch s {
	case DataplaneEBPF, DataplaneKernel:
		return s, nil
	}
	return "", errdefs.InvalidParameter("invalid dataplane %q: must be %q or %q", s, DataplaneEBPF, DataplaneKernel)
}

// Capabilities are what a driver declares about its networks; the daemon
// decides from them, never from the driver's name.
type Capabilities struct {
	// Scope is ScopeLocal or ScopeGlobal (shown as the network's Scope).
	Scope string
	// IPAM says the driver's networks take address configuration
	// (--subnet, --gateway, --ip-range, automatic subnets). Without it an
	// IPAM config is refused and endpoints get no address.
	IPAM bool
	// Singleton drivers have exactly one network, their built-in one
	// (Docker's host and null): creating another is refused.
	Singleton bool
}

// NetworkConfig is everything a driver needs to build one network on this
// host. The daemon fills it from its store; drivers never read the store.
type NetworkConfig struct {
	ID       string // full 64-hex network ID
	Name     string
	Driver   string
	Index    uint32 // small number unique per network on this host (eBPF map keys)
	Subnet   netip.Prefix
	Gateway  netip.Addr // zero for networks without a gateway
	Internal bool       // no traffic beyond the subnet
	// IPRange is where endpoint addresses are allocated from (zero: the
	// whole subnet); Aux are the --aux-address reservations. A driver that
	// puts an address of its own in the subnet keeps out of both.
	IPRange netip.Prefix
	Aux     map[string]netip.Addr
	// Options are the -o options as the user gave them (shown by inspect).
	Options map[string]string
	// DriverState is what the driver's ValidateNetwork returned when the
	// network was created: the driver's own parsed and defaulted settings,
	// stored with the network and opaque to the daemon.
	DriverState map[string]string
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

// Driver is a network driver of the Container Network Model. Every method
// but ValidateNetwork is idempotent: calling it for an object that is
// already in the wanted state succeeds and changes nothing, which is what
// start-up reconcile relies on. Errors carry an errdefs kind where the
// caller is at fault or the host cannot help it; anything else is internal.
type Driver interface {
	// Type is the name users pass to -d/--driver.
	Type() string
	// Capabilities describes the driver's networks.
	Capabilities() Capabilities
	// ValidateNetwork checks the options of a network about to be created
	// (n.Options; addresses are already assigned) against the driver's
	// existing networks, and returns the state to store with it, handed
	// back in n.DriverState on every later call. It changes nothing. An
	// unknown option in the driver's own namespace is refused.
	ValidateNetwork(n *NetworkConfig, others []*NetworkConfig) (map[string]string, error)
	// CreateNetwork builds the network's host objects (bridge, rules, ...).
	CreateNetwork(ctx context.Context, n *NetworkConfig) error
	// DeleteNetwork removes them; missing objects are not an error.
	DeleteNetwork(ctx context.Context, n *NetworkConfig) error
	// CreateEndpoint creates the endpoint's link and plugs it into the
	// network (host side of a veth enslaved to the bridge, ...).
	CreateEndpoint(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error
	// Join moves the container side into ep.SandboxPath as ep.IfName,
	// sets MAC, address and MTU, brings it up and, if ep.DefaultGW, adds
	// the default route via ep.Gateway.
	Join(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error
	// Leave takes the endpoint out of its sandbox and deletes its link.
	Leave(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error
	// DeleteEndpoint releases whatever driver state is left of the endpoint.
	DeleteEndpoint(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error
	// Reconcile is called at start-up after every live network and
	// endpoint was re-created, and by `netd system prune`: it reports the
	// kernel objects this driver owns that belong to none of them
	// (orphans), and deletes them only when prune is set. A daemon never
	// deletes what it has no record of on its own: the record may be in
	// another state dir (a typo in --state-dir) or in an emptied database.
	Reconcile(ctx context.Context, nets []*NetworkConfig, eps []*EndpointConfig, prune bool) ([]Orphan, error)
}

// Orphan is a kernel object a driver owns (its mark says so: an alias, a
// pin, a table) that belongs to no network or endpoint of the store.
type Orphan struct {
	Kind  string // bridge, veth, netns, ebpf link, nftables rules, ...
	Name  string // interface, namespace, pin or rule
	Owner string // what its mark names, e.g. "network 4f3c…"
	// Unproven orphans look like this driver's but carry no mark proving
	// it (an older build's, or another node's that shares the name
	// prefix): reported, never removed.
	Unproven bool
}

func (o Orphan) String() string {
	s := o.Kind + " " + o.Name
	if o.Owner != "" {
		s += " (of " + o.Owner + ")"
	}
	if o.Unproven {
		s += " (no netd mark: not removed by prune)"
	}
	return s
}

// BuiltinNetwork is a network the daemon creates at its first start, as
// dockerd creates bridge, host and none.
type BuiltinNetwork struct {
	Name    string
	Options map[string]string
}

// Builtiner is an optional interface: a driver with a built-in network.
// The daemon creates it when missing, in driver registration order, and
// refuses to remove it.
type Builtiner interface {
	BuiltinNetwork() BuiltinNetwork
}

// LegacyStateDecoder is an optional interface: a driver whose settings an
// older netd stored as fields of the network record rather than as
// DriverState. The daemon hands it the record as stored (JSON) once, and
// stores the state it returns.
type LegacyStateDecoder interface {
	DecodeLegacyState(record []byte) (map[string]string, error)
}

// Drift is one difference between what the daemon stored and the kernel.
type Drift struct {
	Object  string // e.g. "network web (bridge br-4f3c…)", "endpoint nd4f3c… of c1"
	Problem string // e.g. "bridge missing", "MAC 02:42:… in the kernel, 02:42:… stored"
}

func (d Drift) String() string { return d.Object + ": " + d.Problem }

// Checker is an optional interface: a driver that compares the kernel with
// what the daemon stored, read-only. Orphans (see Reconcile) are drift too.
type Checker interface {
	Check(ctx context.Context, nets []*NetworkConfig, eps []*EndpointConfig) ([]Drift, error)
}

// Layered is an optional interface: a driver whose networks are built on
// another driver's (an overlay network is a bridge network plus a tunnel
// device). The daemon also hands its networks and endpoints to the base
// driver's Reconcile, so the base counts their objects as known.
type Layered interface {
	Base() string
	// BaseNetwork is n as the base driver sees it on this host.
	BaseNetwork(n *NetworkConfig) (*NetworkConfig, error)
}

// OptionReporter is an optional interface: a driver that shows settings it
// chose among a network's Options in inspect, as Docker's overlay shows
// the VXLAN ID it allocated.
type OptionReporter interface {
	ReportedOptions(n *NetworkConfig) map[string]string
}

// Releaser is an optional interface: a driver whose ValidateNetwork claims
// something outside the host (an overlay's VNI in the cluster) gives it
// back when the network is not created after all.
type Releaser interface {
	Release(n *NetworkConfig)
}

// PortMapping is one published port of an endpoint: traffic to
// HostIP:HostPort (HostIP unspecified: any address of the host) goes to
// the endpoint's address at ContainerPort.
type PortMapping struct {
	Proto         string     // "tcp" or "udp"
	HostIP        netip.Addr // 0.0.0.0 for every host address
	HostPort      uint16
	ContainerPort uint16
}

// Publisher is an optional interface: a driver whose endpoints can have
// published ports (Docker's -p). The daemon allocates and holds the host
// ports; the driver makes the traffic reach the endpoint. Both are
// idempotent: publishing a mapping that is in place, or unpublishing one
// that is gone, succeeds.
type Publisher interface {
	PublishPorts(ctx context.Context, n *NetworkConfig, ep *EndpointConfig, ports []PortMapping) error
	UnpublishPorts(ctx context.Context, n *NetworkConfig, ep *EndpointConfig, ports []PortMapping) error
}

// Closer is an optional interface: a driver holding handles the daemon
// releases at stop. Kernel objects stay.
type Closer interface {
	Close() error
}
