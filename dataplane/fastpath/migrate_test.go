//go:build linux

package fastpath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"

	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

// A pinned map whose layout changed is replaced, keeping the entries that fit.
func TestEBPFMapMigration(t *testing.T) {
	dir := nstest.PinDir(t)
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: fastpathMapNetdNetworks, Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Put(uint32(9), uint32(netFlagICC)); err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(filepath.Join(dir, fastpathMapNetdNetworks)); err != nil {
		t.Fatal(err)
	}
	old.Close()
	// A per-CPU counters map with a shorter value: values are zero-extended.
	oldc, err := ebpf.NewMap(&ebpf.MapSpec{Name: fastpathMapNetdCounters, Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 16, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][2]uint64, ebpf.MustPossibleCPU())
	vals[0] = [2]uint64{5, 500}
	if err := oldc.Put(uint32(3), vals); err != nil {
		t.Fatal(err)
	}
	if err := oldc.Pin(filepath.Join(dir, fastpathMapNetdCounters)); err != nil {
		t.Fatal(err)
	}
	oldc.Close()

	e := loadEBPF(t, dir)
	defer e.Forget()
	info, err := e.maps.NetdNetworks.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxEntries != 1024 {
		t.Errorf("networks max entries %d, want 1024", info.MaxEntries)
	}
	var ni fastpathNetworkInfo
	if err := e.maps.NetdNetworks.Lookup(uint32(9), &ni); err != nil || ni.Flags != netFlagICC {
		t.Errorf("migrated entry: %+v %v", ni, err)
	}
	c := counters(t, e, 3)
	if c.FastPkts != 5 || c.FastBytes != 500 || c.SlowPkts != 0 {
		t.Errorf("migrated counters: %+v", c)
	}
	pinned, err := ebpf.LoadPinnedMap(filepath.Join(dir, fastpathMapNetdNetworks), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	if pi, _ := pinned.Info(); pi.MaxEntries != 1024 {
		t.Errorf("pin not replaced: max entries %d", pi.MaxEntries)
	}
}

// prevBuildObject is fastpath_bpfel.o of the build before the netd_ pin
// prefix and DROP_IPV6 (commit c00855e): unprefixed pins, 7 drop reasons.
const prevBuildObject = "testdata/unprefixed_fastpath_bpfel.o"

// prevBuild is what pinPreviousBuild left on bpffs.
type prevBuild struct {
	program ebpf.ProgramID
	link    link.ID
}

// pinPreviousBuild does what a daemon of the previous build did: maps pinned
// by their unprefixed names, the program pinned as from_container, entries
// for the fixture (sender on lo, peer) and veth, and a TCX link on veth
// pinned under links/. It runs the old program once so counters hold a packet.
func pinPreviousBuild(t *testing.T, dir string, veth upEndpoint) prevBuild {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(prevBuildObject)
	if err != nil {
		t.Fatalf("load previous build: %v", err)
	}
	delete(spec.Maps, ".bss")
	delete(spec.Variables, "unused_drop_reason")
	if err := os.MkdirAll(filepath.Join(dir, "links"), 0o700); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}})
	if err != nil {
		t.Fatalf("load previous build: %+v", err)
	}
	defer coll.Close()
	for _, name := range []string{"endpoints", "ifaces", "networks", "subnets", "counters"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("previous build did not pin %s: %v", name, err)
		}
	}
	prog := coll.Programs["from_container"]
	if err := prog.Pin(filepath.Join(dir, "from_container")); err != nil {
		t.Fatal(err)
	}

	if err := coll.Maps["networks"].Put(fxNetA.Index, &fastpathNetworkInfo{Flags: netFlagICC}); err != nil {
		t.Fatal(err)
	}
	sk, sv, _ := subnetEntry(fxNetA)
	if err := coll.Maps["subnets"].Put(&sk, &sv); err != nil {
		t.Fatal(err)
	}
	counters := coll.Maps["counters"]
	for _, x := range []struct {
		ep      *Endpoint
		ifindex int
	}{{fxEndpoint("sender", fxMAC1, fxIP1), fxIfSender}, {fxEndpoint("peer", fxMAC2, fxIP2), fxIfPeer}, {veth.ep, veth.ifindex}} {
		k, v, ii, err := endpointEntries(fxNetA, x.ep, x.ifindex)
		if err != nil {
			t.Fatal(err)
		}
		if err := coll.Maps["endpoints"].Put(&k, &v); err != nil {
			t.Fatal(err)
		}
		if err := coll.Maps["ifaces"].Put(uint32(x.ifindex), &ii); err != nil {
			t.Fatal(err)
		}
		zero := make([][]byte, ebpf.MustPossibleCPU())
		for i := range zero {
			zero[i] = make([]byte, counters.ValueSize())
		}
		if err := counters.Put(uint32(x.ifindex), zero); err != nil {
			t.Fatal(err)
		}
	}
	if got := counters.ValueSize(); got != 80 {
		t.Fatalf("previous build's counters value is %d bytes, want 80 (7 drop reasons)", got)
	}
	// The old program forwards, and lets IPv6 through to the peer.
	for _, f := range [][]byte{
		ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)),
		ethFrame(fxMAC2, fxMAC1, 0x86dd, ipv6Packet(fxLL1, fxLL2, icmpv6Echo())),
	} {
		if ret, err := prog.Run(&ebpf.RunOptions{Data: f}); err != nil || ret != tcActRedirect {
			t.Fatalf("previous build: verdict %d (%v), want redirect", ret, err)
		}
	}

	l, err := link.AttachTCX(link.TCXOptions{Interface: veth.ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("TCX not supported: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Pin(filepath.Join(dir, "links", "ndtest2")); err != nil {
		t.Fatal(err)
	}
	pi, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	li, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := pi.ID()
	return prevBuild{program: pid, link: li.ID}
}

// tcxPrograms are the programs the kernel runs on TCX ingress of ifindex.
func tcxPrograms(t *testing.T, ifindex int) []ebpf.ProgramID {
	t.Helper()
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		t.Fatalf("query tcx ingress of %d: %v", ifindex, err)
	}
	var ids []ebpf.ProgramID
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids
}

