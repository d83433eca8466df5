//go:build linux

package overlay

// The ebpf dataplane of overlay networks (hosts with --dataplane ebpf).
//
// One collect-metadata VXLAN device per host (TunnelDevice) carries every
// overlay network; bpf/overlay.c forwards: overlay_from_container on each
// endpoint's host-side veth (ARP answered in place, anti-spoofing, local
// endpoints through bpf_redirect_peer, remote ones through a tunnel key and
// the device, the gateway's MAC to the bridge), overlay_from_tunnel on the
// device. The per-network bridge stays, in the bridge driver's kernel form
// (no eBPF of its own): it holds the gateway address, so containers reach
// the host and the outside through their own host. Remote endpoints are
// programmed into the maps from the gossip view, level-triggered like the
// kernel path's FDB (fdb.go). Maps and links are pinned under PinDir: a
// daemon that dies leaves forwarding running, and the next one adopts it.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/overlay/fastpath"
)

const (
	// TunnelDevice is the host's collect-metadata VXLAN device.
	TunnelDevice = "netd_vxlan"
	// TunnelAlias marks it as netd's (not VXLANAliasPrefix: it belongs to
	// no one network).
	TunnelAlias = "netd:vxlan-tunnel"
	// pinSubdir is the overlay's directory in the daemon's pin dir.
	pinSubdir = "overlay"
)

// ebpfPath is the overlay's eBPF state on this host.
type ebpfPath struct {
	pinDir string // "" when the daemon has no bpffs dir: ebpf hosts refuse overlay networks

	mu     sync.Mutex
	o      *fastpath.Overlay      // loaded with the first network, forgotten after the last
	locals map[string]*localState // by host-side interface
}

// localState is a local endpoint as the data path has it.
type localState struct {
	ep        fastpath.Endpoint
	network   string // name, for the status
	networkID string
	container string // ID
}

func newEBPFPath(pinDir string) *ebpfPath {
	p := &ebpfPath{locals: map[string]*localState{}}
	if pinDir != "" {
		p.pinDir = filepath.Join(pinDir, pinSubdir)
	}
	return p
}

// onEBPF says this host carries overlay networks on the eBPF path.
func (d *Driver) onEBPF() bool { return d.dp == dataplane.DataplaneEBPF }

// overlayFP returns the loaded data path, loading (or adopting) it first.
func (d *Driver) overlayFP() (*fastpath.Overlay, error) {
	p := d.eb
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.o != nil {
		return p.o, nil
	}
	if p.pinDir == "" {
		return nil, errdefs.Unavailable("the overlay's eBPF dataplane has no pin directory on this host (netd daemon --bpffs); start with --dataplane kernel to carry overlay networks without it")
	}
	o, err := fastpath.Load(p.pinDir, d.log)
	if err != nil {
		return nil, fmt.Errorf("load the overlay's eBPF data path: %w (start with --dataplane kernel to carry overlay networks without it)", err)
	}
	p.o = o
	return o, nil
}

// loadedFP is the data path if loaded, or adopted from pins a previous run
// left; nil when neither (nothing of the overlay's eBPF on this host).
func (d *Driver) loadedFP() (*fastpath.Overlay, error) {
	d.eb.mu.Lock()
	o, dir := d.eb.o, d.eb.pinDir
	d.eb.mu.Unlock()
	if o != nil || dir == "" {
		return o, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return d.overlayFP()
}

// createNetworkEBPF brings n (its bridge already up) onto the data path:
// the tunnel device, the VNI's counters and the gateway.
func (d *Driver) createNetworkEBPF(n *dataplane.NetworkConfig, vni uint32, vtep netip.Addr) error {
	o, err := d.overlayFP()
	if err != nil {
		return err
	}
	// A run on the kernel dataplane left this network's own VXLAN device: it would take the VNI's frames.
	if err := d.deleteNetworkVXLAN(n.ID); err != nil {
		return err
	}
	if err := d.ensureTunnel(o, vtep); err != nil {
		return err
	}
	if err := o.NetworkUp(vni); err != nil {
		return err
	}
	if !n.Gateway.IsValid() {
		return nil
	}
	br, err := d.nl.LinkByName(bridgeName(n.ID))
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", bridgeName(n.ID), err)
	}
	return o.SetGateway(vni, n.Gateway, br.Attrs().HardwareAddr)
}

