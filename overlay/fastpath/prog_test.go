//go:build linux

package fastpath

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// Fixture for prog.Run: the sender is ifindex 1 (lo), the device the kernel
// gives a test-run skb; the other ifindexes are only named, never used.
var (
	fxMAC1    = net.HardwareAddr{0x02, 0x42, 0x0a, 0x32, 0x00, 0x02} // sender, local
	fxMAC2    = net.HardwareAddr{0x02, 0x42, 0x0a, 0x32, 0x00, 0x03} // peer, local
	fxMAC3    = net.HardwareAddr{0x02, 0x42, 0x0a, 0x32, 0x00, 0x04} // remote, same VNI
	fxMAC4    = net.HardwareAddr{0x02, 0x42, 0x0a, 0x32, 0x00, 0x05} // remote, other VNI
	fxUnknown = net.HardwareAddr{0x02, 0x42, 0x0a, 0x32, 0x00, 0x99}
	fxBcast   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	fxMcast   = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
	fxZeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	fxIP1     = netip.MustParseAddr("10.50.0.2")
	fxIP2     = netip.MustParseAddr("10.50.0.3")
	fxIP3     = netip.MustParseAddr("10.50.0.4")
	fxIP4     = netip.MustParseAddr("10.50.0.5")
	fxIPNone  = netip.MustParseAddr("10.50.0.77")
	fxVTEPA   = netip.MustParseAddr("10.98.0.1") // this host
	fxVTEPB   = netip.MustParseAddr("10.98.0.2")
)

const (
	fxVNI      = 4096
	fxVNIOther = 4097
	fxIfSender = 1
	fxIfPeer   = 1001
	fxIfVXLAN  = 1002
)

func fxEndpoints() []Endpoint {
	return []Endpoint{
		{VNI: fxVNI, MAC: fxMAC1, IPv4: fxIP1, Ifindex: fxIfSender},
		{VNI: fxVNI, MAC: fxMAC2, IPv4: fxIP2, Ifindex: fxIfPeer},
		{VNI: fxVNI, MAC: fxMAC3, IPv4: fxIP3, VTEP: fxVTEPB},
		{VNI: fxVNIOther, MAC: fxMAC4, IPv4: fxIP4, VTEP: fxVTEPB},
	}
}

