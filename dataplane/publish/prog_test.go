//go:build linux

package publish

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/fastpath"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

// TC verdicts as the kernel numbers them.
const (
	tcOK       = 0
	tcShot     = 2
	tcRedirect = 7
)

// The fixture: container A (10.1.0.2) publishes 80/tcp and 53/udp on host
// port 8080 and 5353 of every host address; container B (10.1.0.3) is on
// the same network. prog.Run gives every skb ifindex 1, which plays
// container A's host veth for from_container and the uplink for from_uplink.
var (
	fxHost     = netip.MustParseAddr("192.0.2.10")   // the host's uplink address
	fxClient   = netip.MustParseAddr("198.51.100.5") // outside
	fxRouter   = netip.MustParseAddr("203.0.113.1")  // sends ICMP errors
	fxA        = netip.MustParseAddr("10.1.0.2")     // published container
	fxB        = netip.MustParseAddr("10.1.0.3")     // another container
	fxGW       = netip.MustParseAddr("10.1.0.1")     // bridge
	fxMACA     = net.HardwareAddr{2, 0x42, 10, 1, 0, 2}
	fxMACB     = net.HardwareAddr{2, 0x42, 10, 1, 0, 3}
	fxMACGW    = net.HardwareAddr{2, 0x42, 10, 1, 0, 1}
	fxMACUp    = net.HardwareAddr{2, 0, 0, 0, 0, 0x10} // the uplink
	fxMACPeer  = net.HardwareAddr{2, 0, 0, 0, 0, 0x20} // the client's next hop
	fxIfA      = 1
	fxIfB      = 1001
	fxTCP8080  = dataplane.PortMapping{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerPort: 80}
	fxUDP5353  = dataplane.PortMapping{Proto: "udp", HostIP: netip.IPv4Unspecified(), HostPort: 5353, ContainerPort: 53}
	fxLoopback = dataplane.PortMapping{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9090, ContainerPort: 90}
)

type fixture struct {
	pub      *Publisher
	uplink   *ebpf.Program
	fromCont *ebpf.Program
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns, _ := nstest.NetNS(t)
	var fx fixture
	nstest.In(t, ns, func() {
		dir := nstest.PinDir(t)
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		e, err := fastpath.NewEBPF(dir, logger)
		if errors.Is(err, fastpath.ErrEBPFUnsupported) || errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("eBPF not supported: %v", err)
		}
		if err != nil {
			t.Fatalf("fastpath: %+v", err)
		}
		t.Cleanup(func() { _ = e.Forget() })
		p, err := New(Config{PinDir: dir, Cgroup: "none", Logger: logger})
		if err != nil {
			t.Fatalf("New: %+v", err)
		}
		t.Cleanup(func() { _ = p.Forget() })
		fx.pub = p
		fx.uplink = p.ups.Prog
		fx.fromCont, err = ebpf.LoadPinnedProgram(filepath.Join(dir, "netd_from_container"), nil)
		if err != nil {
			t.Fatalf("load from_container: %v", err)
		}
		t.Cleanup(func() { _ = fx.fromCont.Close() })
		ifaces, err := ebpf.LoadPinnedMap(filepath.Join(dir, "netd_ifaces"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ifaces.Close()
		for _, x := range []struct {
			ifindex uint32
			ip      netip.Addr
			mac     net.HardwareAddr
		}{{uint32(fxIfA), fxA, fxMACA}, {uint32(fxIfB), fxB, fxMACB}} {
			v := make([]byte, 16) // struct iface_info
			binary.NativeEndian.PutUint32(v[0:], 1)
			a := x.ip.As4()
			copy(v[4:8], a[:])
			copy(v[8:14], x.mac)
			if err := ifaces.Put(x.ifindex, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.maps.NetdLocaladdr.Put(be32(fxHost), uint32(1)); err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(targetA(), []dataplane.PortMapping{fxTCP8080, fxUDP5353, fxLoopback}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	})
	return &fx
}

func targetA() Target {
	return Target{NetworkID: "net", EndpointID: "epa", Addr: fxA, MAC: fxMACA, HostIfindex: fxIfB + 1, BridgeMAC: fxMACGW, Gateway: fxGW}
}

// run runs prog on frame and returns the verdict and the packet after it.
func run(t *testing.T, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatalf("prog.Run: %v", err)
	}
	return ret, out[:len(frame)]
}

type l4 struct {
	proto        uint8
	sport, dport uint16
	flags        uint8 // TCP
	payload      []byte
	noCsum       bool // UDP checksum 0
}

func csum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func pseudo(src, dst netip.Addr, proto uint8, n int) uint32 {
	s, d := src.As4(), dst.As4()
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	return sum + uint32(proto) + uint32(n)
}

func l4Bytes(src, dst netip.Addr, x l4) []byte {
	var h []byte
	switch x.proto {
	case unix.IPPROTO_TCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], x.sport)
		binary.BigEndian.PutUint16(h[2:], x.dport)
		binary.BigEndian.PutUint32(h[4:], 1000)
		h[12] = 5 << 4
		h[13] = x.flags
		binary.BigEndian.PutUint16(h[14:], 65535)
		h = append(h, x.payload...)
		binary.BigEndian.PutUint16(h[16:], csum(h, pseudo(src, dst, x.proto, len(h))))
	case unix.IPPROTO_UDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], x.sport)
		binary.BigEndian.PutUint16(h[2:], x.dport)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(x.payload)))
		h = append(h, x.payload...)
		if !x.noCsum {
			c := csum(h, pseudo(src, dst, x.proto, len(h)))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(h[6:], c)
		}
	}
	return h
}

