//go:build linux

package fastpath

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TC return codes as the kernel defines them.
const (
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

func ebpfRandHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ebpfTestPinDir mounts bpffs if needed and returns a fresh pin dir removed on cleanup.
func ebpfTestPinDir(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
			t.Skipf("no bpffs at /sys/fs/bpf: %v", err)
		}
	}
	dir := filepath.Join("/sys/fs/bpf", "netd-test-"+ebpfRandHex(t, 4))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func ebpfTestLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestEBPF loads the fast path on a fresh pin dir, skipping where BPF is missing.
func newTestEBPF(t testing.TB) *EBPF {
	t.Helper()
	dir := ebpfTestPinDir(t)
	e, err := NewEBPF(dir, ebpfTestLogger())
	if errors.Is(err, ErrEBPFUnsupported) || errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("eBPF not supported: %v", err)
	}
	if err != nil {
		t.Fatalf("NewEBPF: %+v", err)
	}
	t.Cleanup(func() { _ = e.Forget() })
	return e
}

// Fixture for prog.Run: the sender is ifindex 1 (lo), the device the kernel
// gives a test-run skb; other ifindexes are never touched, only named.
var (
	fxMAC1  = net.HardwareAddr{0x02, 0x42, 0x0a, 0x01, 0x00, 0x02}
	fxMAC2  = net.HardwareAddr{0x02, 0x42, 0x0a, 0x01, 0x00, 0x03}
	fxMAC3  = net.HardwareAddr{0x02, 0x42, 0x0a, 0x02, 0x00, 0x02} // other network
	fxGWMAC = net.HardwareAddr{0x02, 0x42, 0x0a, 0x01, 0x00, 0x01}
	fxBcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	fxIP1   = netip.MustParseAddr("10.1.0.2")
	fxIP2   = netip.MustParseAddr("10.1.0.3")
	fxIP3   = netip.MustParseAddr("10.2.0.2")
	fxGW    = netip.MustParseAddr("10.1.0.1")
	fxGWB   = netip.MustParseAddr("10.2.0.1")
	fxOut   = netip.MustParseAddr("192.0.2.7") // outside every netd subnet
	fxNetA  = &Network{Name: "neta", Index: 1, ICC: true, Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: fxGW}
	fxNetB  = &Network{Name: "netb", Index: 2, ICC: true, Subnet: netip.MustParsePrefix("10.2.0.0/24"), Gateway: fxGWB}
)

const (
	fxIfSender = 1
	fxIfPeer   = 1001
	fxIfOther  = 1002
)

func fxEndpoint(name string, mac net.HardwareAddr, ip netip.Addr) *Endpoint {
	return &Endpoint{ID: name, HostIfName: name, ContainerID: name, MAC: mac, Addr: netip.PrefixFrom(ip, 24)}
}

// newFixture fills the maps: sender and peer on network A, one endpoint on network B.
func newFixture(t testing.TB) *EBPF {
	t.Helper()
	e := newTestEBPF(t)
	for _, n := range []*Network{fxNetA, fxNetB} {
		if err := e.NetworkUp(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range []struct {
		n       *Network
		ep      *Endpoint
		ifindex int
	}{
		{fxNetA, fxEndpoint("sender", fxMAC1, fxIP1), fxIfSender},
		{fxNetA, fxEndpoint("peer", fxMAC2, fxIP2), fxIfPeer},
		{fxNetB, fxEndpoint("other", fxMAC3, fxIP3), fxIfOther},
	} {
		if err := e.programEndpoint(x.n, x.ep, x.ifindex); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func ethFrame(dst, src net.HardwareAddr, proto uint16, payload []byte) []byte {
	b := make([]byte, 0, 14+len(payload))
	b = append(b, dst...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, proto)
	return append(b, payload...)
}

// ipv4Packet builds an IPv4 header (ihl in 32-bit words) with an ICMP echo payload.
func ipv4Packet(src, dst netip.Addr, ihl int) []byte {
	hlen := ihl * 4
	if hlen < 20 {
		hlen = 20
	}
	icmp := []byte{8, 0, 0, 0, 0, 1, 0, 1, 'n', 'e', 't', 'd'}
	h := make([]byte, hlen)
	h[0] = 0x40 | byte(ihl&0x0f)
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(icmp)))
	h[8] = 64
	h[9] = 1
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, icmp...)
}

func arpPacket(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4}
	b = binary.BigEndian.AppendUint16(b, op)
	s, d := spa.As4(), tpa.As4()
	b = append(b, sha...)
	b = append(b, s[:]...)
	b = append(b, tha...)
	return append(b, d[:]...)
}