func newFixture(t testing.TB) *Overlay {
	t.Helper()
	o := newTestOverlay(t)
	for _, vni := range []uint32{fxVNI, fxVNIOther} {
		if err := o.NetworkUp(vni); err != nil {
			t.Fatal(err)
		}
	}
	for _, ep := range fxEndpoints() {
		if err := o.PutEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.SetTunnel(fxIfVXLAN, fxVTEPA); err != nil {
		t.Fatal(err)
	}
	return o
}

func epCounters(t testing.TB, o *Overlay, ifindex int) EndpointCounters {
	t.Helper()
	c, err := o.EndpointCounters(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tunCounters(t testing.TB, o *Overlay, vni uint32) TunnelCounters {
	t.Helper()
	c, err := o.TunnelCounters(vni)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// outcome is what one frame should do to the sender's counters: exactly one
// of them moves by one.
type outcome int

const (
	outLocal outcome = iota + 1
	outEncap
	outARP
	outDrop
	outPass
)

// moved checks that exactly the counter of want moved, by one (drops: the reason's).
func moved(t *testing.T, before, after EndpointCounters, want outcome, reason string) {
	t.Helper()
	diff := map[string]uint64{
		"local": after.LocalPackets - before.LocalPackets,
		"encap": after.EncapPackets - before.EncapPackets,
		"arp":   after.ARPReplies - before.ARPReplies,
		"decap": after.DecapPackets - before.DecapPackets,
	}
	for r, n := range after.Drops {
		diff["drop:"+r] = n - before.Drops[r]
	}
	expect := map[outcome]string{outLocal: "local", outEncap: "encap", outARP: "arp", outDrop: "drop:" + reason}[want]
	for k, n := range diff {
		w := uint64(0)
		if k == expect {
			w = 1
		}
		if n != w {
			t.Errorf("counter %s moved by %d, want %d", k, n, w)
		}
	}
}

func TestFromContainer(t *testing.T) {
	o := newFixture(t)
	prog := o.progs[ProgFromContainer]
	ip12 := ipv4Packet(fxIP1, fxIP2, 5)
	ip13 := ipv4Packet(fxIP1, fxIP3, 5)
	for _, tc := range []struct {
		name   string
		frame  []byte
		ret    uint32
		out    outcome
		reason string
	}{
		{"ipv4 to local peer", ethFrame(fxMAC2, fxMAC1, 0x0800, ip12), tcActRedirect, outLocal, ""},
		{"ipv4 with options to local peer", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 6)), tcActRedirect, outLocal, ""},
		{"lldp-type unicast to local peer", ethFrame(fxMAC2, fxMAC1, 0x88cc, make([]byte, 46)), tcActRedirect, outLocal, ""},
		{"ipv4 to remote endpoint", ethFrame(fxMAC3, fxMAC1, 0x0800, ip13), tcActRedirect, outEncap, ""},
		{"ipv4 to unknown MAC, unknown address", ethFrame(fxUnknown, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIPNone, 5)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"ipv4 to other VNI's endpoint", ethFrame(fxMAC4, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP4, 5)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"ipv4 to its own MAC", ethFrame(fxMAC1, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP1, 5)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"non-ip to unknown MAC", ethFrame(fxUnknown, fxMAC1, 0x88cc, make([]byte, 46)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"ipv4 broadcast", ethFrame(fxBcast, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("10.50.0.255"), 5)), tcActShot, outDrop, "FLOOD"},
		{"ipv4 multicast", ethFrame(fxMcast, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("224.0.0.1"), 5)), tcActShot, outDrop, "FLOOD"},
		{"arp reply broadcast (gratuitous)", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxBcast, fxIP1)), tcActShot, outDrop, "FLOOD"},
		{"arp reply unicast to remote", ethFrame(fxMAC3, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxMAC3, fxIP3)), tcActRedirect, outEncap, ""},
		{"arp request for unknown address", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIPNone)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"arp request for other VNI's address", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIP4)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"arp request for its own address", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIP1)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"arp probe for its own address", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, netip.IPv4Unspecified(), fxZeroMAC, fxIP1)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"arp with spoofed sender IP", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP2, fxZeroMAC, fxIP3)), tcActShot, outDrop, "SPOOF_ARP"},
		{"arp with spoofed sender MAC", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC2, fxIP1, fxZeroMAC, fxIP3)), tcActShot, outDrop, "SPOOF_ARP"},
		{"truncated arp", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIP3)[:20]), tcActShot, outDrop, "MALFORMED"},
		{"arp for IPv6 protocol", ethFrame(fxBcast, fxMAC1, 0x0806, append([]byte{0, 1, 0x86, 0xdd}, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIP3)[4:]...)), tcActShot, outDrop, "MALFORMED"},
		{"spoofed source MAC", ethFrame(fxMAC2, fxMAC3, 0x0800, ip12), tcActShot, outDrop, "SPOOF_MAC"},
		{"spoofed source IP", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP3, fxIP2, 5)), tcActShot, outDrop, "SPOOF_IP"},
		{"source IP 0.0.0.0", ethFrame(fxMAC3, fxMAC1, 0x0800, ipv4Packet(netip.IPv4Unspecified(), fxIP3, 5)), tcActShot, outDrop, "SPOOF_IP"},
		{"bad IHL", ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 4)), tcActShot, outDrop, "MALFORMED"},
		{"vlan-tagged", ethFrame(fxMAC2, fxMAC1, 0x8100, append([]byte{0, 0x64, 0x08, 0x00}, ip12...)), tcActShot, outDrop, "VLAN"},
		{"qinq-tagged", ethFrame(fxMAC3, fxMAC1, 0x88a8, append([]byte{0, 0x64, 0x81, 0x00, 0, 0x65, 0x08, 0x00}, ip13...)), tcActShot, outDrop, "VLAN"},
		{"ipv6", ethFrame(fxMAC2, fxMAC1, 0x86dd, make([]byte, 48)), tcActShot, outDrop, "IPV6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := epCounters(t, o, fxIfSender)
			ret, _, ok := run(t, prog, tc.frame)
			if !ok {
				t.Fatalf("kernel refused the frame")
			}
			if ret != tc.ret {
				t.Errorf("verdict %d, want %d", ret, tc.ret)
			}
			moved(t, before, epCounters(t, o, fxIfSender), tc.out, tc.reason)
		})
	}
}