func ipv4(src, dst netip.Addr, proto uint8, id, frag uint16, payload []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], id)
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], csum(h, 0))
	return append(h, payload...)
}

func eth(dst, src net.HardwareAddr, l3 []byte) []byte {
	b := append(append(append([]byte{}, dst...), src...), 0x08, 0x00)
	return append(b, l3...)
}

func packet(dmac, smac net.HardwareAddr, src, dst netip.Addr, x l4) []byte {
	return eth(dmac, smac, ipv4(src, dst, x.proto, 7, 0, l4Bytes(src, dst, x)))
}

// parsed is what a test checks of a packet a program let out.
type parsed struct {
	dmac, smac   net.HardwareAddr
	src, dst     netip.Addr
	ttl          uint8
	sport, dport uint16
}

// parse checks every checksum of frame (IPv4 TCP/UDP) and returns its fields.
func parse(t *testing.T, frame []byte) parsed {
	t.Helper()
	ip := frame[14:]
	if csum(ip[:20], 0) != 0 {
		t.Fatalf("bad IPv4 header checksum in % x", ip[:20])
	}
	p := parsed{dmac: frame[0:6], smac: frame[6:12], ttl: ip[8]}
	p.src = netip.AddrFrom4([4]byte(ip[12:16]))
	p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	seg := ip[20:binary.BigEndian.Uint16(ip[2:])]
	p.sport = binary.BigEndian.Uint16(seg[0:])
	p.dport = binary.BigEndian.Uint16(seg[2:])
	frag := binary.BigEndian.Uint16(ip[6:])
	if frag&0x3fff != 0 {
		return p // a fragment: the L4 checksum covers the whole datagram
	}
	if ip[9] == unix.IPPROTO_UDP && binary.BigEndian.Uint16(seg[6:]) == 0 {
		return p
	}
	if csum(seg, pseudo(p.src, p.dst, ip[9], len(seg))) != 0 {
		t.Fatalf("bad L4 checksum after translation: %s:%d -> %s:%d", p.src, p.sport, p.dst, p.dport)
	}
	return p
}

func wantFields(t *testing.T, got parsed, dmac, smac net.HardwareAddr, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) {
	t.Helper()
	if !bytes.Equal(got.dmac, dmac) || !bytes.Equal(got.smac, smac) || got.src != src || got.dst != dst || got.sport != sport || got.dport != dport {
		t.Fatalf("got %s > %s %s:%d -> %s:%d, want %s > %s %s:%d -> %s:%d",
			got.smac, got.dmac, got.src, got.sport, got.dst, got.dport, smac, dmac, src, sport, dst, dport)
	}
}