func vlanFrame(dst, src net.HardwareAddr, inner uint16, payload []byte) []byte {
	tag := binary.BigEndian.AppendUint16([]byte{0x00, 0x64}, inner)
	return ethFrame(dst, src, 0x8100, append(tag, payload...))
}

// runFrame returns the program's verdict. The kernel refuses to test-run
// frames without a full Ethernet header, or with an IPv4/IPv6 ethertype but
// less than a full IP header; those report ok=false (not redirected).
func runFrame(t testing.TB, e *EBPF, frame []byte) (ret uint32, ok bool) {
	t.Helper()
	ret, err := e.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		if len(frame) < 14+40 && errors.Is(err, unix.EINVAL) {
			return 0, false
		}
		t.Fatalf("prog.Run(%d bytes): %v", len(frame), err)
	}
	return ret, true
}

func counters(t testing.TB, e *EBPF, ifindex uint32) fastpathEpCounters {
	t.Helper()
	c, err := e.readCounters(ifindex)
	if err != nil {
		t.Fatalf("read counters: %v", err)
	}
	return c
}

// craftedFrames are the named cases of TestEBPFProgRun; they also seed the fuzzer.
func craftedFrames() []struct {
	name   string
	frame  []byte
	want   uint32
	reason int // drop reason expected for TC_ACT_SHOT, -1 otherwise
} {
	ip12 := ipv4Packet(fxIP1, fxIP2, 5)
	return []struct {
		name   string
		frame  []byte
		want   uint32
		reason int
	}{
		{"ipv4 to same-network endpoint", ethFrame(fxMAC2, fxMAC1, 0x0800, ip12), tcActRedirect, -1},
		{"ipv4 with options to endpoint", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 6)), tcActRedirect, -1},
		{"arp reply to endpoint", ethFrame(fxMAC2, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxMAC2, fxIP2)), tcActRedirect, -1},
		{"ipv4 to other network's MAC", ethFrame(fxMAC3, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5)), tcActShot, int(fastpathDropReasonDROP_ISOLATED)},
		{"ipv4 to gateway", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("8.8.8.8"), 5)), tcActOK, -1},
		{"ipv4 via gateway outside every subnet", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxOut, 5)), tcActOK, -1},
		{"ipv4 to gateway address", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxGW, 5)), tcActOK, -1},
		{"ipv4 via gateway to own subnet", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)), tcActOK, -1},
		{"ipv4 via gateway to other network", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5)), tcActShot, int(fastpathDropReasonDROP_ISOLATED)},
		{"ipv4 via gateway to other network's broadcast", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("10.2.0.255"), 5)), tcActShot, int(fastpathDropReasonDROP_ISOLATED)},
		{"ipv4 to other network's gateway (the host)", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxGWB, 5)), tcActOK, -1},
		{"ipv4 with options via gateway to other network", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 6)), tcActShot, int(fastpathDropReasonDROP_ISOLATED)},
		{"broadcast ipv4 to other network", ethFrame(fxBcast, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5)), tcActOK, -1},
		{"arp request for other network's address", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, make(net.HardwareAddr, 6), fxIP3)), tcActOK, -1},
		{"ipv4 to own MAC (hairpin)", ethFrame(fxMAC1, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP1, 5)), tcActOK, -1},
		{"arp request broadcast for gateway", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, make(net.HardwareAddr, 6), fxGW)), tcActOK, -1},
		{"arp probe (spa 0)", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, netip.IPv4Unspecified(), make(net.HardwareAddr, 6), fxIP1)), tcActOK, -1},
		{"multicast ipv4", ethFrame(net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("224.0.0.1"), 5)), tcActOK, -1},
		{"vlan-tagged to endpoint", vlanFrame(fxMAC2, fxMAC1, 0x0800, ip12), tcActOK, -1},
		{"qinq-tagged to endpoint", ethFrame(fxMAC2, fxMAC1, 0x88a8, append([]byte{0, 0x64, 0x08, 0x00}, ip12...)), tcActOK, -1},
		// The host and the peers take a priority tag (VID 0) as untagged: inner headers are checked.
		{"priority-tagged with spoofed source IP", ethFrame(fxGWMAC, fxMAC1, 0x8100, append([]byte{0, 0, 0x08, 0x00}, ipv4Packet(fxIP2, fxOut, 5)...)), tcActShot, int(fastpathDropReasonDROP_SPOOF_IP)},
		{"vlan-tagged with spoofed source IP", vlanFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP3, fxIP2, 5)), tcActShot, int(fastpathDropReasonDROP_SPOOF_IP)},
		{"qinq-tagged with spoofed source IP", ethFrame(fxMAC2, fxMAC1, 0x88a8, append([]byte{0, 0x64, 0x81, 0x00, 0, 0x65, 0x08, 0x00}, ipv4Packet(fxIP3, fxIP2, 5)...)), tcActShot, int(fastpathDropReasonDROP_SPOOF_IP)},
		{"vlan-tagged arp with spoofed sender IP", vlanFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxGW, make(net.HardwareAddr, 6), fxIP2)), tcActShot, int(fastpathDropReasonDROP_SPOOF_ARP)},
		{"vlan-tagged via gateway to other network", vlanFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5)), tcActShot, int(fastpathDropReasonDROP_ISOLATED)},
		{"vlan-tagged bad IHL", vlanFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 4)), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"three vlan tags", ethFrame(fxMAC2, fxMAC1, 0x88a8, append([]byte{0, 0x64, 0x81, 0x00, 0, 0x65, 0x81, 0x00, 0, 0x66, 0x08, 0x00}, ip12...)), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"spoofed source MAC", ethFrame(fxMAC2, fxGWMAC, 0x0800, ip12), tcActShot, int(fastpathDropReasonDROP_SPOOF_MAC)},
		{"spoofed source MAC of a peer", ethFrame(fxBcast, fxMAC2, 0x0806, arpPacket(1, fxMAC2, fxIP2, make(net.HardwareAddr, 6), fxGW)), tcActShot, int(fastpathDropReasonDROP_SPOOF_MAC)},
		{"spoofed source IP", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP3, fxIP2, 5)), tcActShot, int(fastpathDropReasonDROP_SPOOF_IP)},
		{"source IP 0.0.0.0", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(netip.IPv4Unspecified(), fxGW, 5)), tcActShot, int(fastpathDropReasonDROP_SPOOF_IP)},
		{"arp sender IP spoofed", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxGW, make(net.HardwareAddr, 6), fxIP2)), tcActShot, int(fastpathDropReasonDROP_SPOOF_ARP)},
		{"arp sender MAC spoofed", ethFrame(fxMAC2, fxMAC1, 0x0806, arpPacket(2, fxGWMAC, fxIP1, fxMAC2, fxIP2)), tcActShot, int(fastpathDropReasonDROP_SPOOF_ARP)},
		{"bad IHL 4", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 4)), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"IHL beyond frame", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 15)[:24]), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"ip version 6 in ipv4 ethertype", ethFrame(fxMAC2, fxMAC1, 0x0800, append([]byte{0x65}, ip12[1:]...)), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"ipv4 total length below header", ethFrame(fxMAC2, fxMAC1, 0x0800, append([]byte{0x45, 0, 0, 19}, ip12[4:]...)), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"truncated arp", ethFrame(fxMAC2, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxMAC2, fxIP2)[:27]), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
		{"arp for ipv6 protocol", ethFrame(fxBcast, fxMAC1, 0x0806, append([]byte{0, 1, 0x86, 0xdd}, arpPacket(1, fxMAC1, fxIP1, fxMAC2, fxIP2)[4:]...)), tcActShot, int(fastpathDropReasonDROP_MALFORMED)},
	}
}

