//go:build linux

// Package macvlan is the `macvlan` network driver, as Docker's: every
// endpoint is a macvlan link on the network's parent interface, with its
// own MAC and address on the parent's network (or a VLAN of it: parent
// IFACE.VLAN). There is no bridge, no veth and no eBPF program: the kernel
// hands frames between the container and the parent.
//
// The kernel never delivers frames between a macvlan and its own parent,
// so the host cannot reach its containers through the parent; the option
// netd.host_shim=ADDR gives the host a macvlan of its own on the parent
// (the known remedy), with ADDR and a route to the containers.
package macvlan

import (
	"context"
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
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/internal/ifcfg"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// Type is the driver name (-d macvlan).
const Type = "macvlan"

// Marks (link aliases) of the links this driver makes.
const (
	// EndpointAliasPrefix + endpoint ID marks an endpoint's macvlan link,
	// in the host netns until Join moves it, then in the sandbox.
	EndpointAliasPrefix = "netd:macvlan-ep:"
	// DummyAliasPrefix + network ID marks the parent made for a network
	// without -o parent.
	DummyAliasPrefix = "netd:macvlan-dummy:"
	// ShimAliasPrefix + network ID marks a host shim.
	ShimAliasPrefix = "netd:macvlan-shim:"
	// shimPrefix starts a host shim's name ("mvs-" + 11 hex of the ID).
	shimPrefix = "mvs-"
)

// ShimName is the host shim interface of network id.
func ShimName(networkID string) string { return shimPrefix + networkID[:11] }

// Config configures New.
type Config struct {
	Logger *slog.Logger
}

// Driver is the macvlan driver. It works in the network namespace of the
// thread that called New (the daemon's), whatever thread calls it later.
type Driver struct {
	log *slog.Logger
	ns  netns.NsHandle
	nl  *netlink.Handle

	mu   sync.Mutex
	nets map[string]*network // networks brought up, by ID
	// synced is set once Reconcile has seen every network: before it a
	// delete cannot tell whether another network shares a sub-interface.
	synced bool
	// unsure are sub-interfaces netd made that a delete before the first
	// Reconcile left in place; Reconcile removes those no network uses.
	unsure map[string]State
}

var (
	_ dataplane.Driver  = (*Driver)(nil)
	_ dataplane.Checker = (*Driver)(nil)
	_ dataplane.Closer  = (*Driver)(nil)
)

type network struct {
	*dataplane.NetworkConfig
	State
}

// New opens the calling thread's netns and returns a driver working in it.
func New(cfg Config) (*Driver, error) {
	ns, h, err := sandbox.OpenHostHandle()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{log: log.With("driver", Type), ns: ns, nl: h, nets: map[string]*network{}, unsure: map[string]State{}}, nil
}

// Close releases the driver's handles; kernel objects stay.
func (d *Driver) Close() error {
	d.nl.Close()
	return d.ns.Close()
}

// Type implements dataplane.Driver.
func (d *Driver) Type() string { return Type }

// Capabilities implements dataplane.Driver: local networks with addresses.
func (d *Driver) Capabilities() dataplane.Capabilities {
	return dataplane.Capabilities{Scope: dataplane.ScopeLocal, IPAM: true}
}

func modeOf(s string) (netlink.MacvlanMode, error) {
	switch s {
	case ModeBridge:
		return netlink.MACVLAN_MODE_BRIDGE, nil
	case ModeVEPA:
		return netlink.MACVLAN_MODE_VEPA, nil
	case ModePassthru:
		return netlink.MACVLAN_MODE_PASSTHRU, nil
	case ModePrivate:
		return netlink.MACVLAN_MODE_PRIVATE, nil
	}
	return 0, fmt.Errorf("unknown macvlan mode %q", s)
}

func (d *Driver) begin(ctx context.Context, cfg *dataplane.NetworkConfig) (*network, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := StateOf(cfg)
	if err != nil {
		return nil, err
	}
	return &network{NetworkConfig: cfg, State: s}, nil
}

// ValidateNetwork implements dataplane.Driver: the options, then the
// parent as the kernel has it (there, up, Ethernet, not loopback, not
// another device's port), then the rules between networks on one parent.
func (d *Driver) ValidateNetwork(n *dataplane.NetworkConfig, others []*dataplane.NetworkConfig) (map[string]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	exists := func(name string) bool {
		l, err := nlutil.LinkByNameOpt(d.nl, name)
		return err == nil && l != nil
	}
	s, err := Validate(n, others, exists)
	if err != nil {
		return nil, err
	}
	if l, _ := nlutil.LinkByNameOpt(d.nl, s.Parent); s.VLANID == 0 && l != nil && l.Attrs().Alias == VLANAlias {
		// A sub-interface netd made that no network uses any more (an
		// orphan): this network takes it over, and deletes it in the end.
		if s.VLANBase, s.VLANID, err = ParseVLAN(s.Parent); err != nil {
			return nil, err
		}
	}
	switch {
	case s.Dummy: // made at create: a dummy link, or an ifb where there is no dummy driver
	case s.VLANID != 0:
		// netd creates the sub-interface: its base must be usable.
		if err := d.checkParent(s.VLANBase); err != nil {
			return nil, err
		}
	default:
		if err := d.checkParent(s.Parent); err != nil {
			return nil, err
		}
	}
	return s.Map(), nil
}

// checkParent refuses a parent the kernel would refuse with a bare errno,
// or that cannot work (a sub-interface the user made is checked like any
// interface; for one netd makes, its base is).
func (d *Driver) checkParent(name string) error {
	l, err := nlutil.LinkByNameOpt(d.nl, name)
	if err != nil {
		return err
	}
	if l == nil {
		return errdefs.NotFound("the requested parent interface %s was not found on the host", name)
	}
	a := l.Attrs()
	switch {
	case a.Flags&net.FlagLoopback != 0:
		return errdefs.InvalidParameter("loopback interface is not a valid macvlan parent link (%s is a loopback)", name)
	case a.EncapType != "" && a.EncapType != "ether":
		return errdefs.InvalidParameter("parent interface %s is a %s link (%s framing): macvlan needs an Ethernet parent", name, l.Type(), a.EncapType)
	case strings.HasPrefix(a.Alias, EndpointAliasPrefix) || strings.HasPrefix(a.Alias, ShimAliasPrefix):
		return errdefs.InvalidParameter("parent interface %s is a macvlan link netd made (%s): give the physical interface instead", name, a.Alias)
	}
	if a.MasterIndex != 0 {
		what, master := "enslaved to", fmt.Sprintf("ifindex %d", a.MasterIndex)
		if m, err := d.nl.LinkByIndex(a.MasterIndex); err == nil {
			master = m.Attrs().Name
			if _, ok := m.(*netlink.Bridge); ok {
				what = "a port of bridge"
			}
		}
		return errdefs.InvalidParameter("parent interface %s is %s %s: the kernel gives a bridge or bond port's frames to its master, not to macvlans; "+
			"use a free interface (or take %s out of %s)", name, what, master, name, master)
	}
	if a.Flags&net.FlagUp == 0 {
		return errdefs.InvalidParameter("parent interface %s is down: bring it up first (ip link set %s up)", name, name)
	}
	return nil
}

// CreateNetwork implements dataplane.Driver: it makes the parent when
// netd owns it (dummy or sub-interface) and the host shim.
func (d *Driver) CreateNetwork(ctx context.Context, cfg *dataplane.NetworkConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	parent, err := d.ensureParent(n)
	if err != nil {
		return err
	}
	if n.HostShim.IsValid() {
		if err := d.ensureShim(n, parent); err != nil {
			return err
		}
	}
	c := *n.NetworkConfig
	d.nets[n.ID] = &network{NetworkConfig: &c, State: n.State}
	delete(d.unsure, n.Parent)
	d.log.Debug("network up", "network", n.Name, "parent", n.Parent, "mode", n.Mode)
	return nil
}

// ensureParent finds the network's parent, making it when netd owns it.
func (d *Driver) ensureParent(n *network) (netlink.Link, error) {
	switch {
	case n.Dummy:
		return d.ensureDummy(n)
	case n.VLANID != 0:
		created, err := EnsureVLAN(d.nl, n.VLANBase, n.VLANID, n.Parent)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
		if created {
			d.log.Info("created VLAN sub-interface", "link", n.Parent, "vlan", n.VLANID, "on", n.VLANBase)
		}
	}
	l, err := nlutil.LinkByNameOpt(d.nl, n.Parent)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, errdefs.NotFound("network %s: the requested parent interface %s was not found on the host", n.Name, n.Parent)
	}
	return l, nil
}

