//go:build linux

package bridge

// Port publishing (Docker's -p). On an ebpf network the driver hands the
// endpoint to the eBPF publisher (Config.Publisher). On a kernel network it
// does what Docker's nftables firewaller does with userland-proxy=false,
// with one map element per port instead of one rule per port:
//
//	prerouting, output   fib daddr type local
//	                     dnat ip to ip daddr . meta l4proto . th dport map @publish_addr
//	                     dnat ip to meta l4proto . th dport map @publish_any
//	postrouting          iifname @bridges oifname @bridges ct status dnat masquerade  (hairpin)
//	                     ip saddr . ip daddr . meta l4proto . th dport @publish_hairpin masquerade
//	                     oifname @bridges ip saddr 127.0.0.0/8 masquerade  (-p 127.0.0.1:…)
//	raw_prerouting       iifname != "lo" ip daddr 127.0.0.0/8 drop  (moby#45610)
//	from_<bridge>        iifname <bridge> ct status dnat accept  (before isolation)
//
// Hairpin has two paths. Routed (no br_netfilter), the packet leaves by
// the bridge and carries its input bridge: the first rule. With
// br_netfilter (bridge-nf-call-iptables=1) a DNAT back onto the same bridge
// is bridged, its input device unknown at postrouting: conntrack translates
// a neighbour's replies, and a container to its own port (Docker's "MASQ
// TO OWN PORT", an element per container port here) needs the masquerade
// and hairpin mode on its bridge port to get the packet back.
//
// Host-originated connections to 127.0.0.1 are routed to the bridge, which
// needs route_localnet there (set on a bridge once a port is published on
// it, in the driver's netns only; 0.0.0.0 includes 127.0.0.1). Each
// element carries the endpoint's short ID as its comment, so a restarted
// daemon's reconcile adopts the elements of live endpoints and forwarding
// never stops.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/publish"
)

// pubEndpoint is what the driver published for one endpoint.
type pubEndpoint struct {
	network string
	ebpf    bool
	target  publish.Target // ebpf: what Unpublish is given; kernel: Addr
	ports   map[dataplane.PortMapping]bool
}

// sortedPorts are e's mappings in a stable order.
func (e *pubEndpoint) sortedPorts() []dataplane.PortMapping {
	out := make([]dataplane.PortMapping, 0, len(e.ports))
	for m := range e.ports {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b dataplane.PortMapping) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostIP.Compare(b.HostIP),
			cmp.Compare(a.HostPort, b.HostPort), cmp.Compare(a.ContainerPort, b.ContainerPort))
	})
	return out
}

// pubRule is one published port as the kernel dataplane's maps hold it.
type pubRule struct {
	HostIP   netip.Addr // IPv4; 0.0.0.0 (any local address) goes to publish_any
	Proto    uint8
	HostPort uint16
	Addr     netip.Addr // the container's
	Port     uint16
	Endpoint string // the endpoint's ID; its short form is the element's comment
}

// hostKey is what makes two rules clash: the same host address and port.
type hostKey struct {
	ip    netip.Addr
	proto uint8
	port  uint16
}

func (r pubRule) key() hostKey { return hostKey{r.HostIP, r.Proto, r.HostPort} }

// hairpinKey is the container port a rule leads to: its hairpin element.
type hairpinKey struct {
	addr  netip.Addr
	proto uint8
	port  uint16
}

func (r pubRule) hairpin() hairpinKey { return hairpinKey{r.Addr, r.Proto, r.Port} }

func (r pubRule) any() bool { return r.HostIP.IsUnspecified() }

// String is how Docker names a host address and port: 0.0.0.0:8080.
func (k hostKey) String() string {
	return net.JoinHostPort(k.ip.String(), strconv.Itoa(int(k.port)))
}

func protoNumber(p string) (uint8, error) {
	switch p {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	}
	return 0, errdefs.InvalidParameter("invalid proto %q: must be tcp or udp", p)
}

func protoName(p uint8) string {
	if p == unix.IPPROTO_UDP {
		return "udp"
	}
	return "tcp"
}

