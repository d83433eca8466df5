//go:build linux

package fastpath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
)

// A restarted daemon brings up only what still exists; Prune must then
// remove the rest of what the previous one pinned: entries, subnets and links.
func TestEBPFPruneAfterRestart(t *testing.T) {
	dir := ebpfTestPinDir(t)
	hostNS, _ := newTestNetns(t)
	if0 := addVeth(t, hostNS, netns.None(), "ndtest0", "ndtest0p", fxMAC1, "")
	if1 := addVeth(t, hostNS, netns.None(), "ndtest1", "ndtest1p", fxMAC3, "")
	ep0 := fxEndpoint("ndtest0", fxMAC1, fxIP1)
	ep0.HostIfName = "ndtest0"
	ep1 := fxEndpoint("ndtest1", fxMAC3, fxIP3)
	ep1.HostIfName = "ndtest1"

	inNetns(t, hostNS, func() {
		e, err := NewEBPF(dir, ebpfTestLogger())
		if err != nil {
			t.Fatalf("NewEBPF: %+v", err)
		}
		for _, x := range []struct {
			n       *Network
			ep      *Endpoint
			ifindex int
		}{{fxNetA, ep0, if0}, {fxNetB, ep1, if1}} {
			if err := e.NetworkUp(x.n); err != nil {
				t.Fatal(err)
			}
			if err := e.EndpointUp(x.n, x.ep, x.ifindex); err != nil {
				t.Fatalf("EndpointUp %s: %+v", x.ep.HostIfName, err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	})

	inNetns(t, hostNS, func() {
		e, err := NewEBPF(dir, ebpfTestLogger())
		if err != nil {
			t.Fatalf("NewEBPF (restart): %+v", err)
		}
		t.Cleanup(func() { _ = e.Forget() })
		if err := e.NetworkUp(fxNetA); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(fxNetA, ep0, if0); err != nil {
			t.Fatalf("EndpointUp after restart: %+v", err)
		}
		if err := e.Prune(); err != nil {
			t.Fatalf("Prune: %v", err)
		}

		var ii fastpathIfaceInfo
		if err := e.ifaces.Lookup(uint32(if0), &ii); err != nil {
			t.Errorf("live iface entry pruned: %v", err)
		}
		if err := e.ifaces.Lookup(uint32(if1), &ii); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("stale iface entry kept: %v", err)
		}
		if got := countEntries(t, e.endpoints); got != 1 {
			t.Errorf("endpoints after prune: %d entries, want 1", got)
		}
		if got := countEntries(t, e.counters); got != 1 {
			t.Errorf("counters after prune: %d entries, want 1", got)
		}
		var ni fastpathNetworkInfo
		if err := e.networks.Lookup(fxNetB.Index, &ni); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("stale network kept: %v", err)
		}
		if err := e.networks.Lookup(fxNetA.Index, &ni); err != nil {
			t.Errorf("live network pruned: %v", err)
		}
		if got := countEntries(t, e.subnets); got != 1 {
			t.Errorf("subnets after prune: %d entries, want 1", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "links", "ndtest1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale link pin kept: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "links", "ndtest0")); err != nil {
			t.Errorf("live link pin pruned: %v", err)
		}
		// The kernel agrees: nothing runs on the stale veth any more.
		res, err := link.QueryPrograms(link.QueryOptions{Target: if1, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			t.Fatalf("query tcx on ndtest1: %v", err)
		}
		if len(res.Programs) != 0 {
			t.Errorf("stale veth still has %d program(s) attached", len(res.Programs))
		}
		if err := e.Prune(); err != nil { // idempotent
			t.Fatalf("Prune again: %v", err)
		}
	})
}

func countEntries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	n := 0
	var k, next []byte
	for err := m.NextKey(nil, &next); ; err = m.NextKey(k, &next) {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return n
		}
		if err != nil {
			t.Fatalf("walk %s: %v", m, err)
		}
		if n++; n > int(m.MaxEntries()) {
			t.Fatalf("walk %s: more than max entries", m)
		}
		k = append(k[:0], next...)
	}
}
