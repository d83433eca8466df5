//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// The overlay driver end to end under faults: MTU, throughput, a host
// killed, a partition, the wire format, drift behind netd's back, bad
// input, and the control-plane time. Every test runs once per entry of
// overlayKDataplanes, each in its own lab, so that the hosts' dataplane is
// a parameter (today the kernel path; the eBPF path adds an entry).

// tunnelEntries are the remote endpoints a host has programmed for one
// overlay network: MAC → VTEP (FDB) and IP → MAC (neighbours). The eBPF
// path's entries carry more, which must agree too: the IP of each MAC
// entry (MACIP) and the VTEP of each ARP entry (NeighVTEP); nil on the
// kernel path, whose entries have no such fields.
type tunnelEntries struct {
	FDB       map[string]string
	Neigh     map[string]string
	MACIP     map[string]string
	NeighVTEP map[string]string
}

// has says whether ep is fully programmed (MAC at its VTEP, IP → MAC).
func (e tunnelEntries) has(ep ovEndpoint) bool {
	return e.FDB[ep.mac] == ep.vtep && e.Neigh[ep.ip] == ep.mac &&
		(e.MACIP == nil || e.MACIP[ep.mac] == ep.ip) &&
		(e.NeighVTEP == nil || e.NeighVTEP[ep.ip] == ep.vtep)
}

// lacks says whether nothing of ep is left (neither its MAC nor its IP).
func (e tunnelEntries) lacks(ep ovEndpoint) bool {
	_, fdb := e.FDB[ep.mac]
	_, neigh := e.Neigh[ep.ip]
	return !fdb && !neigh
}

func (e tunnelEntries) String() string {
	if e.MACIP == nil && e.NeighVTEP == nil {
		return fmt.Sprintf("fdb %v neigh %v", e.FDB, e.Neigh)
	}
	return fmt.Sprintf("by MAC %v (addresses %v), by IP %v (VTEPs %v)", e.FDB, e.MACIP, e.Neigh, e.NeighVTEP)
}

// tamper is drift made behind the daemon's back on h for the remote
// endpoint ep; want is what `system check` must print about it, and
// repaired says whether the kernel is back to what netd wants.
type tamper struct {
	name     string
	do       func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint)
	want     func(netID string, ep ovEndpoint) string
	repaired func(e tunnelEntries, ep ovEndpoint) bool
}

// overlayKDataplane is one way of running the lab hosts of these tests.
type overlayKDataplane struct {
	name string
	args []string // daemon flags, after the cluster's own
	// entries reads h's tunnel entries of a network; nil: no reader for
	// this dataplane yet, the checks on entries are skipped.
	entries func(t *testing.T, h *lab.Host, netID string) tunnelEntries
	// tampers are the kinds of drift the consistency test makes.
	tampers []tamper
	// device names the tunnel device a network's frames leave a host
	// through and the MTU it must have, given the underlay's MTU and the
	// network's; nil: not checked.
	device func(netID string, underlay, network int) (string, int)
}

var overlayKDataplanes = []overlayKDataplane{
	{
		name: api.DataplaneKernel, args: []string{"--dataplane", api.DataplaneKernel},
		entries: kernelTunnelEntries, tampers: kernelTampers,
		// One device per network, with the network's MTU.
		device: func(netID string, _, network int) (string, int) { return vxDevice(netID), network },
	},
	{
		name: api.DataplaneEBPF, args: []string{"--dataplane", api.DataplaneEBPF},
		entries: ebpfTunnelEntries, tampers: ebpfTampers,
		// One collect-metadata device for every network (as Cilium's
		// cilium_vxlan), at the underlay's MTU: each network's own MTU is
		// its containers' (underlay - 50, or the override).
		device: func(_ string, underlay, _ int) (string, int) { return ebpfTunnelDevice, underlay },
	},
}

// forEachOverlayKDataplane runs f as a subtest per dataplane.
func forEachOverlayKDataplane(t *testing.T, f func(t *testing.T, dp overlayKDataplane)) {
	for _, dp := range overlayKDataplanes {
		t.Run(dp.name, func(t *testing.T) { f(t, dp) })
	}
}

// vxDevice is the name of a network's VXLAN device on every host.
func vxDevice(netID string) string { return "vx-" + netID[:12] }

// kernelTunnelEntries reads the static entries of the network's VXLAN
// device (`bridge fdb` and `ip neigh` in the host namespace).
func kernelTunnelEntries(t *testing.T, h *lab.Host, netID string) tunnelEntries {
	t.Helper()
	dev := vxDevice(netID)
	e := tunnelEntries{FDB: map[string]string{}, Neigh: map[string]string{}}
	out := quietRun(t, h, "bridge", "-j", "fdb", "show", "dev", dev)
	var fdb []struct {
		MAC, Dst, State string
		Flags           []string
	}
	if err := json.Unmarshal([]byte(orEmptyJSON(out)), &fdb); err != nil {
		t.Fatalf("bridge -j fdb show on %s: %v\n%s", h.Node, err, out)
	}
	for _, f := range fdb {
		if f.Dst != "" && slices.Contains(f.Flags, "self") {
			e.FDB[f.MAC] = f.Dst
		}
	}
	out = quietRun(t, h, "ip", "-j", "-4", "neigh", "show", "dev", dev)
	var neigh []struct {
		Dst, Lladdr string
		State       []string
	}
	if err := json.Unmarshal([]byte(orEmptyJSON(out)), &neigh); err != nil {
		t.Fatalf("ip -j neigh show on %s: %v\n%s", h.Node, err, out)
	}
	for _, n := range neigh {
		if n.Lladdr != "" {
			e.Neigh[n.Dst] = n.Lladdr
		}
	}
	return e
}

// quietRun runs a command in h's namespace without the lab's trace (it
// is polled) and fails the test unless it exits 0.
func quietRun(t *testing.T, h *lab.Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lab.CommandTimeout)
	defer cancel()
	var stderr strings.Builder
	cmd := h.Command(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s on %s: %v: %s", name, strings.Join(args, " "), h.Node, err, stderr.String())
	}
	return string(out)
}

func orEmptyJSON(s string) string {
	if strings.TrimSpace(s) == "" {
		return "[]"
	}
	return s
}

// staleMAC and staleIP are an endpoint that exists nowhere.
const (
	staleMAC  = "02:42:0a:fe:fe:01"
	staleVTEP = "10.99.0.250"
)

func staleIP(ep ovEndpoint) string {
	a := netip.MustParseAddr(ep.ip).As4()
	a[3] = 250
	return netip.AddrFrom4(a).String()
}