// normalize checks m and fills in its unspecified host address.
func normalize(m dataplane.PortMapping) (dataplane.PortMapping, error) {
	if _, err := protoNumber(m.Proto); err != nil {
		return m, err
	}
	if m.HostPort == 0 || m.ContainerPort == 0 {
		return m, errdefs.InvalidParameter("invalid port mapping %d:%d/%s: port 0", m.HostPort, m.ContainerPort, m.Proto)
	}
	if !m.HostIP.IsValid() {
		m.HostIP = netip.IPv4Unspecified()
	}
	return m, nil
}

func normalizeAll(ports []dataplane.PortMapping) ([]dataplane.PortMapping, error) {
	out := make([]dataplane.PortMapping, 0, len(ports))
	for _, m := range ports {
		m, err := normalize(m)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// kernelRule is m on the kernel dataplane, to addr. An unspecified host
// address of either family means every IPv4 address of the host.
func kernelRule(m dataplane.PortMapping, addr netip.Addr, endpoint string) (pubRule, error) {
	proto, err := protoNumber(m.Proto)
	if err != nil {
		return pubRule{}, err
	}
	ip := m.HostIP.Unmap()
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		ip = netip.IPv4Unspecified()
	case !ip.Is4():
		return pubRule{}, errdefs.InvalidParameter("publish %s/%s: the kernel dataplane publishes on IPv4 host addresses only",
			net.JoinHostPort(ip.String(), strconv.Itoa(int(m.HostPort))), m.Proto)
	}
	return pubRule{HostIP: ip, Proto: proto, HostPort: m.HostPort, Addr: addr, Port: m.ContainerPort, Endpoint: endpoint}, nil
}

// PublishPorts implements dataplane.Publisher.
func (d *Driver) PublishPorts(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	norm, err := normalizeAll(ports)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.accelerated(n) {
		return d.publishEBPF(n, ep, norm)
	}
	return d.publishKernel(n, ep, norm)
}

// UnpublishPorts implements dataplane.Publisher.
func (d *Driver) UnpublishPorts(ctx context.Context, cfg *dataplane.NetworkConfig, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	n, err := d.begin(ctx, cfg)
	if err != nil {
		return err
	}
	norm, err := normalizeAll(ports)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.accelerated(n) {
		return d.unpublishEBPF(n, ep, norm)
	}
	return d.unpublishKernel(n, ep, norm)
}

// DefaultHostIP is the host address a -p on network n binds to when it
// names none: its com.docker.network.bridge.host_binding_ipv4, or 0.0.0.0.
func (d *Driver) DefaultHostIP(n *dataplane.NetworkConfig) (netip.Addr, error) {
	s, err := StateOf(n)
	if err != nil {
		return netip.Addr{}, err
	}
	return s.HostIPv4, nil
}

// record adds ports to what ep has published. d.mu held.
func (d *Driver) record(n *network, ep *dataplane.EndpointConfig, ebpf bool, t publish.Target, ports []dataplane.PortMapping) {
	pe := d.pub[ep.ID]
	if pe == nil {
		pe = &pubEndpoint{network: n.ID, ebpf: ebpf, ports: map[dataplane.PortMapping]bool{}}
		d.pub[ep.ID] = pe
	}
	pe.target = t
	for _, m := range ports {
		if pe.ports[m] {
			continue
		}
		pe.ports[m] = true
		if r, err := kernelRule(m, t.Addr, ep.ID); err == nil && !ebpf {
			u := d.pubHost[r.key()]
			d.pubHost[r.key()] = hostUse{rule: r, n: u.n + 1}
			d.pubTarget[r.hairpin()]++
		}
	}
}

// forget removes ports from what ep has published. d.mu held.
func (d *Driver) forget(ep string, ports []dataplane.PortMapping) {
	pe := d.pub[ep]
	if pe == nil {
		return
	}
	for _, m := range ports {
		if !pe.ports[m] {
			continue
		}
		delete(pe.ports, m)
		if r, err := kernelRule(m, pe.target.Addr, ep); err == nil && !pe.ebpf {
			if u := d.pubHost[r.key()]; u.n > 1 {
				d.pubHost[r.key()] = hostUse{rule: u.rule, n: u.n - 1}
			} else {
				delete(d.pubHost, r.key())
			}
			if d.pubTarget[r.hairpin()]--; d.pubTarget[r.hairpin()] <= 0 {
				delete(d.pubTarget, r.hairpin())
			}
		}
	}
	if len(pe.ports) == 0 {
		delete(d.pub, ep)
	}
}

// target is what the eBPF publisher needs of ep. d.mu held.
func (d *Driver) target(n *network, ep *dataplane.EndpointConfig) (publish.Target, error) {
	host, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return publish.Target{}, err
	}
	if host == nil {
		return publish.Target{}, fmt.Errorf("publish ports of endpoint %.12s: veth %s not found", ep.ID, ep.HostIfName)
	}
	br, err := nlutil.LinkByNameOpt(d.nl, n.BridgeName)
	if err != nil {
		return publish.Target{}, err
	}
	if br == nil {
		return publish.Target{}, fmt.Errorf("publish ports of endpoint %.12s: bridge %s of network %s not found", ep.ID, n.BridgeName, n.Name)
	}
	return publish.Target{
		NetworkID:   n.ID,
		EndpointID:  ep.ID,
		Addr:        ep.Addr.Addr(),
		MAC:         ep.MAC,
		HostIfindex: host.Attrs().Index,
		BridgeMAC:   br.Attrs().HardwareAddr,
		Gateway:     n.Gateway,
		SandboxPath: ep.SandboxPath,
		IfName:      ep.IfName,
	}, nil
}

