//go:build linux

package fastpath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// craftedFrames are the named cases of TestEBPFProgRun; they also seed the fuzzer.
func craftedFrames() []struct {
	name   string
	frame  []byte
	want   uint32
	reason int // drop reason expected for TC_ACT_SHOT, -1 otherwise
} {
	ip12 := ipv4Packet(fxIP1, fxIP2, 5)
	v6echo := ipv6Packet(fxLL1, fxLL2, icmpv6Echo())
	spoofNA := ipv6Packet(fxLL1, fxAllNodes, neighbourAdvert(fxLL2, fxMAC1))
	ipv6 := int(fastpathDropReasonDROP_IPV6)
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
		// Networks are IPv4-only: IPv6 dies whatever it carries and however it is tagged.
		{"ipv6 to same-network endpoint", ethFrame(fxMAC2, fxMAC1, 0x86dd, v6echo), tcActShot, ipv6},
		{"ipv6 to gateway", ethFrame(fxGWMAC, fxMAC1, 0x86dd, ipv6Packet(fxLL1, netip.MustParseAddr("2001:db8::1"), icmpv6Echo())), tcActShot, ipv6},
		{"ipv6 to all nodes", ethFrame(fxAllNodesMAC, fxMAC1, 0x86dd, ipv6Packet(fxLL1, fxAllNodes, icmpv6Echo())), tcActShot, ipv6},
		{"ipv6 neighbour advertisement for the peer", ethFrame(fxAllNodesMAC, fxMAC1, 0x86dd, spoofNA), tcActShot, ipv6},
		{"ipv6 neighbour advertisement unicast to the peer", ethFrame(fxMAC2, fxMAC1, 0x86dd, ipv6Packet(fxLL1, fxLL2, neighbourAdvert(fxLL1, fxMAC1))), tcActShot, ipv6},
		{"vlan-tagged ipv6 to endpoint", vlanFrame(fxMAC2, fxMAC1, 0x86dd, v6echo), tcActShot, ipv6},
		{"priority-tagged ipv6 neighbour advertisement", ethFrame(fxAllNodesMAC, fxMAC1, 0x8100, append([]byte{0, 0, 0x86, 0xdd}, spoofNA...)), tcActShot, ipv6},
		{"qinq-tagged ipv6 to endpoint", ethFrame(fxMAC2, fxMAC1, 0x88a8, append([]byte{0, 0x64, 0x81, 0x00, 0, 0x65, 0x86, 0xdd}, v6echo...)), tcActShot, ipv6},
		{"ipv6 with spoofed source MAC", ethFrame(fxMAC2, fxGWMAC, 0x86dd, v6echo), tcActShot, int(fastpathDropReasonDROP_SPOOF_MAC)},
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
	if _, err := os.Stat(filepath.Join(e.PinDir(), fastpathMapNetdSubnets)); err != nil {
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
	if err := e.maps.NetdNetworks.Lookup(internal.Index, &ni); err != nil || ni.Flags != netFlagICC|netFlagInternal {
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

// NET_F_IPV6 is the switch a network with IPv6 will turn on; nothing sets it
// yet. Without it, or without a network entry, IPv6 is dropped.
func TestEBPFIPv6NetworkFlag(t *testing.T) {
	e := newFixture(t)
	v6 := ethFrame(fxMAC2, fxMAC1, 0x86dd, ipv6Packet(fxLL1, fxLL2, icmpv6Echo()))
	ipv6 := int(fastpathDropReasonDROP_IPV6)
	verdict(t, e, "IPv4-only network", v6, tcActShot, ipv6)

	if err := e.maps.NetdNetworks.Put(fxNetA.Index, &fastpathNetworkInfo{Flags: netFlagICC | netFlagIPv6}); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "network allowing IPv6", v6, tcActRedirect, -1)
	verdict(t, e, "all nodes on a network allowing IPv6", ethFrame(fxAllNodesMAC, fxMAC1, 0x86dd, ipv6Packet(fxLL1, fxAllNodes, icmpv6Echo())), tcActOK, -1)

	if err := e.NetworkUp(fxNetA); err != nil {
		t.Fatal(err)
	}
	var ni fastpathNetworkInfo
	if err := e.maps.NetdNetworks.Lookup(fxNetA.Index, &ni); err != nil || ni.Flags&netFlagIPv6 != 0 {
		t.Fatalf("network flags %#x (%v) after NetworkUp, want no IPV6", ni.Flags, err)
	}
	verdict(t, e, "after NetworkUp", v6, tcActShot, ipv6)
	if err := e.NetworkDown(fxNetA); err != nil {
		t.Fatal(err)
	}
	verdict(t, e, "network removed", v6, tcActShot, ipv6)
}