// An ARP request for any address of the network is answered in place, out the
// interface it came in on: byte by byte the reply Linux would have sent.
func TestFromContainerARPReply(t *testing.T) {
	o := newFixture(t)
	prog := o.progs[ProgFromContainer]
	for _, tc := range []struct {
		name     string
		dst      net.HardwareAddr
		spa, tpa netip.Addr
		tgtMAC   net.HardwareAddr
	}{
		{"broadcast for local peer", fxBcast, fxIP1, fxIP2, fxMAC2},
		{"broadcast for remote endpoint", fxBcast, fxIP1, fxIP3, fxMAC3},
		{"unicast reachability probe", fxMAC3, fxIP1, fxIP3, fxMAC3},
		{"RFC 5227 probe for a taken address", fxBcast, netip.IPv4Unspecified(), fxIP3, fxMAC3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ethFrame(tc.dst, fxMAC1, 0x0806, arpPacket(1, fxMAC1, tc.spa, fxZeroMAC, tc.tpa))
			before := epCounters(t, o, fxIfSender)
			ret, out, ok := run(t, prog, req)
			if !ok || ret != tcActRedirect {
				t.Fatalf("verdict %d (ran %v), want redirect %d", ret, ok, tcActRedirect)
			}
			want := ethFrame(fxMAC1, tc.tgtMAC, 0x0806, arpPacket(2, tc.tgtMAC, tc.tpa, fxMAC1, tc.spa))
			if !bytes.Equal(out, want) {
				t.Errorf("reply\n got % x\nwant % x", out, want)
			}
			moved(t, before, epCounters(t, o, fxIfSender), outARP, "")
		})
	}
}

// A frame whose destination MAC is unknown but whose address names an
// endpoint (a stale neighbour entry) goes there with the right MAC.
func TestFromContainerStaleNeighbour(t *testing.T) {
	o := newFixture(t)
	prog := o.progs[ProgFromContainer]
	for _, tc := range []struct {
		name string
		ip   netip.Addr
		mac  net.HardwareAddr
		out  outcome
	}{
		{"remote", fxIP3, fxMAC3, outEncap},
		{"local", fxIP2, fxMAC2, outLocal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := ethFrame(fxUnknown, fxMAC1, 0x0800, ipv4Packet(fxIP1, tc.ip, 5))
			before := epCounters(t, o, fxIfSender)
			ret, out, _ := run(t, prog, frame)
			if ret != tcActRedirect {
				t.Fatalf("verdict %d, want redirect", ret)
			}
			if !bytes.Equal(out[:6], tc.mac) || !bytes.Equal(out[6:], frame[6:]) {
				t.Errorf("frame\n got % x\nwant dst %s and the rest unchanged", out, tc.mac)
			}
			moved(t, before, epCounters(t, o, fxIfSender), tc.out, "")
		})
	}
}