func TestEBPFProgRun(t *testing.T) {
	e := newFixture(t)
	for _, tc := range craftedFrames() {
		t.Run(tc.name, func(t *testing.T) {
			before := counters(t, e, fxIfSender)
			ret, ok := runFrame(t, e, tc.frame)
			if !ok {
				t.Fatalf("kernel refused a %d-byte frame", len(tc.frame))
			}
			if ret != tc.want {
				t.Fatalf("verdict %d, want %d", ret, tc.want)
			}
			after := counters(t, e, fxIfSender)
			switch tc.want {
			case tcActRedirect:
				if after.FastPkts != before.FastPkts+1 || after.FastBytes != before.FastBytes+uint64(len(tc.frame)) {
					t.Errorf("fast counters %d/%d -> %d/%d", before.FastPkts, before.FastBytes, after.FastPkts, after.FastBytes)
				}
			case tcActOK:
				if after.SlowPkts != before.SlowPkts+1 {
					t.Errorf("slow packets %d -> %d", before.SlowPkts, after.SlowPkts)
				}
			case tcActShot:
				for i := range after.Drops {
					want := before.Drops[i]
					if i == tc.reason {
						want++
					}
					if after.Drops[i] != want {
						t.Errorf("drops[%s] = %d, want %d", DropReasonNames[i], after.Drops[i], want)
					}
				}
			}
		})
	}
}