func (d *Driver) publishEBPF(n *network, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	if d.publisher == nil {
		why := d.publisherErr
		if why == nil {
			why = errors.New("no eBPF port publisher loaded: publish on a network created with --opt netd.dataplane=kernel")
		}
		return errdefs.Unavailable("publish ports of endpoint %.12s on network %s: %w", ep.ID, n.Name, why)
	}
	t, err := d.target(n, ep)
	if err != nil {
		return err
	}
	if err := d.publisher.Publish(t, ports); err != nil {
		return err
	}
	d.record(n, ep, true, t, ports)
	return nil
}

func (d *Driver) unpublishEBPF(n *network, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	if d.publisher == nil {
		d.forget(ep.ID, ports)
		return nil // nothing can have been published
	}
	t := publish.Target{NetworkID: n.ID, EndpointID: ep.ID, Addr: ep.Addr.Addr(), SandboxPath: ep.SandboxPath, IfName: ep.IfName}
	if pe := d.pub[ep.ID]; pe != nil {
		t = pe.target
	}
	if err := d.publisher.Unpublish(t, ports); err != nil {
		return err
	}
	d.forget(ep.ID, ports)
	return nil
}

// hostUse is a host address and port in use on the kernel dataplane: the
// rule, and how many mappings of its endpoint need it (0.0.0.0:8080 and
// [::]:8080 are one rule).
type hostUse struct {
	rule pubRule
	n    int
}

