//go:build linux

package fastpath

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// CheckNetwork compares n's policy and subnet entries with what they
// should be; each problem is one line. Read-only.
func (e *EBPF) CheckNetwork(n *Network) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ps []string
	var ni fastpathNetworkInfo
	if err := e.maps.NetdNetworks.Lookup(n.Index, &ni); err != nil {
		ps = append(ps, fmt.Sprintf("eBPF network entry %d missing: %v", n.Index, err))
	} else if want := networkInfo(n); ni != want {
		ps = append(ps, fmt.Sprintf("eBPF network entry %d has flags %#x, want %#x", n.Index, ni.Flags, want.Flags))
	}
	if k, want, ok := subnetEntry(n); ok {
		var sv fastpathSubnetInfo
		if err := e.maps.NetdSubnets.Lookup(&k, &sv); err != nil {
			ps = append(ps, fmt.Sprintf("eBPF subnet entry %s missing: %v", n.Subnet, err))
		} else if sv != want {
			ps = append(ps, fmt.Sprintf("eBPF subnet entry %s belongs to network index %d, want %d", n.Subnet, sv.NetIndex, n.Index))
		}
	}
	return ps
}

// CheckEndpoint compares ep's map entries and attachment on hostIfindex
// with what EndpointUp makes. Read-only.
func (e *EBPF) CheckEndpoint(n *Network, ep *Endpoint, hostIfindex int) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, wantEP, wantIf, err := endpointEntries(n, ep, hostIfindex)
	if err != nil {
		return []string{err.Error()}
	}
	var ps []string
	var v fastpathEndpointInfo
	if err := e.maps.NetdEndpoints.Lookup(&k, &v); err != nil {
		ps = append(ps, fmt.Sprintf("eBPF endpoint entry (%d, %s) missing: %v", n.Index, ep.MAC, err))
	} else if v != wantEP {
		ps = append(ps, fmt.Sprintf("eBPF endpoint entry (%d, %s) points at ifindex %d, want %d", n.Index, ep.MAC, v.Ifindex, hostIfindex))
	}
	var ii fastpathIfaceInfo
	if err := e.maps.NetdIfaces.Lookup(uint32(hostIfindex), &ii); err != nil {
		ps = append(ps, fmt.Sprintf("eBPF anti-spoofing entry of ifindex %d missing: %v", hostIfindex, err))
	} else if ii != wantIf {
		ps = append(ps, fmt.Sprintf("eBPF anti-spoofing entry of ifindex %d differs from the endpoint's MAC/IP", hostIfindex))
	}
	if e.att.UseTC() {
		return ps // clsact filters carry no link to check
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: hostIfindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return append(ps, fmt.Sprintf("query TCX programs of %s: %v", ep.HostIfName, err))
	}
	found := false
	for _, p := range res.Programs {
		found = found || p.ID == e.progID
	}
	if !found {
		ps = append(ps, fmt.Sprintf("from_container (program %d) not attached to %s", e.progID, ep.HostIfName))
	}
	return ps
}