// deleteNetworkVXLAN removes the network's kernel-path VXLAN device, if ours.
func (d *Driver) deleteNetworkVXLAN(id string) error {
	l, err := nlutil.LinkByNameOpt(d.nl, vxlanName(id))
	if err != nil || l == nil || l.Attrs().Alias != VXLANAliasPrefix+id {
		return err
	}
	if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
		return fmt.Errorf("delete VXLAN device %s: %w", vxlanName(id), err)
	}
	return nil
}

// ensureTunnel creates or adopts the collect-metadata device and points the
// data path at it.
func (d *Driver) ensureTunnel(o *fastpath.Overlay, vtep netip.Addr) error {
	mtu := d.underlayMTU()
	l, err := nlutil.LinkByNameOpt(d.nl, TunnelDevice)
	if err != nil {
		return err
	}
	if l != nil {
		vx, ok := l.(*netlink.Vxlan)
		if l.Attrs().Alias != TunnelAlias {
			return errdefs.Conflict("device %s exists and is not netd's overlay tunnel (alias %q): remove it or run the daemon with --dataplane kernel", TunnelDevice, l.Attrs().Alias)
		}
		if !ok || !vx.FlowBased || vx.Port != d.port || vx.Learning {
			// Ours, built with other settings (another --vxlan-port): rebuild.
			if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
				return fmt.Errorf("replace VXLAN device %s: %w", TunnelDevice, err)
			}
			l = nil
		}
	}
	if l == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: TunnelDevice, MTU: mtu},
			FlowBased: true, // collect metadata: the VNI and remote come from the tunnel key
			Port:      d.port,
			Learning:  false,
		}
		if err := d.nl.LinkAdd(vx); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create VXLAN device %s (external, port %d): %w", TunnelDevice, d.port, err)
		}
		if l, err = d.nl.LinkByName(TunnelDevice); err != nil {
			return fmt.Errorf("get VXLAN device %s: %w", TunnelDevice, err)
		}
		if err := d.nl.LinkSetAlias(l, TunnelAlias); err != nil {
			return fmt.Errorf("set alias of %s: %w", TunnelDevice, err)
		}
	}
	if l.Attrs().MTU != mtu {
		if err := d.nl.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("set MTU of %s: %w", TunnelDevice, err)
		}
	}
	if err := d.nl.LinkSetUp(l); err != nil {
		return vxlanUpError(TunnelDevice, d.port, err)
	}
	idx := l.Attrs().Index
	if cur, curVTEP, err := o.Tunnel(); err != nil || cur != idx || curVTEP != vtep {
		if err := o.SetTunnel(idx, vtep); err != nil {
			return err
		}
	}
	if _, err := o.AttachTunnel(TunnelDevice, idx); err != nil {
		return fmt.Errorf("attach %s to %s: %w", fastpath.ProgFromTunnel, TunnelDevice, err)
	}
	return nil
}

// deleteNetworkEBPF takes the VNI's entries out of the maps; after the
// host's last overlay network the tunnel device and the pins go too.
func (d *Driver) deleteNetworkEBPF(vni uint32, last bool) error {
	o, err := d.loadedFP()
	if err != nil || o == nil {
		return err
	}
	var errs []error
	if t, err := o.Table(); err != nil {
		errs = append(errs, err)
	} else {
		for _, ep := range t.ByMAC {
			if ep.VNI == vni && !ep.Local() {
				errs = append(errs, o.DeleteEndpoint(ep))
			}
		}
		for _, ep := range t.ByIP {
			if ep.VNI == vni && !ep.Local() {
				errs = append(errs, o.DeleteAddress(ep))
			}
		}
	}
	errs = append(errs, o.NetworkDown(vni))
	if last {
		errs = append(errs, d.teardownTunnel())
	}
	return errors.Join(errs...)
}

// teardownTunnel removes the tunnel device and every pin of the overlay.
func (d *Driver) teardownTunnel() error {
	p := d.eb
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if l, err := nlutil.LinkByNameOpt(d.nl, TunnelDevice); err != nil {
		errs = append(errs, err)
	} else if l != nil && l.Attrs().Alias == TunnelAlias {
		if err := d.nl.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete VXLAN device %s: %w", TunnelDevice, err))
		}
	}
	if p.o != nil {
		errs = append(errs, p.o.Forget())
		p.o = nil
	} else if p.pinDir != "" {
		errs = append(errs, os.RemoveAll(p.pinDir))
	}
	if p.pinDir != "" {
		if err := os.Remove(p.pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove overlay pin dir: %w", err))
		}
	}
	p.locals = map[string]*localState{}
	return errors.Join(errs...)
}

