//go:build linux

// Package bridge is the `bridge` network driver: a Linux bridge per
// network, a veth pair per endpoint and nftables rules, like Docker's bridge
// driver; on the ebpf dataplane an Accelerator (the fast path) rides on the
// host-side veths.
package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/fastpath"
	"github.com/netd-dev/netd/dataplane/internal/ifcfg"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/publish"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

const (
	// Type is the driver name (-d bridge).
	Type = "bridge"
	// DataplaneEBPF is the State.Dataplane value that engages the Accelerator.
	DataplaneEBPF = dataplane.DataplaneEBPF
	// BridgeAliasPrefix marks a bridge as netd's: its alias is this plus the network ID.
	BridgeAliasPrefix = "netd:"
	// HostVethPrefix starts the name of every host-side veth ("nd" + endpoint ID[:12]).
	HostVethPrefix = "nd"
	// BridgeVethAliasPrefix marks a host-side veth as the bridge driver's: its
	// alias is this plus the endpoint ID. Other drivers name their veths the
	// same way, so the name alone proves nothing.
	BridgeVethAliasPrefix = "netd:bridge-ep:"
	// tempVethPrefix names a container-side veth until Join moves and renames it.
	tempVethPrefix = "nt"
	defaultMTU     = 1500
)

// Accelerator is the hook through which an eBPF fast path rides on the
// driver's kernel objects. The driver calls it for networks whose
// dataplane is "ebpf"; a nil Accelerator means the kernel path only.
// *fastpath.EBPF implements it.
type Accelerator interface {
	// NetworkUp prepares per-network state (policy: ICC, isolation).
	NetworkUp(n *fastpath.Network) error
	// NetworkDown removes per-network state.
	NetworkDown(n *fastpath.Network) error
	// EndpointUp programs the endpoint table and attaches the programs to
	// the host-side interface. It must be idempotent: at start-up the
	// daemon calls it for every endpoint, and pinned state is adopted.
	EndpointUp(n *fastpath.Network, ep *fastpath.Endpoint, hostIfindex int) error
	// EndpointDown removes the endpoint's entries and detaches.
	EndpointDown(n *fastpath.Network, ep *fastpath.Endpoint) error
	// Prune runs after start-up reconcile brought every live network and
	// endpoint up: it removes pinned state of everything else but the
	// interfaces in keep (name -> ifindex: orphans that are kept).
	Prune(keep map[string]int) error
}

var _ Accelerator = (*fastpath.EBPF)(nil)

// Config configures New.
type Config struct {
	NodeName string // names the nftables tables: netd_<node>
	// DefaultDataplane is the dataplane of networks created without
	// netd.dataplane (daemon --dataplane); empty means ebpf.
	DefaultDataplane string
	Accelerator      Accelerator // nil: kernel path only
	Logger           *slog.Logger
	// AccelError says why there is no Accelerator; networks asking for the
	// ebpf dataplane are then refused with it instead of silently running
	// on the kernel path.
	AccelError error
	// Publisher publishes ports of endpoints on ebpf networks (nil: none);
	// PublisherError says why there is none, for the error such a network's
	// -p gets. Kernel networks publish with nftables either way.
	Publisher      PortPublisher
	PublisherError error
}

// PortPublisher is the eBPF port publisher (dataplane/publish): it makes a
// published host port lead to an endpoint. Both calls are idempotent.
type PortPublisher interface {
	Publish(t publish.Target, ports []dataplane.PortMapping) error
	Unpublish(t publish.Target, ports []dataplane.PortMapping) error
}