func TestPublishTCPAndReply(t *testing.T) {
	fx := newFixture(t)
	syn := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 40000, dport: 8080, flags: 0x02})
	ret, out := run(t, fx.uplink, syn)
	if ret != tcRedirect {
		t.Fatalf("SYN to the published port: verdict %d, want redirect", ret)
	}
	got := parse(t, out)
	// The container sees the client's own address.
	wantFields(t, got, fxMACA, fxMACGW, fxClient, 40000, fxA, 80)
	if got.ttl != 63 {
		t.Fatalf("TTL %d after crossing the host, want 63", got.ttl)
	}
	if n, _ := fx.pub.Flows(); n != 2 {
		t.Fatalf("flow table has %d entries, want 2 (both directions)", n)
	}

	reply := packet(fxMACGW, fxMACA, fxA, fxClient, l4{proto: unix.IPPROTO_TCP, sport: 80, dport: 40000, flags: 0x12, payload: []byte("hello")})
	ret, out = run(t, fx.fromCont, reply)
	if ret != tcRedirect {
		t.Fatalf("reply: verdict %d, want redirect to the uplink", ret)
	}
	wantFields(t, parse(t, out), fxMACPeer, fxMACUp, fxHost, 8080, fxClient, 40000)

	// Only replies: the same container to another peer port is not translated.
	other := packet(fxMACGW, fxMACA, fxA, fxClient, l4{proto: unix.IPPROTO_TCP, sport: 80, dport: 40001, flags: 0x12})
	if ret, out = run(t, fx.fromCont, other); ret != tcOK || !bytes.Equal(out, other) {
		t.Fatalf("unrelated packet from the container: verdict %d (changed %v), want it left to the bridge", ret, !bytes.Equal(out, other))
	}
	// Nor is a new connection from the container's published port.
	c2 := packet(fxMACGW, fxMACA, fxA, fxRouter, l4{proto: unix.IPPROTO_TCP, sport: 80, dport: 40000, flags: 0x02})
	if ret, _ = run(t, fx.fromCont, c2); ret != tcOK {
		t.Fatalf("new flow from the container: verdict %d, want the bridge's", ret)
	}
}

func TestPublishUDP(t *testing.T) {
	fx := newFixture(t)
	for _, noCsum := range []bool{false, true} {
		q := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_UDP, sport: 33000, dport: 5353, payload: []byte("query"), noCsum: noCsum})
		ret, out := run(t, fx.uplink, q)
		if ret != tcRedirect {
			t.Fatalf("UDP (checksum 0: %v): verdict %d", noCsum, ret)
		}
		wantFields(t, parse(t, out), fxMACA, fxMACGW, fxClient, 33000, fxA, 53)
		if noCsum && binary.BigEndian.Uint16(out[14+20+6:]) != 0 {
			t.Fatal("a UDP checksum of 0 (none) must stay 0")
		}
		r := packet(fxMACGW, fxMACA, fxA, fxClient, l4{proto: unix.IPPROTO_UDP, sport: 53, dport: 33000, payload: []byte("answer!")})
		ret, out = run(t, fx.fromCont, r)
		if ret != tcRedirect {
			t.Fatalf("UDP reply: verdict %d", ret)
		}
		wantFields(t, parse(t, out), fxMACPeer, fxMACUp, fxHost, 5353, fxClient, 33000)
	}
}

func TestPublishNotOurs(t *testing.T) {
	fx := newFixture(t)
	for name, frame := range map[string][]byte{
		"unpublished port":   packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 1, dport: 8081, flags: 2}),
		"other protocol":     packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_UDP, sport: 1, dport: 8080}),
		"not a host address": packet(fxMACUp, fxMACPeer, fxClient, netip.MustParseAddr("192.0.2.99"), l4{proto: unix.IPPROTO_TCP, sport: 1, dport: 8080, flags: 2}),
		"truncated TCP":      eth(fxMACUp, fxMACPeer, ipv4(fxClient, fxHost, unix.IPPROTO_TCP, 1, 0, []byte{0x9c, 0x40, 0x1f, 0x90})),
		"bad IHL": func() []byte {
			f := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 1, dport: 8080})
			f[14] = 0x44
			return f
		}(),
		"IPv4 version 6": func() []byte {
			f := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 1, dport: 8080})
			f[14] = 0x65
			return f
		}(),
		"ARP": append(append(append([]byte{}, fxMACUp...), fxMACPeer...), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1),
	} {
		ret, out := run(t, fx.uplink, frame)
		if ret != tcOK || !bytes.Equal(out, frame) {
			t.Errorf("%s: verdict %d, changed %v; want it left to the stack untouched", name, ret, !bytes.Equal(out, frame))
		}
	}
	if n, _ := fx.pub.Flows(); n != 0 {
		t.Fatalf("flow table has %d entries after packets not ours", n)
	}
}

