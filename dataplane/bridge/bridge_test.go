//go:build linux

package bridge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/fastpath"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
	"github.com/netd-dev/netd/dataplane/sandbox"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// handleAt opens a netlink handle in the netns at path for inspection.
func handleAt(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func mustLink(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func v4Addrs(t *testing.T, h *netlink.Handle, l netlink.Link) []string {
	t.Helper()
	addrs, err := h.AddrList(l, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

func readIPForward(t *testing.T, nsPath string) string {
	t.Helper()
	var v []byte
	err := sandbox.DoPath(nsPath, func() (err error) {
		v, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

func TestBridgeEndToEnd(t *testing.T) {
	rootFwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Skip(err)
	}
	l := newLab(t)
	ctx := context.Background()
	n := testNetwork("10.250.1.0/24", func(n *testNet) { n.MTU = 1400 })
	l.createNetwork(n)
	c1, ep1 := l.attach(n, 2)
	c2, ep2 := l.attach(n, 3)

	pingOK(t, c1, ep2.Addr.Addr())
	pingOK(t, c2, ep1.Addr.Addr())
	pingOK(t, c1, n.Gateway)

	// Kernel objects look like Docker's.
	h := handleAt(t, l.path)
	br := mustLink(t, h, n.BridgeName)
	if _, ok := br.(*netlink.Bridge); !ok {
		t.Errorf("%s is a %s", n.BridgeName, br.Type())
	}
	if br.Attrs().Alias != "netd:"+n.ID || br.Attrs().MTU != 1400 || br.Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("bridge alias=%q mtu=%d flags=%v", br.Attrs().Alias, br.Attrs().MTU, br.Attrs().Flags)
	}
	if got := v4Addrs(t, h, br); len(got) != 1 || got[0] != "10.250.1.1/24" {
		t.Errorf("bridge addresses = %v", got)
	}
	hv := mustLink(t, h, ep1.HostIfName)
	if hv.Attrs().MasterIndex != br.Attrs().Index || hv.Attrs().MTU != 1400 || hv.Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("host veth master=%d mtu=%d flags=%v", hv.Attrs().MasterIndex, hv.Attrs().MTU, hv.Attrs().Flags)
	}
	sh := handleAt(t, ep1.SandboxPath)
	eth0 := mustLink(t, sh, "eth0")
	if !bytes.Equal(eth0.Attrs().HardwareAddr, ep1.MAC) || eth0.Attrs().MTU != 1400 {
		t.Errorf("eth0 mac=%s mtu=%d, want %s 1400", eth0.Attrs().HardwareAddr, eth0.Attrs().MTU, ep1.MAC)
	}
	if got := v4Addrs(t, sh, eth0); len(got) != 1 || got[0] != ep1.Addr.String() {
		t.Errorf("eth0 addresses = %v", got)
	}
	if out := nstest.Run(t, c1, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.250.1.1 dev eth0") {
		t.Errorf("default route in c1: %q", out)
	}
	if got := readIPForward(t, l.path); got != "1" {
		t.Errorf("ip_forward in lab = %s", got)
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); !bytes.Equal(now, rootFwd) {
		t.Errorf("root netns ip_forward changed: %q -> %q", rootFwd, now)
	}

	// Idempotent: everything again changes nothing.
	l.createNetwork(n)
	l.join(n, ep1)
	l.join(n, ep2)
	if got := v4Addrs(t, h, br); len(got) != 1 {
		t.Errorf("bridge addresses after second create = %v", got)
	}
	if got := v4Addrs(t, sh, mustLink(t, sh, "eth0")); len(got) != 1 {
		t.Errorf("eth0 addresses after second join = %v", got)
	}
	pingOK(t, c1, ep2.Addr.Addr())

	// A restarted daemon (fresh driver, empty memory) adopts everything.
	d2 := l.newDriver()
	l.d = d2
	l.createNetwork(n)
	l.join(n, ep1)
	l.join(n, ep2)
	l.do(func() error {
		_, err := d2.Reconcile(ctx, []*dataplane.NetworkConfig{n.NetworkConfig}, []*dataplane.EndpointConfig{ep1, ep2}, false)
		return err
	})
	if !l.linkExists(n.BridgeName) || !l.linkExists(ep1.HostIfName) || !l.linkExists(ep2.HostIfName) {
		t.Error("reconcile with everything live removed something")
	}
	pingOK(t, c2, ep1.Addr.Addr())

	// Another container cannot take eth0 a foreign link already holds.
	c3, p3 := nstest.Sandbox(t)
	nstest.Run(t, c3, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
	ep3 := testEndpoint(n, p3, "eth0", 4)
	err = sandbox.DoPath(l.path, func() error {
		if err := l.d.CreateEndpoint(ctx, n.NetworkConfig, ep3); err != nil {
			return err
		}
		return l.d.Join(ctx, n.NetworkConfig, ep3)
	})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("join over a foreign eth0: %v", err)
	}

	// Leave removes both ends; every delete is idempotent.
	l.do(func() error { return l.d.Leave(ctx, n.NetworkConfig, ep2) })
	if l.linkExists(ep2.HostIfName) {
		t.Error("host veth still there after Leave")
	}
	if _, err := handleAt(t, ep2.SandboxPath).LinkByName("eth0"); err == nil {
		t.Error("eth0 still in c2 after Leave")
	}
	pingFails(t, c1, ep2.Addr.Addr())
	l.do(func() error {
		for _, f := range []func() error{
			func() error { return l.d.Leave(ctx, n.NetworkConfig, ep2) },
			func() error { return l.d.DeleteEndpoint(ctx, n.NetworkConfig, ep2) },
			func() error { return l.d.Leave(ctx, n.NetworkConfig, ep1) },
			func() error { return l.d.DeleteEndpoint(ctx, n.NetworkConfig, ep1) },
			func() error { return l.d.Leave(ctx, n.NetworkConfig, ep3) },
			func() error { return l.d.DeleteNetwork(ctx, n.NetworkConfig) },
			func() error { return l.d.DeleteNetwork(ctx, n.NetworkConfig) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
	if l.linkExists(n.BridgeName) || l.linkExists(ep1.HostIfName) || l.linkExists(ep3.HostIfName) {
		t.Error("bridge or veth left after delete")
	}
	if out := l.sh("nft", "list", "tables"); strings.Contains(out, NftTableName(l.node)) {
		t.Errorf("nft tables left after the last network went: %s", out)
	}
}

func TestBridgeICCDisabled(t *testing.T) {
	l := newLab(t)
	n := testNetwork("10.250.2.0/24", func(n *testNet) { n.ICC = false })
	l.createNetwork(n)
	c1, _ := l.attach(n, 2)
	_, ep2 := l.attach(n, 3)

	pingOK(t, c1, n.Gateway)
	pingFails(t, c1, ep2.Addr.Addr())

	// Control: without the bridge-family rule the same ping goes through.
	l.sh("nft", "flush", "chain", "bridge", NftTableName(l.node), "forward")
	pingOK(t, c1, ep2.Addr.Addr())
}

func TestBridgeNetworksIsolated(t *testing.T) {
	l := newLab(t)
	a := testNetwork("10.250.3.0/24", nil)
	b := testNetwork("10.250.4.0/24", nil)
	l.createNetwork(a)
	l.createNetwork(b)
	c1, ep1 := l.attach(a, 2)
	c2, ep2 := l.attach(b, 2)

	pingOK(t, c1, a.Gateway)
	pingOK(t, c2, b.Gateway)
	pingFails(t, c1, ep2.Addr.Addr())
	pingFails(t, c2, ep1.Addr.Addr())

	// Control: the hosts route between the bridges once the rules are gone.
	l.sh("nft", "flush", "chain", "inet", NftTableName(l.node), "forward")
	pingOK(t, c1, ep2.Addr.Addr())
}

// outside connects a third namespace to the lab through a veth routed by the
// lab: ext at 10.250.9.2, the lab at 10.250.9.1.
func outside(t *testing.T, l *lab) (name string, addr netip.Addr) {
	t.Helper()
	ext, _ := nstest.Sandbox(t)
	peer := "ndtx" + stringid.RandomHex(6)
	l.sh("ip", "link", "add", peer, "type", "veth", "peer", "name", "ext0", "netns", ext)
	l.sh("ip", "addr", "add", "10.250.9.1/24", "dev", peer)
	l.sh("ip", "link", "set", peer, "up")
	nstest.Run(t, ext, "ip", "addr", "add", "10.250.9.2/24", "dev", "ext0")
	nstest.Run(t, ext, "ip", "link", "set", "ext0", "up")
	return ext, netip.MustParseAddr("10.250.9.2")
}

func TestBridgeInternalAndMasquerade(t *testing.T) {
	l := newLab(t)
	internal := testNetwork("10.250.5.0/24", func(n *testNet) { n.Internal = true })
	public := testNetwork("10.250.6.0/24", nil)
	l.createNetwork(internal)
	l.createNetwork(public)
	ci, _ := l.attach(internal, 2)
	cp, _ := l.attach(public, 2)
	ext, extAddr := outside(t, l)

	// ext has no route back to the public subnet: replies arrive only if masqueraded.
	pingOK(t, cp, extAddr)
	// ext can route back to the internal subnet, so only the rule stops this.
	nstest.Run(t, ext, "ip", "route", "add", internal.Subnet.String(), "via", "10.250.9.1")
	pingOK(t, ci, internal.Gateway)
	pingFails(t, ci, extAddr)

	l.sh("nft", "flush", "chain", "inet", NftTableName(l.node), "forward")
	pingOK(t, ci, extAddr)
}

func TestBridgeReconcile(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	keep := testNetwork("10.250.7.0/24", nil)
	stale := testNetwork("10.250.8.0/24", nil)
	l.createNetwork(keep)
	l.createNetwork(stale)
	c1, ep1 := l.attach(keep, 2)
	_, ep2 := l.attach(stale, 2)
	// A second endpoint on the kept network that the store no longer knows.
	_, ep3 := l.attach(keep, 3)

	// A veth with netd's name pattern but not the bridge driver's alias belongs
	// to someone else (another driver, an admin): it stays.
	foreignND := "nd" + stringid.RandomHex(12)
	l.sh("ip", "link", "add", foreignND, "type", "veth", "peer", "name", "zz"+stringid.RandomHex(8))
	// One with the alias and a stranger's name is ours (an endpoint the store lost).
	strayVeth := "zz" + stringid.RandomHex(12)
	l.sh("ip", "link", "add", strayVeth, "type", "veth", "peer", "name", "zy"+stringid.RandomHex(8))
	l.sh("ip", "link", "set", strayVeth, "alias", BridgeVethAliasPrefix+stringid.RandomHex(64))
	if got := mustLink(t, handleAt(t, l.path), ep1.HostIfName).Attrs().Alias; got != BridgeVethAliasPrefix+ep1.ID {
		t.Errorf("alias of %s = %q, want %q", ep1.HostIfName, got, BridgeVethAliasPrefix+ep1.ID)
	}
	foreignBridge := "ndtk" + stringid.RandomHex(8)
	l.sh("ip", "link", "add", foreignBridge, "type", "bridge")
	foreignVeth := "xx" + stringid.RandomHex(8)
	l.sh("ip", "link", "add", foreignVeth, "type", "veth", "peer", "name", "xy"+stringid.RandomHex(8))

	// Without prune, what has no record is only reported: the record may be
	// in another state dir.
	var orphans []dataplane.Orphan
	l.do(func() (err error) {
		orphans, err = l.d.Reconcile(ctx, []*dataplane.NetworkConfig{keep.NetworkConfig}, []*dataplane.EndpointConfig{ep1}, false)
		return err
	})
	var names []string
	for _, o := range orphans {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	wantOrphans := []string{stale.BridgeName, ep2.HostIfName, ep3.HostIfName, strayVeth}
	slices.Sort(wantOrphans)
	if !slices.Equal(names, wantOrphans) {
		t.Errorf("orphans = %q, want %q", names, wantOrphans)
	}
	for _, o := range wantOrphans {
		if !l.linkExists(o) {
			t.Errorf("reconcile without prune deleted %s", o)
		}
	}

	l.do(func() error {
		_, err := l.d.Reconcile(ctx, []*dataplane.NetworkConfig{keep.NetworkConfig}, []*dataplane.EndpointConfig{ep1}, true)
		return err
	})

	for _, gone := range []string{stale.BridgeName, ep2.HostIfName, ep3.HostIfName, strayVeth} {
		if l.linkExists(gone) {
			t.Errorf("stale link %s survived reconcile", gone)
		}
	}
	for _, kept := range []string{keep.BridgeName, ep1.HostIfName, foreignBridge, foreignVeth, foreignND} {
		if !l.linkExists(kept) {
			t.Errorf("link %s removed by reconcile", kept)
		}
	}
	pingOK(t, c1, keep.Gateway)
	rules := l.sh("nft", "list", "ruleset")
	if !strings.Contains(rules, keep.BridgeName) || strings.Contains(rules, stale.BridgeName) {
		t.Errorf("ruleset after reconcile:\n%s", rules)
	}
}

// recordingAccel is an Accelerator that records the calls the driver makes.
type recordingAccel struct{ calls []string }

func (a *recordingAccel) NetworkUp(n *fastpath.Network) error {
	a.calls = append(a.calls, "NetworkUp "+n.Name)
	return nil
}

func (a *recordingAccel) NetworkDown(n *fastpath.Network) error {
	a.calls = append(a.calls, "NetworkDown "+n.Name)
	return nil
}

func (a *recordingAccel) EndpointUp(n *fastpath.Network, ep *fastpath.Endpoint, hostIfindex int) error {
	a.calls = append(a.calls, fmt.Sprintf("EndpointUp %s %s %d", n.Name, ep.HostIfName, hostIfindex))
	return nil
}

func (a *recordingAccel) EndpointDown(n *fastpath.Network, ep *fastpath.Endpoint) error {
	a.calls = append(a.calls, "EndpointDown "+n.Name+" "+ep.HostIfName)
	return nil
}

func (a *recordingAccel) Prune(map[string]int) error {
	a.calls = append(a.calls, "Prune")
	return nil
}

func TestBridgeAcceleratorHooks(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	accel := &recordingAccel{}
	l.do(func() (err error) {
		l.d, err = New(Config{NodeName: l.node, Accelerator: accel})
		return err
	})
	t.Cleanup(func() { l.d.Close() })

	fast := testNetwork("10.250.10.0/24", func(n *testNet) { n.Dataplane = DataplaneEBPF })
	slow := testNetwork("10.250.11.0/24", nil)
	l.createNetwork(fast)
	l.createNetwork(slow)
	_, ep := l.attach(fast, 2)
	l.attach(slow, 2)
	idx := mustLink(t, handleAt(t, l.path), ep.HostIfName).Attrs().Index
	l.do(func() error {
		if err := l.d.Leave(ctx, fast.NetworkConfig, ep); err != nil {
			return err
		}
		return l.d.DeleteNetwork(ctx, fast.NetworkConfig)
	})
	want := []string{
		"NetworkUp " + fast.Name,
		fmt.Sprintf("EndpointUp %s %s %d", fast.Name, ep.HostIfName, idx),
		"EndpointDown " + fast.Name + " " + ep.HostIfName,
		"NetworkDown " + fast.Name,
	}
	if !slices.Equal(accel.calls, want) {
		t.Errorf("accelerator calls:\n%q\nwant\n%q", accel.calls, want)
	}
}

// stateAccel records, at each accelerator call, whether the endpoint could
// already (or still) send: the container side up, or the host side up.
type stateAccel struct {
	recordingAccel
	t       *testing.T
	lab     string
	sandbox string // the container's netns path and interface name,
	ifname  string // which the fast path itself never needs
	upSeen  []string
}

func (a *stateAccel) linkUp(nsPath, name string) bool {
	l, err := handleAt(a.t, nsPath).LinkByName(name)
	return err == nil && l.Attrs().Flags&net.FlagUp != 0
}

func (a *stateAccel) EndpointUp(n *fastpath.Network, ep *fastpath.Endpoint, hostIfindex int) error {
	if a.linkUp(a.sandbox, a.ifname) {
		a.upSeen = append(a.upSeen, "container side up before EndpointUp")
	}
	return a.recordingAccel.EndpointUp(n, ep, hostIfindex)
}

func (a *stateAccel) EndpointDown(n *fastpath.Network, ep *fastpath.Endpoint) error {
	if a.linkUp(a.lab, ep.HostIfName) {
		a.upSeen = append(a.upSeen, "host side up during EndpointDown")
	}
	return a.recordingAccel.EndpointDown(n, ep)
}

// The fast path's anti-spoofing is in place before the container can send,
// and stays until it no longer can.
func TestBridgeAcceleratorNoUnfilteredWindow(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	accel := &stateAccel{t: t, lab: l.path}
	l.do(func() (err error) {
		l.d, err = New(Config{NodeName: l.node, Accelerator: accel})
		return err
	})
	t.Cleanup(func() { l.d.Close() })
	n := testNetwork("10.250.12.0/24", func(n *testNet) { n.Dataplane = DataplaneEBPF })
	l.createNetwork(n)
	_, accel.sandbox = nstest.Sandbox(t)
	accel.ifname = "eth0"
	ep := testEndpoint(n, accel.sandbox, accel.ifname, 2)
	l.join(n, ep)
	l.do(func() error { return l.d.Leave(ctx, n.NetworkConfig, ep) })
	if len(accel.upSeen) != 0 {
		t.Errorf("unfiltered window: %q (calls %q)", accel.upSeen, accel.calls)
	}
}