// Driver is the `bridge` network driver. It works in the network namespace
// of the thread that called New (the daemon's), whatever thread calls it later.
type Driver struct {
	accel     Accelerator
	accelErr  error
	defaultDP string
	log       *slog.Logger
	table     string

	ns netns.NsHandle  // the host netns every kernel object lives in
	nl *netlink.Handle // netlink bound to ns, whatever thread calls us

	mu    sync.Mutex
	nets  map[string]*network            // live networks by ID: the firewall derives from them
	ports map[string]map[string]struct{} // network ID -> host-side veth names
	fw    firewall                       // nftables connection and state (nft.go)
	kept  keptRules                      // firewall objects of orphans, kept until pruned

	publisher    PortPublisher
	publisherErr error
	pub          map[string]*pubEndpoint // endpoint ID -> its published ports (publish.go)
	pubHost      map[hostKey]hostUse     // kernel dataplane: host address and port -> its rule
	pubTarget    map[hairpinKey]int      // kernel dataplane: container port -> mappings to it
}

var (
	_ dataplane.Driver             = (*Driver)(nil)
	_ dataplane.Builtiner          = (*Driver)(nil)
	_ dataplane.LegacyStateDecoder = (*Driver)(nil)
	_ dataplane.Closer             = (*Driver)(nil)
	_ dataplane.Publisher          = (*Driver)(nil)
)

// network is a NetworkConfig with its State decoded.
type network struct {
	*dataplane.NetworkConfig
	State
}

// begin is the prologue of every per-network method: a cancelled
// request does nothing, and the network's state must decode.
func (d *Driver) begin(ctx context.Context, cfg *dataplane.NetworkConfig) (*network, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.decode(cfg)
}

func (d *Driver) decode(n *dataplane.NetworkConfig) (*network, error) {
	s, err := StateOf(n)
	if err != nil {
		return nil, err
	}
	return &network{NetworkConfig: n, State: s}, nil
}

// New opens the calling thread's netns and returns a driver working in it.
func New(cfg Config) (*Driver, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("create bridge driver: node name is empty")
	}
	ns, h, err := sandbox.OpenHostHandle()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{
		accel:     cfg.Accelerator,
		accelErr:  cfg.AccelError,
		defaultDP: cfg.DefaultDataplane,
		log:       log.With("driver", Type),
		table:     NftTableName(cfg.NodeName),
		ns:        ns,
		nl:        h,
		nets:      map[string]*network{},
		ports:     map[string]map[string]struct{}{},

		publisher:    cfg.Publisher,
		publisherErr: cfg.PublisherError,
		pub:          map[string]*pubEndpoint{},
		pubHost:      map[hostKey]hostUse{},
		pubTarget:    map[hairpinKey]int{},
	}, nil
}

// Close releases the driver's handles; kernel objects and rules stay.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.fw.close()
	d.mu.Unlock()
	d.nl.Close()
	return d.ns.Close()
}

// Type implements dataplane.Driver.
func (d *Driver) Type() string { return Type }

// Capabilities implements dataplane.Driver: local networks with addresses.
func (d *Driver) Capabilities() dataplane.Capabilities {
	return dataplane.Capabilities{Scope: dataplane.ScopeLocal, IPAM: true}
}

// BuiltinNetwork implements dataplane.Builtiner: the default `bridge` network.
func (d *Driver) BuiltinNetwork() dataplane.BuiltinNetwork { return Builtin(d.defaultDP) }

// DecodeLegacyState implements dataplane.LegacyStateDecoder.
func (d *Driver) DecodeLegacyState(record []byte) (map[string]string, error) {
	return DecodeLegacyState(record)
}

// ValidateNetwork implements dataplane.Driver.
func (d *Driver) ValidateNetwork(n *dataplane.NetworkConfig, others []*dataplane.NetworkConfig) (map[string]string, error) {
	s, err := Validate(d.defaultDP, n, others)
	if err != nil {
		return nil, err
	}
	if s.Dataplane == DataplaneEBPF && d.accel == nil {
		return nil, errdefs.Unavailable("the ebpf dataplane is not available on this host (%v): create the network with -o netd.dataplane=kernel", d.whyNoAccel())
	}
	return s.Map(), nil
}

func (d *Driver) whyNoAccel() error {
	if d.accelErr != nil {
		return d.accelErr
	}
	return errors.New("no eBPF dataplane loaded")
}

