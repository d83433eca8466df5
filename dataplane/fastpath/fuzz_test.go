//go:build linux

package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// maxFuzzFrame is the largest tagged Ethernet frame without FCS.
const maxFuzzFrame = 1518

// FuzzFromContainer runs from_container on random frames sent by the fixture's
// sender and checks the security invariant: a frame is redirected only to a
// same-network endpoint and only if its source MAC/IP are the sender's own;
// IPv4 for another network's subnet (other than its gateway, the host) never
// reaches the bridge, nor does IPv6; every verdict is counted exactly once.
func FuzzFromContainer(f *testing.F) {
	for _, tc := range craftedFrames() {
		f.Add(tc.frame)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 13))
	e := newFixture(f)
	// Go kills fuzz workers when -fuzztime runs out, so their t.Cleanup
	// never runs: unpin now, the open fds keep maps and program alive.
	if err := os.RemoveAll(e.PinDir()); err != nil {
		f.Fatalf("unpin fuzz fixture: %v", err)
	}
	ownIP := fxIP1.As4()

	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > maxFuzzFrame {
			frame = frame[:maxFuzzFrame] // test-run refuses frames beyond about a page
		}
		before := counters(t, e, fxIfSender)
		ret, ok := runFrame(t, e, frame)
		if !ok {
			return // refused by the kernel: nothing ran, nothing forwarded
		}
		after := counters(t, e, fxIfSender)
		var drops uint64
		for i := range after.Drops {
			drops += after.Drops[i] - before.Drops[i]
		}
		fast, slow := after.FastPkts-before.FastPkts, after.SlowPkts-before.SlowPkts

		if ret != tcActShot && len(frame) >= 14+20 && binary.BigEndian.Uint16(frame[12:14]) == 0x0800 &&
			frame[0]&1 == 0 && !bytes.Equal(frame[0:6], fxMAC2) {
			dst, _ := netip.AddrFromSlice(frame[30:34])
			if fxNetB.Subnet.Contains(dst) && dst != fxNetB.Gateway {
				t.Fatalf("IPv4 to %v in another network's subnet not dropped (verdict %d)", dst, ret)
			}
		}

		// A priority tag (VID 0) is taken as untagged: a tagged spoofed source must not pass either.
		if ret != tcActShot && len(frame) >= 18+20 && binary.BigEndian.Uint16(frame[12:14]) == 0x8100 &&
			binary.BigEndian.Uint16(frame[16:18]) == 0x0800 && !bytes.Equal(frame[30:34], ownIP[:]) {
			t.Fatalf("tagged IPv4 from %v not dropped (verdict %d)", frame[30:34], ret)
		}

		// No fixture network allows IPv6: tagged or not, it never gets past the program.
		if et, ok := ethertypeAfterTags(frame); ret != tcActShot && ok && et == 0x86dd {
			t.Fatalf("IPv6 frame not dropped (verdict %d)", ret)
		}

		switch ret {
		case tcActRedirect:
			if fast != 1 || slow != 0 || drops != 0 {
				t.Fatalf("redirect counted fast=%d slow=%d drops=%d", fast, slow, drops)
			}
			if len(frame) < 14 {
				t.Fatalf("redirected a %d-byte frame", len(frame))
			}
			if !bytes.Equal(frame[0:6], fxMAC2) {
				t.Fatalf("redirected to %x, not the same-network peer", frame[0:6])
			}
			if !bytes.Equal(frame[6:12], fxMAC1) {
				t.Fatalf("redirected with source MAC %x", frame[6:12])
			}
			switch binary.BigEndian.Uint16(frame[12:14]) {
			case 0x8100, 0x88a8:
				t.Fatal("redirected a VLAN-tagged frame")
			case 0x0800:
				if len(frame) < 14+20 || frame[14]>>4 != 4 || frame[14]&0x0f < 5 || len(frame) < 14+int(frame[14]&0x0f)*4 {
					t.Fatal("redirected a malformed IPv4 frame")
				}
				if !bytes.Equal(frame[26:30], ownIP[:]) {
					t.Fatalf("redirected IPv4 from %v", frame[26:30])
				}
			case 0x0806:
				if len(frame) < 14+28 || !bytes.Equal(frame[22:28], fxMAC1) {
					t.Fatal("redirected ARP with a foreign or missing sender MAC")
				}
				spa := frame[28:32]
				if !bytes.Equal(spa, ownIP[:]) && !bytes.Equal(spa, []byte{0, 0, 0, 0}) {
					t.Fatalf("redirected ARP with sender IP %v", spa)
				}
			}
		case tcActOK:
			if slow != 1 || fast != 0 || drops != 0 {
				t.Fatalf("pass counted fast=%d slow=%d drops=%d", fast, slow, drops)
			}
		case tcActShot:
			if drops != 1 || fast != 0 || slow != 0 {
				t.Fatalf("drop counted fast=%d slow=%d drops=%d", fast, slow, drops)
			}
		default:
			t.Fatalf("unexpected verdict %d", ret)
		}
	})
}