func TestEBPFICCDisabled(t *testing.T) {
	e := newFixture(t)
	off := *fxNetA
	off.ICC = false
	if err := e.NetworkUp(&off); err != nil {
		t.Fatal(err)
	}
	before := counters(t, e, fxIfSender)
	if ret, _ := runFrame(t, e, ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5))); ret != tcActShot {
		t.Fatalf("ipv4 to peer with ICC off: verdict %d, want %d", ret, tcActShot)
	}
	if got := counters(t, e, fxIfSender).Drops[fastpathDropReasonDROP_ICC_DENIED]; got != before.Drops[fastpathDropReasonDROP_ICC_DENIED]+1 {
		t.Fatalf("ICC_DENIED drops = %d", got)
	}
	// Gateway traffic still flows, and ARP between peers (as with Docker's icc=false).
	if ret, _ := runFrame(t, e, ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxGW, 5))); ret != tcActOK {
		t.Fatalf("ipv4 to gateway with ICC off: verdict %d", ret)
	}
	if ret, _ := runFrame(t, e, ethFrame(fxMAC2, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxMAC2, fxIP2))); ret != tcActRedirect {
		t.Fatalf("arp reply with ICC off: verdict %d", ret)
	}
	// Network removed: the endpoint falls back to the bridge, never redirected.
	if err := e.NetworkDown(fxNetA); err != nil {
		t.Fatal(err)
	}
	if ret, _ := runFrame(t, e, ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5))); ret != tcActOK {
		t.Fatalf("after NetworkDown: verdict %d, want %d", ret, tcActOK)
	}
}

// verdict runs one IPv4 frame from the sender and checks the verdict and that
// exactly the expected counter moved (reason < 0: none of the drops).
func verdict(t *testing.T, e *EBPF, what string, frame []byte, want uint32, reason int) {
	t.Helper()
	before := counters(t, e, fxIfSender)
	ret, ok := runFrame(t, e, frame)
	if !ok || ret != want {
		t.Errorf("%s: verdict %d (ran %v), want %d", what, ret, ok, want)
		return
	}
	after := counters(t, e, fxIfSender)
	for i := range after.Drops {
		d := after.Drops[i] - before.Drops[i]
		if (i == reason) != (d == 1) || d > 1 {
			t.Errorf("%s: drops[%s] moved by %d", what, DropReasonNames[i], d)
		}
	}
	if want == tcActOK && after.SlowPkts != before.SlowPkts+1 {
		t.Errorf("%s: slow packets %d -> %d", what, before.SlowPkts, after.SlowPkts)
	}
}

func viaGW(dst netip.Addr) []byte {
	return ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, dst, 5))
}