func localEndpoint(ep *dataplane.EndpointConfig, vni uint32, ifindex int) fastpath.Endpoint {
	return fastpath.Endpoint{VNI: vni, MAC: ep.MAC, IPv4: ep.Addr.Addr(), Ifindex: ifindex}
}

// joinEBPF puts the endpoint into the maps and the program on its host-side
// veth, before the container side comes up: nothing it sends escapes the
// anti-spoofing.
func (d *Driver) joinEBPF(n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig, vni uint32) error {
	if !ep.Addr.Addr().Is4() || len(ep.MAC) != 6 {
		return errdefs.InvalidParameter("endpoint %s on overlay network %s: the eBPF dataplane needs an IPv4 address and a MAC (have %s, %s)", ep.HostIfName, n.Name, ep.Addr, ep.MAC)
	}
	o, err := d.overlayFP()
	if err != nil {
		return err
	}
	host, err := d.nl.LinkByName(ep.HostIfName)
	if err != nil {
		return fmt.Errorf("join: veth %s: %w", ep.HostIfName, err)
	}
	fep := localEndpoint(ep, vni, host.Attrs().Index)
	if err := o.PutEndpoint(fep); err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.HostIfName, err)
	}
	if _, err := o.AttachEndpoint(ep.HostIfName, fep.Ifindex); err != nil {
		return fmt.Errorf("attach %s to %s: %w", fastpath.ProgFromContainer, ep.HostIfName, err)
	}
	d.eb.mu.Lock()
	d.eb.locals[ep.HostIfName] = &localState{ep: fep, network: n.Name, networkID: n.ID, container: ep.ContainerID}
	d.eb.mu.Unlock()
	return nil
}

// leaveEBPF takes the endpoint off the data path: the veth down first, so
// nothing it sends reaches the bridge unchecked meanwhile.
func (d *Driver) leaveEBPF(ep *dataplane.EndpointConfig, vni uint32) error {
	o, err := d.loadedFP()
	if err != nil || o == nil {
		return err
	}
	var errs []error
	host, err := nlutil.LinkByNameOpt(d.nl, ep.HostIfName)
	if err != nil {
		return err
	}
	ifindex := 0
	if host != nil {
		ifindex = host.Attrs().Index
		if err := d.nl.LinkSetDown(host); err != nil && !nlutil.IsNotFound(err) {
			return fmt.Errorf("set %s down: %w", ep.HostIfName, err)
		}
	}
	d.eb.mu.Lock()
	if ls := d.eb.locals[ep.HostIfName]; ls != nil && ifindex == 0 {
		ifindex = ls.ep.Ifindex
	}
	delete(d.eb.locals, ep.HostIfName)
	d.eb.mu.Unlock()
	errs = append(errs, o.Detach(ep.HostIfName))
	if ifindex > 0 && ep.Addr.Addr().Is4() && len(ep.MAC) == 6 {
		errs = append(errs, o.DeleteEndpoint(localEndpoint(ep, vni, ifindex)))
	} else if t, err := o.Table(); err == nil {
		// The veth is gone: whatever local entry still has its MAC is its.
		for _, l := range t.Local {
			if l.VNI == vni && slices.Equal(l.MAC, ep.MAC) {
				errs = append(errs, o.DeleteEndpoint(l))
			}
		}
	}
	return errors.Join(errs...)
}

