//go:build linux

package macvlan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
)

// Option keys of the macvlan driver (parent and macvlan_mode are Docker's).
const (
	OptParent   = api.OptMacvlanParent
	OptMode     = api.OptMacvlanMode
	OptHostShim = "netd.host_shim"
)

// Modes, as the kernel and Docker name them.
const (
	ModeBridge   = "bridge"
	ModeVEPA     = "vepa"
	ModePassthru = "passthru"
	ModePrivate  = "private"
)

// ownNamespaces are the option prefixes this driver owns: an unknown key in
// them is a typo, refused. Other keys are ignored, as Docker's macvlan does.
var ownNamespaces = []string{"netd.", "macvlan_"}

var knownOptions = map[string]bool{OptParent: true, OptMode: true, OptHostShim: true, api.OptDataplane: true}

// Options are the -o options of a macvlan network, parsed and checked
// without looking at the kernel.
type Options struct {
	Parent   string     // empty: no parent given (a dummy parent is made)
	Mode     string     // defaulted to bridge
	HostShim netip.Addr // zero: no shim
}

// ParseOptions reads the macvlan options of a network.
func ParseOptions(opts map[string]string) (Options, error) {
	for k := range opts {
		if knownOptions[k] {
			continue
		}
		for _, ns := range ownNamespaces {
			if strings.HasPrefix(k, ns) {
				return Options{}, errdefs.InvalidParameter("invalid option %s: the macvlan driver has no such option", k)
			}
		}
	}
	o := Options{Parent: opts[OptParent], Mode: opts[OptMode]}
	switch o.Mode {
	case "":
		o.Mode = ModeBridge
	case ModeBridge, ModeVEPA, ModePassthru, ModePrivate:
	default:
		return Options{}, errdefs.InvalidParameter("requested macvlan mode '%s' is not valid, 'bridge' mode is the macvlan driver default", o.Mode)
	}
	if o.Parent == "lo" {
		return Options{}, errdefs.InvalidParameter("loopback interface is not a valid macvlan parent link")
	}
	if v, ok := opts[api.OptDataplane]; ok {
		if _, err := dataplane.ParseDataplane(v); err != nil {
			return Options{}, err
		}
		// The eBPF bridge program rides on a bridge's veths; a macvlan
		// endpoint has neither: its frames go from the container straight
		// to the parent. Saying ebpf and silently getting the kernel is worse.
		if v == dataplane.DataplaneEBPF {
			return Options{}, errdefs.InvalidParameter("macvlan networks have no eBPF dataplane (frames go from the container's macvlan link straight to the parent, the kernel's path): " +
				"drop -o netd.dataplane or give netd.dataplane=kernel")
		}
	}
	if v, ok := opts[OptHostShim]; ok {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return Options{}, errdefs.InvalidParameter("invalid %s value %q: want an IPv4 address of the network's subnet for the host's shim interface", OptHostShim, v)
		}
		o.HostShim = a
	}
	if o.Parent != "" {
		if err := validIfName(o.Parent); err != nil {
			return Options{}, errdefs.InvalidParameter("invalid parent interface name %q: %v", o.Parent, err)
		}
	}
	return o, nil
}

// validIfName applies the kernel's dev_valid_name rules.
func validIfName(s string) error {
	switch {
	case len(s) > 15:
		return fmt.Errorf("longer than 15 characters")
	case s == "." || s == "..":
		return fmt.Errorf("cannot be . or ..")
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("contains invalid character %q", r)
		}
	}
	return nil
}