// The subnets map follows NetworkUp/NetworkDown, and a network only ever
// removes its own subnet entry.
func TestEBPFIsolationBetweenNetworks(t *testing.T) {
	e := newFixture(t)
	if _, err := os.Stat(filepath.Join(e.PinDir(), "subnets")); err != nil {
		t.Fatalf("subnets map not pinned: %v", err)
	}
	isolated := int(fastpathDropReasonDROP_ISOLATED)
	verdict(t, e, "to other network", viaGW(fxIP3), tcActShot, isolated)
	verdict(t, e, "to own subnet via gateway", viaGW(fxIP2), tcActOK, -1)
	verdict(t, e, "outside every subnet", viaGW(fxOut), tcActOK, -1)
	// Same-network unicast still takes the fast path.
	verdict(t, e, "to same-network peer", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)), tcActRedirect, -1)

	// A longer prefix inside B's subnet belongs to a third network: longest match wins.
	netC := &Network{Name: "netc", Index: 3, ICC: true, Subnet: netip.MustParsePrefix("10.2.0.128/25"), Gateway: netip.MustParseAddr("10.2.0.129")}
	if err := e.NetworkUp(netC); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "to third network", viaGW(netip.MustParseAddr("10.2.0.130")), tcActShot, isolated)
	verdict(t, e, "to third network's gateway", viaGW(netC.Gateway), tcActOK, -1)
	if err := e.NetworkDown(netC); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "to third network's old gateway, now B's subnet", viaGW(netC.Gateway), tcActShot, isolated)

	// A network removed (or never on this dataplane) isolates nothing.
	if err := e.NetworkDown(fxNetB); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "to removed network", viaGW(fxIP3), tcActOK, -1)
	if err := e.NetworkDown(fxNetB); err != nil { // idempotent
		t.Fatalf("NetworkDown again: %v", err)
	}

	// Another network holding the same subnet keeps it when a stale owner goes down.
	netD := &Network{Name: "netd", Index: 4, ICC: true, Subnet: fxNetB.Subnet, Gateway: fxGWB}
	if err := e.NetworkUp(netD); err != nil {
		t.Fatal(err)
	}
	if err := e.NetworkDown(fxNetB); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "to subnet re-owned by another network", viaGW(fxIP3), tcActShot, isolated)
}

// On an internal network IPv4 never leaves the subnet, but the gateway and
// the peers stay reachable.
func TestEBPFInternalNetwork(t *testing.T) {
	e := newFixture(t)
	internal := *fxNetA
	internal.Internal = true
	if err := e.NetworkUp(&internal); err != nil {
		t.Fatal(err)
	}
	var ni fastpathNetworkInfo
	if err := e.networks.Lookup(internal.Index, &ni); err != nil || ni.Flags != netFlagICC|netFlagInternal {
		t.Fatalf("network flags %#x (%v), want ICC|INTERNAL", ni.Flags, err)
	}
	verdict(t, e, "outside", viaGW(fxOut), tcActShot, int(fastpathDropReasonDROP_INTERNAL))
	verdict(t, e, "host address of another network", viaGW(fxGWB), tcActShot, int(fastpathDropReasonDROP_INTERNAL))
	verdict(t, e, "other network", viaGW(fxIP3), tcActShot, int(fastpathDropReasonDROP_ISOLATED))
	verdict(t, e, "gateway address", viaGW(fxGW), tcActOK, -1)
	verdict(t, e, "own subnet via gateway", viaGW(fxIP2), tcActOK, -1)
	verdict(t, e, "peer", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)), tcActRedirect, -1)
	verdict(t, e, "arp for the gateway", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, make(net.HardwareAddr, 6), fxGW)), tcActOK, -1)
	verdict(t, e, "broadcast", ethFrame(fxBcast, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("255.255.255.255"), 5)), tcActOK, -1)

	// Updating the network clears the flag again.
	if err := e.NetworkUp(fxNetA); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "outside after internal cleared", viaGW(fxOut), tcActOK, -1)
}

func TestEBPFUnknownInterfacePassed(t *testing.T) {
	e := newTestEBPF(t) // empty maps: lo is nobody's veth
	ret, _ := runFrame(t, e, ethFrame(fxMAC2, fxGWMAC, 0x0800, ipv4Packet(fxIP3, fxIP2, 5)))
	if ret != tcActOK {
		t.Fatalf("verdict %d, want %d", ret, tcActOK)
	}
}

// Every truncation of valid frames, 0..60 bytes, must never be redirected.
func TestEBPFTruncatedFrames(t *testing.T) {
	e := newFixture(t)
	frames := [][]byte{
		ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)),
		ethFrame(fxMAC2, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxMAC2, fxIP2)),
		vlanFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5)),
	}
	ran := 0
	for _, full := range frames {
		full = append(full, make([]byte, 64)...) // room to cut anywhere up to 60
		for n := 0; n <= 60; n++ {
			frame := full[:n]
			ret, ok := runFrame(t, e, frame)
			if !ok {
				continue // the kernel does not even run it: not redirected
			}
			ran++
			complete := n >= 14+20 && binary.BigEndian.Uint16(frame[12:]) == 0x0800 ||
				n >= 14+28 && binary.BigEndian.Uint16(frame[12:]) == 0x0806
			if ret == tcActRedirect && !complete {
				t.Errorf("%d-byte prefix of ethertype %#04x redirected", n, binary.BigEndian.Uint16(full[12:]))
			}
			if n >= 14 && binary.BigEndian.Uint16(frame[12:]) == 0x8100 && ret == tcActRedirect {
				t.Errorf("%d-byte vlan frame redirected", n)
			}
		}
	}
	if ran < 60 {
		t.Fatalf("only %d truncated frames were run by the kernel", ran)
	}
}