func TestPublishLoopbackFromOutsideDropped(t *testing.T) {
	fx := newFixture(t)
	f := packet(fxMACUp, fxMACPeer, fxClient, netip.MustParseAddr("127.0.0.1"), l4{proto: unix.IPPROTO_TCP, sport: 1, dport: 9090, flags: 2})
	if ret, _ := run(t, fx.uplink, f); ret != tcShot {
		t.Fatalf("127.0.0.1:9090 from outside: verdict %d, want drop", ret)
	}
	st, err := fx.pub.Stats()
	if err != nil || st.LoopbackDrops != 1 {
		t.Fatalf("loopback drops %d (%v), want 1", st.LoopbackDrops, err)
	}
}

// icmpError builds an ICMP error from src to dst quoting quoted (whole or cut to n bytes of L4).
func icmpError(src, dst netip.Addr, typ, code uint8, quoted []byte, n int) []byte {
	q := quoted
	if n > 0 && 20+n < len(q) {
		q = q[:20+n]
	}
	m := make([]byte, 8, 8+len(q))
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint16(m[6:], 1400) // next-hop MTU of frag needed
	m = append(m, q...)
	binary.BigEndian.PutUint16(m[2:], csum(m, 0))
	return ipv4(src, dst, unix.IPPROTO_ICMP, 9, 0, m)
}

func checkICMP(t *testing.T, frame []byte) (outer parsed, inner []byte) {
	t.Helper()
	ip := frame[14:]
	if csum(ip[:20], 0) != 0 {
		t.Fatal("bad outer IPv4 checksum")
	}
	outer = parsed{dmac: frame[0:6], smac: frame[6:12], src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20]))}
	m := ip[20:binary.BigEndian.Uint16(ip[2:])]
	if csum(m, 0) != 0 {
		t.Fatal("bad ICMP checksum after translation")
	}
	inner = m[8:]
	if csum(inner[:20], 0) != 0 {
		t.Fatal("bad checksum of the quoted IPv4 header")
	}
	return outer, inner
}