var kernelTampers = []tamper{
	{
		name: "fdb entry deleted",
		do: func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
			hostRunOK(t, h, "bridge", "fdb", "del", ep.mac, "dev", vxDevice(netID), "dst", ep.vtep, "self")
		},
		want:     func(netID string, _ ovEndpoint) string { return vxDevice(netID) + ": FDB" },
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name: "neighbour deleted",
		do: func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
			hostRunOK(t, h, "ip", "neigh", "del", ep.ip, "dev", vxDevice(netID))
		},
		want:     func(netID string, _ ovEndpoint) string { return vxDevice(netID) + ": neighbour" },
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name: "fdb entry pointed elsewhere",
		do: func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
			hostRunOK(t, h, "bridge", "fdb", "replace", ep.mac, "dev", vxDevice(netID), "dst", staleVTEP, "self", "permanent")
		},
		want:     func(netID string, _ ovEndpoint) string { return vxDevice(netID) + ": FDB" },
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name: "stale entries added",
		do: func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
			hostRunOK(t, h, "bridge", "fdb", "add", staleMAC, "dev", vxDevice(netID), "dst", staleVTEP, "self", "permanent")
			hostRunOK(t, h, "ip", "neigh", "add", staleIP(ep), "lladdr", staleMAC, "dev", vxDevice(netID), "nud", "permanent")
		},
		want: func(netID string, _ ovEndpoint) string { return vxDevice(netID) + ": stale" },
		repaired: func(e tunnelEntries, ep ovEndpoint) bool {
			_, fdb := e.FDB[staleMAC]
			_, neigh := e.Neigh[staleIP(ep)]
			return e.has(ep) && !fdb && !neigh
		},
	},
}

// hostRunOK runs a command in h's namespace and fails the test unless it exits 0.
func hostRunOK(t *testing.T, h *lab.Host, name string, args ...string) string {
	t.Helper()
	out, errOut, code := h.Run(name, args...)
	if code != 0 {
		t.Fatalf("%s %s on %s: exit %d: %s%s", name, strings.Join(args, " "), h.Node, code, out, errOut)
	}
	return out
}

// The eBPF path keeps a host's remote endpoints in the maps its daemon pins
// under <--bpffs>/<node>/overlay (overlay/ebpf.go), keyed by VNI:
// netd_ov_macs (VNI, MAC) → where frames go, netd_ov_ips (VNI, IPv4) →
// what ARP answers. The test opens the pins itself and decodes the entries
// through the maps' own BTF, member by name: a struct of bpf/netd_shared.h
// that changed size or lost a member fails here, naming it, instead of
// being misread.

// ebpfTunnelDevice is the one collect-metadata VXLAN device of an eBPF host
// (overlay.TunnelDevice).
const ebpfTunnelDevice = "netd_vxlan"

// overlayVNIOpt is the network option holding an overlay network's VNI.
const overlayVNIOpt = "com.docker.network.driver.overlay.vxlanid_list"

// ebpfOverlayPinDir is where h's daemon pins the overlay's maps.
func ebpfOverlayPinDir(h *lab.Host) string { return filepath.Join(h.BPFFSDir(), "overlay") }

// ebpfField is one member of a struct in an overlay map: its byte range.
type ebpfField struct{ off, size int }

// ebpfLayout is a struct of bpf/netd_shared.h as a map's BTF describes it.
type ebpfLayout struct {
	name   string
	size   int
	fields map[string]ebpfField
}

func (l ebpfLayout) field(name string) ebpfField {
	f, found := l.fields[name]
	if !found {
		panic(fmt.Sprintf("struct %s has no member %s (checked when the map was opened)", l.name, name))
	}
	return f
}

func (l ebpfLayout) bytes(b []byte, name string) []byte {
	f := l.field(name)
	return b[f.off : f.off+f.size]
}

// set overwrites member name of b with v, which must be its size.
func (l ebpfLayout) set(b []byte, name string, v []byte) {
	f := l.field(name)
	if len(v) != f.size {
		panic(fmt.Sprintf("%s.%s is %d bytes, not %d", l.name, name, f.size, len(v)))
	}
	copy(b[f.off:], v)
}

// u32 reads a host-order __u32 member (vni, ifindex).
func (l ebpfLayout) u32(b []byte, name string) uint32 {
	return binary.NativeEndian.Uint32(l.bytes(b, name))
}

// addr reads a __be32 member (ipv4, vtep) as an address.
func (l ebpfLayout) addr(b []byte, name string) string {
	return netip.AddrFrom4([4]byte(l.bytes(b, name))).String()
}

func (l ebpfLayout) mac(b []byte, name string) string {
	return net.HardwareAddr(l.bytes(b, name)).String()
}

// ebpfMap is one of the overlay's pinned maps with its key and value layouts.
type ebpfMap struct {
	name     string
	m        *ebpf.Map
	key, val ebpfLayout
}

// The maps the tests read and what of their structs they use.
var (
	ebpfMACMap = ebpfMapSpec{"netd_ov_macs", "ov_mac_key", []string{"vni", "mac"}, "ov_endpoint", []string{"ifindex", "vtep", "ipv4", "mac"}}
	ebpfIPMap  = ebpfMapSpec{"netd_ov_ips", "ov_ip_key", []string{"vni", "ipv4"}, "ov_endpoint", []string{"ifindex", "vtep", "ipv4", "mac"}}
)

type ebpfMapSpec struct {
	name      string
	keyStruct string
	keyFields []string
	valStruct string
	valFields []string
}

// ebpfLayouts caches the structs of each BTF object (by its kernel ID).
var ebpfLayouts = struct {
	sync.Mutex
	byID map[btf.ID]map[string]ebpfLayout
}{byID: map[btf.ID]map[string]ebpfLayout{}}

// ebpfStructs reads the layout of the named structs from BTF object id.
func ebpfStructs(id btf.ID, names ...string) (map[string]ebpfLayout, error) {
	ebpfLayouts.Lock()
	defer ebpfLayouts.Unlock()
	have := ebpfLayouts.byID[id]
	if have == nil {
		have = map[string]ebpfLayout{}
		ebpfLayouts.byID[id] = have
	}
	var spec *btf.Spec
	for _, name := range names {
		if _, ok := have[name]; ok {
			continue
		}
		if spec == nil {
			h, err := btf.NewHandleFromID(id)
			if err != nil {
				return nil, fmt.Errorf("open BTF %d: %w", id, err)
			}
			spec, err = h.Spec(nil)
			h.Close()
			if err != nil {
				return nil, fmt.Errorf("read BTF %d: %w", id, err)
			}
		}
		var st *btf.Struct
		if err := spec.TypeByName(name, &st); err != nil {
			return nil, fmt.Errorf("struct %s in BTF %d: %w", name, id, err)
		}
		l := ebpfLayout{name: name, size: int(st.Size), fields: map[string]ebpfField{}}
		for _, m := range st.Members {
			if m.BitfieldSize != 0 || m.Offset%8 != 0 {
				continue
			}
			sz, err := btf.Sizeof(m.Type)
			if err != nil {
				return nil, fmt.Errorf("size of %s.%s: %w", name, m.Name, err)
			}
			l.fields[m.Name] = ebpfField{off: int(m.Offset.Bytes()), size: sz}
		}
		have[name] = l
	}
	return have, nil
}