// bpf_skb_set_tunnel_key works under BPF_PROG_TEST_RUN (it only attaches a
// metadata dst to the skb): a remote frame is redirected and counted on both
// sides; without a tunnel configured it is dropped as NO_TUNNEL.
func TestFromContainerTunnel(t *testing.T) {
	o := newFixture(t)
	prog := o.progs[ProgFromContainer]
	frame := ethFrame(fxMAC3, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5))

	tb := tunCounters(t, o, fxVNI)
	ret, out, _ := run(t, prog, frame)
	if ret != tcActRedirect {
		t.Fatalf("verdict %d, want redirect", ret)
	}
	if !bytes.Equal(out, frame) {
		t.Errorf("frame changed on its way into the tunnel:\n got % x\nwant % x", out, frame)
	}
	ta := tunCounters(t, o, fxVNI)
	if ta.EncapPackets != tb.EncapPackets+1 || ta.EncapBytes != tb.EncapBytes+uint64(len(frame)) {
		t.Errorf("tunnel counters of VNI %d: %+v -> %+v, want one more frame of %d bytes", fxVNI, tb, ta, len(frame))
	}

	if err := o.ClearTunnel(); err != nil {
		t.Fatal(err)
	}
	before := epCounters(t, o, fxIfSender)
	if ret, _, _ := run(t, prog, frame); ret != tcActShot {
		t.Errorf("without a tunnel: verdict %d, want drop", ret)
	}
	t.Run("counted", func(t *testing.T) { moved(t, before, epCounters(t, o, fxIfSender), outDrop, "NO_TUNNEL") })
	if got := tunCounters(t, o, fxVNI).Drops["NO_TUNNEL"]; got != ta.Drops["NO_TUNNEL"]+1 {
		t.Errorf("tunnel NO_TUNNEL drops = %d, want %d", got, ta.Drops["NO_TUNNEL"]+1)
	}
}

// Frames from an interface that is no overlay endpoint are left alone, and
// DeleteEndpoint takes away exactly what it owns.
func TestDeleteEndpoint(t *testing.T) {
	o := newFixture(t)
	prog := o.progs[ProgFromContainer]
	sender, peer := fxEndpoints()[0], fxEndpoints()[1]

	// The peer's address taken over by another endpoint: deleting the peer keeps it.
	taker := Endpoint{VNI: fxVNI, MAC: fxUnknown, IPv4: fxIP2, VTEP: fxVTEPB}
	if err := o.PutEndpoint(taker); err != nil {
		t.Fatal(err)
	}
	if err := o.DeleteEndpoint(peer); err != nil {
		t.Fatal(err)
	}
	ret, out, _ := run(t, prog, ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIP2)))
	if ret != tcActRedirect || !bytes.Equal(out[6:12], fxUnknown) {
		t.Errorf("ARP for a reused address after the old owner left: verdict %d, reply from %s, want %s", ret, net.HardwareAddr(out[6:12]), fxUnknown)
	}
	if ret, _, _ := run(t, prog, ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIPNone, 5))); ret != tcActShot {
		t.Errorf("frame to a deleted endpoint's MAC: verdict %d, want drop", ret)
	}

	if err := o.DeleteEndpoint(sender); err != nil {
		t.Fatal(err)
	}
	if ret, _, _ := run(t, prog, ethFrame(fxMAC3, fxMAC2, 0x0800, ipv4Packet(fxIP3, fxIP2, 5))); ret != tcActOK {
		t.Errorf("frame from an interface that is no endpoint: verdict %d, want %d (left alone)", ret, tcActOK)
	}
	if _, err := o.EndpointCounters(fxIfSender); err == nil {
		t.Errorf("counters of a deleted local endpoint still there")
	}
}

