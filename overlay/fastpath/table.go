//go:build linux

package fastpath

// What the maps and attachments hold, read back: the driver compares it
// with the gossip view and with its endpoints (drift, restarts, orphans),
// and the gateway of each network.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/netd-dev/netd/api/errdefs"
)

// SetGateway names the network's gateway on this host: the address and
// MAC of the host's bridge. Frames for that MAC go to the bridge (the host,
// the outside); ARP for that address is answered with it. NetworkDown
// removes it.
func (o *Overlay) SetGateway(vni uint32, gateway netip.Addr, mac net.HardwareAddr) error {
	switch {
	case vni > MaxVNI:
		return errdefs.InvalidParameter("overlay network: VNI %d is beyond 24 bits", vni)
	case !gateway.Is4() || gateway.IsUnspecified():
		return errdefs.InvalidParameter("gateway of VNI %d: %s is not a unicast IPv4 address", vni, gateway)
	case len(mac) != 6 || mac[0]&1 != 0:
		return errdefs.InvalidParameter("gateway of VNI %d: MAC %q is not a unicast Ethernet address", vni, mac)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	v := overlayOvNetwork{Gateway: ipv4Word(gateway)}
	copy(v.GwMac[:], mac)
	if err := o.maps.NetdOvNets.Put(vni, &v); err != nil {
		return fmt.Errorf("update gateway of VNI %d in eBPF map: %w", vni, mapErr(err, o.maps.NetdOvNets))
	}
	return nil
}

// Gateway is what SetGateway stored for vni (ok false: none).
func (o *Overlay) Gateway(vni uint32) (gateway netip.Addr, mac net.HardwareAddr, ok bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var v overlayOvNetwork
	if err := o.maps.NetdOvNets.Lookup(vni, &v); errors.Is(err, ebpf.ErrKeyNotExist) {
		return netip.Addr{}, nil, false, nil
	} else if err != nil {
		return netip.Addr{}, nil, false, fmt.Errorf("read gateway of VNI %d: %w", vni, err)
	}
	return addrOf(v.Gateway), net.HardwareAddr(slices.Clone(v.GwMac[:])), true, nil
}

func (o *Overlay) deleteGateway(vni uint32) error {
	if err := o.maps.NetdOvNets.Delete(vni); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete gateway of VNI %d: %w", vni, err)
	}
	return nil
}

// addrOf undoes ipv4Word.
func addrOf(w uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], w)
	return netip.AddrFrom4(b)
}

func endpointOf(vni uint32, v *overlayOvEndpoint) Endpoint {
	ep := Endpoint{VNI: vni, MAC: net.HardwareAddr(slices.Clone(v.Mac[:])), IPv4: addrOf(v.Ipv4), Ifindex: int(v.Ifindex)}
	if v.Ifindex == 0 {
		ep.VTEP = addrOf(v.Vtep)
	}
	return ep
}

// Table is what the endpoint maps hold.
type Table struct {
	ByMAC []Endpoint       // netd_ov_macs: where frames go
	ByIP  []Endpoint       // netd_ov_ips: what ARP answers (the entry's VNI and IPv4 are its key)
	Local map[int]Endpoint // netd_ov_ifaces: what each attached veth may send as
	VNIs  map[uint32]bool  // VNIs with tunnel counters or a gateway (NetworkUp, SetGateway)
}

