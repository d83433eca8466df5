//go:build linux

// Package overlay is the `overlay` network driver: networks that span the
// hosts of a cluster, carried over standard VXLAN (UDP 4789), with the
// locations of endpoints taken from the gossip tables.
//
// On each host an overlay network is a bridge network (the bridge driver's
// bridge, veths, nftables rules and eBPF fast path for local traffic) plus
// a VXLAN device on that bridge. Remote endpoints are programmed, Docker's
// way, as static entries on the VXLAN device: a neighbour entry (IP → MAC,
// answered by the device's ARP proxy, so ARP never crosses the underlay)
// and an FDB entry (MAC → the remote host's VTEP). Learning is off and
// there is no flood entry, so an unknown destination is dropped, never
// flooded. Every host's bridge holds the gateway address: containers
// reach the outside through their own host (masquerade), the equivalent
// of Docker's docker_gwbridge without a second interface.
//
// That is the kernel path (--dataplane kernel). Hosts on the ebpf
// dataplane carry every overlay network through one collect-metadata VXLAN
// device and the eBPF programs of bpf/overlay.c instead, with the remote
// endpoints in eBPF maps: see ebpf.go. Both speak standard VXLAN, so
// hosts on either dataplane share one network.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/bridge"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/gossip"
)

// Type is the driver's -d name.
const Type = "overlay"

// DefaultPort is VXLAN's IANA port.
const DefaultPort = 4789

// vxlanOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4 (20),
// UDP (8), VXLAN (8) and the inner Ethernet header (14).
const vxlanOverhead = 50

// VXLANAliasPrefix marks a VXLAN device as netd's: alias + network ID.
const VXLANAliasPrefix = "netd:vxlan:"

// resyncEvery bounds how long drift (an entry deleted behind netd's back,
// an event lost) can last.
const resyncEvery = 10 * time.Second

// Cluster is what the driver needs of gossip: the endpoint table, its
// changes, this node's name and VTEP, and VNI claims.
type Cluster interface {
	Name() string
	Advertise() netip.AddrPort
	List(table string, withdrawn bool) []gossip.ViewEntry
	Watch(fn func(gossip.Event)) (cancel func())
	ClaimKey(ctx context.Context, key string, value []byte, settle time.Duration) (bool, error)
	ReleaseKey(key string) error
}

// Config configures New.
type Config struct {
	// Bridge is the daemon's bridge driver: overlay networks are bridge
	// networks underneath, sharing its firewall table and fast path.
	Bridge *bridge.Driver
	// Dataplane is this host's (daemon --dataplane): each host carries an
	// overlay network on its own.
	Dataplane string
	Port      int // VXLAN UDP port; 0: DefaultPort
	// PinDir is the daemon's bpffs directory; the ebpf dataplane pins its
	// maps and links under PinDir/overlay.
	PinDir string
	Logger *slog.Logger
}

// Driver is the overlay driver. It has no cluster until SetCluster: the
// cluster starts after the drivers, and a host outside a cluster refuses
// overlay networks.
type Driver struct {
	br   *bridge.Driver
	dp   string
	port int
	log  *slog.Logger
	ns   netns.NsHandle
	nl   *netlink.Handle

	mu      sync.Mutex
	cluster Cluster
	nets    map[string]*dataplane.NetworkConfig // up on this host, by ID (already in bridge form)
	waiting waitList                            // re-created before the cluster was there (startup.go)
	eb      *ebpfPath                           // the ebpf dataplane's state (ebpf.go)
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	cancel  func()
}

var (
	_ dataplane.Driver  = (*Driver)(nil)
	_ dataplane.Layered = (*Driver)(nil)
	_ dataplane.Checker = (*Driver)(nil)
	_ dataplane.Closer  = (*Driver)(nil)
)

