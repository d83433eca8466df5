//go:build linux

package bridge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/fastpath"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// AcceleratorChecker is an Accelerator that can compare its own state of a
// network or endpoint with what it should be (map entries, attachments).
// *fastpath.EBPF implements it.
type AcceleratorChecker interface {
	CheckNetwork(n *fastpath.Network) []string
	CheckEndpoint(n *fastpath.Network, ep *fastpath.Endpoint, hostIfindex int) []string
}

var _ dataplane.Checker = (*Driver)(nil)

// Check implements dataplane.Checker: for every network its bridge
// (type, owner mark, up, MTU, gateway address), for every endpoint both
// veth ends (owner mark, bridge port, up, MTU; name, MAC, address and
// default route in the sandbox), the fast path's entries on ebpf networks,
// and the orphans Reconcile would report. It changes nothing.
func (d *Driver) Check(ctx context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig) ([]dataplane.Drift, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	links, err := nlutil.LinkList(d.nl)
	if err != nil {
		return nil, fmt.Errorf("check: list links: %w", err)
	}
	byName := make(map[string]netlink.Link, len(links))
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	var drifts []dataplane.Drift
	known := map[string]bool{}
	byID := map[string]*network{}
	for _, cfg := range nets {
		known[cfg.ID] = true
		n, err := d.decode(cfg)
		if err != nil {
			drifts = append(drifts, dataplane.Drift{Object: "network " + cfg.Name, Problem: err.Error()})
			continue
		}
		byID[n.ID] = n
		what := fmt.Sprintf("network %s (bridge %s)", n.Name, n.BridgeName)
		for _, p := range d.checkNetwork(n, byName[n.BridgeName]) {
			drifts = append(drifts, dataplane.Drift{Object: what, Problem: p})
		}
	}
	var live []*network
	for _, n := range byID {
		if _, up := d.nets[n.ID]; up {
			live = append(live, d.nets[n.ID])
		}
	}
	fw, err := d.checkRules(live)
	if err != nil {
		return nil, err
	}
	for id, ps := range fw {
		n := byID[id]
		for _, p := range ps {
			drifts = append(drifts, dataplane.Drift{Object: fmt.Sprintf("network %s (bridge %s)", n.Name, n.BridgeName), Problem: p})
		}
	}
	keepIf := map[string]bool{}
	for _, ep := range eps {
		keepIf[ep.HostIfName] = true
		n := byID[ep.NetworkID]
		if n == nil {
			continue
		}
		what := fmt.Sprintf("endpoint %s of container %s on %s", ep.HostIfName, ep.ContainerID, n.Name)
		for _, p := range d.checkEndpoint(n, ep, byName[ep.HostIfName], byName[n.BridgeName]) {
			drifts = append(drifts, dataplane.Drift{Object: what, Problem: p})
		}
	}
	for _, ol := range orphanLinks(links, known, keepIf) {
		drifts = append(drifts, dataplane.Drift{Object: ol.Kind + " " + ol.Name, Problem: "orphan: owned by " + ol.Owner + ", which has no record"})
	}
	return drifts, nil
}

func (d *Driver) checkNetwork(n *network, br netlink.Link) []string {
	if br == nil {
		return []string{"bridge missing"}
	}
	var ps []string
	if _, ok := br.(*netlink.Bridge); !ok {
		return []string{"is a " + br.Type() + ", not a bridge"}
	}
	if want := BridgeAliasPrefix + n.ID; br.Attrs().Alias != want {
		ps = append(ps, fmt.Sprintf("alias %q, want %q", br.Attrs().Alias, want))
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		ps = append(ps, "bridge is down")
	}
	if br.Attrs().MTU != mtuOf(n) {
		ps = append(ps, fmt.Sprintf("MTU %d, want %d", br.Attrs().MTU, mtuOf(n)))
	}
	if n.Gateway.IsValid() && n.Subnet.IsValid() {
		gw := netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
		if ok, err := hasAddr(d.nl, br, gw); err != nil {
			ps = append(ps, err.Error())
		} else if !ok {
			ps = append(ps, "gateway address "+gw.String()+" missing")
		}
	}
	if c, ok := d.accel.(AcceleratorChecker); ok && d.accelerated(n) {
		ps = append(ps, c.CheckNetwork(fastNetwork(n))...)
	}
	return ps
}