// ParseVLAN splits a sub-interface name IFACE.VLAN into the interface and
// the VLAN id, with Docker's texts for what does not parse.
func ParseVLAN(name string) (base string, vid int, err error) {
	parts := strings.Split(name, ".")
	if len(parts) != 2 || parts[0] == "" {
		return "", 0, errdefs.InvalidParameter("required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received %s", name)
	}
	vid, err = strconv.Atoi(parts[1])
	if err != nil {
		return "", 0, errdefs.InvalidParameter("unable to parse a valid vlan id from: %s (ex. eth0.10 for vlan 10)", parts[1])
	}
	if vid < 1 || vid > 4094 {
		return "", 0, errdefs.InvalidParameter("vlan id must be between 1-4094, received: %d", vid)
	}
	return parts[0], vid, nil
}

// State is a macvlan network's settings as stored with it (DriverState).
type State struct {
	// Parent is the link the network's macvlans sit on: the user's
	// interface, a sub-interface IFACE.VLAN, or the dummy netd made.
	Parent string
	Mode   string
	// Dummy says netd made Parent because none was given (Docker's
	// internal macvlan network): no way out, no default route.
	Dummy bool
	// VLANBase and VLANID are set when Parent is a sub-interface netd
	// creates if it is missing (and deletes with the last network on it).
	VLANBase string
	VLANID   int
	// HostShim is the host's address on its shim interface (zero: none);
	// ShimRoute is what the host routes through it (the range containers
	// get addresses from).
	HostShim  netip.Addr
	ShimRoute netip.Prefix
}

// Keys of State in DriverState.
const (
	stateParent    = "parent"
	stateMode      = "mode"
	stateDummy     = "dummy"
	stateVLANBase  = "vlan_base"
	stateVLANID    = "vlan_id"
	stateHostShim  = "host_shim"
	stateShimRoute = "shim_route"
	stateDataplane = "dataplane"
)

// Map is s as DriverState.
func (s State) Map() map[string]string {
	m := map[string]string{
		stateParent:    s.Parent,
		stateMode:      s.Mode,
		stateDummy:     strconv.FormatBool(s.Dummy),
		stateDataplane: dataplane.DataplaneKernel,
	}
	if s.VLANID != 0 {
		m[stateVLANBase] = s.VLANBase
		m[stateVLANID] = strconv.Itoa(s.VLANID)
	}
	if s.HostShim.IsValid() {
		m[stateHostShim] = s.HostShim.String()
		m[stateShimRoute] = s.ShimRoute.String()
	}
	return m
}

// StateOf decodes n's DriverState.
func StateOf(n *dataplane.NetworkConfig) (State, error) {
	m := n.DriverState
	bad := func(k string) error {
		return fmt.Errorf("network %s: bad macvlan state %s=%q", n.Name, k, m[k])
	}
	s := State{Parent: m[stateParent], Mode: m[stateMode], VLANBase: m[stateVLANBase]}
	if s.Parent == "" || validIfName(s.Parent) != nil {
		return State{}, bad(stateParent)
	}
	if _, err := modeOf(s.Mode); err != nil {
		return State{}, bad(stateMode)
	}
	var err error
	if s.Dummy, err = strconv.ParseBool(m[stateDummy]); err != nil {
		return State{}, bad(stateDummy)
	}
	if v, ok := m[stateVLANID]; ok {
		if s.VLANID, err = strconv.Atoi(v); err != nil || s.VLANID < 1 || s.VLANID > 4094 || s.VLANBase == "" {
			return State{}, bad(stateVLANID)
		}
	}
	if v, ok := m[stateHostShim]; ok {
		if s.HostShim, err = netip.ParseAddr(v); err != nil {
			return State{}, bad(stateHostShim)
		}
		if s.ShimRoute, err = netip.ParsePrefix(m[stateShimRoute]); err != nil {
			return State{}, bad(stateShimRoute)
		}
	}
	return s, nil
}

// DummyName is the parent netd makes for a network without one: Docker's
// name, "dm-" and the short network ID.
func DummyName(networkID string) string { return "dm-" + stringid.ShortID(networkID) }