func mtuOf(n *network) int {
	if n.MTU > 0 {
		return n.MTU
	}
	return defaultMTU
}

func (d *Driver) accelerated(n *network) bool {
	return d.accel != nil && n.Dataplane == DataplaneEBPF
}

// fastNetwork is what the fast path needs of n.
func fastNetwork(n *network) *fastpath.Network {
	return &fastpath.Network{Index: n.Index, Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, ICC: n.ICC, Internal: n.Internal}
}

func fastEndpoint(ep *dataplane.EndpointConfig) *fastpath.Endpoint {
	return &fastpath.Endpoint{ID: ep.ID, ContainerID: ep.ContainerID, HostIfName: ep.HostIfName, MAC: ep.MAC, Addr: ep.Addr}
}

func randomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("generate MAC: %w", err)
	}
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered unicast
	return mac, nil
}

// CreateNetwork implements dataplane.Driver.
func (d *Driver) CreateNetwork(ctx context.Context, cfg *dataplane.NetworkConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	if n.Dataplane == DataplaneEBPF && d.accel == nil {
		return errdefs.Unavailable("network %s: the ebpf dataplane is not available on this host: %v", n.Name, d.whyNoAccel())
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	br, err := d.ensureBridge(n)
	if err != nil {
		return err
	}
	if n.Gateway.IsValid() && n.Subnet.IsValid() {
		if err := ifcfg.EnsureAddr(d.nl, br, netip.PrefixFrom(n.Gateway, n.Subnet.Bits())); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
	}
	if err := d.nl.LinkSetUp(br); err != nil {
		return fmt.Errorf("set bridge %s up: %w", n.BridgeName, err)
	}
	if err := d.enableForwarding(); err != nil {
		return err
	}
	c := *n.NetworkConfig
	d.nets[n.ID] = &network{NetworkConfig: &c, State: n.State}
	if _, ok := d.ports[n.ID]; !ok {
		d.ports[n.ID] = map[string]struct{}{}
	}
	if err := d.rulesUp(n); err != nil {
		return err
	}
	if d.accelerated(n) {
		if err := d.accel.NetworkUp(fastNetwork(n)); err != nil {
			return fmt.Errorf("accelerate network %s: %w", n.Name, err)
		}
	}
	d.log.Debug("network up", "network", n.Name, "bridge", n.BridgeName, "subnet", n.Subnet)
	return nil
}

// ensureBridge finds or creates the network's bridge, claims it with the
// alias and sets its MTU.
func (d *Driver) ensureBridge(n *network) (netlink.Link, error) {
	mtu := mtuOf(n)
	alias := BridgeAliasPrefix + n.ID
	l, err := nlutil.LinkByNameOpt(d.nl, n.BridgeName)
	if err != nil {
		return nil, err
	}
	if l == nil {
		mac, err := randomMAC()
		if err != nil {
			return nil, err
		}
		// A fixed MAC keeps the bridge's address stable as ports come and go.
		la := netlink.LinkAttrs{Name: n.BridgeName, MTU: mtu, HardwareAddr: mac}
		if err := d.nl.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", n.BridgeName, err)
		}
		if l, err = d.nl.LinkByName(n.BridgeName); err != nil {
			return nil, fmt.Errorf("get bridge %s: %w", n.BridgeName, err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("create bridge %s: device exists and is a %s, not a bridge", n.BridgeName, l.Type())
	}
	if cur := l.Attrs().Alias; cur != alias {
		if strings.HasPrefix(cur, BridgeAliasPrefix) {
			return nil, errdefs.Conflict("create bridge %s: already used by network %s; if this daemon has no such network (netd network ls), "+
				"the bridge is an orphan of a lost or other state dir: remove it with `netd system prune` or restart the daemon with --prune-orphans",
				n.BridgeName, strings.TrimPrefix(cur, BridgeAliasPrefix))
		}
		if err := d.nl.LinkSetAlias(l, alias); err != nil {
			return nil, fmt.Errorf("set alias of bridge %s: %w", n.BridgeName, err)
		}
	}
	if l.Attrs().MTU != mtu {
		if err := d.nl.LinkSetMTU(l, mtu); err != nil {
			return nil, fmt.Errorf("set MTU of bridge %s: %w", n.BridgeName, err)
		}
	}
	return l, nil
}

// enableForwarding sets ip_forward in the driver's netns (never the caller's).
func (d *Driver) enableForwarding() error {
	return d.sysctlOn("/proc/sys/net/ipv4/ip_forward", "enable IPv4 forwarding")
}

// sysctlOn writes 1 to the sysctl file path in the driver's netns unless
// it already holds 1; what names the step in the error.
func (d *Driver) sysctlOn(path, what string) error {
	return sandbox.Do(d.ns, func() error {
		cur, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if bytes.Equal(bytes.TrimSpace(cur), []byte("1")) {
			return nil
		}
		if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// DeleteNetwork implements dataplane.Driver.
func (d *Driver) DeleteNetwork(ctx context.Context, cfg *dataplane.NetworkConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.unpublishNetwork(n); err != nil {
		return err
	}
	// Only a network this driver brought up has fast-path state: the undo
	// of a create that failed must not touch another network's entries.
	if _, up := d.nets[n.ID]; up && d.accelerated(n) {
		if err := d.accel.NetworkDown(fastNetwork(n)); err != nil {
			return fmt.Errorf("remove acceleration of network %s: %w", n.Name, err)
		}
	}
	live, up := d.nets[n.ID]
	ports, hasPorts := d.ports[n.ID]
	delete(d.nets, n.ID)
	delete(d.ports, n.ID)
	// Rules are keyed by bridge and subnet: only those of a network this
	// driver brought up are removed, never another's after a failed create.
	if up {
		if err := d.rulesDown(n, ports); err != nil {
			d.nets[n.ID] = live // still up, so that a retry removes the rules
			if hasPorts {
				d.ports[n.ID] = ports
			}
			return err
		}
	}
	if n.BridgeName == "" {
		return nil
	}
	l, err := nlutil.LinkByNameOpt(d.nl, n.BridgeName)
	if err != nil || l == nil {
		return err
	}
	// Only delete a bridge this network owns.
	if l.Attrs().Alias != BridgeAliasPrefix+n.ID {
		d.log.Warn("bridge not owned by network, kept", "bridge", n.BridgeName, "alias", l.Attrs().Alias, "network", n.Name)
		return nil
	}
	if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
		return fmt.Errorf("delete bridge %s: %w", n.BridgeName, err)
	}
	return nil
}

// tempPeerName is the container-side veth's name while it is still in the host netns.
func tempPeerName(ep *dataplane.EndpointConfig) string {
	id := ep.ID
	if id == "" {
		id = strings.TrimPrefix(ep.HostIfName, HostVethPrefix)
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return tempVethPrefix + id
}

// CreateEndpoint implements dataplane.Driver: a veth pair whose host side is
// enslaved to the bridge and up; the other side waits for Join.
func (d *Driver) CreateEndpoint(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	if ep.HostIfName == "" || len(ep.HostIfName) >= unix.IFNAMSIZ {
		return fmt.Errorf("create endpoint %s: invalid host interface name %q", ep.ID, ep.HostIfName)
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	mtu := mtuOf(n)
	br, err := nlutil.LinkByNameOpt(d.nl, n.BridgeName)
	if err != nil {
		return err
	}
	if br == nil {
		return fmt.Errorf("create endpoint %s: bridge %s of network %s not found", ep.HostIfName, n.BridgeName, n.Name)
	}
	host, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return err
	}
	if host == nil {
		tmp := tempPeerName(ep)
		// A leftover with the temporary name would make the veth creation fail.
		if old, err := nlutil.LinkByNameOpt(d.nl, tmp); err == nil && old != nil {
			d.nl.LinkDel(old)
		}
		veth := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName, MTU: mtu, MasterIndex: br.Attrs().Index},
			PeerName:  tmp,
			PeerMTU:   uint32(mtu),
		}
		if err := d.nl.LinkAdd(veth); err != nil {
			return fmt.Errorf("create veth %s: %w", ep.HostIfName, err)
		}
		if host, err = d.nl.LinkByName(ep.HostIfName); err != nil {
			return fmt.Errorf("get veth %s: %w", ep.HostIfName, err)
		}
	}
	if _, ok := host.(*netlink.Veth); !ok {
		return fmt.Errorf("create endpoint: device %s exists and is a %s, not a veth", ep.HostIfName, host.Type())
	}
	// The kernel ignores an alias given at creation, so it is set here; an
	// adopted veth of an older build gets it too.
	if alias := vethAlias(ep); host.Attrs().Alias != alias {
		if err := d.nl.LinkSetAlias(host, alias); err != nil {
			return fmt.Errorf("set alias of %s: %w", ep.HostIfName, err)
		}
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		if err := d.nl.LinkSetMasterByIndex(host, br.Attrs().Index); err != nil {
			return fmt.Errorf("enslave %s to %s: %w", ep.HostIfName, n.BridgeName, err)
		}
	}
	if host.Attrs().MTU != mtu {
		if err := d.nl.LinkSetMTU(host, mtu); err != nil {
			return fmt.Errorf("set MTU of %s: %w", ep.HostIfName, err)
		}
	}
	if err := d.nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", ep.HostIfName, err)
	}
	return d.addPort(n, ep.HostIfName)
}

// vethAlias is the alias that proves a host-side veth belongs to this driver.
func vethAlias(ep *dataplane.EndpointConfig) string {
	id := ep.ID
	if id == "" {
		id = strings.TrimPrefix(ep.HostIfName, HostVethPrefix)
	}
	return BridgeVethAliasPrefix + id
}

// addPort records a bridge port; ICC=false rules list the ports. d.mu held.
func (d *Driver) addPort(n *network, port string) error {
	ps, ok := d.ports[n.ID]
	if !ok {
		ps = map[string]struct{}{}
		d.ports[n.ID] = ps
	}
	if _, ok := ps[port]; ok {
		return nil
	}
	ps[port] = struct{}{}
	if _, live := d.nets[n.ID]; live && !n.ICC {
		return d.portRule(n, port, true)
	}
	return nil
}

func (d *Driver) removePort(n *network, port string) error {
	ps := d.ports[n.ID]
	if _, ok := ps[port]; !ok {
		return nil
	}
	delete(ps, port)
	if _, live := d.nets[n.ID]; live && !n.ICC {
		return d.portRule(n, port, false)
	}
	return nil
}

// isPeer reports whether l (in the sandbox) is the other end of veth host.
func isPeer(l, host netlink.Link) bool {
	if _, ok := l.(*netlink.Veth); !ok {
		return false
	}
	return l.Attrs().ParentIndex == host.Attrs().Index && host.Attrs().ParentIndex == l.Attrs().Index
}

// Join implements dataplane.Driver.
func (d *Driver) Join(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	if ep.IfName == "" || len(ep.IfName) >= unix.IFNAMSIZ {
		return fmt.Errorf("join %s: invalid interface name %q", ep.HostIfName, ep.IfName)
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	host, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return err
	}
	if host == nil {
		return fmt.Errorf("join: veth %s not found", ep.HostIfName)
	}
	sbns, sh, err := sandbox.OpenHandle(ep.SandboxPath)
	if err != nil {
		return err
	}
	defer sbns.Close()
	defer sh.Close()

	l, err := nlutil.LinkByNameOpt(sh, ep.IfName)
	if err != nil {
		return err
	}
	if l != nil && !isPeer(l, host) {
		return fmt.Errorf("join: interface %s already exists in sandbox %s", ep.IfName, ep.SandboxPath)
	}
	// Anti-spoofing must be in place before the container can send: once
	// its side is up, a frame that misses the program goes to the bridge unchecked.
	if d.accelerated(n) {
		if err := d.accel.EndpointUp(fastNetwork(n), fastEndpoint(ep), host.Attrs().Index); err != nil {
			return fmt.Errorf("accelerate endpoint %s: %w", ep.HostIfName, err)
		}
	}
	if l == nil {
		if l, err = d.moveIntoSandbox(sh, sbns, ep); err != nil {
			return err
		}
	}
	if err := configureContainerSide(sh, l, n, ep); err != nil {
		return fmt.Errorf("join %s in %s: %w", ep.IfName, ep.SandboxPath, err)
	}
	return nil
}

// moveIntoSandbox moves the temporary peer into the sandbox and renames it.
func (d *Driver) moveIntoSandbox(sh *netlink.Handle, sbns netns.NsHandle, ep *dataplane.EndpointConfig) (netlink.Link, error) {
	tmp := tempPeerName(ep)
	peer, err := nlutil.LinkByNameOpt(d.nl, tmp)
	if err != nil {
		return nil, err
	}
	if peer == nil {
		// A previous Join may have moved it but failed before the rename.
		if peer, err = nlutil.LinkByNameOpt(sh, tmp); err != nil {
			return nil, err
		}
		if peer == nil {
			return nil, fmt.Errorf("join: peer of %s not found", ep.HostIfName)
		}
	} else {
		if err := d.nl.LinkSetNsFd(peer, int(sbns)); err != nil {
			return nil, fmt.Errorf("move %s into %s: %w", tmp, ep.SandboxPath, err)
		}
		if peer, err = sh.LinkByName(tmp); err != nil {
			return nil, fmt.Errorf("find %s in %s: %w", tmp, ep.SandboxPath, err)
		}
	}
	if err := sh.LinkSetDown(peer); err != nil {
		return nil, fmt.Errorf("set %s down: %w", tmp, err)
	}
	if err := sh.LinkSetName(peer, ep.IfName); err != nil {
		return nil, fmt.Errorf("rename %s to %s: %w", tmp, ep.IfName, err)
	}
	l, err := sh.LinkByName(ep.IfName)
	if err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", ep.IfName, ep.SandboxPath, err)
	}
	return l, nil
}

// configureContainerSide sets IPv6 off (IPv4-only networks), MAC, MTU,
// address, up and the default route.
func configureContainerSide(sh *netlink.Handle, l netlink.Link, n *network, ep *dataplane.EndpointConfig) error {
	return ifcfg.Apply(sh, l, ifcfg.Config{
		SandboxPath:  ep.SandboxPath,
		DisableIPv6:  !n.Subnet.Addr().Is6() && !ep.Addr.Addr().Is6(),
		MAC:          ep.MAC,
		MTU:          mtuOf(n),
		Addr:         ep.Addr,
		DefaultRoute: ep.DefaultGW,
		Gateway:      ep.Gateway,
	})
}

// Leave implements dataplane.Driver: deleting the host side removes both ends.
func (d *Driver) Leave(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.unpublishAll(n, ep); err != nil {
		return err
	}
	if d.accelerated(n) {
		// Down first: while the accelerator takes the endpoint apart, its
		// frames would reach the bridge without anti-spoofing.
		if host, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName); err != nil {
			return err
		} else if host != nil {
			if err := d.nl.LinkSetDown(host); err != nil && !nlutil.IsNotFound(err) {
				return fmt.Errorf("set %s down: %w", ep.HostIfName, err)
			}
		}
		if err := d.accel.EndpointDown(fastNetwork(n), fastEndpoint(ep)); err != nil {
			return fmt.Errorf("remove acceleration of endpoint %s: %w", ep.HostIfName, err)
		}
	}
	return d.deleteVeth(n, ep)
}