// ---- namespaces ----

// newTestNetns creates a named throwaway netns removed on cleanup.
func newTestNetns(t testing.TB) (netns.NsHandle, string) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	name := "ndt-" + ebpfRandHex(t, 3)
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		panic("cannot restore netns: " + err.Error())
	}
	t.Cleanup(func() {
		ns.Close()
		_ = netns.DeleteNamed(name)
	})
	return ns, name
}

// inNetns runs fn on a locked thread switched into ns.
func inNetns(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot restore netns: " + err.Error()) // leave the thread locked: it is tainted
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// addVeth creates host<->peer in hostNS, moves peer to peerNS (if valid) and sets it up.
func addVeth(t testing.TB, hostNS, peerNS netns.NsHandle, host, peer string, mac net.HardwareAddr, addr string) int {
	t.Helper()
	h, err := netlink.NewHandleAt(hostNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: peer, PeerHardwareAddr: mac}
	if err := h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", host, err)
	}
	hl, err := h.LinkByName(host)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	if !peerNS.IsOpen() {
		return hl.Attrs().Index
	}
	pl, err := h.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetNsFd(pl, int(peerNS)); err != nil {
		t.Fatal(err)
	}
	ph, err := netlink.NewHandleAt(peerNS)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	pl, err = ph.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.AddrAdd(pl, a); err != nil {
		t.Fatal(err)
	}
	if err := ph.LinkSetUp(pl); err != nil {
		t.Fatal(err)
	}
	if lo, err := ph.LinkByName("lo"); err == nil {
		_ = ph.LinkSetUp(lo)
	}
	return hl.Attrs().Index
}