// upgradeHost is a pin dir and a host netns holding the veth ndtest2, which
// pinPreviousBuild attaches to, with its endpoint on network A.
func upgradeHost(t *testing.T) (dir string, hostNS netns.NsHandle, x upEndpoint) {
	t.Helper()
	dir, hostNS = attachHost(t)
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x01, 0x00, 0x09}
	return dir, hostNS, hostEndpoint(t, hostNS, fxNetA, "ndtest2", mac, netip.MustParseAddr("10.1.0.9"))
}

// Upgrading from the previous build: NewEBPF renames its pins to the netd_
// names, keeps what the maps hold (the counters grown by DROP_IPV6 are
// migrated with their values), and the link stays attached throughout, moved
// to the new program when the endpoint comes up again.
func TestEBPFAdoptPreviousBuild(t *testing.T) {
	dir, hostNS, x := upgradeHost(t)
	ep, veth, vethMAC := x.ep, x.ifindex, x.ep.MAC
	nstest.In(t, hostNS, func() {
		prev := pinPreviousBuild(t, dir, x)
		if got := tcxPrograms(t, veth); len(got) != 1 || got[0] != prev.program {
			t.Fatalf("before the upgrade: programs %v on the veth, want [%d]", got, prev.program)
		}

		e := loadEBPF(t, dir)
		t.Cleanup(func() { _ = e.Forget() })

		want := map[string]bool{progPin: true, linksDir: true}
		for _, nm := range e.maps.all() {
			want[nm.Name] = true
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			if !strings.HasPrefix(ent.Name(), pinPrefix) {
				t.Errorf("unprefixed pin %s left after the upgrade", ent.Name())
			}
			delete(want, ent.Name())
		}
		if len(want) != 0 {
			t.Errorf("pins missing after the upgrade: %v", want)
		}

		// Forwarding never stopped: the same link is attached, still running the old program.
		if got := tcxPrograms(t, veth); len(got) != 1 || got[0] != prev.program {
			t.Errorf("after NewEBPF: programs %v on the veth, want the old [%d]", got, prev.program)
		}
		pinned, err := link.LoadPinnedLink(e.att.Pin("ndtest2"), nil)
		if err != nil {
			t.Fatalf("link pin not adopted: %v", err)
		}
		if li, err := pinned.Info(); err != nil || li.ID != prev.link {
			t.Errorf("adopted link pin holds link %v (%v), want %d", li, err, prev.link)
		}
		pinned.Close()

		// Map contents carried over, counters migrated to 8 drop reasons with their values.
		var ii fastpathIfaceInfo
		if err := e.maps.NetdIfaces.Lookup(uint32(veth), &ii); err != nil || !bytes.Equal(ii.Mac[:], vethMAC) {
			t.Errorf("veth iface entry after the upgrade: %+v %v", ii, err)
		}
		var ni fastpathNetworkInfo
		if err := e.maps.NetdNetworks.Lookup(fxNetA.Index, &ni); err != nil || ni.Flags != netFlagICC {
			t.Errorf("network entry after the upgrade: %+v %v", ni, err)
		}
		if got := countEntries(t, e.maps.NetdEndpoints); got != 3 {
			t.Errorf("endpoints after the upgrade: %d entries, want 3", got)
		}
		if vs := e.maps.NetdCounters.ValueSize(); vs != uint32(binary.Size(fastpathEpCounters{})) {
			t.Errorf("counters value size %d after the upgrade, want %d", vs, binary.Size(fastpathEpCounters{}))
		}
		c := counters(t, e, fxIfSender)
		if c.FastPkts != 2 || c.SlowPkts != 0 || c.Drops != [len(c.Drops)]uint64{} {
			t.Errorf("sender's counters after the upgrade: %+v, want the 2 fast packets of the old program", c)
		}

		// The new program works on the kept entries, and drops IPv6.
		verdict(t, e, "ipv4 to peer after the upgrade", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)), tcActRedirect, -1)
		verdict(t, e, "ipv6 to peer after the upgrade", ethFrame(fxMAC2, fxMAC1, 0x86dd, ipv6Packet(fxLL1, fxLL2, icmpv6Echo())), tcActShot, int(fastpathDropReasonDROP_IPV6))

		// Reconcile brings the endpoint up: the same link now runs the new program.
		if err := e.NetworkUp(fxNetA); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(fxNetA, ep, veth); err != nil {
			t.Fatalf("EndpointUp after the upgrade: %+v", err)
		}
		ids := attachmentIDs(t, e, "ndtest2")
		if ids.link != uint32(prev.link) || ids.program != uint32(e.ProgramID()) || e.ProgramID() == prev.program {
			t.Errorf("after EndpointUp: link %d program %d, want link %d moved to the new program %d (old %d)",
				ids.link, ids.program, prev.link, e.ProgramID(), prev.program)
		}
		if got := tcxPrograms(t, veth); len(got) != 1 || got[0] != e.ProgramID() {
			t.Errorf("after EndpointUp: programs %v on the veth, want [%d]", got, e.ProgramID())
		}
	})
}