// ensureDummy makes the parent of a network without one. The kernel may
// lack the dummy driver (the development VM's does): an ifb link behaves
// the same here (always up, drops what is sent to it) and is used then.
func (d *Driver) ensureDummy(n *network) (netlink.Link, error) {
	alias := DummyAliasPrefix + n.ID
	l, err := nlutil.LinkByNameOpt(d.nl, n.Parent)
	if err != nil {
		return nil, err
	}
	if l != nil && l.Attrs().Alias != alias {
		return nil, errdefs.Conflict("network %s: link %s exists and is not this network's dummy parent (alias %q)", n.Name, n.Parent, l.Attrs().Alias)
	}
	if l == nil {
		err := d.nl.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: n.Parent}})
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = d.nl.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: n.Parent}})
		}
		if err != nil {
			return nil, errdefs.Unavailable("network %s has no -o parent, and netd cannot make one: neither a dummy nor an ifb link could be created (%v): give -o parent=IFACE", n.Name, err)
		}
		if l, err = d.nl.LinkByName(n.Parent); err != nil {
			return nil, fmt.Errorf("get dummy parent %s: %w", n.Parent, err)
		}
		if err := d.nl.LinkSetAlias(l, alias); err != nil {
			return nil, fmt.Errorf("mark dummy parent %s: %w", n.Parent, err)
		}
	}
	if err := d.nl.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set dummy parent %s up: %w", n.Parent, err)
	}
	return l, nil
}

