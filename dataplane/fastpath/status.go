//go:build linux

package fastpath

// What the fast path shows: attachments, counters and drop reason names.

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cilium/ebpf"
)

// DropReasonNames maps the drop reason numbers of bpf/netd_shared.h to names.
// Like the C enum it is append-only: a name, once shipped, keeps its number.
var DropReasonNames = [...]string{
	fastpathDropReasonDROP_SPOOF_MAC:  "SPOOF_MAC",
	fastpathDropReasonDROP_SPOOF_IP:   "SPOOF_IP",
	fastpathDropReasonDROP_SPOOF_ARP:  "SPOOF_ARP",
	fastpathDropReasonDROP_ICC_DENIED: "ICC_DENIED",
	fastpathDropReasonDROP_MALFORMED:  "MALFORMED",
	fastpathDropReasonDROP_ISOLATED:   "ISOLATED",
	fastpathDropReasonDROP_INTERNAL:   "INTERNAL",
	fastpathDropReasonDROP_IPV6:       "IPV6",
	// Overlay reasons (bpf/overlay.c); the bridge never counts them.
	fastpathDropReasonDROP_NO_ENDPOINT: "NO_ENDPOINT",
	fastpathDropReasonDROP_FLOOD:       "FLOOD",
	fastpathDropReasonDROP_NO_TUNNEL:   "NO_TUNNEL",
	fastpathDropReasonDROP_VLAN:        "VLAN",
}

// Compile-time check that every reason of the C enum has a Go name.
var _ = [1]struct{}{}[len(DropReasonNames)-int(fastpathDropReasonDROP_REASON_MAX)]

// readCounters sums the per-CPU counters of one host ifindex.
func (e *EBPF) readCounters(ifindex uint32) (fastpathEpCounters, error) {
	var sum fastpathEpCounters
	var per []fastpathEpCounters
	if err := e.maps.NetdCounters.Lookup(ifindex, &per); err != nil {
		return sum, err
	}
	for _, c := range per {
		sum.FastPkts += c.FastPkts
		sum.FastBytes += c.FastBytes
		sum.SlowPkts += c.SlowPkts
		for i := range sum.Drops {
			sum.Drops[i] += c.Drops[i]
		}
	}
	return sum, nil
}

// Status lists the attachments and the per-endpoint counters summed over CPUs.
func (e *EBPF) Status() (Status, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{
		PinDir:    e.pinDir,
		Programs:  []Attachment{},
		Endpoints: []EndpointCounters{},
	}
	for _, name := range slices.Sorted(maps.Keys(e.eps)) {
		ep := e.eps[name]
		pa := Attachment{
			Interface: ep.ifname,
			Ifindex:   ep.ifindex,
			Hook:      ep.hook,
			Program:   progName,
			ProgramID: uint32(e.progID),
		}
		if l := e.att.Links[name]; l != nil {
			info, err := l.Info()
			if err != nil {
				return st, fmt.Errorf("link info of %s: %w", name, err)
			}
			pa.LinkID = uint32(info.ID)
			pa.ProgramID = uint32(info.Program)
			pa.Pinned = e.att.Pin(name)
		}
		st.Programs = append(st.Programs, pa)

		c, err := e.readCounters(uint32(ep.ifindex))
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return st, fmt.Errorf("read counters of %s: %w", name, err)
		}
		ec := EndpointCounters{
			Network:     ep.network,
			Container:   ep.container,
			Interface:   ep.ifname,
			MacAddress:  ep.mac.String(),
			FastPackets: c.FastPkts,
			FastBytes:   c.FastBytes,
			SlowPackets: c.SlowPkts,
			Drops:       map[string]uint64{},
		}
		for i, n := range c.Drops {
			ec.Drops[DropReasonNames[i]] = n
		}
		st.Endpoints = append(st.Endpoints, ec)
	}
	return st, nil
}