// compareMaps lists (and with fix repairs) the differences between the
// maps and what network id must hold: its local endpoints on this host and
// rs, the remote ones from the gossip view.
func (d *Driver) compareMaps(id string, vni uint32, rs map[string]remote, fix bool) ([]drift, error) {
	o, err := d.loadedFP()
	if err != nil {
		return nil, err
	}
	if o == nil {
		return []drift{{"the overlay's eBPF data path is not loaded"}}, nil
	}
	t, err := o.Table()
	if err != nil {
		return nil, err
	}
	var drifts []drift
	var errs []error
	apply := func(what string, f func() error) {
		drifts = append(drifts, drift{what})
		if fix {
			if err := f(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
			}
		}
	}
	byMAC := map[string]fastpath.Endpoint{}
	for _, ep := range t.ByMAC {
		if ep.VNI == vni {
			byMAC[ep.MAC.String()] = ep
		}
	}
	byIP := map[netip.Addr]fastpath.Endpoint{}
	for _, ep := range t.ByIP {
		if ep.VNI == vni {
			byIP[ep.IPv4] = ep
		}
	}

	// Local endpoints: their entries and attachment, or they would send unchecked.
	d.eb.mu.Lock()
	var locals []*localState
	for _, ls := range d.eb.locals {
		if ls.networkID == id {
			locals = append(locals, ls)
		}
	}
	d.eb.mu.Unlock()
	localMAC := map[string]bool{}
	for _, ls := range locals {
		ep := ls.ep
		localMAC[ep.MAC.String()] = true
		ifname := d.hostIfOf(ls)
		if l, ok := t.Local[ep.Ifindex]; !ok || l.VNI != vni || !slices.Equal(l.MAC, ep.MAC) || l.IPv4 != ep.IPv4 {
			apply(fmt.Sprintf("eBPF: interface entry of %s (ifindex %d) missing or wrong", ifname, ep.Ifindex), func() error { return o.PutEndpoint(ep) })
		} else if h, ok := byMAC[ep.MAC.String()]; !ok || h.Ifindex != ep.Ifindex || h.IPv4 != ep.IPv4 {
			apply(fmt.Sprintf("eBPF: entry of local endpoint %s (%s) missing or wrong", ep.IPv4, ep.MAC), func() error { return o.PutEndpoint(ep) })
		} else if h, ok := byIP[ep.IPv4]; !ok || h.Ifindex != ep.Ifindex || !slices.Equal(h.MAC, ep.MAC) {
			apply(fmt.Sprintf("eBPF: ARP entry of local endpoint %s missing or wrong", ep.IPv4), func() error { return o.PutEndpoint(ep) })
		}
		if !o.Attached(fastpath.ProgFromContainer, ifname, ep.Ifindex) {
			apply(fmt.Sprintf("eBPF: %s not attached to %s", fastpath.ProgFromContainer, ifname), func() error {
				_, err := o.AttachEndpoint(ifname, ep.Ifindex)
				return err
			})
		}
	}

	for _, mac := range sortedKeys(rs) {
		r := rs[mac]
		if localMAC[mac] {
			drifts = append(drifts, drift{fmt.Sprintf("eBPF: remote endpoint %s at %s has the MAC %s of a local endpoint: not programmed", r.IP, r.VTEP, mac)})
			continue
		}
		hw, _ := net.ParseMAC(mac)
		want := fastpath.Endpoint{VNI: vni, MAC: hw, IPv4: r.IP, VTEP: r.VTEP}
		h, ok := byMAC[mac]
		hip, okIP := byIP[r.IP]
		if !ok || h.Local() || h.VTEP != r.VTEP || h.IPv4 != r.IP || !okIP || hip.Local() || hip.VTEP != r.VTEP || !slices.Equal(hip.MAC, hw) {
			apply(fmt.Sprintf("eBPF: remote endpoint %s (%s) -> %s missing or wrong", r.IP, mac, r.VTEP), func() error { return o.PutEndpoint(want) })
		}
	}
	for mac, h := range byMAC {
		if h.Local() {
			continue
		}
		if r, ok := rs[mac]; !ok || r.VTEP != h.VTEP || r.IP != h.IPv4 {
			apply(fmt.Sprintf("eBPF: stale remote endpoint %s (%s) -> %s", h.IPv4, mac, h.VTEP), func() error { return o.DeleteEndpoint(h) })
		}
	}
	for ip, h := range byIP {
		if h.Local() {
			continue
		}
		if r, ok := rs[h.MAC.String()]; !ok || r.IP != ip || r.VTEP != h.VTEP {
			apply(fmt.Sprintf("eBPF: stale ARP entry %s -> %s at %s", ip, h.MAC, h.VTEP), func() error { return o.DeleteAddress(h) })
		}
	}
	return drifts, errors.Join(errs...)
}

// hostIfOf names the host-side veth of a local endpoint.
func (d *Driver) hostIfOf(ls *localState) string {
	d.eb.mu.Lock()
	defer d.eb.mu.Unlock()
	for name, l := range d.eb.locals {
		if l == ls {
			return name
		}
	}
	return fmt.Sprintf("ifindex %d", ls.ep.Ifindex)
}