func (d *Driver) publishKernel(n *network, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	if n.Internal {
		// As Docker: nothing enters an internal network from the host.
		d.log.Info("ports of an endpoint on an internal network are not published", "network", n.Name, "endpoint", shortID(ep.ID))
		return nil
	}
	if d.nets[n.ID] == nil {
		return fmt.Errorf("publish ports of endpoint %.12s: network %s is not up", ep.ID, n.Name)
	}
	addr := ep.Addr.Addr()
	if !addr.Is4() {
		return errdefs.InvalidParameter("publish ports of endpoint %.12s: the kernel dataplane publishes to IPv4 endpoints only, not %s", ep.ID, addr)
	}
	var rules, fresh []pubRule // fresh: not in place before, undone on failure
	claimed := map[hostKey]pubRule{}
	for _, m := range ports {
		r, err := kernelRule(m, addr, ep.ID)
		if err != nil {
			return err
		}
		o, ok := claimed[r.key()]
		if !ok {
			u, inUse := d.pubHost[r.key()]
			o, ok = u.rule, inUse
			if !inUse {
				fresh = append(fresh, r)
			}
		}
		if ok && (o.Endpoint != ep.ID || o.Port != r.Port) {
			return errdefs.Conflict("Bind for %s failed: port is already allocated", r.key())
		}
		claimed[r.key()] = r
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return nil
	}
	// 0.0.0.0 includes 127.0.0.1, as with Docker's userland-proxy=false.
	if err := d.routeLocalnet(n); err != nil {
		return err
	}
	if err := d.hairpinMode(ep); err != nil {
		return err
	}
	err := d.withNft(func(c *nftables.Conn, withBase bool) error {
		return publishTx(c, d.table, rules, rules, true, withBase)
	})
	if err != nil {
		// Many ports take several transactions: take back what went in.
		var hairpin []pubRule
		for _, r := range fresh {
			if d.pubTarget[r.hairpin()] == 0 {
				hairpin = append(hairpin, r)
			}
		}
		if undo := d.withNft(func(c *nftables.Conn, withBase bool) error {
			return publishTx(c, d.table, fresh, hairpin, false, withBase)
		}); undo != nil {
			d.log.Warn("undo a failed publish", "endpoint", shortID(ep.ID), "err", undo)
		}
		return fmt.Errorf("publish ports of endpoint %.12s on network %s: %w", ep.ID, n.Name, err)
	}
	d.record(n, ep, false, publish.Target{NetworkID: n.ID, EndpointID: ep.ID, Addr: addr}, ports)
	return nil
}

func (d *Driver) unpublishKernel(n *network, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	pe := d.pub[ep.ID]
	addr := ep.Addr.Addr()
	if pe != nil {
		addr = pe.target.Addr
	}
	if !addr.Is4() {
		d.forget(ep.ID, ports)
		return nil // nothing was published
	}
	// How many of the mappings using each rule and container port leave.
	leaving := map[hostKey]int{}
	leavingTo := map[hairpinKey]int{}
	rules := make([]pubRule, 0, len(ports))
	seen := map[dataplane.PortMapping]bool{}
	for _, m := range ports {
		r, err := kernelRule(m, addr, ep.ID)
		if err != nil {
			return err
		}
		rules = append(rules, r)
		if pe != nil && pe.ports[m] && !seen[m] {
			seen[m] = true
			leaving[r.key()]++
			leavingTo[r.hairpin()]++
		}
	}
	// A rule stays while a mapping still needs it: another endpoint's (then
	// it was never this one's), or this one's [::]:8080 beside 0.0.0.0:8080.
	var drop, hairpin []pubRule
	for _, r := range rules {
		if u, ok := d.pubHost[r.key()]; !ok || u.rule.Endpoint == ep.ID && u.n <= leaving[r.key()] {
			drop = append(drop, r)
		}
		if d.pubTarget[r.hairpin()] <= leavingTo[r.hairpin()] {
			hairpin = append(hairpin, r)
		}
	}
	if len(drop)+len(hairpin) > 0 && d.nets[n.ID] != nil {
		err := d.withNft(func(c *nftables.Conn, withBase bool) error {
			return publishTx(c, d.table, drop, hairpin, false, withBase)
		})
		if err != nil {
			return fmt.Errorf("unpublish ports of endpoint %.12s on network %s: %w", ep.ID, n.Name, err)
		}
	}
	d.forget(ep.ID, ports)
	return d.forgetFlows(drop)
}

// flowsOf matches the conntrack entries of connections through rules
// (keyed without Endpoint).
type flowsOf map[pubRule]bool

func (f flowsOf) MatchConntrackFlow(fl *netlink.ConntrackFlow) bool {
	dst, _ := netip.AddrFromSlice(fl.Forward.DstIP)
	addr, _ := netip.AddrFromSlice(fl.Reverse.SrcIP)
	r := pubRule{HostIP: dst.Unmap(), Proto: fl.Forward.Protocol, HostPort: fl.Forward.DstPort, Addr: addr.Unmap(), Port: fl.Reverse.SrcPort}
	if f[r] {
		return true
	}
	r.HostIP = netip.IPv4Unspecified()
	return f[r]
}