// New returns the driver, working in the calling thread's netns.
func New(cfg Config) (*Driver, error) {
	if cfg.Bridge == nil {
		return nil, errors.New("create overlay driver: no bridge driver")
	}
	ns, h, err := sandbox.OpenHostHandle()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Driver{
		br: cfg.Bridge, dp: cfg.Dataplane, port: cfg.Port, log: log.With("driver", Type), ns: ns, nl: h,
		nets: map[string]*dataplane.NetworkConfig{}, waiting: newWaitList(), eb: newEBPFPath(cfg.PinDir),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if d.port == 0 {
		d.port = DefaultPort
	}
	go d.loop()
	return d, nil
}

// SetCluster connects the driver to the cluster; nil disconnects it.
func (d *Driver) SetCluster(c Cluster) {
	d.mu.Lock()
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	d.cluster = c
	d.mu.Unlock()
	if c != nil {
		cancel := c.Watch(func(ev gossip.Event) {
			if ev.Kind == gossip.EventResync || ev.Entry.Table == gossip.TableEndpoints {
				d.poke()
			}
		})
		d.mu.Lock()
		d.cancel = cancel
		d.mu.Unlock()
		d.bringUpWaiting()
	}
	d.poke()
}

func (d *Driver) clusterOrErr() (Cluster, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cluster == nil {
		return nil, errdefs.Unavailable("overlay networks need a cluster: start netd daemon with --advertise-addr (the first host) or --join HOST")
	}
	return d.cluster, nil
}

// Close stops the resync loop; kernel objects and eBPF pins stay.
func (d *Driver) Close() error {
	d.SetCluster(nil)
	close(d.stop)
	<-d.done
	err := d.closeEBPF()
	d.nl.Close()
	return errors.Join(err, d.ns.Close())
}

func (d *Driver) Type() string { return Type }

// Base says overlay networks are bridge networks underneath: the daemon
// also hands them to the bridge driver's Reconcile.
func (d *Driver) Base() string { return bridge.Type }

// Release gives back the VNI claimed by ValidateNetwork for a network that
// was not created after all.
func (d *Driver) Release(n *dataplane.NetworkConfig) {
	d.mu.Lock()
	c := d.cluster
	d.mu.Unlock()
	if s, err := StateOf(n); err == nil && c != nil {
		_ = c.ReleaseKey(vniKey(s.VNI))
	}
}

// ReportedOptions shows the VNI, allocated or given, as Docker does.
func (d *Driver) ReportedOptions(n *dataplane.NetworkConfig) map[string]string {
	s, err := StateOf(n)
	if err != nil {
		return nil
	}
	return map[string]string{OptVXLANIDList: strconv.FormatUint(uint64(s.VNI), 10)}
}

// BaseNetwork is n in bridge form on this host.
func (d *Driver) BaseNetwork(n *dataplane.NetworkConfig) (*dataplane.NetworkConfig, error) {
	bc, _, err := d.bridgeForm(n)
	return bc, err
}

func (d *Driver) Capabilities() dataplane.Capabilities {
	return dataplane.Capabilities{Scope: dataplane.ScopeGlobal, IPAM: true}
}

// ValidateNetwork parses the options and claims the network's VNI in the
// cluster: the given one, or the lowest free one from 4096.
func (d *Driver) ValidateNetwork(n *dataplane.NetworkConfig, others []*dataplane.NetworkConfig) (map[string]string, error) {
	o, err := ParseOptions(n.Options)
	if err != nil {
		return nil, err
	}
	st, ok := n.DriverState[stateVNI]
	if ok && st != "" {
		// A network another host created: its state comes with it.
		s, err := StateOf(n)
		if err != nil {
			return nil, err
		}
		return d.fullState(n, s), nil
	}
	c, err := d.clusterOrErr()
	if err != nil {
		return nil, err
	}
	used := map[uint32]string{}
	for _, e := range c.List(gossip.TableNetworks, true) {
		var r gossip.NetworkRecord
		if gossip.Unmarshal(e.Value, &r) != nil {
			continue
		}
		if v, err := strconv.ParseUint(r.DriverState[stateVNI], 10, 32); err == nil && v != 0 {
			used[uint32(v)] = r.Name
		}
	}
	for _, e := range c.List(gossip.TableBlocks, true) {
		if v, ok := parseVNIKey(e.Key); ok && used[v] == "" {
			used[v] = "(a network being created)"
		}
	}
	vni := o.VNI
	if vni != 0 {
		if name, dup := used[vni]; dup {
			return nil, errdefs.Conflict("VXLAN ID %d is already used by overlay network %s", vni, name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for try := 0; try < 16; try++ {
		cand := vni
		if cand == 0 {
			for cand = MinVNI; used[cand] != ""; cand++ {
			}
		}
		won, err := c.ClaimKey(ctx, vniKey(cand), []byte(n.ID), 0)
		if err != nil {
			return nil, fmt.Errorf("claim VXLAN ID %d: %w", cand, err)
		}
		if won {
			return d.fullState(n, State{VNI: cand, UserMTU: o.MTU}), nil
		}
		if vni != 0 {
			return nil, errdefs.Conflict("VXLAN ID %d was just claimed by another host's network", vni)
		}
		used[cand] = "(claimed)"
	}
	return nil, errors.New("claim a VXLAN ID: lost 16 races in a row with other hosts")
}

// vniKey is a VNI's claim in the blocks table.
func vniKey(v uint32) string { return "vni/" + strconv.FormatUint(uint64(v), 10) }

func parseVNIKey(k string) (uint32, bool) {
	s, ok := cutPrefix(k, "vni/")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}

// fullState is the stored state: the overlay's keys plus a bridge state,
// so that the bridge driver (Reconcile, Check) can read the network too.
func (d *Driver) fullState(n *dataplane.NetworkConfig, s State) map[string]string {
	m := s.Map()
	for k, v := range (bridge.State{BridgeName: bridgeName(n.ID), ICC: true, Masquerade: !n.Internal, MTU: s.UserMTU, Dataplane: dataplane.DataplaneKernel}).Map() {
		m[k] = v
	}
	return m
}

// bridgeForm is n as the bridge driver sees it on this host: this host's
// MTU, and always the kernel dataplane: the bridge runs no eBPF of its own
// on an overlay network (on an ebpf host the overlay's programs do).
func (d *Driver) bridgeForm(n *dataplane.NetworkConfig) (*dataplane.NetworkConfig, State, error) {
	s, err := StateOf(n)
	if err != nil {
		return nil, State{}, err
	}
	c := *n
	c.DriverState = d.fullState(n, s)
	mtu := s.UserMTU
	if mtu == 0 {
		mtu = d.underlayMTU() - vxlanOverhead
	}
	c.DriverState["mtu"] = strconv.Itoa(mtu)
	c.DriverState["dataplane"] = dataplane.DataplaneKernel
	return &c, s, nil
}

// underlayMTU is the MTU of the interface holding the VTEP address.
func (d *Driver) underlayMTU() int {
	d.mu.Lock()
	c := d.cluster
	d.mu.Unlock()
	if c == nil {
		return 1500
	}
	vtep := c.Advertise().Addr()
	links, err := nlutil.LinkList(d.nl)
	if err != nil {
		return 1500
	}
	for _, l := range links {
		addrs, err := d.nl.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == vtep {
				return l.Attrs().MTU
			}
		}
	}
	return 1500
}

// CreateNetwork builds the bridge and the VXLAN device on it (kernel), or
// the bridge and the network's part of the eBPF data path (ebpf).
func (d *Driver) CreateNetwork(ctx context.Context, n *dataplane.NetworkConfig) error {
	c, err := d.clusterOrErr()
	if err != nil {
		if d.wait(n) {
			return nil
		}
		return err
	}
	bc, s, err := d.bridgeForm(n)
	if err != nil {
		return err
	}
	if err := d.br.CreateNetwork(ctx, bc); err != nil {
		return err
	}
	if d.onEBPF() {
		err = d.createNetworkEBPF(bc, s.VNI, c.Advertise().Addr())
	} else {
		mtu, _ := strconv.Atoi(bc.DriverState["mtu"])
		err = d.ensureVXLAN(bc, s.VNI, c.Advertise().Addr(), mtu)
	}
	if err != nil {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	d.mu.Lock()
	d.nets[n.ID] = bc
	d.mu.Unlock()
	d.poke()
	return nil
}

func (d *Driver) ensureVXLAN(n *dataplane.NetworkConfig, vni uint32, vtep netip.Addr, mtu int) error {
	name := vxlanName(n.ID)
	br, err := d.nl.LinkByName(bridgeName(n.ID))
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", bridgeName(n.ID), err)
	}
	l, err := nlutil.LinkByNameOpt(d.nl, name)
	if err != nil {
		return err
	}
	if l != nil {
		vx, ok := l.(*netlink.Vxlan)
		if !ok || l.Attrs().Alias != VXLANAliasPrefix+n.ID || vx.VxlanId != int(vni) || !vx.SrcAddr.Equal(net.IP(vtep.AsSlice())) || vx.Port != d.port {
			// Not ours, or built with other settings (the VTEP moved):
			// rebuild it; a foreign device is left alone.
			if l.Attrs().Alias != VXLANAliasPrefix+n.ID {
				return errdefs.Conflict("device %s exists and is not this network's VXLAN device (alias %q)", name, l.Attrs().Alias)
			}
			if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
				return fmt.Errorf("replace VXLAN device %s: %w", name, err)
			}
			l = nil
		}
	}
	if l == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu},
			VxlanId:   int(vni),
			SrcAddr:   net.IP(vtep.AsSlice()),
			Port:      d.port,
			Learning:  false,
			Proxy:     true, // ARP answered from the neighbour entries
			TTL:       64,
		}
		if err := d.nl.LinkAdd(vx); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create VXLAN device %s (VNI %d, port %d): %w", name, vni, d.port, err)
		}
		if l, err = d.nl.LinkByName(name); err != nil {
			return fmt.Errorf("get VXLAN device %s: %w", name, err)
		}
		if err := d.nl.LinkSetAlias(l, VXLANAliasPrefix+n.ID); err != nil {
			return fmt.Errorf("set alias of %s: %w", name, err)
		}
	}
	if l.Attrs().MTU != mtu {
		if err := d.nl.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set MTU of %s: %w", name, err)
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := d.nl.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("attach %s to bridge %s: %w", name, br.Attrs().Name, err)
		}
	}
	if err := d.nl.LinkSetUp(l); err != nil {
		return vxlanUpError(name, d.port, err)
	}
	return nil
}

