//go:build linux

package fastpath

// Counters summed over CPUs, drops named as the bridge's are.

import (
	"fmt"

	bridgefp "github.com/netd-dev/netd/dataplane/fastpath"
)

// Drop reasons are one list shared with the bridge (bpf/netd_shared.h).
var _ = [1]struct{}{}[len(bridgefp.DropReasonNames)-int(overlayDropReasonDROP_REASON_MAX)]

// EndpointCounters are what a local endpoint sent and received.
type EndpointCounters struct {
	LocalPackets uint64 // to endpoints on this host
	LocalBytes   uint64
	EncapPackets uint64 // into the tunnel
	EncapBytes   uint64
	DecapPackets uint64 // out of the tunnel, to this endpoint
	DecapBytes   uint64
	ARPReplies   uint64 // ARP requests answered in place
	PassPackets  uint64 // handed to the host's bridge (gateway, outside)
	PassBytes    uint64
	Drops        map[string]uint64 // reason name -> count, of what the endpoint sent
}

// TunnelCounters are one VNI's traffic through the VXLAN device.
type TunnelCounters struct {
	EncapPackets uint64
	EncapBytes   uint64
	DecapPackets uint64
	DecapBytes   uint64
	Drops        map[string]uint64 // reason name -> count
}

func dropNames(d []uint64) map[string]uint64 {
	out := make(map[string]uint64, len(d))
	for i, n := range d {
		out[bridgefp.DropReasonNames[i]] = n
	}
	return out
}

// EndpointCounters sums the counters of the local endpoint on ifindex.
func (o *Overlay) EndpointCounters(ifindex int) (EndpointCounters, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var per []overlayOvEpCounters
	if err := o.maps.NetdOvCounters.Lookup(uint32(ifindex), &per); err != nil {
		return EndpointCounters{}, fmt.Errorf("read overlay counters of ifindex %d: %w", ifindex, err)
	}
	var sum overlayOvEpCounters
	for _, c := range per {
		sum.LocalPkts += c.LocalPkts
		sum.LocalBytes += c.LocalBytes
		sum.EncapPkts += c.EncapPkts
		sum.EncapBytes += c.EncapBytes
		sum.DecapPkts += c.DecapPkts
		sum.DecapBytes += c.DecapBytes
		sum.ArpReplies += c.ArpReplies
		sum.PassPkts += c.PassPkts
		sum.PassBytes += c.PassBytes
		for i := range sum.Drops {
			sum.Drops[i] += c.Drops[i]
		}
	}
	return EndpointCounters{
		LocalPackets: sum.LocalPkts, LocalBytes: sum.LocalBytes,
		EncapPackets: sum.EncapPkts, EncapBytes: sum.EncapBytes,
		DecapPackets: sum.DecapPkts, DecapBytes: sum.DecapBytes,
		ARPReplies:  sum.ArpReplies,
		PassPackets: sum.PassPkts, PassBytes: sum.PassBytes,
		Drops: dropNames(sum.Drops[:]),
	}, nil
}

// TunnelCounters sums the tunnel counters of vni; OtherVNI reads the slot of
// frames for VNIs without counters of their own (and keyless ones).
func (o *Overlay) TunnelCounters(vni uint32) (TunnelCounters, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var per []overlayOvTunnelCounters
	if err := o.maps.NetdOvTunnel.Lookup(vni, &per); err != nil {
		return TunnelCounters{}, fmt.Errorf("read tunnel counters of VNI %d: %w", vni, err)
	}
	var sum overlayOvTunnelCounters
	for _, c := range per {
		sum.EncapPkts += c.EncapPkts
		sum.EncapBytes += c.EncapBytes
		sum.DecapPkts += c.DecapPkts
		sum.DecapBytes += c.DecapBytes
		for i := range sum.Drops {
			sum.Drops[i] += c.Drops[i]
		}
	}
	return TunnelCounters{
		EncapPackets: sum.EncapPkts, EncapBytes: sum.EncapBytes,
		DecapPackets: sum.DecapPkts, DecapBytes: sum.DecapBytes,
		Drops: dropNames(sum.Drops[:]),
	}, nil
}

// OtherVNI is the TunnelCounters key of frames for no VNI with counters here.
const OtherVNI = vniOther