func TestPublishICMPErrors(t *testing.T) {
	for _, cut := range []int{0, 8} { // whole quote, and the 8 bytes RFC 792 promises
		fx := newFixture(t)
		syn := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 40000, dport: 8080, flags: 2})
		if ret, _ := run(t, fx.uplink, syn); ret != tcRedirect {
			t.Fatal("SYN not translated")
		}
		// The reply as it left the host, quoted by a router that needs fragments.
		sent := ipv4(fxHost, fxClient, unix.IPPROTO_TCP, 3, 0x4000, l4Bytes(fxHost, fxClient, l4{proto: unix.IPPROTO_TCP, sport: 8080, dport: 40000, flags: 0x10, payload: make([]byte, 40)}))
		f := eth(fxMACUp, fxMACPeer, icmpError(fxRouter, fxHost, 3, 4, sent, cut))
		ret, out := run(t, fx.uplink, f)
		if ret != tcRedirect {
			t.Fatalf("frag-needed (quote cut to %d): verdict %d, want redirect into the container", cut, ret)
		}
		o, in := checkICMP(t, out)
		if o.dst != fxA || o.src != fxRouter || !bytes.Equal(o.dmac, fxMACA) {
			t.Fatalf("outer %s -> %s, want %s -> %s", o.src, o.dst, fxRouter, fxA)
		}
		isrc := netip.AddrFrom4([4]byte(in[12:16]))
		idst := netip.AddrFrom4([4]byte(in[16:20]))
		isport := binary.BigEndian.Uint16(in[20:])
		if isrc != fxA || idst != fxClient || isport != 80 {
			t.Fatalf("quoted header %s:%d -> %s, want %s:80 -> %s", isrc, isport, idst, fxA, fxClient)
		}
		if cut == 0 {
			seg := in[20:]
			if csum(seg, pseudo(isrc, idst, unix.IPPROTO_TCP, len(seg))) != 0 {
				t.Fatal("bad quoted TCP checksum")
			}
		}

		// The container's own port unreachable for a client's UDP, going out.
		q := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_UDP, sport: 33001, dport: 5353, payload: []byte("q")})
		if ret, _ := run(t, fx.uplink, q); ret != tcRedirect {
			t.Fatal("UDP not translated")
		}
		got := ipv4(fxClient, fxA, unix.IPPROTO_UDP, 4, 0, l4Bytes(fxClient, fxA, l4{proto: unix.IPPROTO_UDP, sport: 33001, dport: 53, payload: []byte("q")}))
		f = eth(fxMACGW, fxMACA, icmpError(fxA, fxClient, 3, 3, got, cut))
		ret, out = run(t, fx.fromCont, f)
		if ret != tcRedirect {
			t.Fatalf("port unreachable from the container: verdict %d", ret)
		}
		o, in = checkICMP(t, out)
		if o.src != fxHost || o.dst != fxClient {
			t.Fatalf("outer %s -> %s, want %s -> %s", o.src, o.dst, fxHost, fxClient)
		}
		if idst := netip.AddrFrom4([4]byte(in[16:20])); idst != fxHost || binary.BigEndian.Uint16(in[22:]) != 5353 {
			t.Fatalf("quoted destination %s:%d, want %s:5353", idst, binary.BigEndian.Uint16(in[22:]), fxHost)
		}
		seg := in[20:]
		if len(seg) >= 8 && binary.BigEndian.Uint16(seg[4:]) == uint16(len(seg)) &&
			csum(seg, pseudo(fxClient, fxHost, unix.IPPROTO_UDP, len(seg))) != 0 {
			t.Fatal("bad quoted UDP checksum")
		}
	}
}

func TestPublishICMPErrorUnknownFlow(t *testing.T) {
	fx := newFixture(t)
	sent := ipv4(fxHost, fxClient, unix.IPPROTO_TCP, 3, 0, l4Bytes(fxHost, fxClient, l4{proto: unix.IPPROTO_TCP, sport: 8080, dport: 40000}))
	f := eth(fxMACUp, fxMACPeer, icmpError(fxRouter, fxHost, 3, 4, sent, 0))
	if ret, out := run(t, fx.uplink, f); ret != tcOK || !bytes.Equal(out, f) {
		t.Fatalf("ICMP error of no flow: verdict %d, want it left to the host", ret)
	}
}

func TestPublishFragments(t *testing.T) {
	fx := newFixture(t)
	payload := bytes.Repeat([]byte("x"), 2000)
	dgram := l4Bytes(fxClient, fxHost, l4{proto: unix.IPPROTO_UDP, sport: 34000, dport: 5353, payload: payload})
	first := eth(fxMACUp, fxMACPeer, ipv4(fxClient, fxHost, unix.IPPROTO_UDP, 77, 0x2000, dgram[:1480]))
	second := eth(fxMACUp, fxMACPeer, ipv4(fxClient, fxHost, unix.IPPROTO_UDP, 77, 1480/8, dgram[1480:]))
	stray := eth(fxMACUp, fxMACPeer, ipv4(fxClient, fxHost, unix.IPPROTO_UDP, 78, 1480/8, dgram[1480:]))

	ret, out1 := run(t, fx.uplink, first)
	if ret != tcRedirect {
		t.Fatalf("first fragment: verdict %d", ret)
	}
	ret, out2 := run(t, fx.uplink, second)
	if ret != tcRedirect {
		t.Fatalf("second fragment: verdict %d", ret)
	}
	p1, p2 := parse(t, out1), parse(t, out2)
	if p1.dst != fxA || p2.dst != fxA || p1.dport != 53 {
		t.Fatalf("fragments go to %s:%d and %s, want %s:53 both", p1.dst, p1.dport, p2.dst, fxA)
	}
	// Reassembled, the datagram's checksum holds for its new addresses.
	whole := append(append([]byte{}, out1[14+20:]...), out2[14+20:]...)
	if csum(whole, pseudo(fxClient, fxA, unix.IPPROTO_UDP, len(whole))) != 0 {
		t.Fatal("reassembled UDP checksum is wrong after translation")
	}
	if ret, out := run(t, fx.uplink, stray); ret != tcOK || !bytes.Equal(out, stray) {
		t.Fatalf("fragment of no known datagram: verdict %d, want the stack's", ret)
	}
}

