//go:build linux

package macvlan

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// lab is a throwaway "host" netns with the driver in it, whose eth1 is
// wired to an "ext" netns (up0, 10.50.0.1/24): the network outside.
type lab struct {
	t                 *testing.T
	host, ext         string // netns names
	hostPath, extPath string
	d                 *Driver
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping")
	l := &lab{t: t}
	l.host, l.hostPath = nstest.Sandbox(t)
	l.ext, l.extPath = nstest.Sandbox(t)
	run(t, "ip", "-n", l.host, "link", "add", "eth1", "type", "veth", "peer", "name", "up0", "netns", l.ext)
	run(t, "ip", "-n", l.host, "link", "set", "eth1", "up")
	run(t, "ip", "-n", l.ext, "addr", "add", "10.50.0.1/24", "dev", "up0")
	run(t, "ip", "-n", l.ext, "link", "set", "up0", "up")
	l.do(func() (err error) {
		l.d, err = New(Config{})
		return err
	})
	t.Cleanup(func() { l.d.Close() })
	return l
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *lab) do(fn func() error) {
	l.t.Helper()
	if err := sandbox.DoPath(l.hostPath, fn); err != nil {
		l.t.Fatal(err)
	}
}

// network validates and creates a network with opts on 10.50.0.0/24.
func (l *lab) network(opts map[string]string, mod ...func(*dataplane.NetworkConfig)) *dataplane.NetworkConfig {
	l.t.Helper()
	n := netCfg(stringid.NewID(), opts)
	for _, m := range mod {
		m(n)
	}
	state, err := l.d.ValidateNetwork(n, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	n.DriverState = state
	if err := l.d.CreateNetwork(context.Background(), n); err != nil {
		l.t.Fatal(err)
	}
	return n
}

// endpoint attaches a new sandbox to n with address addr.
func (l *lab) endpoint(n *dataplane.NetworkConfig, addr string) (*dataplane.EndpointConfig, string) {
	l.t.Helper()
	name, path := nstest.Sandbox(l.t)
	id := stringid.NewID()
	a := netip.MustParseAddr(addr).As4()
	ep := &dataplane.EndpointConfig{
		ID: id, NetworkID: n.ID, ContainerID: id, HostIfName: "nd" + id[:12], IfName: "eth0",
		MAC: net.HardwareAddr{2, 0x42, a[0], a[1], a[2], a[3]}, Addr: netip.PrefixFrom(netip.AddrFrom4(a), 24),
		Gateway: n.Gateway, DefaultGW: true, SandboxPath: path,
	}
	ctx := context.Background()
	if err := l.d.CreateEndpoint(ctx, n, ep); err != nil {
		l.t.Fatal(err)
	}
	if err := l.d.Join(ctx, n, ep); err != nil {
		l.t.Fatal(err)
	}
	return ep, name
}

func pings(ns, addr string) bool {
	for range 3 {
		if exec.Command("ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr).Run() == nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (l *lab) check(nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig) []string {
	l.t.Helper()
	var out []string
	l.do(func() error {
		ds, err := l.d.Check(context.Background(), nets, eps)
		for _, d := range ds {
			out = append(out, d.String())
		}
		return err
	})
	return out
}

func TestBridgeModeEndpoints(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	n := l.network(map[string]string{OptParent: "eth1"})
	a, aNS := l.endpoint(n, "10.50.0.10")
	b, bNS := l.endpoint(n, "10.50.0.11")
	if !pings(aNS, "10.50.0.1") || !pings(aNS, "10.50.0.11") || !pings(bNS, "10.50.0.10") {
		t.Fatal("containers on a bridge-mode macvlan network cannot reach the outside host or each other")
	}
	if ds := l.check([]*dataplane.NetworkConfig{n}, []*dataplane.EndpointConfig{a, b}); len(ds) != 0 {
		t.Fatalf("drift right after create: %v", ds)
	}
	// Join again (what a restart does) changes nothing and stays clean.
	if err := l.d.CreateEndpoint(ctx, n, a); err != nil {
		t.Fatal(err)
	}
	if err := l.d.Join(ctx, n, a); err != nil {
		t.Fatal(err)
	}
	// A link deleted behind the driver's back is drift.
	run(t, "ip", "-n", bNS, "link", "del", "eth0")
	ds := l.check([]*dataplane.NetworkConfig{n}, []*dataplane.EndpointConfig{a, b})
	if len(ds) != 1 || !strings.Contains(ds[0], "macvlan eth0 missing") {
		t.Fatalf("drift after deleting b's eth0: %v", ds)
	}
	// Reconcile re-makes it.
	if err := l.d.CreateEndpoint(ctx, n, b); err != nil {
		t.Fatal(err)
	}
	if err := l.d.Join(ctx, n, b); err != nil {
		t.Fatal(err)
	}
	if !pings(bNS, "10.50.0.10") {
		t.Fatal("re-made endpoint does not work")
	}
	for _, ep := range []*dataplane.EndpointConfig{a, b} {
		if err := l.d.Leave(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		if err := l.d.DeleteEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	if out := run(t, "ip", "-n", aNS, "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("eth0 still in the sandbox after Leave:\n%s", out)
	}
}

func TestParentChecks(t *testing.T) {
	l := newLab(t)
	run(t, "ip", "-n", l.host, "link", "add", "eth2", "type", "veth", "peer", "name", "eth3")
	run(t, "ip", "-n", l.host, "link", "add", "br9", "type", "bridge")
	run(t, "ip", "-n", l.host, "link", "add", "eth4", "type", "veth", "peer", "name", "eth5")
	run(t, "ip", "-n", l.host, "link", "set", "eth4", "master", "br9")
	run(t, "ip", "-n", l.host, "link", "set", "eth4", "up")
	for parent, want := range map[string]string{
		"eth2":    "parent interface eth2 is down: bring it up first",
		"eth2.5":  "parent interface eth2 is down",
		"eth4":    "parent interface eth4 is a port of bridge br9",
		"missing": "the requested parent interface missing was not found on the host",
	} {
		_, err := l.d.ValidateNetwork(netCfg(testID, map[string]string{OptParent: parent}), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parent %s: error %v, want %q", parent, err, want)
		}
	}
}

func TestDummyParentAndOrphans(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	n := l.network(nil)
	_, aNS := l.endpoint(n, "10.50.0.10")
	_, bNS := l.endpoint(n, "10.50.0.11")
	if !pings(aNS, "10.50.0.11") {
		t.Fatal("containers of a network without parent cannot reach each other")
	}
	if pings(bNS, "10.50.0.1") {
		t.Fatal("a network without parent reaches the outside")
	}
	if out := run(t, "ip", "-n", aNS, "route"); strings.Contains(out, "default") {
		t.Errorf("a network without parent got a default route:\n%s", out)
	}
	// Without records, the dummy parent is an orphan: kept, then pruned.
	var orphans []dataplane.Orphan
	l.do(func() (err error) { orphans, err = l.d.Reconcile(ctx, nil, nil, false); return err })
	if len(orphans) != 1 || orphans[0].Name != DummyName(n.ID) {
		t.Fatalf("orphans %v, want the dummy parent", orphans)
	}
	l.do(func() (err error) { _, err = l.d.Reconcile(ctx, nil, nil, true); return err })
	if out := run(t, "ip", "-n", l.host, "-o", "link"); strings.Contains(out, DummyName(n.ID)) {
		t.Fatalf("dummy parent not pruned:\n%s", out)
	}
}

// TestVLANEmulation: the sub-interface tags on the wire (an ARP request
// seen on the other end carries VLAN 5), and two ends talk through it.
func TestVLANEmulation(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	n := l.network(map[string]string{OptParent: "eth1.5"}, func(n *dataplane.NetworkConfig) {
		n.Subnet, n.Gateway = netip.MustParsePrefix("10.60.0.0/24"), netip.MustParseAddr("10.60.0.1")
	})
	_, aNS := l.endpoint(n, "10.60.0.10")
	tci := make(chan uint16, 1)
	go func() { tci <- captureVLAN(t, l.extPath, "up0") }()
	time.Sleep(200 * time.Millisecond)
	exec.Command("ip", "netns", "exec", aNS, "ping", "-c1", "-W1", "10.60.0.1").Run()
	if got := <-tci; got&0xfff != 5 {
		t.Fatalf("frame on the wire has VLAN tag %d, want 5", got&0xfff)
	}
	// The far end with its own sub-interface answers.
	var created bool
	if err := sandbox.DoPath(l.extPath, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		created, err = EnsureVLAN(h, "up0", 5, "up0.5")
		return err
	}); err != nil || !created {
		t.Fatalf("far-end sub-interface: %v (created %v)", err, created)
	}
	run(t, "ip", "-n", l.ext, "addr", "add", "10.60.0.1/24", "dev", "up0.5")
	if !pings(aNS, "10.60.0.1") {
		t.Fatal("no answer through the VLAN sub-interface")
	}
	if ds := l.check([]*dataplane.NetworkConfig{n}, nil); len(ds) != 0 {
		t.Fatalf("drift with a healthy sub-interface: %v", ds)
	}
	// The untagging program gone is drift.
	run(t, "ip", "netns", "exec", l.host, "tc", "filter", "del", "dev", "eth1", "ingress", "pref", "32773")
	if ds := l.check([]*dataplane.NetworkConfig{n}, nil); len(ds) != 1 || !strings.Contains(ds[0], "VLAN 5 untagging program missing on eth1") {
		t.Fatalf("drift after removing the untagging filter: %v", ds)
	}
	if err := l.d.CreateNetwork(ctx, n); err != nil { // what a restart does
		t.Fatal(err)
	}
	if !pings(aNS, "10.60.0.1") {
		t.Fatal("no answer after the untagging filter was put back")
	}
	// Deleting the network (the only user) deletes the sub-interface,
	// once the driver knows every network (after Reconcile).
	l.do(func() error { _, err := l.d.Reconcile(ctx, []*dataplane.NetworkConfig{n}, nil, false); return err })
	l.do(func() error { return l.d.DeleteNetwork(ctx, n) })
	out := run(t, "ip", "-n", l.host, "-o", "link")
	if strings.Contains(out, "eth1.5") || strings.Contains(out, vlanPeerName("eth1.5")) {
		t.Fatalf("sub-interface left after the last network went:\n%s", out)
	}
	if f := run(t, "ip", "netns", "exec", l.host, "tc", "filter", "show", "dev", "eth1", "ingress"); strings.Contains(f, vlanFilterName(5)) {
		t.Fatalf("untagging filter left on eth1:\n%s", f)
	}
}

// captureVLAN returns the VLAN TCI of the first ARP frame ifname receives
// in the netns at path (0: untagged or none within 3 s).
func captureVLAN(t *testing.T, path, ifname string) uint16 {
	var tci uint16
	err := sandbox.DoPath(path, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], unix.ETH_P_ALL)
		proto := binary.NativeEndian.Uint16(b[:]) // htons
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.Timeval{Sec: 3}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf, oob := make([]byte, 2048), make([]byte, 256)
		for range 50 {
			n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
			if err != nil {
				return nil // timeout: nothing tagged seen
			}
			if n < 14 || binary.BigEndian.Uint16(buf[12:14]) != unix.ETH_P_ARP {
				continue
			}
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 20 {
					aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
					if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
						tci = aux.Vlan_tci
					}
				}
			}
			return nil
		}
		return nil
	})
	if err != nil {
		t.Errorf("capture on %s: %v", ifname, err)
	}
	return tci
}