func TestEBPFPinAdopt(t *testing.T) {
	dir := ebpfTestPinDir(t)
	hostNS, _ := newTestNetns(t)
	ifindex := addVeth(t, hostNS, netns.None(), "ndtest0", "ndtest0p", fxMAC1, "")
	n := &Network{Name: "adopt", Index: 7, ICC: true}
	ep := fxEndpoint("ndtest0", fxMAC1, fxIP1)
	ep.HostIfName = "ndtest0"

	var first, second attachIDs
	inNetns(t, hostNS, func() {
		e, err := NewEBPF(dir, ebpfTestLogger())
		if err != nil {
			t.Fatalf("NewEBPF: %+v", err)
		}
		if err := e.NetworkUp(n); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(n, ep, ifindex); err != nil {
			t.Fatalf("EndpointUp: %+v", err)
		}
		if err := e.EndpointUp(n, ep, ifindex); err != nil { // idempotent
			t.Fatalf("EndpointUp again: %+v", err)
		}
		first = attachmentIDs(t, e, "ndtest0")
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join(dir, "links", "ndtest0")); err != nil {
		t.Fatalf("link pin gone after Close: %v", err)
	}
	inNetns(t, hostNS, func() {
		e, err := NewEBPF(dir, ebpfTestLogger())
		if err != nil {
			t.Fatalf("NewEBPF (restart): %+v", err)
		}
		t.Cleanup(func() { _ = e.Forget() })
		if got := e.ProgramID(); uint32(got) != first.program {
			t.Errorf("program reloaded on restart: id %d, was %d", got, first.program)
		}
		if err := e.EndpointUp(n, ep, ifindex); err != nil {
			t.Fatalf("EndpointUp after restart: %+v", err)
		}
		second = attachmentIDs(t, e, "ndtest0")
		// The endpoint table survived too.
		var info fastpathIfaceInfo
		if err := e.ifaces.Lookup(uint32(ifindex), &info); err != nil || !bytes.Equal(info.Mac[:], fxMAC1) {
			t.Errorf("iface entry after restart: %v %v", info, err)
		}
		if err := e.EndpointDown(n, ep); err != nil {
			t.Fatalf("EndpointDown: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "links", "ndtest0")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("link pin still there after EndpointDown: %v", err)
		}
		st, err := e.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Programs) != 0 || len(st.Endpoints) != 0 {
			t.Errorf("status after EndpointDown: %+v", st)
		}
	})
	if first != second {
		t.Fatalf("attachment not adopted: before %+v, after %+v", first, second)
	}
	if first.link == 0 || first.program == 0 {
		t.Fatalf("missing IDs: %+v", first)
	}
}

// attachIDs are the kernel IDs Status reports for one interface.
type attachIDs struct{ program, link uint32 }

func attachmentIDs(t testing.TB, e *EBPF, ifname string) attachIDs {
	t.Helper()
	st, err := e.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Programs {
		if p.Interface == ifname {
			if p.Hook != HookTCXIngress || p.Program != "from_container" || p.Pinned == "" {
				t.Errorf("attachment %+v", p)
			}
			return attachIDs{p.ProgramID, p.LinkID}
		}
	}
	t.Fatalf("%s not in status %+v", ifname, st.Programs)
	return attachIDs{}
}

// A pinned map whose layout changed is replaced, keeping the entries that fit.
func TestEBPFMapMigration(t *testing.T) {
	dir := ebpfTestPinDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "networks", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Put(uint32(9), uint32(netFlagICC)); err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(filepath.Join(dir, "networks")); err != nil {
		t.Fatal(err)
	}
	old.Close()
	// A per-CPU counters map with a shorter value: values are zero-extended.
	oldc, err := ebpf.NewMap(&ebpf.MapSpec{Name: "counters", Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 16, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][2]uint64, ebpf.MustPossibleCPU())
	vals[0] = [2]uint64{5, 500}
	if err := oldc.Put(uint32(3), vals); err != nil {
		t.Fatal(err)
	}
	if err := oldc.Pin(filepath.Join(dir, "counters")); err != nil {
		t.Fatal(err)
	}
	oldc.Close()

	e, err := NewEBPF(dir, ebpfTestLogger())
	if err != nil {
		t.Fatalf("NewEBPF: %+v", err)
	}
	defer e.Forget()
	info, err := e.networks.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxEntries != 1024 {
		t.Errorf("networks max entries %d, want 1024", info.MaxEntries)
	}
	var ni fastpathNetworkInfo
	if err := e.networks.Lookup(uint32(9), &ni); err != nil || ni.Flags != netFlagICC {
		t.Errorf("migrated entry: %+v %v", ni, err)
	}
	c := counters(t, e, 3)
	if c.FastPkts != 5 || c.FastBytes != 500 || c.SlowPkts != 0 {
		t.Errorf("migrated counters: %+v", c)
	}
	pinned, err := ebpf.LoadPinnedMap(filepath.Join(dir, "networks"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	if pi, _ := pinned.Info(); pi.MaxEntries != 1024 {
		t.Errorf("pin not replaced: max entries %d", pi.MaxEntries)
	}
}

// The clsact fallback attaches a direct-action filter, adopts it, and removes it.
func TestEBPFTCFallback(t *testing.T) {
	dir := ebpfTestPinDir(t)
	hostNS, _ := newTestNetns(t)
	ifindex := addVeth(t, hostNS, netns.None(), "ndtest1", "ndtest1p", fxMAC1, "")
	n := &Network{Name: "tc", Index: 8, ICC: true}
	ep := fxEndpoint("ndtest1", fxMAC1, fxIP1)
	inNetns(t, hostNS, func() {
		e, err := NewEBPF(dir, ebpfTestLogger())
		if err != nil {
			t.Fatalf("NewEBPF: %+v", err)
		}
		defer e.Forget()
		e.forceTC = true
		for range 2 {
			if err := e.EndpointUp(n, ep, ifindex); err != nil {
				t.Fatalf("EndpointUp: %+v", err)
			}
		}
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			t.Fatal(err)
		}
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			t.Fatal(err)
		}
		if len(filters) != 1 {
			t.Fatalf("want one filter, got %d", len(filters))
		}
		bf, ok := filters[0].(*netlink.BpfFilter)
		if !ok || !bf.DirectAction || ebpf.ProgramID(bf.Id) != e.ProgramID() {
			t.Fatalf("filter %+v", filters[0])
		}
		st, err := e.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Programs) != 1 || st.Programs[0].Hook != HookTCIngress {
			t.Fatalf("status %+v", st.Programs)
		}
		if err := e.EndpointDown(n, ep); err != nil {
			t.Fatal(err)
		}
		filters, err = netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			t.Fatal(err)
		}
		if len(filters) != 0 {
			t.Fatalf("filters left after EndpointDown: %d", len(filters))
		}
	})
}