func (d *Driver) checkEndpoint(n *network, ep *dataplane.EndpointConfig, host, br netlink.Link) []string {
	if host == nil {
		return []string{"host-side veth missing"}
	}
	if _, ok := host.(*netlink.Veth); !ok {
		return []string{"host side is a " + host.Type() + ", not a veth"}
	}
	var ps []string
	if want := vethAlias(ep); host.Attrs().Alias != want {
		ps = append(ps, fmt.Sprintf("alias %q, want %q", host.Attrs().Alias, want))
	}
	if br != nil && host.Attrs().MasterIndex != br.Attrs().Index {
		ps = append(ps, "not a port of bridge "+n.BridgeName)
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		ps = append(ps, "host side is down")
	}
	if host.Attrs().MTU != mtuOf(n) {
		ps = append(ps, fmt.Sprintf("host side MTU %d, want %d", host.Attrs().MTU, mtuOf(n)))
	}
	ps = append(ps, checkContainerSide(n, ep, host)...)
	if c, ok := d.accel.(AcceleratorChecker); ok && d.accelerated(n) {
		ps = append(ps, c.CheckEndpoint(fastNetwork(n), fastEndpoint(ep), host.Attrs().Index)...)
	}
	return ps
}

// checkContainerSide looks at the veth's other end inside the sandbox.
func checkContainerSide(n *network, ep *dataplane.EndpointConfig, host netlink.Link) []string {
	sbns, sh, err := sandbox.OpenHandle(ep.SandboxPath)
	if err != nil {
		return []string{err.Error()}
	}
	defer sbns.Close()
	defer sh.Close()
	l, err := nlutil.LinkByNameOpt(sh, ep.IfName)
	if err != nil {
		return []string{err.Error()}
	}
	if l == nil || !isPeer(l, host) {
		return []string{fmt.Sprintf("%s in %s missing or not the peer of %s", ep.IfName, ep.SandboxPath, ep.HostIfName)}
	}
	var ps []string
	if len(ep.MAC) > 0 && !bytes.Equal(l.Attrs().HardwareAddr, ep.MAC) {
		ps = append(ps, fmt.Sprintf("%s MAC %s, stored %s", ep.IfName, l.Attrs().HardwareAddr, ep.MAC))
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		ps = append(ps, ep.IfName+" is down")
	}
	if l.Attrs().MTU != mtuOf(n) {
		ps = append(ps, fmt.Sprintf("%s MTU %d, want %d", ep.IfName, l.Attrs().MTU, mtuOf(n)))
	}
	if ep.Addr.IsValid() {
		if ok, err := hasAddr(sh, l, ep.Addr); err != nil {
			ps = append(ps, err.Error())
		} else if !ok {
			ps = append(ps, fmt.Sprintf("%s lacks address %s", ep.IfName, ep.Addr))
		}
	}
	if ep.DefaultGW && ep.Gateway.IsValid() {
		routes, err := nlutil.RetryDump(func() ([]netlink.Route, error) { return sh.RouteList(l, netlink.FAMILY_V4) })
		found := false
		for _, r := range routes {
			if isDefault(r.Dst) && r.Gw != nil && r.Gw.Equal(ep.Gateway.AsSlice()) {
				found = true
			}
		}
		if err != nil || !found {
			ps = append(ps, "default route via "+ep.Gateway.String()+" missing")
		}
	}
	return ps
}

// isDefault: netlink reports a default route's Dst as nil or 0.0.0.0/0.
func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

func hasAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) (bool, error) {
	addrs, err := nlutil.AddrList(h, l)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() && ones == p.Bits() {
			return true, nil
		}
	}
	return false, nil
}

var _ AcceleratorChecker = (*fastpath.EBPF)(nil)
