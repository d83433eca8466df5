//go:build linux

package fastpath

// Map writes: endpoints (local and remote), the tunnel, and counters slots.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/errdefs"
)

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// vniOther is the tunnel counters slot of frames for no VNI of this host.
const vniOther = ^uint32(0)

// Endpoint is one endpoint of an overlay network, as the data path knows it:
// local (Ifindex, its host-side veth) or remote (VTEP, its host's address).
type Endpoint struct {
	VNI     uint32
	MAC     net.HardwareAddr
	IPv4    netip.Addr
	Ifindex int        // local: host-side veth in this host's namespace
	VTEP    netip.Addr // remote: the tunnel address of the host that owns it
}

// Local reports whether the endpoint lives on this host.
func (ep *Endpoint) Local() bool { return ep.Ifindex > 0 }

func (ep *Endpoint) String() string {
	where := "remote at " + ep.VTEP.String()
	if ep.Local() {
		where = fmt.Sprintf("local on ifindex %d", ep.Ifindex)
	}
	return fmt.Sprintf("endpoint %s (%s, VNI %d, %s)", ep.IPv4, ep.MAC, ep.VNI, where)
}

func (ep *Endpoint) check() error {
	switch {
	case ep.VNI > MaxVNI:
		return errdefs.InvalidParameter("%s: VNI %d is beyond 24 bits", ep, ep.VNI)
	case len(ep.MAC) != 6 || ep.MAC[0]&1 != 0:
		return errdefs.InvalidParameter("%s: MAC %q is not a unicast Ethernet address", ep, ep.MAC)
	case !ep.IPv4.Is4() || ep.IPv4.IsUnspecified():
		return errdefs.InvalidParameter("%s: address %s is not a unicast IPv4 address", ep, ep.IPv4)
	case ep.Local() == ep.VTEP.IsValid():
		return errdefs.InvalidParameter("%s: give either the host-side ifindex (local) or the VTEP (remote), not both or neither", ep)
	case ep.VTEP.IsValid() && (!ep.VTEP.Is4() || ep.VTEP.IsUnspecified()):
		return errdefs.InvalidParameter("%s: VTEP %s is not a unicast IPv4 address", ep, ep.VTEP)
	}
	return nil
}