// openEBPFMap opens one of h's pinned overlay maps (writable only for
// tampering) and checks that its key and value are the structs of spec,
// with the members the tests use.
func openEBPFMap(t *testing.T, h *lab.Host, spec ebpfMapSpec, write bool) ebpfMap {
	t.Helper()
	path := filepath.Join(ebpfOverlayPinDir(h), spec.name)
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: !write})
	if err != nil {
		t.Fatalf("open the overlay map %s of %s: %v", path, h.Node, err)
	}
	fail := func(format string, args ...any) {
		m.Close()
		t.Helper()
		t.Fatalf("overlay map %s of %s: "+format, append([]any{path, h.Node}, args...)...)
	}
	info, err := m.Info()
	if err != nil {
		fail("info: %v", err)
	}
	id, ok := info.BTFID()
	if !ok {
		fail("has no BTF: cannot tell its layout")
	}
	ls, err := ebpfStructs(id, spec.keyStruct, spec.valStruct)
	if err != nil {
		fail("%v", err)
	}
	em := ebpfMap{name: spec.name, m: m, key: ls[spec.keyStruct], val: ls[spec.valStruct]}
	for _, x := range []struct {
		l      ebpfLayout
		size   uint32
		fields []string
	}{{em.key, m.KeySize(), spec.keyFields}, {em.val, m.ValueSize(), spec.valFields}} {
		if uint32(x.l.size) != x.size {
			fail("struct %s is %d bytes but the map's are %d: not the struct the test knows (bpf/netd_shared.h changed?)", x.l.name, x.l.size, x.size)
		}
		for _, f := range x.fields {
			want := 4
			if f == "mac" {
				want = 6
			}
			if got, found := x.l.fields[f]; !found || got.size != want {
				fail("struct %s: member %s is %+v (found %v), want %d bytes (bpf/netd_shared.h changed?)", x.l.name, f, got, found, want)
			}
		}
	}
	return em
}

// entries lists the map (copies of every key and value).
func (em ebpfMap) entries(t *testing.T, h *lab.Host) [][2][]byte {
	t.Helper()
	var out [][2][]byte
	var k, v []byte
	it := em.m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, [2][]byte{slices.Clone(k), slices.Clone(v)})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list the overlay map %s of %s: %v", em.name, h.Node, err)
	}
	return out
}

// ebpfVNIs caches each network's VNI: fixed for its life, the same on every host.
var ebpfVNIs sync.Map

func overlayVNI(t *testing.T, h *lab.Host, netID string) uint32 {
	t.Helper()
	if v, found := ebpfVNIs.Load(netID); found {
		return v.(uint32)
	}
	s := inspectNet(t, h, netID).Options[overlayVNIOpt]
	n, err := strconv.ParseUint(s, 10, 24)
	if err != nil {
		t.Fatalf("network %s on %s: VNI %q: %v", netID[:12], h.Node, s, err)
	}
	ebpfVNIs.Store(netID, uint32(n))
	return uint32(n)
}

// ebpfTunnelEntries reads the remote endpoints (ifindex 0) of the
// network's VNI from h's pinned maps.
func ebpfTunnelEntries(t *testing.T, h *lab.Host, netID string) tunnelEntries {
	t.Helper()
	vni := overlayVNI(t, h, netID)
	e := tunnelEntries{FDB: map[string]string{}, Neigh: map[string]string{}, MACIP: map[string]string{}, NeighVTEP: map[string]string{}}
	macs := openEBPFMap(t, h, ebpfMACMap, false)
	defer macs.m.Close()
	for _, kv := range macs.entries(t, h) {
		k, v := kv[0], kv[1]
		if macs.key.u32(k, "vni") != vni || macs.val.u32(v, "ifindex") != 0 {
			continue
		}
		mac := macs.key.mac(k, "mac")
		e.FDB[mac], e.MACIP[mac] = macs.val.addr(v, "vtep"), macs.val.addr(v, "ipv4")
	}
	ips := openEBPFMap(t, h, ebpfIPMap, false)
	defer ips.m.Close()
	for _, kv := range ips.entries(t, h) {
		k, v := kv[0], kv[1]
		if ips.key.u32(k, "vni") != vni || ips.val.u32(v, "ifindex") != 0 {
			continue
		}
		ip := ips.key.addr(k, "ipv4")
		e.Neigh[ip], e.NeighVTEP[ip] = ips.val.mac(v, "mac"), ips.val.addr(v, "vtep")
	}
	return e
}

// ebpfEntryOf opens spec's map on h for writing and finds ep's entry in
// it (by MAC or by IP, as the map is keyed); the caller closes the map.
func ebpfEntryOf(t *testing.T, h *lab.Host, netID string, spec ebpfMapSpec, ep ovEndpoint) (ebpfMap, []byte, []byte) {
	t.Helper()
	vni := overlayVNI(t, h, netID)
	em := openEBPFMap(t, h, spec, true)
	for _, kv := range em.entries(t, h) {
		k := kv[0]
		if em.key.u32(k, "vni") != vni {
			continue
		}
		if _, byMAC := em.key.fields["mac"]; byMAC && em.key.mac(k, "mac") == ep.mac || !byMAC && em.key.addr(k, "ipv4") == ep.ip {
			return em, k, kv[1]
		}
	}
	em.m.Close()
	t.Fatalf("%s of %s has no entry of %s (%s) on VNI %d", spec.name, h.Node, ep.ip, ep.mac, vni)
	return ebpfMap{}, nil, nil
}

func mustParseMAC(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func addrBytes(s string) []byte {
	a := netip.MustParseAddr(s).As4()
	return a[:]
}

// ebpfMissing is what system check says of a remote endpoint whose entries are missing or wrong.
func ebpfMissing(_ string, ep ovEndpoint) string {
	return fmt.Sprintf("eBPF: remote endpoint %s (%s) -> %s missing or wrong", ep.ip, ep.mac, ep.vtep)
}

func ebpfDelete(spec ebpfMapSpec) func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
	return func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
		em, k, _ := ebpfEntryOf(t, h, netID, spec, ep)
		defer em.m.Close()
		if err := em.m.Delete(k); err != nil {
			t.Fatalf("delete %s's entry from %s of %s: %v", ep.ip, spec.name, h.Node, err)
		}
	}
}

// ebpfRewrite changes ep's entry in spec's map in place (edit changes the value).
func ebpfRewrite(spec ebpfMapSpec, edit func(val ebpfLayout, v []byte)) func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
	return func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
		em, k, v := ebpfEntryOf(t, h, netID, spec, ep)
		defer em.m.Close()
		edit(em.val, v)
		if err := em.m.Update(k, v, ebpf.UpdateExist); err != nil {
			t.Fatalf("rewrite %s's entry in %s of %s: %v", ep.ip, spec.name, h.Node, err)
		}
	}
}