// forgetFlows removes the connection tracking entries of rules just
// unpublished: a UDP stream would otherwise go on reaching the container
// (Docker clears them too). d.mu held.
func (d *Driver) forgetFlows(rules []pubRule) error {
	if len(rules) == 0 {
		return nil
	}
	f := flowsOf{}
	for _, r := range rules {
		r.Endpoint = ""
		f[r] = true
	}
	if _, err := d.nl.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		return fmt.Errorf("remove connection tracking entries of %d unpublished ports: %w", len(rules), err)
	}
	return nil
}

// unpublishAll removes everything ep published (its removal, when the
// daemon has not unpublished first). d.mu held.
func (d *Driver) unpublishAll(n *network, ep *dataplane.EndpointConfig) error {
	pe := d.pub[ep.ID]
	if pe == nil {
		return nil
	}
	if pe.ebpf {
		return d.unpublishEBPF(n, ep, pe.sortedPorts())
	}
	return d.unpublishKernel(n, ep, pe.sortedPorts())
}

// unpublishNetwork removes what the endpoints of network n published, its
// deletion being near. d.mu held.
func (d *Driver) unpublishNetwork(n *network) error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(d.pub)) {
		pe := d.pub[id]
		if pe.network != n.ID {
			continue
		}
		ep := &dataplane.EndpointConfig{ID: id, NetworkID: n.ID, Addr: netip.PrefixFrom(pe.target.Addr, pe.target.Addr.BitLen()),
			SandboxPath: pe.target.SandboxPath, IfName: pe.target.IfName}
		errs = append(errs, d.unpublishAll(n, ep))
	}
	return errors.Join(errs...)
}

// hairpinMode lets the bridge send a frame back out the port of ep it came
// in by: a container's packet to its own published port, bridged back to it
// under br_netfilter. Docker sets it with userland-proxy=false. d.mu held.
func (d *Driver) hairpinMode(ep *dataplane.EndpointConfig) error {
	host, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return err
	}
	if host == nil {
		return fmt.Errorf("publish ports of endpoint %.12s: veth %s not found", ep.ID, ep.HostIfName)
	}
	if pi, err := d.nl.LinkGetProtinfo(host); err == nil && pi.Hairpin {
		return nil
	}
	if err := d.nl.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("set hairpin mode on %s: %w", ep.HostIfName, err)
	}
	return nil
}

// routeLocalnet lets the bridge of n carry the host's connections to
// 127.0.0.1 (DNATed to a container). The drop in raw_prerouting keeps
// others from sending such packets in. d.mu held.
func (d *Driver) routeLocalnet(n *network) error {
	return d.sysctlOn("/proc/sys/net/ipv4/conf/"+n.BridgeName+"/route_localnet", "enable route_localnet on bridge "+n.BridgeName)
}

// kernelRules are the rules of every kernel-dataplane port published on a
// live network. d.mu held.
func (d *Driver) kernelRules() []pubRule {
	var out []pubRule
	for _, id := range slices.Sorted(maps.Keys(d.pub)) {
		pe := d.pub[id]
		if pe.ebpf || d.nets[pe.network] == nil {
			continue
		}
		out = append(out, d.kernelRulesOf(id, pe)...)
	}
	return out
}