func TestPublishHairpin(t *testing.T) {
	fx := newFixture(t)
	// B (ifindex fxIfB) to the host's published port: prog.Run's skb is on
	// ifindex 1, which is A's entry, so send as A: a container to its own
	// published port, the hairpin case.
	f := packet(fxMACGW, fxMACA, fxA, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 45000, dport: 8080, flags: 2})
	ret, out := run(t, fx.fromCont, f)
	if ret != tcRedirect {
		t.Fatalf("hairpin: verdict %d, want redirect into the container", ret)
	}
	wantFields(t, parse(t, out), fxMACA, fxMACGW, fxGW, 45000, fxA, 80)
	// The container answers the gateway; it gets the answer from the host's address.
	r := packet(fxMACGW, fxMACA, fxA, fxGW, l4{proto: unix.IPPROTO_TCP, sport: 80, dport: 45000, flags: 0x12})
	ret, out = run(t, fx.fromCont, r)
	if ret != tcRedirect {
		t.Fatalf("hairpin reply: verdict %d", ret)
	}
	wantFields(t, parse(t, out), fxMACA, fxMACGW, fxHost, 8080, fxA, 45000)
}

func TestPublishUnpublishAndGC(t *testing.T) {
	fx := newFixture(t)
	syn := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_TCP, sport: 40000, dport: 8080, flags: 2})
	q := packet(fxMACUp, fxMACPeer, fxClient, fxHost, l4{proto: unix.IPPROTO_UDP, sport: 33000, dport: 5353})
	run(t, fx.uplink, syn)
	run(t, fx.uplink, q)
	if n, _ := fx.pub.Flows(); n != 4 {
		t.Fatalf("%d flow entries, want 4", n)
	}
	// 100 s idle: UDP lives on (≥ 90 s), then goes at 181 s; TCP stays.
	now := monotonicNow()
	if n, _ := fx.pub.GC(now + uint64(100e9)); n != 0 {
		t.Fatalf("GC at 100 s removed %d entries", n)
	}
	if n, _ := fx.pub.GC(now + uint64(181e9)); n != 2 {
		t.Fatalf("GC at 181 s removed %d entries, want the UDP flow's 2", n)
	}
	if err := fx.pub.Unpublish(targetA(), []dataplane.PortMapping{fxTCP8080}); err != nil {
		t.Fatal(err)
	}
	if n, _ := fx.pub.Flows(); n != 0 {
		t.Fatalf("%d flow entries after unpublish, want 0", n)
	}
	if ret, _ := run(t, fx.uplink, syn); ret != tcOK {
		t.Fatalf("after unpublish: verdict %d, want the stack's", ret)
	}
	// Idempotent.
	if err := fx.pub.Unpublish(targetA(), []dataplane.PortMapping{fxTCP8080}); err != nil {
		t.Fatalf("second unpublish: %v", err)
	}
}

func TestPublishBadInput(t *testing.T) {
	fx := newFixture(t)
	for name, c := range map[string]struct {
		t Target
		m dataplane.PortMapping
	}{
		"IPv6 target": {Target{Addr: netip.MustParseAddr("fd00::2"), MAC: fxMACA, BridgeMAC: fxMACGW, HostIfindex: 5}, fxTCP8080},
		"no MAC":      {Target{Addr: fxA, HostIfindex: 5}, fxTCP8080},
		"sctp":        {targetA(), dataplane.PortMapping{Proto: "sctp", HostPort: 1, ContainerPort: 1}},
		"port 0":      {targetA(), dataplane.PortMapping{Proto: "tcp", HostPort: 0, ContainerPort: 1}},
	} {
		if err := fx.pub.Publish(c.t, []dataplane.PortMapping{c.m}); err == nil {
			t.Errorf("%s: Publish succeeded", name)
		}
	}
}