// vxlanUpError explains the EADDRINUSE of setting a VXLAN device up: its
// UDP port is taken, most often by the other dataplane's devices (the
// external netd_vxlan of ebpf overlays cannot share a port with the
// per-network devices of kernel ones).
func vxlanUpError(dev string, port int, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("set VXLAN device %s up: UDP port %d is taken on this host (%w): "+
			"ebpf and kernel overlay networks cannot share a host's VXLAN port, and a host carries its overlays on the dataplane it runs (netd daemon --dataplane); "+
			"remove the overlay networks of the other dataplane from this host, or free the port", dev, port, err)
	}
	return fmt.Errorf("set %s up: %w", dev, err)
}

// DeleteNetwork removes the VXLAN device, then the bridge network.
func (d *Driver) DeleteNetwork(ctx context.Context, n *dataplane.NetworkConfig) error {
	bc, _, err := d.bridgeForm(n)
	if err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.nets, n.ID)
	d.waiting.drop(n.ID)
	last := len(d.nets) == 0 && d.waiting.empty()
	c := d.cluster
	d.mu.Unlock()
	if s, err := StateOf(n); err == nil && c != nil {
		// The creator's claim on the VNI (a no-op on other hosts).
		_ = c.ReleaseKey(vniKey(s.VNI))
	}
	if s, err := StateOf(n); err == nil && d.onEBPF() {
		if err := d.deleteNetworkEBPF(s.VNI, last); err != nil {
			return fmt.Errorf("delete network %s: %w", n.Name, err)
		}
	}
	if l, err := nlutil.LinkByNameOpt(d.nl, vxlanName(n.ID)); err != nil {
		return err
	} else if l != nil && l.Attrs().Alias == VXLANAliasPrefix+n.ID {
		if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
			return fmt.Errorf("delete VXLAN device %s: %w", vxlanName(n.ID), err)
		}
	}
	return d.br.DeleteNetwork(ctx, bc)
}

