//go:build linux

package fastpath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

// A restarted daemon brings up only what still exists; Prune must then
// remove the rest of what the previous one pinned: entries, subnets and links.
func TestEBPFPruneAfterRestart(t *testing.T) {
	if !bpfattach.HaveTCX() {
		t.Skip("kernel without TCX (6.6+): bpf_link pins and TCX queries do not exist; TestEBPFTCFallback covers TC clsact")
	}
	dir, hostNS := attachHost(t)
	x0 := hostEndpoint(t, hostNS, fxNetA, "ndtest0", fxMAC1, fxIP1)
	x1 := hostEndpoint(t, hostNS, fxNetB, "ndtest1", fxMAC3, fxIP3)
	if0, if1 := x0.ifindex, x1.ifindex
	stoppedDaemon(t, hostNS, dir, x0, x1)

	nstest.In(t, hostNS, func() {
		e := loadEBPF(t, dir)
		t.Cleanup(func() { _ = e.Forget() })
		if err := e.NetworkUp(fxNetA); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(fxNetA, x0.ep, if0); err != nil {
			t.Fatalf("EndpointUp after restart: %+v", err)
		}
		if err := e.Prune(nil); err != nil {
			t.Fatalf("Prune: %v", err)
		}

		var ii fastpathIfaceInfo
		if err := e.maps.NetdIfaces.Lookup(uint32(if0), &ii); err != nil {
			t.Errorf("live iface entry pruned: %v", err)
		}
		if err := e.maps.NetdIfaces.Lookup(uint32(if1), &ii); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("stale iface entry kept: %v", err)
		}
		if got := countEntries(t, e.maps.NetdEndpoints); got != 1 {
			t.Errorf("endpoints after prune: %d entries, want 1", got)
		}
		if got := countEntries(t, e.maps.NetdCounters); got != 1 {
			t.Errorf("counters after prune: %d entries, want 1", got)
		}
		var ni fastpathNetworkInfo
		if err := e.maps.NetdNetworks.Lookup(fxNetB.Index, &ni); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("stale network kept: %v", err)
		}
		if err := e.maps.NetdNetworks.Lookup(fxNetA.Index, &ni); err != nil {
			t.Errorf("live network pruned: %v", err)
		}
		if got := countEntries(t, e.maps.NetdSubnets); got != 1 {
			t.Errorf("subnets after prune: %d entries, want 1", got)
		}
		if _, err := os.Stat(filepath.Join(dir, linksDir, "ndtest1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale link pin kept: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, linksDir, "ndtest0")); err != nil {
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
		if err := e.Prune(nil); err != nil { // idempotent
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

// An endpoint that still exists but has no record (kept as an orphan) keeps
// its entries, its network's policy and its attachment through Prune: it
// must not lose anti-spoofing because a daemon lost its database.
func TestEBPFPruneKeepsOrphans(t *testing.T) {
	if !bpfattach.HaveTCX() {
		t.Skip("kernel without TCX (6.6+): bpf_link pins and TCX queries do not exist; TestEBPFTCFallback covers TC clsact")
	}
	dir, hostNS := attachHost(t)
	x0 := hostEndpoint(t, hostNS, fxNetA, "ndtest0", fxMAC1, fxIP1)
	if0 := x0.ifindex
	stoppedDaemon(t, hostNS, dir, x0)
	nstest.In(t, hostNS, func() {
		e := loadEBPF(t, dir)
		t.Cleanup(func() { _ = e.Forget() })
		// Nothing brought up: the endpoint is an orphan, kept.
		if err := e.Prune(map[string]int{"ndtest0": if0}); err != nil {
			t.Fatal(err)
		}
		var ii fastpathIfaceInfo
		if err := e.maps.NetdIfaces.Lookup(uint32(if0), &ii); err != nil {
			t.Errorf("kept orphan lost its iface entry: %v", err)
		}
		var ni fastpathNetworkInfo
		if err := e.maps.NetdNetworks.Lookup(fxNetA.Index, &ni); err != nil {
			t.Errorf("kept orphan lost its network's policy: %v", err)
		}
		if got := countEntries(t, e.maps.NetdSubnets); got != 1 {
			t.Errorf("subnets: %d, want the orphan network's 1", got)
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: if0, Attach: ebpf.AttachTCXIngress})
		if err != nil || len(res.Programs) != 1 {
			t.Errorf("kept orphan's program: %v %v", res, err)
		}
		// Pruning it for real removes it all.
		if err := e.Prune(nil); err != nil {
			t.Fatal(err)
		}
		if got := countEntries(t, e.maps.NetdEndpoints) + countEntries(t, e.maps.NetdNetworks); got != 0 {
			t.Errorf("entries after pruning the orphan: %d", got)
		}
		if res, err := link.QueryPrograms(link.QueryOptions{Target: if0, Attach: ebpf.AttachTCXIngress}); err != nil || len(res.Programs) != 0 {
			t.Errorf("program still attached after prune: %v %v", res, err)
		}
	})
}