var ebpfTampers = []tamper{
	{
		name:     "MAC entry deleted",
		do:       ebpfDelete(ebpfMACMap),
		want:     ebpfMissing,
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name:     "ARP entry deleted",
		do:       ebpfDelete(ebpfIPMap),
		want:     ebpfMissing,
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name: "MAC entry pointed elsewhere",
		do: ebpfRewrite(ebpfMACMap, func(val ebpfLayout, v []byte) {
			val.set(v, "vtep", addrBytes(staleVTEP))
		}),
		want:     ebpfMissing,
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name: "ARP entry answering another MAC",
		do: ebpfRewrite(ebpfIPMap, func(val ebpfLayout, v []byte) {
			val.set(v, "mac", mustParseMAC(staleMAC))
		}),
		want: func(_ string, ep ovEndpoint) string {
			return fmt.Sprintf("eBPF: stale ARP entry %s -> %s at %s", ep.ip, staleMAC, ep.vtep)
		},
		repaired: func(e tunnelEntries, ep ovEndpoint) bool { return e.has(ep) },
	},
	{
		name: "stale entries added",
		do: func(t *testing.T, h *lab.Host, netID string, ep ovEndpoint) {
			// Copies of ep's entries, for an endpoint that exists nowhere.
			for _, spec := range []ebpfMapSpec{ebpfMACMap, ebpfIPMap} {
				func() {
					em, k, v := ebpfEntryOf(t, h, netID, spec, ep)
					defer em.m.Close()
					if _, byMAC := em.key.fields["mac"]; byMAC {
						em.key.set(k, "mac", mustParseMAC(staleMAC))
					} else {
						em.key.set(k, "ipv4", addrBytes(staleIP(ep)))
					}
					em.val.set(v, "mac", mustParseMAC(staleMAC))
					em.val.set(v, "ipv4", addrBytes(staleIP(ep)))
					em.val.set(v, "vtep", addrBytes(staleVTEP))
					if err := em.m.Update(k, v, ebpf.UpdateNoExist); err != nil {
						t.Fatalf("add a stale entry to %s of %s: %v", spec.name, h.Node, err)
					}
				}()
			}
		},
		want: func(_ string, ep ovEndpoint) string {
			return fmt.Sprintf("eBPF: stale remote endpoint %s (%s) -> %s", staleIP(ep), staleMAC, staleVTEP)
		},
		repaired: func(e tunnelEntries, ep ovEndpoint) bool {
			_, mac := e.FDB[staleMAC]
			_, ip := e.Neigh[staleIP(ep)]
			return e.has(ep) && !mac && !ip
		},
	},
}

// ovEndpoint is a container on an overlay network, as others must see it.
type ovEndpoint struct {
	h                  *lab.Host
	ctr, ip, mac, vtep string
}

// createOvCtr creates container name on h attached to network.
func createOvCtr(t *testing.T, cl *clusterLab, h *lab.Host, name, network string) ovEndpoint {
	t.Helper()
	ok(t, h, "container", "create", "--network", network, name)
	ep, found := inspectCtr(t, h, name).NetworkSettings.Networks[network]
	if !found || ep.IPAddress == "" || ep.MacAddress == "" {
		t.Fatalf("container %s on %s has no address on %s: %+v", name, h.Node, network, ep)
	}
	return ovEndpoint{h: h, ctr: name, ip: ep.IPAddress, mac: ep.MacAddress, vtep: cl.ul.Addr(h).String()}
}

// createOverlay creates an attachable overlay network on the first host,
// waits until every host lists it, and returns its ID.
func createOverlay(t *testing.T, cl *clusterLab, name string, flags ...string) string {
	t.Helper()
	args := append([]string{"network", "create", "-d", "overlay", "--attachable"}, flags...)
	id := strings.TrimSpace(ok(t, cl.hosts[0], append(args, name)...))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("network create printed %q, want a 64-hex ID", id)
	}
	for _, h := range cl.hosts[1:] {
		waitNetwork(t, h, name, 20*time.Second)
	}
	return id
}

// waitEntries polls the tunnel entries of netID on every host of on until
// cond holds on all of them, and returns the time it took; false on
// timeout, with the last entries logged.
func waitEntries(t *testing.T, dp overlayKDataplane, on []*lab.Host, netID string, timeout time.Duration, cond func(tunnelEntries) bool) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	last := map[string]tunnelEntries{}
	for {
		all := true
		for _, h := range on {
			e := dp.entries(t, h, netID)
			last[h.Node] = e
			if !cond(e) {
				all = false
			}
		}
		if all {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			for n, e := range last {
				t.Logf("entries on %s after %v: %v", n, timeout, e)
			}
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mtuOf is the MTU of dev, in a container (ctr != "") or in h itself.
func mtuOf(t *testing.T, h *lab.Host, ctr, dev string) int {
	t.Helper()
	var out, errOut string
	var code int
	if ctr != "" {
		out, errOut, code = h.Exec(ctr, "ip", "-o", "link", "show", dev)
	} else {
		out, errOut, code = h.Run("ip", "-o", "link", "show", dev)
	}
	m := regexp.MustCompile(` mtu (\d+) `).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("ip link show %s (%s on %s): exit %d: %s%s", dev, ctr, h.Node, code, out, errOut)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// pingDF pings addr once with size payload bytes and Don't Fragment set.
func pingDF(h *lab.Host, ctr, addr string, size int) (string, int) {
	var out, errOut string
	var code int
	for try := 0; try < 3; try++ {
		out, errOut, code = h.Exec(ctr, "ping", "-M", "do", "-s", strconv.Itoa(size), "-c", "1", "-W", "2", addr)
		if code == 0 || strings.Contains(out+errOut, "message too long") {
			break
		}
	}
	return out + errOut, code
}

func TestOverlayKMTU(t *testing.T) {
	t.Parallel()
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 2, dp.args...)
		h1, h2 := cl.hosts[0], cl.hosts[1]
		underlay := mtuOf(t, h1, "", "ul0")
		if u2 := mtuOf(t, h2, "", "ul0"); u2 != underlay {
			t.Fatalf("underlay MTUs differ: %d on %s, %d on %s", underlay, h1.Node, u2, h2.Node)
		}
		cases := []struct {
			name string
			opts []string
			want int
		}{
			{"derived", nil, underlay - 50},
			{"override", []string{"-o", api.OptMTU + "=1400"}, 1400},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				net := "mtu-" + tc.name
				id := createOverlay(t, cl, net, tc.opts...)
				a := createOvCtr(t, cl, h1, "a-"+tc.name, net)
				b := createOvCtr(t, cl, h2, "b-"+tc.name, net)
				for _, ep := range []ovEndpoint{a, b} {
					if got := mtuOf(t, ep.h, ep.ctr, "eth0"); got != tc.want {
						t.Errorf("eth0 of %s on %s: MTU %d, want %d (underlay %d)", ep.ctr, ep.h.Node, got, tc.want, underlay)
					}
					if dp.device == nil {
						continue
					}
					dev, want := dp.device(id, underlay, tc.want)
					if got := mtuOf(t, ep.h, "", dev); got != want {
						t.Errorf("%s on %s: MTU %d, want %d (underlay %d, network %d)", dev, ep.h.Node, got, want, underlay, tc.want)
					}
				}
				pingUntil(t, h1, a.ctr, b.ip, 15*time.Second)
				for _, p := range [][2]ovEndpoint{{a, b}, {b, a}} {
					from, to := p[0], p[1]
					if out, code := pingDF(from.h, from.ctr, to.ip, tc.want-28); code != 0 {
						t.Errorf("ping -M do -s %d %s from %s (%s): exit %d, want an answer:\n%s", tc.want-28, to.ip, from.ctr, from.h.Node, code, out)
					}
					out, code := pingDF(from.h, from.ctr, to.ip, tc.want-27)
					if code == 0 || !strings.Contains(out, "message too long") || !strings.Contains(out, fmt.Sprintf("mtu=%d", tc.want)) {
						t.Errorf("ping -M do -s %d %s from %s (%s): exit %d, want \"message too long, mtu=%d\":\n%s", tc.want-27, to.ip, from.ctr, from.h.Node, code, tc.want, out)
					}
				}
			})
		}
	})
}

