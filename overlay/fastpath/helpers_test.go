//go:build linux

package fastpath

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane/bpffs"
)

// TC return codes as the kernel defines them.
const (
	tcActOK       = 0
	tcActShot     = 2
	tcActRedirect = 7
)

// testPrefix names everything the tests make (namespaces, pin dirs).
const testPrefix = "hov-"

func testName() string { return testPrefix + stringid.RandomHex(6) }

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testPinDir is a fresh pin dir on bpffs, removed at cleanup.
func testPinDir(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(bpffs.Root, testName())
	if err := bpffs.Ensure(dir); err != nil {
		t.Skipf("no bpffs: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// loadOverlayAt loads (or adopts) the data path pinned in dir.
func loadOverlayAt(t testing.TB, dir string) *Overlay {
	t.Helper()
	o, err := Load(dir, testLogger())
	if errors.Is(err, ErrEBPFUnsupported) || errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("eBPF not supported: %v", err)
	}
	if err != nil {
		t.Fatalf("Load %s: %+v", dir, err)
	}
	return o
}

func newTestOverlay(t testing.TB) *Overlay {
	t.Helper()
	o := loadOverlayAt(t, testPinDir(t))
	t.Cleanup(func() { _ = o.Forget() })
	return o
}

func ethFrame(dst, src net.HardwareAddr, proto uint16, payload []byte) []byte {
	b := make([]byte, 0, 14+len(payload))
	b = append(b, dst...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, proto)
	return append(b, payload...)
}

// ipv4Packet is an IPv4 header (ihl in 32-bit words) with an ICMP echo request.
func ipv4Packet(src, dst netip.Addr, ihl int) []byte {
	hlen := max(ihl*4, 20)
	icmp := []byte{8, 0, 0, 0, 0, 1, 0, 1, 'h', 'o', 'v', 'l'}
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

// run test-runs prog on frame: the verdict and the frame as the program left it.
// ok is false when the kernel refused the input (shorter than an Ethernet
// header, or an IPv4 ethertype without a full IPv4 header): nothing ran.
func run(t testing.TB, prog *ebpf.Program, frame []byte) (ret uint32, out []byte, ok bool) {
	t.Helper()
	out = make([]byte, len(frame)+256)
	opts := &ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := prog.Run(opts)
	if err != nil {
		if len(frame) < 14+20 && errors.Is(err, unix.EINVAL) {
			return 0, nil, false
		}
		t.Fatalf("prog.Run(%d bytes): %v", len(frame), err)
	}
	return ret, opts.DataOut, true
}