// ensureShim gives the host a bridge-mode macvlan on the parent with the
// shim address and a route to the containers' range through it.
func (d *Driver) ensureShim(n *network, parent netlink.Link) error {
	name, alias := ShimName(n.ID), ShimAliasPrefix+n.ID
	l, err := nlutil.LinkByNameOpt(d.nl, name)
	if err != nil {
		return err
	}
	if l != nil && (l.Attrs().Alias != alias || l.Attrs().ParentIndex != parent.Attrs().Index) {
		if l.Attrs().Alias != alias {
			return errdefs.Conflict("network %s: link %s exists and is not this network's host shim", n.Name, name)
		}
		// The parent was made anew: the old shim went with it, or is stale.
		d.nl.LinkDel(l)
		l = nil
	}
	if l == nil {
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		if err := d.nl.LinkAdd(mv); err != nil {
			return fmt.Errorf("network %s: create host shim %s on %s: %w", n.Name, name, n.Parent, err)
		}
		if l, err = d.nl.LinkByName(name); err != nil {
			return fmt.Errorf("get host shim %s: %w", name, err)
		}
		if err := d.nl.LinkSetAlias(l, alias); err != nil {
			return fmt.Errorf("mark host shim %s: %w", name, err)
		}
	}
	a := netip.PrefixFrom(n.HostShim, 32)
	if err := d.nl.AddrAdd(l, &netlink.Addr{IPNet: nlutil.PrefixToIPNet(a)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to host shim %s: %w", a, name, err)
	}
	if err := d.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("set host shim %s up: %w", name, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: nlutil.PrefixToIPNet(n.ShimRoute), Scope: netlink.SCOPE_LINK, Src: n.HostShim.AsSlice()}
	if err := d.nl.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("route %s through host shim %s: %w", n.ShimRoute, name, err)
	}
	if ok, err := d.shimRouted(l, n.ShimRoute); err != nil {
		return err
	} else if !ok {
		return errdefs.Conflict("network %s: the host already routes %s through another interface, so the host shim %s cannot take it: "+
			"give the network an --ip-range for its containers (the shim routes that range)", n.Name, n.ShimRoute, name)
	}
	return nil
}