// Two peers on a Linux bridge with the fast path attached: ping works and
// goes through bpf_redirect_peer; with ICC off it is dropped in eBPF.
func TestEBPFEndToEnd(t *testing.T) {
	dir := ebpfTestPinDir(t)
	hostNS, _ := newTestNetns(t)
	nsA, nameA := newTestNetns(t)
	nsB, _ := newTestNetns(t)

	h, err := netlink.NewHandleAt(hostNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ndtbr0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	brAddr, _ := netlink.ParseAddr("10.99.0.1/24")
	if err := h.AddrAdd(br, brAddr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	ifA := addVeth(t, hostNS, nsA, "ndtA", "eth0", fxMAC1, "10.99.0.2/24")
	ifB := addVeth(t, hostNS, nsB, "ndtB", "eth0", fxMAC2, "10.99.0.3/24")
	for _, name := range []string{"ndtA", "ndtB"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			t.Fatal(err)
		}
	}

	n := &Network{Name: "e2e", Index: 3, ICC: true}
	epA := &Endpoint{ID: "a", ContainerID: "ca", HostIfName: "ndtA", MAC: fxMAC1, Addr: netip.MustParsePrefix("10.99.0.2/24")}
	epB := &Endpoint{ID: "b", ContainerID: "cb", HostIfName: "ndtB", MAC: fxMAC2, Addr: netip.MustParsePrefix("10.99.0.3/24")}
	var e *EBPF
	inNetns(t, hostNS, func() {
		e, err = NewEBPF(dir, ebpfTestLogger())
		if err != nil {
			t.Fatalf("NewEBPF: %+v", err)
		}
		if err := e.NetworkUp(n); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(n, epA, ifA); err != nil {
			t.Fatalf("EndpointUp A: %+v", err)
		}
		if err := e.EndpointUp(n, epB, ifB); err != nil {
			t.Fatalf("EndpointUp B: %+v", err)
		}
	})
	t.Cleanup(func() { _ = e.Forget() })

	ping := func(count string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nameA, "ping", "-c", count, "-i", "0.2", "-W", "1", "10.99.0.3").CombinedOutput()
		if err != nil {
			return errors.New(err.Error() + ": " + string(out))
		}
		return nil
	}
	if err := ping("5"); err != nil {
		t.Fatalf("ping A->B: %v", err)
	}
	// Gateway (the bridge address) goes the slow path and works too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nameA, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.99.0.1").CombinedOutput(); err != nil {
		t.Fatalf("ping A->gateway: %v %s", err, out)
	}

	st, err := e.Status()
	if err != nil {
		t.Fatal(err)
	}
	byIf := map[string]int{}
	for i, c := range st.Endpoints {
		byIf[c.Interface] = i
	}
	a, b := st.Endpoints[byIf["ndtA"]], st.Endpoints[byIf["ndtB"]]
	if a.FastPackets < 5 || b.FastPackets < 5 || a.FastBytes == 0 {
		t.Errorf("fast path counters did not move: A %+v B %+v", a, b)
	}
	if a.SlowPackets == 0 {
		t.Errorf("slow path counter of A did not move (gateway traffic): %+v", a)
	}
	if a.Network != "e2e" || a.Container != "ca" || a.MacAddress != fxMAC1.String() {
		t.Errorf("endpoint counters labels: %+v", a)
	}

	off := *n
	off.ICC = false
	if err := e.NetworkUp(&off); err != nil {
		t.Fatal(err)
	}
	if err := ping("2"); err == nil {
		t.Fatal("ping A->B succeeded with ICC off")
	}
	st, err = e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Endpoints[byIf["ndtA"]].Drops["ICC_DENIED"]; got == 0 {
		t.Errorf("no ICC_DENIED drops: %+v", st.Endpoints[byIf["ndtA"]])
	}
}