// Validate is the part of ValidateNetwork that needs no kernel: options,
// the host shim address against the network's addresses, and the rules
// between networks sharing a parent (Docker's texts). parentExists says
// whether a link of that name is there, to tell a sub-interface netd
// should create from one the user made.
func Validate(n *dataplane.NetworkConfig, others []*dataplane.NetworkConfig, parentExists func(string) bool) (State, error) {
	o, err := ParseOptions(n.Options)
	if err != nil {
		return State{}, err
	}
	s := State{Parent: o.Parent, Mode: o.Mode}
	if s.Parent == "" {
		s.Parent, s.Dummy = DummyName(n.ID), true
	} else if !parentExists(s.Parent) {
		if !strings.Contains(s.Parent, ".") {
			return State{}, errdefs.NotFound("the requested parent interface %s was not found on the host "+
				"(and it is no sub-interface to create: invalid subinterface vlan name %s, example formatting is eth0.10)", s.Parent, s.Parent)
		}
		if s.VLANBase, s.VLANID, err = ParseVLAN(s.Parent); err != nil {
			return State{}, err
		}
		if !parentExists(s.VLANBase) {
			return State{}, errdefs.NotFound("-o parent interface was not found on the host: %s", s.VLANBase)
		}
	}
	if o.HostShim.IsValid() {
		if s.ShimRoute, err = shimRoute(n, o, s); err != nil {
			return State{}, err
		}
		s.HostShim = o.HostShim
	}
	for _, other := range others {
		os, err := StateOf(other)
		if err != nil || os.Parent != s.Parent {
			continue
		}
		if os.VLANID != 0 {
			// netd made the sub-interface for that network: it goes with the last of them.
			s.VLANBase, s.VLANID = os.VLANBase, os.VLANID
		}
		if s.Mode == ModePassthru {
			return State{}, errdefs.Forbidden("cannot use mode passthru, macvlan network %s is already using parent interface %s", other.ID, s.Parent)
		}
		if os.Mode == ModePassthru {
			return State{}, errdefs.Forbidden("macvlan network %s is already using parent interface %s in mode passthru", other.ID, s.Parent)
		}
	}
	return s, nil
}

// shimRoute checks the host shim address and returns what the host routes
// through the shim: the range containers get addresses from.
func shimRoute(n *dataplane.NetworkConfig, o Options, s State) (netip.Prefix, error) {
	a := o.HostShim
	switch {
	case s.Dummy:
		return netip.Prefix{}, errdefs.InvalidParameter("%s needs -o parent: without one the network is internal, there is nothing for the host to reach it through", OptHostShim)
	case s.Mode != ModeBridge:
		return netip.Prefix{}, errdefs.InvalidParameter("%s needs macvlan_mode bridge: the kernel hands frames between the shim and the containers only in bridge mode (this network is %s)", OptHostShim, s.Mode)
	case !n.Subnet.IsValid() || !n.Subnet.Contains(a):
		return netip.Prefix{}, errdefs.InvalidParameter("%s address %s is not in the network's subnet %s", OptHostShim, a, n.Subnet)
	case a == n.Gateway:
		return netip.Prefix{}, errdefs.InvalidParameter("%s address %s is the network's gateway: pick another address for the host", OptHostShim, a)
	case a == n.Subnet.Masked().Addr():
		return netip.Prefix{}, errdefs.InvalidParameter("%s address %s is the subnet's network address", OptHostShim, a)
	}
	reserved := false
	for _, aux := range n.Aux {
		reserved = reserved || aux == a
	}
	// IPAM hands out the range (or the whole subnet): the shim's address
	// must be out of it or reserved, or a container could get it too.
	if !reserved && (!n.IPRange.IsValid() || n.IPRange.Contains(a)) {
		return netip.Prefix{}, errdefs.InvalidParameter("%s address %s could be given to a container: reserve it with --aux-address host=%s or pick one outside --ip-range", OptHostShim, a, a)
	}
	if n.IPRange.IsValid() {
		return n.IPRange, nil
	}
	return n.Subnet.Masked(), nil
}