// shimRouted says whether route p goes through the shim l.
func (d *Driver) shimRouted(l netlink.Link, p netip.Prefix) (bool, error) {
	routes, err := nlutil.RetryDump(func() ([]netlink.Route, error) {
		return d.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: nlutil.PrefixToIPNet(p), Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return false, fmt.Errorf("list routes to %s: %w", p, err)
	}
	for _, r := range routes {
		if r.LinkIndex == l.Attrs().Index {
			return true, nil
		}
	}
	return false, nil
}

// DeleteNetwork implements dataplane.Driver: the shim, the dummy parent,
// and a sub-interface netd made once no other network uses it.
func (d *Driver) DeleteNetwork(ctx context.Context, cfg *dataplane.NetworkConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.deleteMarked(ShimName(n.ID), ShimAliasPrefix+n.ID); err != nil {
		return err
	}
	if n.Dummy {
		if err := d.deleteMarked(n.Parent, DummyAliasPrefix+n.ID); err != nil {
			return err
		}
	}
	delete(d.nets, n.ID)
	if n.VLANID != 0 && !d.parentUsed(n.Parent) {
		if !d.synced {
			d.unsure[n.Parent] = n.State
			return nil
		}
		deleted, err := DeleteVLAN(d.nl, n.VLANBase, n.VLANID, n.Parent)
		if err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		if deleted {
			d.log.Info("deleted VLAN sub-interface", "link", n.Parent)
		}
	}
	return nil
}

func (d *Driver) parentUsed(parent string) bool {
	for _, o := range d.nets {
		if o.Parent == parent {
			return true
		}
	}
	return false
}

// deleteMarked deletes link name if it carries alias.
func (d *Driver) deleteMarked(name, alias string) error {
	l, err := nlutil.LinkByNameOpt(d.nl, name)
	if err != nil || l == nil {
		return err
	}
	if l.Attrs().Alias != alias {
		d.log.Warn("link not marked as this network's, kept", "link", name, "alias", l.Attrs().Alias, "want", alias)
		return nil
	}
	if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// endpointAlias marks ep's macvlan link.
func endpointAlias(ep *dataplane.EndpointConfig) string { return EndpointAliasPrefix + ep.ID }

// joined returns ep's link in the sandbox if Join already moved it there.
func joined(sh *netlink.Handle, ep *dataplane.EndpointConfig) (netlink.Link, error) {
	l, err := nlutil.LinkByNameOpt(sh, ep.IfName)
	if err != nil || l == nil {
		return nil, err
	}
	if l.Attrs().Alias != endpointAlias(ep) {
		return nil, fmt.Errorf("join: interface %s already exists in sandbox %s and is not this endpoint's", ep.IfName, ep.SandboxPath)
	}
	return l, nil
}

// CreateEndpoint implements dataplane.Driver: a macvlan link on the
// parent, in the host netns under ep.HostIfName until Join moves it.
func (d *Driver) CreateEndpoint(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	if ep.HostIfName == "" || len(ep.HostIfName) >= unix.IFNAMSIZ || ep.IfName == "" || len(ep.IfName) >= unix.IFNAMSIZ {
		return fmt.Errorf("create endpoint %s: invalid interface names %q, %q", ep.ID, ep.HostIfName, ep.IfName)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep.SandboxPath != "" {
		sbns, sh, err := sandbox.OpenHandle(ep.SandboxPath)
		if err == nil {
			l, jerr := joined(sh, ep)
			sh.Close()
			sbns.Close()
			if jerr == nil && l != nil {
				return nil // joined before (a restart): nothing to make
			}
		}
	}
	l, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return err
	}
	if l != nil {
		if l.Attrs().Alias == endpointAlias(ep) {
			return nil
		}
		return fmt.Errorf("create endpoint: link %s exists and is not this endpoint's (alias %q)", ep.HostIfName, l.Attrs().Alias)
	}
	parent, err := nlutil.LinkByNameOpt(d.nl, n.Parent)
	if err != nil {
		return err
	}
	if parent == nil {
		return errdefs.NotFound("network %s: the requested parent interface %s was not found on the host", n.Name, n.Parent)
	}
	mode, err := modeOf(n.Mode)
	if err != nil {
		return err
	}
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName, ParentIndex: parent.Attrs().Index, HardwareAddr: ep.MAC}, Mode: mode}
	if err := d.nl.LinkAdd(mv); err != nil {
		if n.Mode == ModePassthru && errors.Is(err, unix.EINVAL) {
			return errdefs.Forbidden("network %s is in macvlan_mode passthru: it gives its parent %s to one container, and one is attached already", n.Name, n.Parent)
		}
		return fmt.Errorf("create macvlan %s on %s: %w", ep.HostIfName, n.Parent, err)
	}
	if l, err = d.nl.LinkByName(ep.HostIfName); err != nil {
		return fmt.Errorf("get macvlan %s: %w", ep.HostIfName, err)
	}
	if err := d.nl.LinkSetAlias(l, endpointAlias(ep)); err != nil {
		return fmt.Errorf("mark macvlan %s: %w", ep.HostIfName, err)
	}
	return nil
}