// Endpoints are bridge endpoints.

func (d *Driver) CreateEndpoint(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if d.networkWaits(n.ID) {
		return nil // Join keeps it for SetCluster
	}
	bc, _, err := d.bridgeForm(n)
	if err != nil {
		return err
	}
	return d.br.CreateEndpoint(ctx, bc, ep)
}

func (d *Driver) Join(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if d.waitEndpoint(n, ep) {
		return nil
	}
	bc, s, err := d.bridgeForm(n)
	if err != nil {
		return err
	}
	if d.onEBPF() {
		if err := d.joinEBPF(bc, ep, s.VNI); err != nil {
			return err
		}
	}
	return d.br.Join(ctx, bc, ep)
}

func (d *Driver) Leave(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	d.unwaitEndpoint(n, ep)
	bc, s, err := d.bridgeForm(n)
	if err != nil {
		return err
	}
	if d.onEBPF() {
		if err := d.leaveEBPF(ep, s.VNI); err != nil {
			return fmt.Errorf("leave %s: %w", ep.HostIfName, err)
		}
	}
	return d.br.Leave(ctx, bc, ep)
}

func (d *Driver) DeleteEndpoint(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	d.unwaitEndpoint(n, ep)
	bc, s, err := d.bridgeForm(n)
	if err != nil {
		return err
	}
	if d.onEBPF() {
		if err := d.leaveEBPF(ep, s.VNI); err != nil {
			return fmt.Errorf("delete endpoint %s: %w", ep.HostIfName, err)
		}
	}
	return d.br.DeleteEndpoint(ctx, bc, ep)
}