// A previous build that ran again after an upgrade (a downgrade) leaves its
// pins next to today's: today's win, and its second link on the veth is detached.
func TestEBPFAdoptAfterDowngrade(t *testing.T) {
	dir, hostNS, x := upgradeHost(t)
	ep, veth := x.ep, x.ifindex
	nstest.In(t, hostNS, func() {
		pinPreviousBuild(t, dir, x)
		e := loadEBPF(t, dir)
		if err := e.EndpointUp(fxNetA, ep, veth); err != nil {
			t.Fatalf("EndpointUp: %+v", err)
		}
		cur := attachmentIDs(t, e, "ndtest2")
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}

		old := pinPreviousBuild(t, dir, x) // the downgrade: a second link
		if got := tcxPrograms(t, veth); len(got) != 2 {
			t.Fatalf("after the downgrade: programs %v on the veth, want 2", got)
		}
		e = loadEBPF(t, dir)
		t.Cleanup(func() { _ = e.Forget() })
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			if !strings.HasPrefix(ent.Name(), pinPrefix) {
				t.Errorf("unprefixed pin %s left", ent.Name())
			}
		}
		if got := tcxPrograms(t, veth); len(got) != 1 || got[0] == old.program {
			t.Errorf("programs %v on the veth, want only today's (not the downgrade's %d)", got, old.program)
		}
		if err := e.EndpointUp(fxNetA, ep, veth); err != nil {
			t.Fatalf("EndpointUp: %+v", err)
		}
		if got := attachmentIDs(t, e, "ndtest2"); got.link != cur.link {
			t.Errorf("link %d after the downgrade, want today's %d kept", got.link, cur.link)
		}
		if got := tcxPrograms(t, veth); len(got) != 1 || got[0] != e.ProgramID() {
			t.Errorf("programs %v on the veth, want [%d]", got, e.ProgramID())
		}
	})
}