func TestOverlayKIperf(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 is not installed (make deps installs it)")
	}
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 2, dp.args...)
		h1, h2 := cl.hosts[0], cl.hosts[1]
		createOverlay(t, cl, "ovperf")
		c1 := createOvCtr(t, cl, h1, "c1", "ovperf")
		c2 := createOvCtr(t, cl, h2, "c2", "ovperf")
		pingUntil(t, h1, c1.ctr, c2.ip, 15*time.Second)

		// One-off server, bounded by timeout(1) in case no client comes.
		type result struct {
			out, errOut string
			code        int
		}
		srv := make(chan result, 1)
		go func() {
			out, errOut, code := h2.Exec(c2.ctr, "timeout", "30", "iperf3", "-s", "-1", "-B", c2.ip)
			srv <- result{out, errOut, code}
		}()
		// iperf3 3.12 exits 0 with -J even when it failed: read "error" too.
		type report struct {
			Error string `json:"error"`
			End   struct {
				SumReceived struct {
					Bytes         float64 `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		var rep report
		var out, errOut string
		var code int
		for try := 0; try < 20; try++ {
			select {
			case r := <-srv:
				t.Fatalf("iperf3 server in %s ended before a client connected: exit %d: %s%s", c2.ctr, r.code, r.out, r.errOut)
			default:
			}
			out, errOut, code = h1.Exec(c1.ctr, "iperf3", "-c", c2.ip, "-t", "2", "-J", "--connect-timeout", "2000")
			rep = report{}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("iperf3 -J output: %v\n%s%s", err, out, errOut)
			}
			if code == 0 && rep.Error == "" {
				break
			}
			time.Sleep(300 * time.Millisecond) // the server may not listen yet
		}
		if code != 0 || rep.Error != "" {
			t.Fatalf("iperf3 -c %s from %s: exit %d, error %q:\n%s", c2.ip, c1.ctr, code, rep.Error, errOut)
		}
		rx := rep.End.SumReceived
		if rx.Bytes <= 0 || rx.BitsPerSecond <= 0 {
			t.Fatalf("iperf3 %s → %s received nothing: %+v\n%s", c1.ctr, c2.ctr, rep.End, out)
		}
		t.Logf("throughput: iperf3 TCP %s (%s) → %s (%s) over the overlay: %.0f Mbit/s, %.1f MB in 2 s (not asserted)",
			c1.ctr, h1.Node, c2.ctr, h2.Node, rx.BitsPerSecond/1e6, rx.Bytes/1e6)
		select {
		case r := <-srv:
			if r.code != 0 {
				t.Errorf("iperf3 server: exit %d: %s%s", r.code, r.out, r.errOut)
			}
		case <-time.After(35 * time.Second):
			t.Errorf("iperf3 server did not end")
		}
	})
}

func TestOverlayKHostFailure(t *testing.T) {
	t.Parallel()
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 3, dp.args...)
		h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
		id := createOverlay(t, cl, "ovfail")
		c1 := createOvCtr(t, cl, h1, "c1", "ovfail")
		c2 := createOvCtr(t, cl, h2, "c2", "ovfail")
		c3 := createOvCtr(t, cl, h3, "c3", "ovfail")
		pingUntil(t, h1, c1.ctr, c3.ip, 15*time.Second)
		pingUntil(t, h2, c2.ctr, c3.ip, 15*time.Second)
		others := []*lab.Host{h1, h2}
		if dp.entries != nil {
			if _, done := waitEntries(t, dp, others, id, 15*time.Second, func(e tunnelEntries) bool { return e.has(c3) }); !done {
				t.Fatalf("c3 is not programmed on %s and %s", h1.Node, h2.Node)
			}
		}

		// The host dies: daemon killed, cable pulled.
		start := time.Now()
		if err := h3.KillDaemon(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ul.Cut(h3); err != nil {
			t.Fatal(err)
		}
		if dp.entries != nil {
			if _, done := waitEntries(t, dp, others, id, 30*time.Second, func(e tunnelEntries) bool { return e.lacks(c3) }); !done {
				t.Fatalf("c3's entries are still on %s or %s 30 s after its host died", h1.Node, h2.Node)
			}
			t.Logf("timing: kill -9 + link cut of %s → c3 gone from the tunnel entries of %s and %s after %v", h3.Node, h1.Node, h2.Node, time.Since(start))
			if e := dp.entries(t, h1, id); !e.has(c2) {
				t.Errorf("%s lost c2's entries when %s died: %v", h1.Node, h3.Node, e)
			}
			if e := dp.entries(t, h2, id); !e.has(c1) {
				t.Errorf("%s lost c1's entries when %s died: %v", h2.Node, h3.Node, e)
			}
		}
		mustPing(t, h1, c1.ctr, c2.ip)
		mustNotPing(t, h1, c1.ctr, c3.ip)

		// The host comes back with its container.
		if err := cl.ul.Restore(h3); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if err := h3.StartDaemon(cl.args(h3)...); err != nil {
			t.Fatal(err)
		}
		if dp.entries != nil {
			d, done := waitEntries(t, dp, others, id, 30*time.Second, func(e tunnelEntries) bool { return e.has(c3) })
			if !done {
				t.Fatalf("c3's entries did not come back on %s and %s after its host restarted", h1.Node, h2.Node)
			}
			t.Logf("timing: %s restarted and reconnected → c3 back in the tunnel entries of both others %v after the restart began (%v after its daemon was ready)", h3.Node, time.Since(start), d)
			if _, done := waitEntries(t, dp, []*lab.Host{h3}, id, 30*time.Second, func(e tunnelEntries) bool { return e.has(c1) && e.has(c2) }); !done {
				t.Fatalf("restarted %s lacks the entries of c1 and c2", h3.Node)
			}
		}
		d := pingUntil(t, h1, c1.ctr, c3.ip, 30*time.Second)
		pingUntil(t, h3, c3.ctr, c2.ip, 15*time.Second)
		t.Logf("timing: c1 reached c3 again %v after the entries were back (%v after the restart began)", d, time.Since(start))
	})
}

func TestOverlayKPartition(t *testing.T) {
	t.Parallel()
	const cut = 15 * time.Second // longer than failure detection (about 5 s)
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 3, dp.args...)
		h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
		id := createOverlay(t, cl, "ovpart")
		c1 := createOvCtr(t, cl, h1, "c1", "ovpart")
		c2 := createOvCtr(t, cl, h2, "c2", "ovpart")
		c3 := createOvCtr(t, cl, h3, "c3", "ovpart")
		pingUntil(t, h1, c1.ctr, c3.ip, 15*time.Second)
		pingUntil(t, h3, c3.ctr, c2.ip, 15*time.Second)

		start := time.Now()
		if err := cl.ul.Cut(h3); err != nil {
			t.Fatal(err)
		}
		if dp.entries != nil {
			// Both sides withdraw the other: h1 and h2 forget c3, h3 forgets c1 and c2.
			d, done := waitEntries(t, dp, []*lab.Host{h1, h2}, id, 30*time.Second, func(e tunnelEntries) bool { return e.lacks(c3) })
			if !done {
				t.Fatalf("c3 not withdrawn on the majority side 30 s into the partition")
			}
			t.Logf("timing: partition → c3 withdrawn on %s and %s after %v", h1.Node, h2.Node, d)
			if _, done := waitEntries(t, dp, []*lab.Host{h3}, id, 30*time.Second, func(e tunnelEntries) bool { return e.lacks(c1) && e.lacks(c2) }); !done {
				t.Fatalf("c1 and c2 not withdrawn on the cut-off %s 30 s into the partition", h3.Node)
			}
			t.Logf("timing: partition → c1 and c2 withdrawn on %s after %v", h3.Node, time.Since(start))
		}
		mustNotPing(t, h1, c1.ctr, c3.ip)
		mustPing(t, h1, c1.ctr, c2.ip)
		if rest := cut - time.Since(start); rest > 0 {
			time.Sleep(rest)
		}
		if err := cl.ul.Restore(h3); err != nil {
			t.Fatal(err)
		}
		healed := time.Now()
		t.Logf("partition lasted %v", healed.Sub(start))
		d := pingUntil(t, h1, c1.ctr, c3.ip, 60*time.Second)
		t.Logf("timing: link restored → c1 (%s) reaches c3 (%s) after %v", h1.Node, h3.Node, d)
		pingUntil(t, h3, c3.ctr, c2.ip, 30*time.Second)
		t.Logf("timing: link restored → c3 reaches c2 (%s) after %v", h2.Node, time.Since(healed))
		if dp.entries != nil {
			if _, done := waitEntries(t, dp, []*lab.Host{h1, h2}, id, 30*time.Second, func(e tunnelEntries) bool { return e.has(c3) }); !done {
				t.Errorf("c3's entries not back on %s and %s after the heal", h1.Node, h2.Node)
			}
			if _, done := waitEntries(t, dp, []*lab.Host{h3}, id, 30*time.Second, func(e tunnelEntries) bool { return e.has(c1) && e.has(c2) }); !done {
				t.Errorf("c1's and c2's entries not back on %s after the heal", h3.Node)
			}
		}
	})
}

// vxlanFrame is one captured VXLAN packet as tshark decodes it.
type vxlanFrame struct {
	vni                string
	outerSrc, outerDst string
	innerSrc, innerDst string
	icmpType           string
	udpDst             string
}

func TestOverlayKWire(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed: apt-get install tshark (make deps installs it)")
	}
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 2, dp.args...)
		h1, h2 := cl.hosts[0], cl.hosts[1]
		createOverlay(t, cl, "ovwire")
		// A second network, so that the VNI checked is not simply the first one.
		createOverlay(t, cl, "ovwire2")
		c1 := createOvCtr(t, cl, h1, "c1", "ovwire2")
		c2 := createOvCtr(t, cl, h2, "c2", "ovwire2")
		vni := inspectNet(t, h2, "ovwire2").Options["com.docker.network.driver.overlay.vxlanid_list"]
		if other := inspectNet(t, h1, "ovwire").Options["com.docker.network.driver.overlay.vxlanid_list"]; vni == "" || vni == other {
			t.Fatalf("VNIs: ovwire %q, ovwire2 %q: want two different ones", other, vni)
		}
		pingUntil(t, h1, c1.ctr, c2.ip, 15*time.Second)

		// Pings all through the capture (its first frames may be missed
		// while tshark starts); the capture stops after frames of them.
		const frames = 10
		pinging := make(chan string, 1)
		got := captureVXLAN(t, h1, frames, func() {
			go func() {
				out, errOut, code := h1.Exec(c1.ctr, "ping", "-c", "25", "-i", "0.2", "-W", "2", c2.ip)
				if code != 0 {
					pinging <- fmt.Sprintf("ping during the capture: exit %d: %s%s", code, out, errOut)
				}
				close(pinging)
			}()
		})
		if msg := <-pinging; msg != "" {
			t.Error(msg)
		}
		if len(got) < frames {
			t.Fatalf("captured %d VXLAN frames on %s ul0 in 5 s, want %d: %+v", len(got), h1.Node, frames, got)
		}
		v1, v2 := cl.ul.Addr(h1).String(), cl.ul.Addr(h2).String()
		types := map[string]int{}
		for i, f := range got {
			fwd := f.outerSrc == v1 && f.outerDst == v2 && f.innerSrc == c1.ip && f.innerDst == c2.ip
			back := f.outerSrc == v2 && f.outerDst == v1 && f.innerSrc == c2.ip && f.innerDst == c1.ip
			if f.vni != vni || f.udpDst != "4789" || (!fwd && !back) {
				t.Errorf("frame %d: %+v; want VNI %s, UDP 4789, outer %s↔%s carrying %s↔%s", i+1, f, vni, v1, v2, c1.ip, c2.ip)
			}
			types[f.icmpType]++
		}
		if types["8"] < frames/2-1 || types["0"] < frames/2-1 || types["8"]+types["0"] != len(got) {
			t.Errorf("ICMP types in the capture: %v, want only echo requests (8) and replies (0), about half each", types)
		}
		t.Logf("tshark: %d frames on %s ul0, VNI %s, ICMP types %v", len(got), h1.Node, vni, types)
	})
}

// captureVXLAN runs tshark on h's underlay interface while during runs,
// and returns the VXLAN frames decoded (at most count, at most 5 s).
func captureVXLAN(t *testing.T, h *lab.Host, count int, during func()) []vxlanFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "tshark", "-n", "-i", "ul0", "-f", "udp port 4789",
		"-c", strconv.Itoa(count), "-a", "duration:5", "-d", "udp.port==4789,vxlan",
		"-T", "fields", "-E", "separator=/t", "-E", "aggregator=,",
		"-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type", "-e", "udp.dstport")
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tshark on %s: %v", h.Node, err)
	}
	capturing := make(chan struct{})
	var errText strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			errText.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Capturing on") {
				once.Do(func() { close(capturing) })
			}
		}
	}()
	select {
	case <-capturing:
	case <-time.After(20 * time.Second):
		cancel()
		_ = cmd.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("tshark on %s did not start capturing within 20 s:\n%s", h.Node, errText.String())
	}
	during()
	err = cmd.Wait()
	mu.Lock()
	stderrText := errText.String()
	mu.Unlock()
	if err != nil {
		t.Fatalf("tshark on %s: %v\n%s", h.Node, err, stderrText)
	}
	var frames []vxlanFrame
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Errorf("tshark line %q: want 5 fields", line)
			continue
		}
		src, dst := strings.Split(f[1], ","), strings.Split(f[2], ",")
		if len(src) != 2 || len(dst) != 2 {
			t.Errorf("tshark line %q: want an outer and an inner IPv4 header", line)
			continue
		}
		frames = append(frames, vxlanFrame{vni: f[0], outerSrc: src[0], outerDst: dst[0], innerSrc: src[1], innerDst: dst[1], icmpType: f[3], udpDst: f[4]})
	}
	return frames
}

// systemCheckDrifts runs `netd system check` on h: its drift lines and exit code.
func systemCheckDrifts(t *testing.T, h *lab.Host) ([]string, int) {
	t.Helper()
	out, errOut, code := h.Netd("system", "check")
	if code != 0 && code != 1 {
		t.Fatalf("netd system check on %s: exit %d: %s%s", h.Node, code, out, errOut)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" && !strings.HasPrefix(l, "OK:") && !regexp.MustCompile(`^\d+ drift\(s\) found$`).MatchString(l) {
			lines = append(lines, l)
		}
	}
	if (code == 0) != (len(lines) == 0) {
		t.Errorf("netd system check on %s: exit %d but %d drift lines:\n%s", h.Node, code, len(lines), out)
	}
	return lines, code
}

// linesNotIn are the lines of now that are not in base.
func linesNotIn(base, now []string) []string {
	var out []string
	for _, l := range now {
		if !slices.Contains(base, l) {
			out = append(out, l)
		}
	}
	return out
}

func TestOverlayKConsistency(t *testing.T) {
	t.Parallel()
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		if dp.entries == nil || len(dp.tampers) == 0 {
			t.Skipf("no way to read or tamper with %s tunnel entries here yet", dp.name)
		}
		cl := newClusterLab(t, 2, dp.args...)
		h1, h2 := cl.hosts[0], cl.hosts[1]
		id := createOverlay(t, cl, "ovcheck")
		c1 := createOvCtr(t, cl, h1, "c1", "ovcheck")
		c2 := createOvCtr(t, cl, h2, "c2", "ovcheck")
		pingUntil(t, h1, c1.ctr, c2.ip, 15*time.Second)
		if _, done := waitEntries(t, dp, []*lab.Host{h1}, id, 15*time.Second, func(e tunnelEntries) bool { return e.has(c2) }); !done {
			t.Fatalf("c2 is not programmed on %s", h1.Node)
		}
		t.Logf("%s tunnel entries of ovcheck on %s: %v", dp.name, h1.Node, dp.entries(t, h1, id))
		// Drift before any tampering fails the test, but the rest still
		// runs against it as a baseline.
		base, code := systemCheckDrifts(t, h1)
		if code != 0 {
			t.Errorf("system check on %s before any drift: exit %d:\n%s", h1.Node, code, strings.Join(base, "\n"))
		}
		for _, tm := range dp.tampers {
			t.Run(strings.ReplaceAll(tm.name, " ", "_"), func(t *testing.T) {
				// The periodic resync may repair the drift before the check
				// sees it: then make it again (bounded).
				var reported bool
				var start time.Time
				for try := 1; try <= 3 && !reported; try++ {
					tm.do(t, h1, id, c2)
					start = time.Now()
					tampered := dp.entries(t, h1, id)
					lines, code := systemCheckDrifts(t, h1)
					fresh := linesNotIn(base, lines)
					if code == 1 && slices.ContainsFunc(fresh, func(l string) bool { return strings.Contains(l, tm.want(id, c2)) }) {
						reported = true
						t.Logf("system check on %s reports:\n%s", h1.Node, strings.Join(fresh, "\n"))
						// Read before the check, which still saw the drift:
						// the test's reader must have seen it too.
						if tm.repaired(tampered, c2) {
							t.Errorf("system check reports the drift but the test's reader of %s entries does not see it: %v", dp.name, tampered)
						}
						break
					}
					if !tm.repaired(dp.entries(t, h1, id), c2) {
						t.Fatalf("system check on %s: exit %d, want 1 and a line naming %q; new lines:\n%s", h1.Node, code, tm.want(id, c2), strings.Join(fresh, "\n"))
					}
					t.Logf("try %d: the drift was repaired before system check ran; again", try)
				}
				if !reported {
					t.Fatalf("the drift was repaired before every one of 3 checks: cannot tell whether system check sees it")
				}
				// Repaired within the resync period (10 s), bounded at 25 s.
				var fresh []string
				if !waitFor(25*time.Second, func() bool {
					lines, _ := systemCheckDrifts(t, h1)
					fresh = linesNotIn(base, lines)
					return len(fresh) == 0
				}) {
					t.Fatalf("drift not repaired on %s after 25 s: system check still reports:\n%s", h1.Node, strings.Join(fresh, "\n"))
				}
				t.Logf("timing: %s repaired after %v (resync period 10 s)", tm.name, time.Since(start))
				if e := dp.entries(t, h1, id); !tm.repaired(e, c2) {
					t.Errorf("system check passes but the entries are not what netd wants: %v", e)
				}
				mustPing(t, h1, c1.ctr, c2.ip)
			})
		}
		// Whatever check says, prune must not take the overlay apart.
		if out := ok(t, h1, "system", "prune", "-f"); !strings.Contains(out, "Nothing to prune") {
			t.Errorf("system prune on %s with an overlay network removed or kept something:\n%s", h1.Node, out)
		}
		mustPing(t, h1, c1.ctr, c2.ip)
		if e := dp.entries(t, h1, id); !e.has(c2) {
			t.Errorf("after system prune, %s lacks c2's entries: %v", h1.Node, e)
		}
	})
}

// netLsAll is `network ls` (ID name driver scope) of each host.
func netLsAll(t *testing.T, hs []*lab.Host) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, h := range hs {
		rows := strings.Split(strings.TrimSpace(ok(t, h, "network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}")), "\n")
		sort.Strings(rows)
		m[h.Node] = strings.Join(rows, "\n")
	}
	return m
}

func sameNetLs(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for n, b := range before {
		if after[n] != b {
			t.Errorf("%s changed network ls on %s:\n--- before\n%s\n--- after\n%s", what, n, b, after[n])
		}
	}
}

func TestOverlayKBadInput(t *testing.T) {
	t.Parallel()
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 2, dp.args...)
		h1, h2 := cl.hosts[0], cl.hosts[1]
		lone := startHost(t, cl.l, "lone", dp.args...)
		all := []*lab.Host{h1, h2, lone}
		const vniOpt = overlayVNIOpt
		createOverlay(t, cl, "taken", "-o", vniOpt+"=5000")
		taken := inspectNet(t, h1, "taken")

		before := netLsAll(t, all)
		create := []string{"network", "create", "-d", "overlay"}
		cases := []struct {
			name string
			h    *lab.Host
			want []string
			args []string
		}{
			{"vni 0", h1, []string{`invalid VXLAN ID "0"`}, []string{"-o", vniOpt + "=0"}},
			{"vni 2^24", h1, []string{`invalid VXLAN ID "16777216"`, "16777215"}, []string{"-o", vniOpt + "=16777216"}},
			{"vni list", h1, []string{`"a,b"`, "one VXLAN ID"}, []string{"-o", vniOpt + "=a,b"}},
			{"vni text", h2, []string{`invalid VXLAN ID "x"`}, []string{"-o", vniOpt + "=x"}},
			{"vni duplicate", h2, []string{"VXLAN ID 5000 is already used by overlay network taken"}, []string{"-o", vniOpt + "=5000"}},
			{"dataplane option", h1, []string{"invalid option netd.dataplane", "each host carries it"}, []string{"-o", api.OptDataplane + "=ebpf"}},
			{"encrypted", h2, []string{"encrypted overlay networks", "not supported"}, []string{"-o", "encrypted"}},
			{"unknown overlay option", h1, []string{"invalid option com.docker.network.driver.overlay.nosuch"}, []string{"-o", "com.docker.network.driver.overlay.nosuch=1"}},
			{"no cluster", lone, []string{"not in a cluster", "--advertise-addr"}, nil},
			{"no cluster with subnet", lone, []string{"need a cluster", "--advertise-addr"}, []string{"--subnet", "10.200.0.0/24"}},
		}
		for _, tc := range cases {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				args := append(append(append([]string{}, create...), tc.args...), "bad")
				fails(t, tc.h, tc.want, args...)
				sameNetLs(t, tc.name, before, netLsAll(t, all))
			})
		}
		// Before the marker exists: its own subnet's route would hide it.
		wantSubnet := lowestFreeSubnet(t, h1, taken.IPAM.Config[0].Subnet)
		// Something wrongly created would reach the others within a
		// gossip round or two: wait for a network made after the refusals.
		createOverlay(t, cl, "marker")
		waitNetwork(t, h2, "marker", 20*time.Second)
		after := netLsAll(t, all)
		for _, h := range []*lab.Host{h1, h2} {
			var rows []string
			for _, r := range strings.Split(after[h.Node], "\n") {
				if !strings.Contains(r, " marker ") {
					rows = append(rows, r)
				}
			}
			after[h.Node] = strings.Join(rows, "\n")
		}
		sameNetLs(t, "the refused creates (after a gossip round)", before, after)

		// The refusals claimed nothing in the cluster: the marker got the
		// lowest free VNI and the lowest free subnet.
		marker := inspectNet(t, h1, "marker")
		if got := marker.Options[vniOpt]; got != "4096" {
			t.Errorf("marker got VNI %s, want 4096 (refused creates must not keep VNIs)", got)
		}
		if want := wantSubnet; len(marker.IPAM.Config) != 1 || marker.IPAM.Config[0].Subnet != want {
			t.Errorf("marker got subnet %+v, want %s: the refused creates kept subnets of the cluster pool", marker.IPAM.Config, want)
		}

		// A removed network's VNI is free again, as in Docker.
		t.Run("vni reused after rm", func(t *testing.T) {
			createOverlay(t, cl, "again", "-o", vniOpt+"=6000")
			ok(t, h1, "network", "rm", "again")
			for _, h := range []*lab.Host{h1, h2} {
				if !waitFor(20*time.Second, func() bool { return !slices.Contains(lsNames(t, h), "again") }) {
					t.Fatalf("%s still lists network again after rm", h.Node)
				}
			}
			ok(t, h2, "network", "create", "-d", "overlay", "-o", vniOpt+"=6000", "again2")
		})
	})
}

// lowestFreeSubnet is the first /24 of the cluster pool 10.0.0.0/8 that
// overlaps neither used nor any route of h, which the cluster-wide
// allocator must hand out next.
func lowestFreeSubnet(t *testing.T, h *lab.Host, used ...string) string {
	t.Helper()
	var avoid []netip.Prefix
	for _, u := range used {
		avoid = append(avoid, netip.MustParsePrefix(u))
	}
	for _, line := range strings.Split(hostRunOK(t, h, "ip", "-4", "-o", "route", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if !strings.Contains(f[0], "/") {
			f[0] += "/32"
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			avoid = append(avoid, p.Masked())
		}
	}
	for i := 0; i < 1<<16; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		if !slices.ContainsFunc(avoid, func(a netip.Prefix) bool { return a.Overlaps(p) }) {
			return p.String()
		}
	}
	t.Fatal("no free /24 in 10.0.0.0/8")
	return ""
}

func TestOverlayKControlPlane(t *testing.T) {
	t.Parallel()
	const n = 20
	forEachOverlayKDataplane(t, func(t *testing.T, dp overlayKDataplane) {
		cl := newClusterLab(t, 3, dp.args...)
		h1, h2 := cl.hosts[0], cl.hosts[1]
		id := createOverlay(t, cl, "ovcp")
		pinger := createOvCtr(t, cl, h2, "pinger", "ovcp")
		var creates, programmed, reachable []time.Duration
		for i := 0; i < n; i++ {
			start := time.Now()
			ep := createOvCtr(t, cl, h1, fmt.Sprintf("cp%d", i), "ovcp")
			creates = append(creates, time.Since(start))
			if dp.entries != nil {
				if _, done := waitEntries(t, dp, []*lab.Host{h2}, id, 15*time.Second, func(e tunnelEntries) bool { return e.has(ep) }); !done {
					t.Errorf("%s: not programmed on %s after 15 s", ep.ctr, h2.Node)
					continue
				}
				programmed = append(programmed, time.Since(start))
			}
			// One answer ends it; an echo every 50 ms until then.
			out, errOut, code := h2.Exec(pinger.ctr, "ping", "-c", "1", "-w", "15", "-i", "0.05", ep.ip)
			if code != 0 {
				t.Errorf("%s (%s) not reachable from %s after 15 s: exit %d: %s%s", ep.ctr, ep.ip, h2.Node, code, out, errOut)
				continue
			}
			reachable = append(reachable, time.Since(start))
		}
		t.Logf("timing: %d containers created on %s one after another, %d hosts (not asserted):", n, h1.Node, len(cl.hosts))
		t.Logf("timing:   create + inspect returned:     %s", medianP99(creates))
		if dp.entries != nil {
			t.Logf("timing:   programmed on %s:              %s", h2.Node, medianP99(programmed))
		}
		t.Logf("timing:   first ping from %s answered:   %s", h2.Node, medianP99(reachable))
	})
}

// medianP99 renders the median and p99 (nearest rank) of ds.
func medianP99(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return fmt.Sprintf("median %v, p99 %v, max %v (n=%d)", rank(0.5).Round(time.Millisecond), rank(0.99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}