// checkTunnel compares the tunnel device and the data path's config.
func (d *Driver) checkTunnel(vtep netip.Addr) []string {
	l, err := nlutil.LinkByNameOpt(d.nl, TunnelDevice)
	if err != nil {
		return []string{err.Error()}
	}
	if l == nil {
		return []string{"VXLAN device " + TunnelDevice + " is missing"}
	}
	var ps []string
	if vx, ok := l.(*netlink.Vxlan); !ok || !vx.FlowBased || vx.Port != d.port {
		ps = append(ps, fmt.Sprintf("%s is not a collect-metadata VXLAN device on port %d", TunnelDevice, d.port))
	}
	if l.Attrs().Alias != TunnelAlias {
		ps = append(ps, fmt.Sprintf("%s has alias %q, want %q", TunnelDevice, l.Attrs().Alias, TunnelAlias))
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		ps = append(ps, TunnelDevice+" is down")
	}
	o, err := d.loadedFP()
	if err != nil || o == nil {
		return append(ps, fmt.Sprintf("the overlay's eBPF data path is not loaded: %v", err))
	}
	idx, cur, err := o.Tunnel()
	switch {
	case err != nil:
		ps = append(ps, err.Error())
	case idx != l.Attrs().Index || (vtep.IsValid() && cur != vtep):
		ps = append(ps, fmt.Sprintf("eBPF tunnel config is ifindex %d from %s, want %d (%s) from %s", idx, cur, l.Attrs().Index, TunnelDevice, vtep))
	}
	if !o.Attached(fastpath.ProgFromTunnel, TunnelDevice, l.Attrs().Index) {
		ps = append(ps, fmt.Sprintf("%s not attached to %s", fastpath.ProgFromTunnel, TunnelDevice))
	}
	return ps
}

// checkGateway compares the gateway entry of a network with its bridge.
func (d *Driver) checkGateway(n *dataplane.NetworkConfig, vni uint32) []string {
	o, err := d.loadedFP()
	if err != nil || o == nil || !n.Gateway.IsValid() {
		return nil
	}
	gw, mac, ok, err := o.Gateway(vni)
	if err != nil {
		return []string{err.Error()}
	}
	br, err := nlutil.LinkByNameOpt(d.nl, bridgeName(n.ID))
	if err != nil || br == nil {
		return nil // the bridge driver's check reports it
	}
	if !ok || gw != n.Gateway || !slices.Equal(mac, br.Attrs().HardwareAddr) {
		return []string{fmt.Sprintf("eBPF gateway of VNI %d is %s %s, want %s %s (bridge %s)", vni, gw, mac, n.Gateway, br.Attrs().HardwareAddr, bridgeName(n.ID))}
	}
	return nil
}