// ipv4Word keeps an address in network order in memory, as the BPF side
// compares it against raw header words.
func ipv4Word(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func macKey(vni uint32, mac net.HardwareAddr) overlayOvMacKey {
	k := overlayOvMacKey{Vni: vni}
	copy(k.Mac[:], mac)
	return k
}

func (ep *Endpoint) value() overlayOvEndpoint {
	v := overlayOvEndpoint{Ifindex: uint32(max(ep.Ifindex, 0)), Vtep: ipv4Word(ep.VTEP), Ipv4: ipv4Word(ep.IPv4)}
	copy(v.Mac[:], ep.MAC)
	return v
}

// PutEndpoint adds or replaces an endpoint. A local one also gets its
// anti-spoofing entry and counters (kept when they exist: adoption after a
// restart keeps counting); Attach its veth afterwards.
func (o *Overlay) PutEndpoint(ep Endpoint) error {
	if err := ep.check(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	v := ep.value()
	if ep.Local() {
		idx := uint32(ep.Ifindex)
		zero := make([]overlayOvEpCounters, ebpf.MustPossibleCPU())
		if err := o.maps.NetdOvCounters.Update(idx, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("create counters of %s: %w", &ep, mapErr(err, o.maps.NetdOvCounters))
		}
		self := overlayOvIface{Vni: ep.VNI, Ipv4: v.Ipv4, Mac: v.Mac}
		if err := o.maps.NetdOvIfaces.Put(idx, &self); err != nil {
			return fmt.Errorf("update interface of %s in eBPF map: %w", &ep, mapErr(err, o.maps.NetdOvIfaces))
		}
	}
	k := macKey(ep.VNI, ep.MAC)
	if err := o.maps.NetdOvMacs.Put(&k, &v); err != nil {
		return fmt.Errorf("update %s in eBPF map: %w", &ep, mapErr(err, o.maps.NetdOvMacs))
	}
	ik := overlayOvIpKey{Vni: ep.VNI, Ipv4: v.Ipv4}
	if err := o.maps.NetdOvIps.Put(&ik, &v); err != nil {
		return fmt.Errorf("update address of %s in eBPF map: %w", &ep, mapErr(err, o.maps.NetdOvIps))
	}
	return nil
}

// mapErr turns a full map into an error the user can act on.
func mapErr(err error, m *ebpf.Map) error {
	if errors.Is(err, unix.E2BIG) {
		return errdefs.Unavailable("the eBPF overlay table holds at most %d entries on a host: %v", m.MaxEntries(), err)
	}
	return err
}

// DeleteEndpoint removes what PutEndpoint wrote for ep, but only entries
// that still name ep: an address or MAC another endpoint took over since,
// or a location the endpoint moved to, stays.
func (o *Overlay) DeleteEndpoint(ep Endpoint) error {
	if err := ep.check(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	want := ep.value()
	var errs []error
	k := macKey(ep.VNI, ep.MAC)
	var cur overlayOvEndpoint
	err := o.maps.NetdOvMacs.Lookup(&k, &cur)
	if err == nil && cur.Ifindex == want.Ifindex && cur.Vtep == want.Vtep {
		err = o.maps.NetdOvMacs.Delete(&k)
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete %s from eBPF map: %w", &ep, err))
	}
	ik := overlayOvIpKey{Vni: ep.VNI, Ipv4: want.Ipv4}
	err = o.maps.NetdOvIps.Lookup(&ik, &cur)
	if err == nil && cur.Mac == want.Mac && cur.Ifindex == want.Ifindex && cur.Vtep == want.Vtep {
		err = o.maps.NetdOvIps.Delete(&ik)
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete address of %s from eBPF map: %w", &ep, err))
	}
	if ep.Local() {
		idx := uint32(ep.Ifindex)
		var self overlayOvIface
		err := o.maps.NetdOvIfaces.Lookup(idx, &self)
		if err == nil && self.Mac == want.Mac && self.Vni == ep.VNI {
			err = o.maps.NetdOvIfaces.Delete(idx)
			if cerr := o.maps.NetdOvCounters.Delete(idx); cerr != nil && !errors.Is(cerr, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("delete counters of %s: %w", &ep, cerr))
			}
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete interface of %s from eBPF map: %w", &ep, err))
		}
	}
	return errors.Join(errs...)
}

// SetTunnel names the collect-metadata VXLAN device remote frames leave
// through and the local VTEP address they leave from (the outer source,
// set explicitly in every tunnel key). Until it is set, frames for remote
// endpoints are dropped as NO_TUNNEL.
func (o *Overlay) SetTunnel(vxlanIfindex int, localVTEP netip.Addr) error {
	if vxlanIfindex <= 0 {
		return errdefs.InvalidParameter("set overlay tunnel: VXLAN ifindex %d is not an interface", vxlanIfindex)
	}
	if !localVTEP.Is4() || localVTEP.IsUnspecified() {
		return errdefs.InvalidParameter("set overlay tunnel: local VTEP %s is not a unicast IPv4 address", localVTEP)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cfg := overlayOvConfig{VxlanIfindex: uint32(vxlanIfindex), LocalVtep: ipv4Word(localVTEP)}
	if err := o.maps.NetdOvConfig.Put(uint32(0), &cfg); err != nil {
		return fmt.Errorf("update overlay tunnel config: %w", err)
	}
	return nil
}

// ClearTunnel forgets the VXLAN device: remote frames are dropped from now on.
func (o *Overlay) ClearTunnel() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.maps.NetdOvConfig.Put(uint32(0), &overlayOvConfig{}); err != nil {
		return fmt.Errorf("clear overlay tunnel config: %w", err)
	}
	return nil
}

// NetworkUp gives the VNI its own tunnel counters (kept if they exist);
// frames of a VNI without them are counted in the "other" slot.
func (o *Overlay) NetworkUp(vni uint32) error {
	if vni > MaxVNI {
		return errdefs.InvalidParameter("overlay network: VNI %d is beyond 24 bits", vni)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.createTunnelCounters(vni)
}

// NetworkDown removes the VNI's tunnel counters and gateway.
func (o *Overlay) NetworkDown(vni uint32) error {
	if vni > MaxVNI {
		return errdefs.InvalidParameter("overlay network: VNI %d is beyond 24 bits", vni)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.maps.NetdOvTunnel.Delete(vni); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete tunnel counters of VNI %d: %w", vni, err)
	}
	return o.deleteGateway(vni)
}

func (o *Overlay) createTunnelCounters(vni uint32) error {
	zero := make([]overlayOvTunnelCounters, ebpf.MustPossibleCPU())
	if err := o.maps.NetdOvTunnel.Update(vni, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("create tunnel counters of VNI %d: %w", vni, mapErr(err, o.maps.NetdOvTunnel))
	}
	return nil
}

func (o *Overlay) initTunnelCounters() error { return o.createTunnelCounters(vniOther) }
