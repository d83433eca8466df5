//go:build linux

package fastpath

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

var (
	fxGW      = netip.MustParseAddr("10.50.0.1")
	fxGWMAC   = net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55} // this host's bridge
	fxOtherGW = net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x66} // the other VNI's bridge
	fxOutside = netip.MustParseAddr("192.0.2.7")
	fxGWOther = netip.MustParseAddr("10.51.0.1")
)

func newGatewayFixture(t *testing.T) *Overlay {
	t.Helper()
	o := newFixture(t)
	if err := o.SetGateway(fxVNI, fxGW, fxGWMAC); err != nil {
		t.Fatal(err)
	}
	if err := o.SetGateway(fxVNIOther, fxGWOther, fxOtherGW); err != nil {
		t.Fatal(err)
	}
	return o
}

// movedPass is moved plus the pass counter: want outPass moves only it.
func movedPass(t *testing.T, before, after EndpointCounters, want outcome, reason string) {
	t.Helper()
	passed := after.PassPackets - before.PassPackets
	if want == outPass {
		if passed != 1 {
			t.Errorf("pass counter moved by %d, want 1", passed)
		}
		// Nothing else may move: compare as if nothing happened.
		after.PassPackets = before.PassPackets
		for k := range after.Drops {
			if after.Drops[k] != before.Drops[k] {
				t.Errorf("drop %s moved by %d on a passed frame", k, after.Drops[k]-before.Drops[k])
			}
		}
		if after.LocalPackets != before.LocalPackets || after.EncapPackets != before.EncapPackets || after.ARPReplies != before.ARPReplies {
			t.Errorf("counters %+v -> %+v on a passed frame", before, after)
		}
		return
	}
	if passed != 0 {
		t.Errorf("pass counter moved by %d, want 0", passed)
	}
	moved(t, before, after, want, reason)
}

// Frames for the gateway (the host's bridge) are the kernel's: the host, the
// outside through masquerade. Everything else keeps the overlay's rules.
func TestFromContainerGateway(t *testing.T) {
	o := newGatewayFixture(t)
	prog := o.progs[ProgFromContainer]
	for _, tc := range []struct {
		name   string
		frame  []byte
		ret    uint32
		out    outcome
		reason string
	}{
		{"ipv4 to the gateway", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxGW, 5)), tcActOK, outPass, ""},
		{"ipv4 to the outside", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxOutside, 5)), tcActOK, outPass, ""},
		{"arp reply to the bridge", ethFrame(fxGWMAC, fxMAC1, 0x0806, arpPacket(2, fxMAC1, fxIP1, fxGWMAC, fxGW)), tcActOK, outPass, ""},
		{"spoofed source to the outside", ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP2, fxOutside, 5)), tcActShot, outDrop, "SPOOF_IP"},
		{"ipv6 to the gateway", ethFrame(fxGWMAC, fxMAC1, 0x86dd, make([]byte, 48)), tcActShot, outDrop, "IPV6"},
		{"the other network's gateway", ethFrame(fxOtherGW, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxOutside, 5)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"arp for the other network's gateway", ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxGWOther)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"ipv4 broadcast still dropped", ethFrame(fxBcast, fxMAC1, 0x0800, ipv4Packet(fxIP1, netip.MustParseAddr("10.50.0.255"), 5)), tcActShot, outDrop, "FLOOD"},
		{"unknown MAC, outside address", ethFrame(fxUnknown, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxOutside, 5)), tcActShot, outDrop, "NO_ENDPOINT"},
		{"ipv4 to remote endpoint unchanged", ethFrame(fxMAC3, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxIP3, 5)), tcActRedirect, outEncap, ""},
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
			movedPass(t, before, epCounters(t, o, fxIfSender), tc.out, tc.reason)
		})
	}
}