// Join implements dataplane.Driver: it moves the macvlan into the sandbox
// as ep.IfName and configures it there.
func (d *Driver) Join(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sbns, sh, err := sandbox.OpenHandle(ep.SandboxPath)
	if err != nil {
		return err
	}
	defer sbns.Close()
	defer sh.Close()
	l, err := joined(sh, ep)
	if err != nil {
		return err
	}
	if l == nil {
		if l, err = d.moveIntoSandbox(sh, sbns, ep); err != nil {
			return err
		}
	}
	if err := configure(sh, l, n, ep); err != nil {
		return fmt.Errorf("join %s in %s: %w", ep.IfName, ep.SandboxPath, err)
	}
	return nil
}

func (d *Driver) moveIntoSandbox(sh *netlink.Handle, sbns netns.NsHandle, ep *dataplane.EndpointConfig) (netlink.Link, error) {
	l, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return nil, err
	}
	if l != nil {
		if l.Attrs().Alias != endpointAlias(ep) {
			return nil, fmt.Errorf("join: link %s is not this endpoint's", ep.HostIfName)
		}
		if err := d.nl.LinkSetNsFd(l, int(sbns)); err != nil {
			return nil, fmt.Errorf("move %s into %s: %w", ep.HostIfName, ep.SandboxPath, err)
		}
	}
	// Moved now, or by an earlier Join that failed before the rename.
	if l, err = nlutil.LinkByNameOpt(sh, ep.HostIfName); err != nil {
		return nil, err
	}
	if l == nil || l.Attrs().Alias != endpointAlias(ep) {
		return nil, fmt.Errorf("join: macvlan %s of endpoint %s not found", ep.HostIfName, stringid.ShortID(ep.ID))
	}
	if err := sh.LinkSetDown(l); err != nil {
		return nil, fmt.Errorf("set %s down: %w", ep.HostIfName, err)
	}
	if err := sh.LinkSetName(l, ep.IfName); err != nil {
		return nil, fmt.Errorf("rename %s to %s: %w", ep.HostIfName, ep.IfName, err)
	}
	return sh.LinkByName(ep.IfName)
}

// configure sets IPv6 off (IPv4-only networks, as Docker), MAC, address,
// up and the default route (none on a network without a way out).
func configure(sh *netlink.Handle, l netlink.Link, n *network, ep *dataplane.EndpointConfig) error {
	return ifcfg.Apply(sh, l, ifcfg.Config{
		SandboxPath:  ep.SandboxPath,
		DisableIPv6:  !ep.Addr.Addr().Is6(),
		MAC:          ep.MAC,
		Addr:         ep.Addr,
		DefaultRoute: wantsDefaultRoute(n, ep),
		Gateway:      ep.Gateway,
	})
}

// wantsDefaultRoute: a network without a parent has no way out (Docker
// makes it internal), so its gateway is nobody.
func wantsDefaultRoute(n *network, ep *dataplane.EndpointConfig) bool {
	return ep.DefaultGW && ep.Gateway.IsValid() && !n.Dummy && !n.Internal
}

// Leave implements dataplane.Driver: it deletes the endpoint's macvlan.
func (d *Driver) Leave(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if _, err := d.begin(ctx, cfg); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sbns, sh, err := sandbox.OpenHandle(ep.SandboxPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return d.deleteHostSide(ep) // the sandbox is gone, and its links with it
		}
		return err
	}
	defer sbns.Close()
	defer sh.Close()
	for _, name := range []string{ep.IfName, ep.HostIfName} {
		l, err := nlutil.LinkByNameOpt(sh, name)
		if err != nil {
			return err
		}
		if l != nil && l.Attrs().Alias == endpointAlias(ep) {
			if err := sh.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
				return fmt.Errorf("delete %s in %s: %w", name, ep.SandboxPath, err)
			}
		}
	}
	return d.deleteHostSide(ep)
}

