//go:build linux

package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/gossip"
)

// remote is one endpoint of another host, as programmed on a VXLAN device.
type remote struct {
	IP   netip.Addr
	MAC  string
	VTEP netip.Addr
}

// desired computes, per network up on this host, the remote endpoints it
// must reach: the live endpoints of the gossip view on other hosts. It is
// recomputed from the whole view each time, so an address or MAC reused
// by a new endpoint never leaves a stale entry behind (moby#50106), and a
// deleted entry never removes one another endpoint still needs.
func (d *Driver) desired() (map[string]map[string]remote, error) {
	c, err := d.clusterOrErr()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	ids := make(map[string]bool, len(d.nets))
	for id := range d.nets {
		ids[id] = true
	}
	d.mu.Unlock()
	self := c.Name()
	out := map[string]map[string]remote{}
	for id := range ids {
		out[id] = map[string]remote{}
	}
	for _, e := range c.List(gossip.TableEndpoints, false) {
		if e.Owner == self {
			continue
		}
		var r gossip.EndpointRecord
		if gossip.Unmarshal(e.Value, &r) != nil || !ids[r.NetworkID] || !r.IPv4.IsValid() || !r.VTEP.IsValid() {
			continue
		}
		mac, err := net.ParseMAC(r.MAC)
		if err != nil {
			continue
		}
		// Keyed by MAC: one MAC lives at one VTEP.
		out[r.NetworkID][mac.String()] = remote{IP: r.IPv4, MAC: mac.String(), VTEP: r.VTEP}
	}
	return out, nil
}

// sync makes every VXLAN device's neighbour and FDB entries (kernel), or
// the eBPF maps (ebpf), match the view.
func (d *Driver) sync() error {
	want, err := d.desired()
	if err != nil {
		return nil // no cluster: nothing to program
	}
	var errs []error
	for id, rs := range want {
		if d.onEBPF() {
			if vni, ok := d.vniOf(id); ok {
				_, err = d.compareMaps(id, vni, rs, true)
			}
		} else {
			err = d.syncDevice(id, rs, false)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Drift is a difference between a device's entries and the view.
type drift struct{ what string }

// syncDevice programs one device; with dryRun it only reports.
func (d *Driver) syncDevice(id string, rs map[string]remote, dryRun bool) error {
	_, drifts, err := d.compare(id, rs, !dryRun)
	if err != nil {
		return err
	}
	if dryRun && len(drifts) > 0 {
		return fmt.Errorf("%d drift(s)", len(drifts))
	}
	return nil
}

// compare lists the differences between the device's entries and rs and,
// with fix, repairs them (replace semantics: a changed VTEP or MAC
// overwrites, moby#53663).
func (d *Driver) compare(id string, rs map[string]remote, fix bool) (netlink.Link, []drift, error) {
	name := vxlanName(id)
	l, err := nlutil.LinkByNameOpt(d.nl, name)
	if err != nil {
		return nil, nil, err
	}
	if l == nil {
		return nil, []drift{{fmt.Sprintf("VXLAN device %s is missing", name)}}, nil
	}
	idx := l.Attrs().Index
	fdb, err := nlutil.RetryDump(func() ([]netlink.Neigh, error) { return d.nl.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		return l, nil, fmt.Errorf("list FDB of %s: %w", name, err)
	}
	neigh, err := nlutil.RetryDump(func() ([]netlink.Neigh, error) { return d.nl.NeighList(idx, netlink.FAMILY_V4) })
	if err != nil {
		return l, nil, fmt.Errorf("list neighbours of %s: %w", name, err)
	}
	haveFDB := map[string]netip.Addr{} // MAC -> VTEP of our static entries
	for _, n := range fdb {
		if n.State&netlink.NUD_PERMANENT == 0 || n.Flags&netlink.NTF_SELF == 0 || n.IP == nil {
			continue
		}
		vtep, _ := netip.AddrFromSlice(n.IP)
		haveFDB[n.HardwareAddr.String()] = vtep.Unmap()
	}
	haveNeigh := map[netip.Addr]string{}
	for _, n := range neigh {
		if n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		haveNeigh[ip.Unmap()] = n.HardwareAddr.String()
	}
	wantNeigh := map[netip.Addr]string{}
	for _, r := range rs {
		wantNeigh[r.IP] = r.MAC
	}
	var drifts []drift
	var errs []error
	apply := func(what string, f func() error) {
		drifts = append(drifts, drift{what})
		if fix {
			if err := f(); err != nil && !nlutil.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
			}
		}
	}
	for _, mac := range sortedKeys(rs) {
		r := rs[mac]
		hw, _ := net.ParseMAC(mac)
		if have, ok := haveFDB[mac]; !ok || have != r.VTEP {
			apply(fmt.Sprintf("%s: FDB %s -> %s missing", name, mac, r.VTEP), func() error {
				return d.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
					Flags: netlink.NTF_SELF, HardwareAddr: hw, IP: net.IP(r.VTEP.AsSlice())})
			})
		}
		if have := haveNeigh[r.IP]; have != mac {
			apply(fmt.Sprintf("%s: neighbour %s -> %s missing", name, r.IP, mac), func() error {
				return d.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
					HardwareAddr: hw, IP: net.IP(r.IP.AsSlice())})
			})
		}
	}
	for mac, vtep := range haveFDB {
		if _, ok := rs[mac]; !ok {
			hw, _ := net.ParseMAC(mac)
			apply(fmt.Sprintf("%s: stale FDB %s -> %s", name, mac, vtep), func() error {
				return d.nl.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, HardwareAddr: hw, IP: net.IP(vtep.AsSlice())})
			})
		}
	}
	for ip, mac := range haveNeigh {
		if _, ok := wantNeigh[ip]; !ok {
			hw, _ := net.ParseMAC(mac)
			apply(fmt.Sprintf("%s: stale neighbour %s -> %s", name, ip, mac), func() error {
				return d.nl.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, HardwareAddr: hw, IP: net.IP(ip.AsSlice())})
			})
		}
	}
	return l, drifts, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Check implements dataplane.Checker: the VXLAN device and its entries
// against the gossip view (kernel), or the tunnel device, the maps and
// the attachments (ebpf). The bridge, veths and rules underneath are the
// bridge driver's to check: the daemon hands it these networks (Layered).
func (d *Driver) Check(ctx context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig) ([]dataplane.Drift, error) {
	var out []dataplane.Drift
	want, err := d.desired()
	if err != nil {
		want = map[string]map[string]remote{}
	}
	for _, n := range nets {
		if _, _, err := d.bridgeForm(n); err != nil {
			out = append(out, dataplane.Drift{Object: "network " + n.Name, Problem: err.Error()})
			continue
		}
		if d.onEBPF() {
			out = append(out, d.checkEBPF(n, eps, want[n.ID])...)
			continue
		}
		_, drifts, err := d.compare(n.ID, want[n.ID], false)
		if err != nil {
			out = append(out, dataplane.Drift{Object: "network " + n.Name, Problem: err.Error()})
		}
		for _, dr := range drifts {
			out = append(out, dataplane.Drift{Object: "network " + n.Name, Problem: dr.what})
		}
	}
	out = append(out, d.checkEBPFHost(nets, eps)...)
	return out, nil
}