func TestEndpointValidation(t *testing.T) {
	o := newTestOverlay(t)
	for _, ep := range []Endpoint{
		{VNI: 1 << 24, MAC: fxMAC1, IPv4: fxIP1, Ifindex: 3},
		{VNI: fxVNI, MAC: fxBcast, IPv4: fxIP1, Ifindex: 3},
		{VNI: fxVNI, MAC: fxMAC1[:4], IPv4: fxIP1, Ifindex: 3},
		{VNI: fxVNI, MAC: fxMAC1, IPv4: netip.MustParseAddr("fd00::1"), Ifindex: 3},
		{VNI: fxVNI, MAC: fxMAC1, IPv4: fxIP1},
		{VNI: fxVNI, MAC: fxMAC1, IPv4: fxIP1, Ifindex: 3, VTEP: fxVTEPB},
		{VNI: fxVNI, MAC: fxMAC1, IPv4: fxIP1, VTEP: netip.IPv4Unspecified()},
	} {
		if err := o.PutEndpoint(ep); err == nil {
			t.Errorf("PutEndpoint(%s) accepted", &ep)
		}
	}
	if err := o.SetTunnel(0, fxVTEPA); err == nil {
		t.Errorf("SetTunnel(0) accepted")
	}
	if err := o.SetTunnel(3, netip.MustParseAddr("fd00::1")); err == nil {
		t.Errorf("SetTunnel with an IPv6 VTEP accepted")
	}
}

// Under BPF_PROG_TEST_RUN an skb carries no tunnel metadata, so
// overlay_from_tunnel can only be seen refusing keyless frames here; its
// other branches run in TestTwoHosts on a real VXLAN device.
func TestFromTunnelWithoutKey(t *testing.T) {
	o := newFixture(t)
	prog := o.progs[ProgFromTunnel]
	before := tunCounters(t, o, OtherVNI)
	ret, _, _ := run(t, prog, ethFrame(fxMAC1, fxMAC3, 0x0800, ipv4Packet(fxIP3, fxIP1, 5)))
	if ret != tcActShot {
		t.Errorf("verdict %d, want drop", ret)
	}
	if got := tunCounters(t, o, OtherVNI).Drops["NO_TUNNEL"]; got != before.Drops["NO_TUNNEL"]+1 {
		t.Errorf("NO_TUNNEL drops in the other-VNI slot = %d, want %d", got, before.Drops["NO_TUNNEL"]+1)
	}
}

// Every prefix of real frames up to 60 bytes: the kernel refuses what has no
// Ethernet header (or no full IPv4 header behind an IPv4 ethertype), and
// every other prefix gets a verdict and is counted once, never forwarded
// broken.
func TestTruncatedFrames(t *testing.T) {
	o := newFixture(t)
	pad := func(b []byte) []byte { return append(b, make([]byte, max(0, 60-len(b)))...) }
	frames := map[string][]byte{
		"arp request": pad(ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxIP3))),
		"ipv4 remote": pad(ethFrame(fxMAC3, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5))),
		"ipv4 local":  pad(ethFrame(fxMAC2, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP2, 5))),
	}
	for name, full := range frames {
		for n := 0; n <= 60; n++ {
			frame := full[:n]
			for _, pn := range []string{ProgFromContainer, ProgFromTunnel} {
				before := epCounters(t, o, fxIfSender)
				ret, _, ok := run(t, o.progs[pn], frame)
				if !ok {
					if n >= 14 && (n >= 34 || frame[12] != 0x08 || frame[13] != 0x00) {
						t.Errorf("%s: %s prefix of %d bytes refused", pn, name, n)
					}
					continue
				}
				after := epCounters(t, o, fxIfSender)
				if pn == ProgFromTunnel {
					if ret != tcActShot {
						t.Errorf("%s: %s prefix of %d bytes: verdict %d, want drop", pn, name, n, ret)
					}
					continue
				}
				wantShot := (name == "arp request" && n < 42) || n < 34
				if wantShot && ret != tcActShot {
					t.Errorf("%s: %s prefix of %d bytes: verdict %d, want drop", pn, name, n, ret)
				}
				if ret != tcActShot && ret != tcActRedirect {
					t.Errorf("%s: %s prefix of %d bytes: verdict %d", pn, name, n, ret)
				}
				var total uint64
				for r, c := range after.Drops {
					total += c - before.Drops[r]
				}
				total += after.LocalPackets - before.LocalPackets + after.EncapPackets - before.EncapPackets + after.ARPReplies - before.ARPReplies
				if total != 1 {
					t.Errorf("%s: %s prefix of %d bytes moved %d counters, want 1", pn, name, n, total)
				}
			}
		}
	}
}