// DeleteEndpoint implements dataplane.Driver: a macvlan still in the host
// netns (made, never joined) goes.
func (d *Driver) DeleteEndpoint(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if _, err := d.begin(ctx, cfg); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deleteHostSide(ep)
}

func (d *Driver) deleteHostSide(ep *dataplane.EndpointConfig) error {
	l, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil || l == nil || l.Attrs().Alias != endpointAlias(ep) {
		return err
	}
	if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
		return fmt.Errorf("delete macvlan %s: %w", ep.HostIfName, err)
	}
	return nil
}

// orphanLink is a link this driver marked that belongs to no known
// network or endpoint.
type orphanLink struct {
	dataplane.Orphan
	link netlink.Link
}

// orphanLinks finds them among the host netns's links.
// A sub-interface is told apart only while every network's state
// decodes: one that does not may be the one using it.
func orphanLinks(links []netlink.Link, nets map[string]*network, known map[string]bool, eps map[string]bool) []orphanLink {
	allDecoded := len(nets) == len(known)
	parents := map[string]bool{}
	for _, n := range nets {
		parents[n.Parent] = true
	}
	var out []orphanLink
	for _, l := range links {
		name, alias := l.Attrs().Name, l.Attrs().Alias
		switch {
		case strings.HasPrefix(alias, EndpointAliasPrefix):
			if !eps[name] {
				out = append(out, orphanLink{dataplane.Orphan{Kind: "macvlan", Name: name, Owner: "endpoint " + strings.TrimPrefix(alias, EndpointAliasPrefix)}, l})
			}
		case strings.HasPrefix(alias, DummyAliasPrefix):
			if id := strings.TrimPrefix(alias, DummyAliasPrefix); !known[id] {
				out = append(out, orphanLink{dataplane.Orphan{Kind: "macvlan dummy parent", Name: name, Owner: "network " + id}, l})
			}
		case strings.HasPrefix(alias, ShimAliasPrefix):
			if id := strings.TrimPrefix(alias, ShimAliasPrefix); !known[id] {
				out = append(out, orphanLink{dataplane.Orphan{Kind: "macvlan host shim", Name: name, Owner: "network " + id}, l})
			}
		case alias == VLANAlias:
			if !parents[name] && allDecoded {
				out = append(out, orphanLink{dataplane.Orphan{Kind: "VLAN sub-interface", Name: name, Owner: "macvlan networks"}, l})
			}
		}
	}
	return out
}

// Reconcile implements dataplane.Driver: marked links of no known network
// or endpoint are orphans, deleted only with prune; sub-interfaces an
// early delete left (see DeleteNetwork) go now if no network uses them.
func (d *Driver) Reconcile(ctx context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig, prune bool) ([]dataplane.Orphan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	known := map[string]bool{}
	live := map[string]*network{}
	for _, cfg := range nets {
		known[cfg.ID] = true
		c := *cfg
		s, err := StateOf(&c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		live[c.ID] = &network{NetworkConfig: &c, State: s}
	}
	d.nets = live
	d.synced = true
	epNames := map[string]bool{}
	for _, ep := range eps {
		epNames[ep.HostIfName] = true
	}
	for name, s := range d.unsure {
		delete(d.unsure, name)
		if d.parentUsed(name) {
			continue
		}
		if _, err := DeleteVLAN(d.nl, s.VLANBase, s.VLANID, name); err != nil {
			errs = append(errs, err)
		}
	}
	links, err := nlutil.LinkList(d.nl)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list links: %w", err)
	}
	var orphans []dataplane.Orphan
	for _, ol := range orphanLinks(links, live, known, epNames) {
		orphans = append(orphans, ol.Orphan)
		if !prune {
			continue
		}
		d.log.Info("prune: deleting orphaned link", "link", ol.Name, "kind", ol.Kind, "owner", ol.Owner)
		if ol.Kind == "VLAN sub-interface" {
			if base, vid, err := ParseVLAN(ol.Name); err == nil {
				if _, err := DeleteVLAN(d.nl, base, vid, ol.Name); err != nil {
					errs = append(errs, err)
				}
				continue
			}
		}
		if err := d.nl.LinkDel(ol.link); err != nil && !nlutil.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete orphaned %s %s: %w", ol.Kind, ol.Name, err))
		}
	}
	return orphans, errors.Join(errs...)
}
