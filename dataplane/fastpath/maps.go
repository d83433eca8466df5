//go:build linux

package fastpath

// Map writes: what the data path knows of networks, subnets and endpoints.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/errdefs"
)

// Flags of network_info, mirroring NET_F_* in bpf/netd_shared.h.
const (
	netFlagICC      = 1 << 0
	netFlagInternal = 1 << 1
	netFlagIPv6     = 1 << 2 // never set: networks are IPv4-only, IPv6 is dropped
)

// NetworkUp records the network's policy (ICC, internal) and its subnet
// (isolation between networks) for the data path.
func (e *EBPF) NetworkUp(n *Network) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ni := networkInfo(n)
	if err := e.maps.NetdNetworks.Put(n.Index, &ni); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return errdefs.Unavailable("network %s: the eBPF dataplane holds at most %d networks on a host: create it with -o netd.dataplane=kernel",
				n.Name, e.maps.NetdNetworks.MaxEntries())
		}
		return fmt.Errorf("update network %s in eBPF map: %w", n.Name, err)
	}
	if k, v, ok := subnetEntry(n); ok {
		if err := e.maps.NetdSubnets.Put(&k, &v); err != nil {
			return fmt.Errorf("update subnet of network %s in eBPF map: %w", n.Name, err)
		}
	}
	e.netNames[n.Index] = n.Name
	return nil
}

// NetworkDown removes the network's policy and subnet; its endpoints then take the slow path.
func (e *EBPF) NetworkDown(n *Network) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k, _, ok := subnetEntry(n); ok {
		// Only our own entry: never take away a subnet another network now holds.
		var cur fastpathSubnetInfo
		err := e.maps.NetdSubnets.Lookup(&k, &cur)
		if err == nil && cur.NetIndex == n.Index {
			err = e.maps.NetdSubnets.Delete(&k)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete subnet of network %s from eBPF map: %w", n.Name, err)
		}
	}
	if err := e.maps.NetdNetworks.Delete(n.Index); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete network %s from eBPF map: %w", n.Name, err)
	}
	delete(e.netNames, n.Index)
	return nil
}

// ipv4Word keeps an address in network order in memory, as the BPF side
// compares it against the raw header word.
func ipv4Word(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// networkInfo is the networks map entry of n: its policy flags.
func networkInfo(n *Network) fastpathNetworkInfo {
	var ni fastpathNetworkInfo
	if n.ICC {
		ni.Flags |= netFlagICC
	}
	if n.Internal {
		ni.Flags |= netFlagInternal
	}
	return ni
}

// subnetEntry is the subnets map entry of n; ok is false without an IPv4 subnet.
func subnetEntry(n *Network) (fastpathSubnetKey, fastpathSubnetInfo, bool) {
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
		return fastpathSubnetKey{}, fastpathSubnetInfo{}, false
	}
	p := n.Subnet.Masked()
	k := fastpathSubnetKey{Prefixlen: uint32(p.Bits()), Addr: ipv4Word(p.Addr())}
	v := fastpathSubnetInfo{NetIndex: n.Index}
	if n.Gateway.Is4() {
		v.Gateway = ipv4Word(n.Gateway)
	}
	return k, v, true
}

func endpointEntries(n *Network, ep *Endpoint, ifindex int) (fastpathEndpointKey, fastpathEndpointInfo, fastpathIfaceInfo, error) {
	var (
		k  fastpathEndpointKey
		v  fastpathEndpointInfo
		ii fastpathIfaceInfo
	)
	if len(ep.MAC) != 6 {
		return k, v, ii, fmt.Errorf("endpoint %s: MAC %q is not Ethernet", ep.ID, ep.MAC)
	}
	if !ep.Addr.Addr().Is4() {
		return k, v, ii, fmt.Errorf("endpoint %s: address %s is not IPv4", ep.ID, ep.Addr)
	}
	ipv4 := ipv4Word(ep.Addr.Addr())
	k.NetIndex = n.Index
	copy(k.Mac[:], ep.MAC)
	v = fastpathEndpointInfo{Ifindex: uint32(ifindex), NetIndex: n.Index, Ipv4: ipv4}
	copy(v.Mac[:], ep.MAC)
	ii = fastpathIfaceInfo{NetIndex: n.Index, Ipv4: ipv4}
	copy(ii.Mac[:], ep.MAC)
	return k, v, ii, nil
}

// EndpointUp programs the endpoint table and attaches from_container to the
// host-side veth, adopting a pinned attachment when it is already right.
func (e *EBPF) EndpointUp(n *Network, ep *Endpoint, hostIfindex int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.programEndpoint(n, ep, hostIfindex); err != nil {
		return err
	}
	hook, err := e.attach(ep.HostIfName, hostIfindex)
	if err != nil {
		return err
	}
	e.eps[ep.HostIfName] = &epState{
		network:   n.Name,
		container: ep.ContainerID,
		ifname:    ep.HostIfName,
		ifindex:   hostIfindex,
		mac:       ep.MAC,
		hook:      hook,
	}
	if _, ok := e.netNames[n.Index]; !ok {
		e.netNames[n.Index] = n.Name
	}
	return nil
}

// programEndpoint writes the endpoint's counters, iface and endpoint entries.
func (e *EBPF) programEndpoint(n *Network, ep *Endpoint, hostIfindex int) error {
	k, v, ii, err := endpointEntries(n, ep, hostIfindex)
	if err != nil {
		return err
	}
	idx := uint32(hostIfindex)
	// Counters first so the very first frame is counted; keep existing ones on adoption.
	zero := make([]fastpathEpCounters, ebpf.MustPossibleCPU())
	if err := e.maps.NetdCounters.Update(idx, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("create counters for %s: %w", ep.HostIfName, err)
	}
	if err := e.maps.NetdIfaces.Put(idx, &ii); err != nil {
		return fmt.Errorf("update iface %s in eBPF map: %w", ep.HostIfName, err)
	}
	if err := e.maps.NetdEndpoints.Put(&k, &v); err != nil {
		return fmt.Errorf("update endpoint %s in eBPF map: %w", ep.HostIfName, err)
	}
	return nil
}

// EndpointDown removes the endpoint's entries and detaches the program.
func (e *EBPF) EndpointDown(n *Network, ep *Endpoint) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if len(ep.MAC) == 6 {
		k := fastpathEndpointKey{NetIndex: n.Index}
		copy(k.Mac[:], ep.MAC)
		if err := e.maps.NetdEndpoints.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete endpoint %s from eBPF map: %w", ep.HostIfName, err))
		}
	}
	ifindex := e.downIfindex(ep.HostIfName)
	if ifindex > 0 {
		idx := uint32(ifindex)
		for _, m := range []*ebpf.Map{e.maps.NetdIfaces, e.maps.NetdCounters} {
			if err := m.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("delete %s from eBPF map: %w", ep.HostIfName, err))
			}
		}
	}
	errs = append(errs, e.detach(ep.HostIfName, ifindex)...)
	delete(e.eps, ep.HostIfName)
	return errors.Join(errs...)
}