// reconcileEBPF reports what the overlay's eBPF state holds of networks and
// endpoints that are gone, and removes it with prune; entries of veths that
// no longer exist are garbage, removed either way unless readOnly (Check).
func (d *Driver) reconcileEBPF(nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig, prune, readOnly bool) ([]dataplane.Orphan, error) {
	prune = prune && !readOnly
	var orphans []dataplane.Orphan
	var errs []error
	tunnel, err := nlutil.LinkByNameOpt(d.nl, TunnelDevice)
	if err != nil {
		return nil, err
	}
	o, err := d.loadedFP()
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 || !d.onEBPF() {
		// No overlay network on the eBPF path here: the device and the pins are left over.
		if tunnel != nil && tunnel.Attrs().Alias == TunnelAlias {
			orphans = append(orphans, dataplane.Orphan{Kind: "vxlan", Name: TunnelDevice, Owner: "the overlay's eBPF dataplane"})
		}
		if o != nil {
			orphans = append(orphans, dataplane.Orphan{Kind: "ebpf pins", Name: d.eb.pinDir, Owner: "the overlay's eBPF dataplane"})
		}
		if prune && (o != nil || tunnel != nil && tunnel.Attrs().Alias == TunnelAlias) {
			errs = append(errs, d.teardownTunnel())
		}
		return orphans, errors.Join(errs...)
	}
	if o == nil {
		return nil, nil
	}
	vnis := map[uint32]string{}
	netVNI := map[string]uint32{}
	for _, n := range nets {
		if s, err := StateOf(n); err == nil {
			vnis[s.VNI], netVNI[n.ID] = n.Name, s.VNI
		}
	}
	known := map[string]bool{} // host-side veths of recorded endpoints
	for _, ep := range eps {
		known[ep.HostIfName] = true
	}
	links, err := nlutil.LinkList(d.nl)
	if err != nil {
		return nil, fmt.Errorf("reconcile: list links: %w", err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}

	pins, err := o.LinkPins()
	errs = append(errs, err)
	for _, name := range pins {
		if name == TunnelDevice || known[name] {
			continue
		}
		l, err := nlutil.LinkByNameOpt(d.nl, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l != nil {
			orphans = append(orphans, dataplane.Orphan{Kind: "ebpf link", Name: filepath.Join(d.eb.pinDir, name), Owner: "interface " + name})
			if !prune {
				continue
			}
		}
		if !readOnly {
			errs = append(errs, o.Detach(name)) // gone with its interface: only the pin is left
		}
	}

	t, err := o.Table()
	if err != nil {
		return orphans, errors.Join(append(errs, err)...)
	}
	for idx, l := range t.Local {
		name, exists := byIndex[idx]
		if exists && known[name] {
			continue
		}
		if exists {
			orphans = append(orphans, dataplane.Orphan{Kind: "ebpf endpoint", Name: name, Owner: fmt.Sprintf("%s on VNI %d", l.IPv4, l.VNI)})
			if !prune {
				continue
			}
		}
		if !readOnly {
			errs = append(errs, o.DeleteEndpoint(l))
		}
	}
	gone := map[uint32]bool{}
	for vni := range t.VNIs {
		if _, ok := vnis[vni]; !ok {
			gone[vni] = true
		}
	}
	for _, ep := range t.ByMAC {
		if _, ok := vnis[ep.VNI]; !ok && !ep.Local() {
			gone[ep.VNI] = true
		}
	}
	for _, vni := range slices.Sorted(maps.Keys(gone)) {
		orphans = append(orphans, dataplane.Orphan{Kind: "ebpf network", Name: fmt.Sprintf("VNI %d", vni), Owner: "an overlay network that has no record"})
		if prune {
			errs = append(errs, d.deleteNetworkEBPF(vni, false))
		}
	}
	return orphans, errors.Join(errs...)
}

// DataplaneStatus is the overlay's part of `netd dataplane show`: its
// attachments, its local endpoints' counters and each network's tunnel
// counters. Nothing when this host has no overlay network on eBPF.
func (d *Driver) DataplaneStatus() ([]api.ProgramAttachment, []api.EndpointCounters, []api.TunnelCounters, error) {
	d.eb.mu.Lock()
	o := d.eb.o
	locals := make(map[string]localState, len(d.eb.locals))
	for name, ls := range d.eb.locals {
		locals[name] = *ls
	}
	d.eb.mu.Unlock()
	if o == nil {
		return nil, nil, nil, nil
	}
	var errs []error
	atts, err := o.Attachments()
	errs = append(errs, err)
	progs := make([]api.ProgramAttachment, 0, len(atts))
	for _, a := range atts {
		progs = append(progs, api.ProgramAttachment{Interface: a.Interface, Ifindex: a.Ifindex, Hook: a.Hook, Program: a.Program,
			ProgramID: a.ProgramID, LinkID: a.LinkID, Pinned: a.Pinned})
	}
	names := make([]string, 0, len(locals))
	for name := range locals {
		names = append(names, name)
	}
	sort.Strings(names)
	eps := make([]api.EndpointCounters, 0, len(names))
	for _, name := range names {
		ls := locals[name]
		c, err := o.EndpointCounters(ls.ep.Ifindex)
		if err != nil {
			errs = append(errs, fmt.Errorf("counters of %s: %w", name, err))
			continue
		}
		eps = append(eps, api.EndpointCounters{
			Network: ls.network, Container: ls.container, Interface: name, MacAddress: ls.ep.MAC.String(),
			FastPackets: c.LocalPackets + c.EncapPackets, FastBytes: c.LocalBytes + c.EncapBytes, SlowPackets: c.PassPackets,
			EncapPackets: c.EncapPackets, DecapPackets: c.DecapPackets, ARPReplies: c.ARPReplies, Drops: c.Drops,
		})
	}
	d.mu.Lock()
	type netVNI struct {
		name string
		vni  uint32
	}
	var nets []netVNI
	for _, n := range d.nets {
		if s, err := StateOf(n); err == nil {
			nets = append(nets, netVNI{n.Name, s.VNI})
		}
	}
	d.mu.Unlock()
	sort.Slice(nets, func(i, j int) bool { return nets[i].vni < nets[j].vni })
	nets = append(nets, netVNI{"(other VNIs)", fastpath.OtherVNI})
	tuns := make([]api.TunnelCounters, 0, len(nets))
	for _, n := range nets {
		c, err := o.TunnelCounters(n.vni)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tc := api.TunnelCounters{Network: n.name, Interface: TunnelDevice, EncapPackets: c.EncapPackets, EncapBytes: c.EncapBytes,
			DecapPackets: c.DecapPackets, DecapBytes: c.DecapBytes, Drops: c.Drops}
		if n.vni != fastpath.OtherVNI {
			tc.VNI = n.vni
		}
		tuns = append(tuns, tc)
	}
	return progs, eps, tuns, errors.Join(errs...)
}

// closeEBPF releases the data path's descriptors; its pins stay.
func (d *Driver) closeEBPF() error {
	d.eb.mu.Lock()
	defer d.eb.mu.Unlock()
	if d.eb.o == nil {
		return nil
	}
	err := d.eb.o.Close()
	d.eb.o = nil
	return err
}

// vniOf is the VNI of a network up on this host.
func (d *Driver) vniOf(id string) (uint32, bool) {
	d.mu.Lock()
	n := d.nets[id]
	d.mu.Unlock()
	if n == nil {
		return 0, false
	}
	s, err := StateOf(n)
	return s.VNI, err == nil
}

// checkEBPF compares one network's part of the data path: its gateway,
// its local endpoints' entries and attachments, its remote endpoints.
func (d *Driver) checkEBPF(n *dataplane.NetworkConfig, eps []*dataplane.EndpointConfig, rs map[string]remote) []dataplane.Drift {
	what := "network " + n.Name
	s, err := StateOf(n)
	if err != nil {
		return []dataplane.Drift{{Object: what, Problem: err.Error()}}
	}
	var out []dataplane.Drift
	if !d.networkUp(n.ID) {
		return []dataplane.Drift{{Object: what, Problem: "not up on this host (waiting for the cluster, or its creation failed)"}}
	}
	for _, p := range d.checkGateway(n, s.VNI) {
		out = append(out, dataplane.Drift{Object: what, Problem: p})
	}
	d.eb.mu.Lock()
	for _, ep := range eps {
		if ep.NetworkID == n.ID && d.eb.locals[ep.HostIfName] == nil {
			out = append(out, dataplane.Drift{Object: fmt.Sprintf("endpoint %s of container %s on %s", ep.HostIfName, ep.ContainerID, n.Name), Problem: "not on the eBPF data path"})
		}
	}
	d.eb.mu.Unlock()
	drifts, err := d.compareMaps(n.ID, s.VNI, rs, false)
	if err != nil {
		out = append(out, dataplane.Drift{Object: what, Problem: err.Error()})
	}
	for _, dr := range drifts {
		out = append(out, dataplane.Drift{Object: what, Problem: dr.what})
	}
	return out
}

func (d *Driver) networkUp(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.nets[id]
	return ok
}

// checkEBPFHost compares what every network shares (the tunnel device) and
// reports the orphans Reconcile would.
func (d *Driver) checkEBPFHost(nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig) []dataplane.Drift {
	var out []dataplane.Drift
	if len(nets) > 0 && d.onEBPF() {
		var vtep netip.Addr
		if c, err := d.clusterOrErr(); err == nil {
			vtep = c.Advertise().Addr()
		}
		for _, p := range d.checkTunnel(vtep) {
			out = append(out, dataplane.Drift{Object: "overlay tunnel " + TunnelDevice, Problem: p})
		}
	}
	orphans, err := d.reconcileEBPF(nets, eps, false, true)
	if err != nil {
		out = append(out, dataplane.Drift{Object: "overlay eBPF state", Problem: err.Error()})
	}
	for _, o := range orphans {
		out = append(out, dataplane.Drift{Object: o.Kind + " " + o.Name, Problem: "orphan: owned by " + o.Owner + ", which has no record"})
	}
	return out
}
