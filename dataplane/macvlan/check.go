//go:build linux

package macvlan

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// Check implements dataplane.Checker: for every network its parent (there,
// up; the dummy or sub-interface netd made, with its tagging programs when
// emulated) and host shim (address, route); for every endpoint its macvlan
// in the sandbox (mark, mode, on the parent, MAC, up, address, default
// route); and the orphans Reconcile would report. It changes nothing.
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
	add := func(what string, ps []string) {
		for _, p := range ps {
			drifts = append(drifts, dataplane.Drift{Object: what, Problem: p})
		}
	}
	known := map[string]bool{}
	byID := map[string]*network{}
	for _, cfg := range nets {
		known[cfg.ID] = true
		s, err := StateOf(cfg)
		if err != nil {
			add("network "+cfg.Name, []string{err.Error()})
			continue
		}
		n := &network{NetworkConfig: cfg, State: s}
		byID[n.ID] = n
		add(fmt.Sprintf("network %s (macvlan on %s)", n.Name, n.Parent), d.checkNetwork(n, byName))
	}
	epNames := map[string]bool{}
	for _, ep := range eps {
		epNames[ep.HostIfName] = true
		n := byID[ep.NetworkID]
		if n == nil {
			continue
		}
		what := fmt.Sprintf("endpoint %s of container %s on %s", ep.IfName, ep.ContainerID, n.Name)
		add(what, checkEndpoint(n, ep, byName[n.Parent]))
	}
	for _, ol := range orphanLinks(links, byID, known, epNames) {
		drifts = append(drifts, dataplane.Drift{Object: ol.Kind + " " + ol.Name, Problem: "orphan: owned by " + ol.Owner + ", which has no record"})
	}
	return drifts, nil
}

func (d *Driver) checkNetwork(n *network, byName map[string]netlink.Link) []string {
	p := byName[n.Parent]
	if p == nil {
		return []string{"parent interface " + n.Parent + " missing"}
	}
	var ps []string
	if p.Attrs().Flags&net.FlagUp == 0 {
		ps = append(ps, "parent interface "+n.Parent+" is down")
	}
	switch {
	case n.Dummy:
		if want := DummyAliasPrefix + n.ID; p.Attrs().Alias != want {
			ps = append(ps, fmt.Sprintf("dummy parent alias %q, want %q", p.Attrs().Alias, want))
		}
	case n.VLANID != 0 && p.Attrs().Alias == VLANAlias:
		ps = append(ps, checkVLAN(d.nl, byName[n.VLANBase], p, n.VLANID)...)
	}
	if n.HostShim.IsValid() {
		ps = append(ps, d.checkShim(n, p, byName[ShimName(n.ID)])...)
	}
	return ps
}

func (d *Driver) checkShim(n *network, parent, l netlink.Link) []string {
	name := ShimName(n.ID)
	if l == nil {
		return []string{"host shim " + name + " missing"}
	}
	var ps []string
	if want := ShimAliasPrefix + n.ID; l.Attrs().Alias != want {
		ps = append(ps, fmt.Sprintf("host shim alias %q, want %q", l.Attrs().Alias, want))
	}
	if l.Attrs().ParentIndex != parent.Attrs().Index {
		ps = append(ps, "host shim "+name+" is not on "+n.Parent)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		ps = append(ps, "host shim "+name+" is down")
	}
	if ok, err := hasAddr(d.nl, l, netip.PrefixFrom(n.HostShim, 32)); err != nil || !ok {
		ps = append(ps, fmt.Sprintf("host shim %s lacks address %s/32", name, n.HostShim))
	}
	if ok, err := d.shimRouted(l, n.ShimRoute); err != nil || !ok {
		ps = append(ps, fmt.Sprintf("route to %s through host shim %s missing", n.ShimRoute, name))
	}
	return ps
}

// checkEndpoint looks at the endpoint's macvlan in its sandbox.
func checkEndpoint(n *network, ep *dataplane.EndpointConfig, parent netlink.Link) []string {
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
	if l == nil {
		return []string{fmt.Sprintf("macvlan %s missing in %s", ep.IfName, ep.SandboxPath)}
	}
	mv, ok := l.(*netlink.Macvlan)
	if !ok {
		return []string{fmt.Sprintf("%s in %s is a %s, not a macvlan", ep.IfName, ep.SandboxPath, l.Type())}
	}
	var ps []string
	if want := endpointAlias(ep); mv.Alias != want {
		ps = append(ps, fmt.Sprintf("%s alias %q, want %q", ep.IfName, mv.Alias, want))
	}
	if want, _ := modeOf(n.Mode); mv.Mode != want {
		ps = append(ps, fmt.Sprintf("%s is in macvlan mode %d, want %s", ep.IfName, mv.Mode, n.Mode))
	}
	// The parent is in the host netns: its ifindex is what the link names.
	if parent != nil && mv.ParentIndex != parent.Attrs().Index {
		ps = append(ps, fmt.Sprintf("%s is not on parent %s", ep.IfName, n.Parent))
	}
	if len(ep.MAC) > 0 && !bytes.Equal(mv.HardwareAddr, ep.MAC) {
		ps = append(ps, fmt.Sprintf("%s MAC %s, stored %s", ep.IfName, mv.HardwareAddr, ep.MAC))
	}
	if mv.Flags&net.FlagUp == 0 {
		ps = append(ps, ep.IfName+" is down")
	}
	if ep.Addr.IsValid() {
		if ok, err := hasAddr(sh, l, ep.Addr); err != nil || !ok {
			ps = append(ps, fmt.Sprintf("%s lacks address %s", ep.IfName, ep.Addr))
		}
	}
	if wantsDefaultRoute(n, ep) {
		routes, err := nlutil.RetryDump(func() ([]netlink.Route, error) { return sh.RouteList(l, netlink.FAMILY_V4) })
		found := false
		for _, r := range routes {
			ones := 0
			if r.Dst != nil {
				ones, _ = r.Dst.Mask.Size()
			}
			found = found || (ones == 0 && r.Gw != nil && r.Gw.Equal(ep.Gateway.AsSlice()))
		}
		if err != nil || !found {
			ps = append(ps, "default route via "+ep.Gateway.String()+" missing")
		}
	}
	return ps
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