// ARP for the gateway is answered in place with the bridge's MAC; a stale
// neighbour entry for the gateway gets the bridge's MAC and goes to it.
func TestFromContainerGatewayARPAndStale(t *testing.T) {
	o := newGatewayFixture(t)
	prog := o.progs[ProgFromContainer]

	before := epCounters(t, o, fxIfSender)
	ret, out, _ := run(t, prog, ethFrame(fxBcast, fxMAC1, 0x0806, arpPacket(1, fxMAC1, fxIP1, fxZeroMAC, fxGW)))
	want := ethFrame(fxMAC1, fxGWMAC, 0x0806, arpPacket(2, fxGWMAC, fxGW, fxMAC1, fxIP1))
	if ret != tcActRedirect || !bytes.Equal(out, want) {
		t.Errorf("ARP for the gateway: verdict %d, reply\n got % x\nwant % x", ret, out, want)
	}
	movedPass(t, before, epCounters(t, o, fxIfSender), outARP, "")

	frame := ethFrame(fxUnknown, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxGW, 5))
	before = epCounters(t, o, fxIfSender)
	ret, out, _ = run(t, prog, frame)
	if ret != tcActOK || !bytes.Equal(out[:6], fxGWMAC) || !bytes.Equal(out[6:], frame[6:]) {
		t.Errorf("stale neighbour of the gateway: verdict %d, frame % x, want to %s via the bridge", ret, out[:14], fxGWMAC)
	}
	movedPass(t, before, epCounters(t, o, fxIfSender), outPass, "")

	// Without a gateway nothing goes to the bridge: the network's frames stay in the overlay.
	if err := o.NetworkDown(fxVNI); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := o.Gateway(fxVNI); err != nil || ok {
		t.Fatalf("gateway after NetworkDown: ok=%v err=%v", ok, err)
	}
	if ret, _, _ := run(t, prog, ethFrame(fxGWMAC, fxMAC1, 0x0800, ipv4Packet(fxIP1, fxOutside, 5))); ret != tcActShot {
		t.Errorf("frame to the bridge of a network without gateway: verdict %d, want drop", ret)
	}
}

// Table reads back what PutEndpoint, SetGateway and NetworkUp wrote, and
// DeleteAddress takes only the ARP entry.
func TestTable(t *testing.T) {
	o := newGatewayFixture(t)
	tb, err := o.Table()
	if err != nil {
		t.Fatal(err)
	}
	eps := fxEndpoints()
	if len(tb.ByMAC) != len(eps) || len(tb.ByIP) != len(eps) || len(tb.Local) != 2 {
		t.Fatalf("table %+v, want %d endpoints, 2 local", tb, len(eps))
	}
	key := func(e Endpoint) string { return e.String() }
	want := map[string]bool{}
	for _, e := range eps {
		want[key(e)] = true
	}
	for _, e := range tb.ByMAC {
		if !want[key(e)] {
			t.Errorf("listed %s, not put", &e)
		}
	}
	if l := tb.Local[fxIfPeer]; l.IPv4 != fxIP2 || !bytes.Equal(l.MAC, fxMAC2) || l.VNI != fxVNI {
		t.Errorf("local entry of ifindex %d: %+v", fxIfPeer, l)
	}
	if !tb.VNIs[fxVNI] || !tb.VNIs[fxVNIOther] || len(tb.VNIs) != 2 {
		t.Errorf("VNIs %v, want %d and %d", tb.VNIs, fxVNI, fxVNIOther)
	}
	gw, mac, ok, err := o.Gateway(fxVNI)
	if err != nil || !ok || gw != fxGW || !bytes.Equal(mac, fxGWMAC) {
		t.Errorf("Gateway(%d) = %s %s %v %v", fxVNI, gw, mac, ok, err)
	}

	remote := eps[2]
	if err := o.DeleteAddress(remote); err != nil {
		t.Fatal(err)
	}
	tb, _ = o.Table()
	if len(tb.ByMAC) != len(eps) || len(tb.ByIP) != len(eps)-1 {
		t.Errorf("after DeleteAddress: %d by MAC, %d by IP; want %d and %d", len(tb.ByMAC), len(tb.ByIP), len(eps), len(eps)-1)
	}
}