// Table lists the endpoint maps.
func (o *Overlay) Table() (Table, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := Table{Local: map[int]Endpoint{}, VNIs: map[uint32]bool{}}
	var errs []error
	var (
		mk overlayOvMacKey
		ik overlayOvIpKey
		v  overlayOvEndpoint
	)
	it := o.maps.NetdOvMacs.Iterate()
	for it.Next(&mk, &v) {
		t.ByMAC = append(t.ByMAC, endpointOf(mk.Vni, &v))
	}
	errs = append(errs, iterErr(it.Err(), "endpoints by MAC"))
	it = o.maps.NetdOvIps.Iterate()
	for it.Next(&ik, &v) {
		ep := endpointOf(ik.Vni, &v)
		ep.IPv4 = addrOf(ik.Ipv4) // the key is what ARP answers for
		t.ByIP = append(t.ByIP, ep)
	}
	errs = append(errs, iterErr(it.Err(), "endpoints by address"))
	var (
		idx uint32
		fv  overlayOvIface
	)
	it = o.maps.NetdOvIfaces.Iterate()
	for it.Next(&idx, &fv) {
		t.Local[int(idx)] = Endpoint{VNI: fv.Vni, MAC: net.HardwareAddr(slices.Clone(fv.Mac[:])), IPv4: addrOf(fv.Ipv4), Ifindex: int(idx)}
	}
	errs = append(errs, iterErr(it.Err(), "local interfaces"))
	var (
		vni uint32
		per []overlayOvTunnelCounters
		nv  overlayOvNetwork
	)
	it = o.maps.NetdOvTunnel.Iterate()
	for it.Next(&vni, &per) {
		if vni != vniOther {
			t.VNIs[vni] = true
		}
	}
	errs = append(errs, iterErr(it.Err(), "tunnel counters"))
	it = o.maps.NetdOvNets.Iterate()
	for it.Next(&vni, &nv) {
		t.VNIs[vni] = true
	}
	errs = append(errs, iterErr(it.Err(), "gateways"))
	return t, errors.Join(errs...)
}

func iterErr(err error, what string) error {
	if err != nil {
		return fmt.Errorf("list overlay %s: %w", what, err)
	}
	return nil
}

// DeleteAddress removes the ARP entry (VNI, ep.IPv4) if it still names ep
// (its MAC and location), leaving the MAC entry alone: an address that
// moved to another MAC, or a remote endpoint whose address changed.
func (o *Overlay) DeleteAddress(ep Endpoint) error {
	if err := ep.check(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	want := ep.value()
	ik := overlayOvIpKey{Vni: ep.VNI, Ipv4: want.Ipv4}
	var cur overlayOvEndpoint
	err := o.maps.NetdOvIps.Lookup(&ik, &cur)
	if err == nil && cur.Mac == want.Mac && cur.Ifindex == want.Ifindex && cur.Vtep == want.Vtep {
		err = o.maps.NetdOvIps.Delete(&ik)
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete address of %s from eBPF map: %w", &ep, err)
	}
	return nil
}

// Attachment is one program attached by this process (Attach*).
type Attachment struct {
	Interface string
	Ifindex   int
	Hook      string
	Program   string
	ProgramID uint32
	LinkID    uint32 // 0: a clsact filter
	Pinned    string // the link's pin
}

// Attachments lists what Attach* attached (or adopted) since Load.
func (o *Overlay) Attachments() ([]Attachment, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Attachment, 0, len(o.attached))
	var errs []error
	for name, st := range o.attached {
		a := Attachment{Interface: name, Ifindex: st.ifindex, Hook: st.hook, Program: st.prog, ProgramID: uint32(o.progIDs[st.prog])}
		if l := o.att.Links[name]; l != nil {
			info, err := l.Info()
			if err != nil {
				errs = append(errs, fmt.Errorf("link info of %s: %w", name, err))
			} else {
				a.LinkID, a.ProgramID, a.Pinned = uint32(info.ID), uint32(info.Program), o.att.Pin(name)
			}
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Attachment) int {
		if a.Interface < b.Interface {
			return -1
		}
		if a.Interface > b.Interface {
			return 1
		}
		return 0
	})
	return out, errors.Join(errs...)
}

// Attached says whether ifname runs prog: attached by this process, or by
// an earlier one with its link still pinned on ifindex.
func (o *Overlay) Attached(prog, ifname string, ifindex int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if st := o.attached[ifname]; st != nil {
		return st.prog == prog && st.ifindex == ifindex
	}
	return false
}

// LinkPins names the interfaces that have a pinned TCX link (attached by
// this process or an earlier one).
func (o *Overlay) LinkPins() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(o.pinDir, linksDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list overlay link pins: %w", err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// Tunnel is what SetTunnel stored (zero values: none).
func (o *Overlay) Tunnel() (vxlanIfindex int, localVTEP netip.Addr, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var cfg overlayOvConfig
	if err := o.maps.NetdOvConfig.Lookup(uint32(0), &cfg); err != nil {
		return 0, netip.Addr{}, fmt.Errorf("read overlay tunnel config: %w", err)
	}
	if cfg.LocalVtep != 0 {
		localVTEP = addrOf(cfg.LocalVtep)
	}
	return int(cfg.VxlanIfindex), localVTEP, nil
}