// reconcilePublished makes d.pub hold exactly the published ports of the
// live endpoints in eps: what a restarted daemon finds in the kernel maps
// for them (elements name their endpoint) is adopted, and entries of
// endpoints that are gone are dropped (ebpf ones unpublished). d.mu held,
// d.nets already the live networks.
func (d *Driver) reconcilePublished(eps []*dataplane.EndpointConfig) error {
	live := map[string]*dataplane.EndpointConfig{}
	byShort := map[string]*dataplane.EndpointConfig{}
	for _, ep := range eps {
		if d.nets[ep.NetworkID] != nil {
			live[ep.ID] = ep
			byShort[shortID(ep.ID)] = ep
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(d.pub)) {
		pe := d.pub[id]
		if ep := live[id]; ep != nil && ep.NetworkID == pe.network {
			continue
		}
		if pe.ebpf && d.publisher != nil {
			if err := d.publisher.Unpublish(pe.target, pe.sortedPorts()); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		d.forget(id, pe.sortedPorts())
	}
	if len(d.nets) == 0 {
		return errors.Join(errs...)
	}
	var found []pubRule
	err := d.withNft(func(c *nftables.Conn, _ bool) error {
		var err error
		found, err = listPublished(c, d.table)
		return err
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range found {
		ep := byShort[r.Endpoint]
		if ep == nil || ep.Addr.Addr() != r.Addr {
			continue
		}
		n := d.nets[ep.NetworkID]
		if d.accelerated(n) || n.Internal {
			continue
		}
		if pe := d.pub[ep.ID]; pe != nil && pe.ebpf {
			continue
		}
		m := dataplane.PortMapping{Proto: protoName(r.Proto), HostIP: r.HostIP, HostPort: r.HostPort, ContainerPort: r.Port}
		d.record(n, ep, false, publish.Target{NetworkID: n.ID, EndpointID: ep.ID, Addr: r.Addr}, []dataplane.PortMapping{m})
		if err := d.routeLocalnet(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// missingPublished lists, per network ID, the published ports of the
// driver's state that the kernel maps lack (checkRules). d.mu held.
func (d *Driver) missingPublished(c *nftables.Conn) (map[string][]string, error) {
	found, err := listPublished(c, d.table)
	if err != nil {
		return nil, err
	}
	have := map[pubRule]bool{}
	for _, r := range found {
		r.Endpoint = ""
		have[r] = true
	}
	out := map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(d.pub)) {
		pe := d.pub[id]
		if pe.ebpf || d.nets[pe.network] == nil || d.nets[pe.network].Internal {
			continue
		}
		for _, r := range d.kernelRulesOf(id, pe) {
			key := r
			key.Endpoint = ""
			if !have[key] {
				out[pe.network] = append(out[pe.network], fmt.Sprintf("nftables published port %s/%s -> %s missing",
					r.key(), protoName(r.Proto), netip.AddrPortFrom(r.Addr, r.Port)))
			}
		}
	}
	return out, nil
}

// kernelRulesOf are the rules of pe, the published ports of endpoint id.
func (d *Driver) kernelRulesOf(id string, pe *pubEndpoint) []pubRule {
	var out []pubRule
	for _, m := range pe.sortedPorts() {
		if r, err := kernelRule(m, pe.target.Addr, id); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// The nftables side.

// publishSets are the two maps of published ports in table tb and the set
// of their container ports (hairpin).
func publishSets(tb *nftables.Table) (addr, anyAddr, hairpin *nftables.Set) {
	to := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	addr = &nftables.Set{Table: tb, Name: nftPubAddr, IsMap: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService),
		DataType: to}
	anyAddr = &nftables.Set{Table: tb, Name: nftPubAny, IsMap: true, Concatenation: true,
		KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
		DataType: to}
	hairpin = &nftables.Set{Table: tb, Name: nftPubHairpin, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)}
	return addr, anyAddr, hairpin
}

// ipsDstNAT is IPS_DST_NAT, the conntrack status bit of a translated destination.
const ipsDstNAT = 1 << 5

var nftAccept = []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}

// nftCtDNAT matches a connection whose destination was translated.
var nftCtDNAT = []expr.Any{
	&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
	&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
		Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
	&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
}

// nftDaddrLocal matches a destination that is an address of this host.
var nftDaddrLocal = []expr.Any{
	&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
	&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
}

// nftLoopback matches an IPv4 address in 127.0.0.0/8 at offset off of the
// network header (12: source, 16: destination).
func nftLoopback(off uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127}},
	}
}

// nftDNATFrom translates the destination to the address and port that the
// map m gives for the key loaded from register 1 on.
func nftDNATFrom(m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		// The map's data is address . port: registers 1 (32-bit reg 8) and 9.
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
	}
}

var (
	nftL4Proto = func(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }
	nftDport   = func(reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
	nftDaddr = func(reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	}
)

// publishBase queues the fixed rules of port publishing (t.base).
func (t *nftTables) publishBase() {
	for _, ch := range []*nftables.Chain{t.pre, t.out} {
		t.addRule(ch, nftDaddrLocal, nftIPv4, []expr.Any{nftDaddr(1), nftL4Proto(9), nftDport(10)}, nftDNATFrom(t.pubAddr))
		t.addRule(ch, nftDaddrLocal, nftIPv4, []expr.Any{nftL4Proto(1), nftDport(9)}, nftDNATFrom(t.pubAny))
	}
	// Hairpin: a container to a published port on its own bridge would get
	// the reply straight from the bridge, not translated back.
	t.addRule(t.post, nftMetaInSet(expr.MetaKeyIIFNAME, t.bridges), nftMetaInSet(expr.MetaKeyOIFNAME, t.bridges),
		nftCtDNAT, []expr.Any{&expr.Masq{}})
	t.addRule(t.post, nftIPv4, nftMetaInSet(expr.MetaKeyOIFNAME, t.bridges), nftCtDNAT, nftSaddr,
		[]expr.Any{nftDaddr(9), nftL4Proto(10), nftDport(11),
			&expr.Lookup{SourceRegister: 1, SetName: t.pubHairpin.Name, SetID: t.pubHairpin.ID}, &expr.Masq{}})
	// The host to 127.0.0.1:PORT: a container cannot answer 127.0.0.1.
	t.addRule(t.post, nftIPv4, nftMetaInSet(expr.MetaKeyOIFNAME, t.bridges), nftLoopback(12), []expr.Any{&expr.Masq{}})
	// Before the DNAT: another host sending to 127.0.0.1 reaches nothing (moby#45610).
	t.addRule(t.raw, nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpNeq, nftIfname("lo")), nftIPv4, nftLoopback(16), nftDrop)
}

// pad4 is b padded to the 4-byte register size concatenated keys use.
func pad4(b ...byte) []byte {
	out := make([]byte, (len(b)+3)/4*4)
	copy(out, b)
	return out
}

// hairpinElem is r's element of publish_hairpin.
func hairpinElem(r pubRule) nftables.SetElement {
	a := r.Addr.As4()
	key := append(append(a[:], a[:]...), pad4(r.Proto)...)
	return nftables.SetElement{Key: append(key, pad4(binaryutil.BigEndian.PutUint16(r.Port)...)...), Comment: shortID(r.Endpoint)}
}

// shortID is an endpoint ID as element comments carry it (Docker's 12
// digits): a transaction of elements must stay small.
func shortID(id string) string { return id[:min(12, len(id))] }

// elem is r's element and the map it goes in.
func (t *nftTables) elem(r pubRule) (*nftables.Set, nftables.SetElement) {
	port := binaryutil.BigEndian.PutUint16(r.HostPort)
	key := append(pad4(r.Proto), pad4(port...)...)
	s := t.pubAny
	if !r.any() {
		a := r.HostIP.As4()
		key = append(a[:], key...)
		s = t.pubAddr
	}
	a := r.Addr.As4()
	val := append(a[:], pad4(binaryutil.BigEndian.PutUint16(r.Port)...)...)
	return s, nftables.SetElement{Key: key, Val: val, Comment: shortID(r.Endpoint)}
}

// parseElem is the rule of an element of s, false if it is malformed.
func (t *nftTables) parseElem(s *nftables.Set, e nftables.SetElement) (pubRule, bool) {
	k := e.Key
	r := pubRule{HostIP: netip.IPv4Unspecified(), Endpoint: e.Comment}
	if s == t.pubAddr {
		if len(k) != 12 {
			return r, false
		}
		r.HostIP = netip.AddrFrom4([4]byte(k[:4]))
		k = k[4:]
	}
	if len(k) != 8 || len(e.Val) != 8 {
		return r, false
	}
	r.Proto = k[0]
	r.HostPort = binaryutil.BigEndian.Uint16(k[4:6])
	r.Addr = netip.AddrFrom4([4]byte(e.Val[:4]))
	r.Port = binaryutil.BigEndian.Uint16(e.Val[4:6])
	return r, true
}

// nftMaxTxElems caps the elements of one transaction: the kernel takes a
// batch in one sendmsg, which must fit the socket's send buffer (~200 KB).
const nftMaxTxElems = 1024

// queueElems queues adding (or removing, whether there or not) els of s,
// starting a new transaction when this one holds enough elements.
func (t *nftTables) queueElems(s *nftables.Set, els []nftables.SetElement, add bool) error {
	for len(els) > 0 {
		part := els[:min(len(els), nftMaxElems)]
		els = els[len(part):]
		cost := len(part)
		if !add {
			cost *= 2 // added, then deleted
		}
		if t.elems > 0 && t.elems+cost > nftMaxTxElems {
			if err := t.flush(); err != nil {
				return err
			}
		}
		if err := t.flushIfFull(2); err != nil {
			return err
		}
		var err error
		if add {
			err = t.addElems(s, part)
		} else {
			err = t.dropElems(s, part)
		}
		if err != nil {
			return err
		}
		t.elems += cost
	}
	return nil
}

// queuePublished queues adding (or removing, whether there or not) the
// map elements of rules and the hairpin elements of hairpin.
func (t *nftTables) queuePublished(rules, hairpin []pubRule, add bool) error {
	bySet := map[*nftables.Set][]nftables.SetElement{}
	for _, r := range rules {
		s, e := t.elem(r)
		bySet[s] = append(bySet[s], e)
	}
	seen := map[hairpinKey]bool{}
	for _, r := range hairpin {
		if !seen[r.hairpin()] {
			seen[r.hairpin()] = true
			bySet[t.pubHairpin] = append(bySet[t.pubHairpin], hairpinElem(r))
		}
	}
	for _, s := range []*nftables.Set{t.pubAddr, t.pubAny, t.pubHairpin} {
		if err := t.queueElems(s, bySet[s], add); err != nil {
			return err
		}
	}
	return nil
}

// publishTx adds or removes rules (see queuePublished), with the base
// objects first when withBase (they may be missing).
func publishTx(c *nftables.Conn, table string, rules, hairpin []pubRule, add, withBase bool) error {
	t := newNftTables(c, table)
	if withBase {
		if err := t.base(); err != nil {
			return err
		}
	}
	if err := t.queuePublished(rules, hairpin, add); err != nil {
		return err
	}
	return t.flush()
}

// listPublished reads the elements of both maps, none if the table or the
// maps are not there (an older layout, or no network yet).
func listPublished(c *nftables.Conn, table string) ([]pubRule, error) {
	t := newNftTables(c, table)
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == table }) {
		return nil, nil
	}
	sets, err := c.GetSets(t.inet)
	if err != nil {
		return nil, fmt.Errorf("list nftables sets of table %s: %w", table, err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	var out []pubRule
	for _, s := range []*nftables.Set{t.pubAddr, t.pubAny} {
		if !have[s.Name] {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("list nftables map %s: %w", s.Name, err)
		}
		for _, e := range els {
			if r, ok := t.parseElem(s, e); ok {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// syncPublished makes the maps hold exactly want (the base objects are in
// place: syncRuleset ran).
func syncPublished(c *nftables.Conn, table string, want []pubRule) error {
	t := newNftTables(c, table)
	wanted := map[string]bool{}
	for _, r := range want {
		s, e := t.elem(r)
		wanted[s.Name+string(e.Key)+"="+string(e.Val)] = true
		wanted[t.pubHairpin.Name+string(hairpinElem(r).Key)+"="] = true
	}
	for _, s := range []*nftables.Set{t.pubAddr, t.pubAny, t.pubHairpin} {
		els, err := c.GetSetElements(s)
		if err != nil {
			return fmt.Errorf("list nftables map %s: %w", s.Name, err)
		}
		var stale []nftables.SetElement
		for _, e := range els {
			if !wanted[s.Name+string(e.Key)+"="+string(e.Val)] {
				stale = append(stale, nftables.SetElement{Key: e.Key})
			}
		}
		for len(stale) > 0 {
			part := stale[:min(len(stale), nftMaxElems)]
			stale = stale[len(part):]
			if t.elems > 0 && t.elems+len(part) > nftMaxTxElems {
				if err := t.flush(); err != nil {
					return err
				}
			}
			if err := t.flushIfFull(1); err != nil {
				return err
			}
			if err := t.delElems(s, part); err != nil {
				return err
			}
			t.elems += len(part)
		}
	}
	if err := t.queuePublished(want, want, true); err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("rewrite published ports: %w", err)
	}
	return nil
}