// DeleteEndpoint implements dataplane.Driver: it makes sure the veth is gone.
func (d *Driver) DeleteEndpoint(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.unpublishAll(n, ep); err != nil {
		return err
	}
	return d.deleteVeth(n, ep)
}

func (d *Driver) deleteVeth(n *network, ep *dataplane.EndpointConfig) error {
	for _, name := range []string{ep.HostIfName, tempPeerName(ep)} {
		l, err := nlutil.LinkByNameOpt(d.nl, name)
		if err != nil {
			return err
		}
		if l == nil {
			continue
		}
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
			return fmt.Errorf("delete veth %s: %w", name, err)
		}
	}
	return d.removePort(n, ep.HostIfName)
}

// Reconcile implements dataplane.Driver: bridges and veths this driver owns
// (by alias) that belong to none of nets and eps are orphans, deleted only
// with prune (a veth's peer goes with it); the firewall is rewritten for
// exactly nets.
func (d *Driver) Reconcile(ctx context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig, prune bool) ([]dataplane.Orphan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	var errs []error
	live := make(map[string]*network, len(nets))
	known := make(map[string]bool, len(nets)) // a network whose state cannot be read keeps its bridge
	for _, cfg := range nets {
		known[cfg.ID] = true
		c := *cfg
		n, err := d.decode(&c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		live[n.ID] = n
	}
	keepIf := map[string]bool{}
	ports := map[string]map[string]struct{}{}
	for id := range live {
		ports[id] = map[string]struct{}{}
	}
	for _, ep := range eps {
		keepIf[ep.HostIfName] = true
		if ps, ok := ports[ep.NetworkID]; ok {
			ps[ep.HostIfName] = struct{}{}
		}
	}

	links, err := nlutil.LinkList(d.nl)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list links: %w", err)
	}
	var orphans []dataplane.Orphan
	keepFast := map[string]int{} // orphaned veths keep their fast-path state until pruned
	kept := keptRules{bridges: map[string]bool{}, ports: map[string]bool{}}
	for _, ol := range orphanLinks(links, known, keepIf) {
		orphans = append(orphans, ol.Orphan)
		if !prune {
			if ol.Kind == "veth" {
				keepFast[ol.Name] = ol.link.Attrs().Index
				kept.ports[ol.Name] = true
			} else {
				kept.bridges[ol.Name] = true
			}
			continue
		}
		d.log.Info("prune: deleting orphaned link", "link", ol.Name, "type", ol.link.Type(), "owner", ol.Owner)
		if err := d.nl.LinkDel(ol.link); err != nil && !nlutil.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete orphaned %s %s: %w", ol.Kind, ol.Name, err))
		}
	}
	d.nets = live
	d.ports = ports
	d.kept = kept
	if err := d.reconcilePublished(eps); err != nil {
		errs = append(errs, fmt.Errorf("reconcile published ports: %w", err))
	}
	if err := d.syncRules(); err != nil {
		errs = append(errs, err)
	}
	if d.accel != nil {
		if err := d.accel.Prune(keepFast); err != nil {
			errs = append(errs, fmt.Errorf("reconcile eBPF state: %w", err))
		}
	}
	return orphans, errors.Join(errs...)
}

// orphanLink is a bridge or veth this driver marked (alias) that belongs to
// no known network or endpoint.
type orphanLink struct {
	dataplane.Orphan
	link netlink.Link
}

// orphanLinks finds them among links: bridges by network ID, veths by
// host-side name.
func orphanLinks(links []netlink.Link, knownNet, knownIf map[string]bool) []orphanLink {
	var out []orphanLink
	for _, l := range links {
		name, alias := l.Attrs().Name, l.Attrs().Alias
		switch l.(type) {
		case *netlink.Bridge:
			if id, ours := strings.CutPrefix(alias, BridgeAliasPrefix); ours && !knownNet[id] {
				out = append(out, orphanLink{dataplane.Orphan{Kind: "bridge", Name: name, Owner: "network " + id}, l})
			}
		case *netlink.Veth:
			if id, ours := strings.CutPrefix(alias, BridgeVethAliasPrefix); ours && !knownIf[name] {
				out = append(out, orphanLink{dataplane.Orphan{Kind: "veth", Name: name, Owner: "endpoint " + id}, l})
			}
		}
	}
	return out
}