// Reconcile reports VXLAN devices of networks that are gone, and the eBPF
// state (ebpf.go) of networks and endpoints that are gone; bridges and
// veths are the bridge driver's (it gets these networks too, see Base).
func (d *Driver) Reconcile(ctx context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig, prune bool) ([]dataplane.Orphan, error) {
	known := map[string]bool{}
	for _, n := range nets {
		known[n.ID] = true
	}
	links, err := nlutil.LinkList(d.nl)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list links: %w", err)
	}
	var orphans []dataplane.Orphan
	var errs []error
	for _, l := range links {
		id, ours := cutPrefix(l.Attrs().Alias, VXLANAliasPrefix)
		if _, isVX := l.(*netlink.Vxlan); !ours || !isVX || known[id] {
			continue
		}
		orphans = append(orphans, dataplane.Orphan{Kind: "vxlan", Name: l.Attrs().Name, Owner: "network " + id})
		if prune {
			if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete orphaned VXLAN device %s: %w", l.Attrs().Name, err))
			}
		}
	}
	more, err := d.reconcileEBPF(nets, eps, prune, false)
	orphans = append(orphans, more...)
	errs = append(errs, err)
	d.poke()
	return orphans, errors.Join(errs...)
}

func (d *Driver) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Driver) loop() {
	defer close(d.done)
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
		case <-t.C:
		}
		// Events come in bursts (a host dies with many endpoints): one
		// sync for the burst.
		time.Sleep(20 * time.Millisecond)
		select {
		case <-d.kick:
		default:
		}
		if err := d.sync(); err != nil {
			d.log.Warn("overlay: sync tunnel entries", "err", err)
		}
	}
}
