//go:build linux

package fastpath

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

// TC return codes as the kernel defines them.
const (
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

func ebpfTestLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// loadEBPF loads the fast path pinned on dir in the calling thread's netns,
// as a (re)starting daemon does.
func loadEBPF(t testing.TB, dir string) *EBPF {
	t.Helper()
	e, err := NewEBPF(dir, ebpfTestLogger())
	if err != nil {
		t.Fatalf("NewEBPF on %s: %+v", dir, err)
	}
	return e
}

// newTestEBPF loads the fast path on a fresh pin dir, skipping where BPF is missing.
func newTestEBPF(t testing.TB) *EBPF {
	t.Helper()
	e, err := NewEBPF(nstest.PinDir(t), ebpfTestLogger())
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

// attachHost is a fresh pin dir and the throwaway netns whose veths the fast
// path attaches to.
func attachHost(t testing.TB) (dir string, hostNS netns.NsHandle) {
	t.Helper()
	dir = nstest.PinDir(t)
	hostNS, _ = nstest.NetNS(t)
	return dir, hostNS
}

// upEndpoint is an endpoint of network n on the host veth ifindex.
type upEndpoint struct {
	n       *Network
	ep      *Endpoint
	ifindex int
}

// hostEndpoint adds the veth name (its peer name+"p" left in hostNS too) and
// the endpoint of n on it.
func hostEndpoint(t testing.TB, hostNS netns.NsHandle, n *Network, name string, mac net.HardwareAddr, ip netip.Addr) upEndpoint {
	t.Helper()
	return upEndpoint{n, fxEndpoint(name, mac, ip), addVeth(t, hostNS, netns.None(), name, name+"p", mac, "")}
}

// stoppedDaemon brings eps up in hostNS with the fast path pinned on dir and
// closes it as a stopping daemon does, leaving all of it pinned.
func stoppedDaemon(t testing.TB, hostNS netns.NsHandle, dir string, eps ...upEndpoint) {
	t.Helper()
	nstest.In(t, hostNS, func() {
		e := loadEBPF(t, dir)
		for _, x := range eps {
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

// IPv6 fixture: link-local addresses of the sender and the peer, and the all-nodes group.
var (
	fxLL1         = netip.MustParseAddr("fe80::42:aff:fe01:2")
	fxLL2         = netip.MustParseAddr("fe80::42:aff:fe01:3")
	fxAllNodes    = netip.MustParseAddr("ff02::1")
	fxAllNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// ipv6Packet builds an IPv6 header carrying an ICMPv6 message (checksum left
// zero: the program never looks past the ethertype).
func ipv6Packet(src, dst netip.Addr, icmp []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(icmp)))
	h[6] = 58 // ICMPv6
	h[7] = 255
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, icmp...)
}

func icmpv6Echo() []byte { return []byte{128, 0, 0, 0, 0, 1, 0, 1, 'n', 'e', 't', 'd'} }

// neighbourAdvert claims target is at mac, overriding caches: NDP spoofing.
func neighbourAdvert(target netip.Addr, mac net.HardwareAddr) []byte {
	b := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // type NA, flag O
	a := target.As16()
	b = append(b, a[:]...)
	b = append(b, 2, 1) // option: target link-layer address, 8 bytes
	return append(b, mac...)
}

// ethertypeAfterTags is the ethertype past up to two VLAN tags, as the program parses it.
func ethertypeAfterTags(frame []byte) (uint16, bool) {
	off := 12
	for range 3 {
		if len(frame) < off+2 {
			return 0, false
		}
		et := binary.BigEndian.Uint16(frame[off:])
		if et != 0x8100 && et != 0x88a8 {
			return et, true
		}
		off += 4
	}
	return 0, false
}
