//go:build linux

package fastpath

// Two "hosts" (network namespaces) on a veth underlay, each with a
// collect-metadata VXLAN device and a "container" namespace: the programs
// attached, the maps filled by hand as the driver will from gossip.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

const (
	tVNI      = 4242
	tMTU      = 1450 // underlay 1500 - 50
	tUnderlay = "hovu0"
	tVXLAN    = "hovvx0"
	kernelTTL = 32 // the kernel host's VXLAN TTL, told apart from the 64 the eBPF host sets
)

// tns is a throwaway named netns with a netlink handle into it.
type tns struct {
	name, path string
	h          *netlink.Handle
	ns         netns.NsHandle
}

func newNS(t *testing.T, role string) *tns {
	t.Helper()
	name := testName() + "-" + role
	path, err := sandbox.Create(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := sandbox.Delete(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return &tns{name: name, path: path, h: h, ns: ns}
}

// cmd runs args in the namespace, bounded in time, and returns its combined output.
func (n *tns) cmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name}, args...)...).CombinedOutput()
	return string(out), err
}

func (n *tns) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.cmd(t, args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return out
}

func (n *tns) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("in %s: link %s: %v", n.name, name, err)
	}
	return l
}

func (n *tns) addr(t *testing.T, l netlink.Link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.AddrAdd(l, a); err != nil {
		t.Fatalf("in %s: add %s to %s: %v", n.name, cidr, l.Attrs().Name, err)
	}
}

func (n *tns) up(t *testing.T, l netlink.Link) {
	t.Helper()
	if err := n.h.LinkSetUp(l); err != nil {
		t.Fatalf("in %s: set %s up: %v", n.name, l.Attrs().Name, err)
	}
}

// vethTo creates a veth pair in n, moves the peer into peerNS (renamed
// peerName) and returns the local end.
func (n *tns) vethTo(t *testing.T, name string, peerNS *tns, peerName string, mtu int) netlink.Link {
	t.Helper()
	tmp := "hovp" + name[len(name)-min(len(name), 6):]
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, PeerName: tmp}
	if err := n.h.LinkAdd(v); err != nil {
		t.Fatalf("in %s: add veth %s: %v", n.name, name, err)
	}
	p := n.link(t, tmp)
	if err := n.h.LinkSetNsFd(p, int(peerNS.ns)); err != nil {
		t.Fatalf("move %s to %s: %v", tmp, peerNS.name, err)
	}
	p = peerNS.link(t, tmp)
	if err := peerNS.h.LinkSetName(p, peerName); err != nil {
		t.Fatalf("in %s: rename %s to %s: %v", peerNS.name, tmp, peerName, err)
	}
	peerNS.up(t, peerNS.link(t, peerName))
	l := n.link(t, name)
	n.up(t, l)
	return l
}

// container is a namespace with eth0 (MTU 1450), its address and no IPv6,
// whose host side lives in host.
type container struct {
	*tns
	hostIf string
	ifidx  int
	mac    net.HardwareAddr
	ip     netip.Addr
}

func newContainer(t *testing.T, host *tns, role, hostIf, ip string) *container {
	t.Helper()
	c := &container{tns: newNS(t, role), hostIf: hostIf, ip: netip.MustParseAddr(ip)}
	c.must(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	l := host.vethTo(t, hostIf, c.tns, "eth0", tMTU)
	c.ifidx = l.Attrs().Index
	eth0 := c.link(t, "eth0")
	c.mac = eth0.Attrs().HardwareAddr
	c.addr(t, eth0, ip+"/24")
	return c
}

func (c *container) endpoint() Endpoint {
	return Endpoint{VNI: tVNI, MAC: c.mac, IPv4: c.ip, Ifindex: c.ifidx}
}

func (c *container) remote(vtep netip.Addr) Endpoint {
	return Endpoint{VNI: tVNI, MAC: c.mac, IPv4: c.ip, VTEP: vtep}
}

// ebpfHost is a host on the eBPF overlay: collect-metadata VXLAN device,
// the programs on it and on the container's veth.
type ebpfHost struct {
	*tns
	o      *Overlay
	pinDir string
	vtep   netip.Addr
	vxlan  netlink.Link
	ctr    *container
}

func newEBPFHost(t *testing.T, host *tns, vtep, ctrIP string) *ebpfHost {
	t.Helper()
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tVXLAN}, FlowBased: true, Port: 4789, Learning: false}
	if err := host.h.LinkAdd(vx); err != nil {
		t.Fatalf("in %s: add collect-metadata vxlan: %v", host.name, err)
	}
	vxl := host.link(t, tVXLAN)
	host.up(t, vxl)
	if v, ok := vxl.(*netlink.Vxlan); !ok || !v.FlowBased || v.Port != 4789 {
		t.Fatalf("in %s: %s is %+v, want a collect-metadata VXLAN device on port 4789", host.name, tVXLAN, vxl)
	}
	e := &ebpfHost{tns: host, vtep: netip.MustParseAddr(vtep), vxlan: vxl, pinDir: testPinDir(t)}
	e.ctr = newContainer(t, host, "c", "hovc0", ctrIP)

	e.o = loadOverlayAt(t, e.pinDir)
	t.Cleanup(func() { _ = e.o.Forget() })
	for _, err := range []error{
		e.o.NetworkUp(tVNI),
		e.o.SetTunnel(vxl.Attrs().Index, e.vtep),
		e.o.PutEndpoint(e.ctr.endpoint()),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.attach(t)
	return e
}

// linkIDs are the TCX links on the VXLAN device and the veth; each must run its program.
func (e *ebpfHost) linkIDs(t *testing.T) [2]uint32 {
	t.Helper()
	var ids [2]uint32
	for i, x := range []struct{ ifname, prog string }{{tVXLAN, ProgFromTunnel}, {e.ctr.hostIf, ProgFromContainer}} {
		l := e.o.att.Links[x.ifname]
		if l == nil {
			t.Fatalf("%s: no TCX link on %s", e.name, x.ifname)
		}
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Program != e.o.ProgramID(x.prog) {
			t.Errorf("%s: link on %s runs program %d, want %s (%d)", e.name, x.ifname, info.Program, x.prog, e.o.ProgramID(x.prog))
		}
		ids[i] = uint32(info.ID)
	}
	return ids
}

// attach puts both programs on the host's interfaces (adopting pinned links).
func (e *ebpfHost) attach(t *testing.T) {
	t.Helper()
	var hooks [2]string
	err := sandbox.DoPath(e.path, func() error {
		var err error
		if hooks[0], err = e.o.AttachTunnel(tVXLAN, e.vxlan.Attrs().Index); err != nil {
			return err
		}
		hooks[1], err = e.o.AttachEndpoint(e.ctr.hostIf, e.ctr.ifidx)
		return err
	})
	if err != nil {
		t.Fatalf("in %s: attach: %v", e.name, err)
	}
	t.Logf("%s: %s on %s (vxlan), %s on %s (veth)", e.name, ProgFromTunnel, hooks[0], ProgFromContainer, hooks[1])
}

// underlay joins two hosts: 10.98.0.1/24 and 10.98.0.2/24, plus extra addresses on a.
func underlay(t *testing.T, a, b *tns, extraA ...string) {
	t.Helper()
	la := a.vethTo(t, tUnderlay, b, tUnderlay, 1500)
	a.addr(t, la, "10.98.0.1/24")
	for _, x := range extraA {
		a.addr(t, la, x)
	}
	b.addr(t, b.link(t, tUnderlay), "10.98.0.2/24")
}

// capture runs tcpdump on the underlay of host until it saw count VXLAN
// packets (or 20 s passed), while fn runs; returns what it printed.
func capture(t *testing.T, host *tns, count int, fn func()) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", host.name,
		"tcpdump", "-i", tUnderlay, "-nn", "-v", "-l", "-U", "-c", fmt.Sprint(count), "udp", "port", "4789")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	waited := false
	defer func() { // also when fn fails the test: never leave tcpdump behind
		if !waited {
			cancel()
			_ = cmd.Wait()
		}
	}()
	// tcpdump says "listening on" once its socket is open: only then run fn.
	sc := bufio.NewScanner(stderr)
	listening := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on") {
			listening = true
			break
		}
	}
	if !listening {
		waited = true
		_ = cmd.Wait()
		t.Fatalf("tcpdump on %s never listened: %v", host.name, sc.Err())
	}
	go func() {
		for sc.Scan() { // drain: a full pipe would block tcpdump
		}
	}()
	fn()
	waited = true
	if err := cmd.Wait(); err != nil {
		t.Errorf("tcpdump on %s did not see %d VXLAN packets: %v\n%s", host.name, count, err, out.String())
	}
	return out.String()
}

// One VXLAN packet as `tcpdump -nn -v` prints it: the outer IPv4 header
// (TTL), then the outer UDP addresses and the VXLAN header.
var vxlanLine = regexp.MustCompile(`IP \(tos 0x[0-9a-f]+, ttl (\d+), [^\n]*proto UDP \(17\)[^\n]*\n\s+(10\.98\.0\.\d+)\.\d+ > (10\.98\.0\.\d+)\.4789: [^\n]*VXLAN, flags \[I\] \(0x08\), vni (\d+)`)

// vxlanPackets returns "src>dst vni N ttl T" of every VXLAN packet tcpdump
// printed, and whether any inner frame was ARP.
func vxlanPackets(out string) (pkts []string, arp bool) {
	for _, m := range vxlanLine.FindAllStringSubmatch(out, -1) {
		pkts = append(pkts, m[2]+">"+m[3]+" vni "+m[4]+" ttl "+m[1])
	}
	return pkts, strings.Contains(out, "ARP")
}

func wantPackets(t *testing.T, out string, want map[string]int) {
	t.Helper()
	pkts, arp := vxlanPackets(out)
	if lines := strings.SplitN(out, "\n", 5); len(lines) >= 4 {
		t.Logf("underlay, first packet:\n%s", strings.Join(lines[:4], "\n"))
	}
	got := map[string]int{}
	for _, p := range pkts {
		got[p]++
	}
	for k, n := range want {
		if got[k] < n {
			t.Errorf("underlay: %d packets %s, want at least %d; capture:\n%s", got[k], k, n, out)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("underlay: unexpected packets %s; capture:\n%s", k, out)
		}
	}
	if arp {
		t.Errorf("underlay carried ARP inside VXLAN (it must be answered on the host); capture:\n%s", out)
	}
}

// TestTwoHosts: ping across two eBPF hosts; ARP answered locally; the
// underlay shows standard VXLAN with our VNI, from the explicit local VTEP
// (a secondary address the route would never choose); then the tunnel
// ingress's drops on a real device.
func TestTwoHosts(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ip", "ping", "tcpdump", "sysctl", "bridge")
	ha, hb := newNS(t, "a"), newNS(t, "b")
	underlay(t, ha, hb, "10.98.0.11/24")
	a := newEBPFHost(t, ha, "10.98.0.11", "10.50.0.2")
	b := newEBPFHost(t, hb, "10.98.0.2", "10.50.0.3")
	for _, x := range []struct {
		h  *ebpfHost
		ep Endpoint
	}{{a, b.ctr.remote(b.vtep)}, {b, a.ctr.remote(a.vtep)}} {
		if err := x.h.o.PutEndpoint(x.ep); err != nil {
			t.Fatal(err)
		}
	}

	out := capture(t, ha, 6, func() {
		a.ctr.must(t, "ping", "-c", "3", "-W", "2", "10.50.0.3")
	})
	wantPackets(t, out, map[string]int{
		fmt.Sprintf("10.98.0.11>10.98.0.2 vni %d ttl 64", tVNI): 3,
		fmt.Sprintf("10.98.0.2>10.98.0.11 vni %d ttl 64", tVNI): 3,
	})
	for _, h := range []*ebpfHost{a, b} {
		c := epCounters(t, h.o, h.ctr.ifidx)
		tc := tunCounters(t, h.o, tVNI)
		t.Logf("%s: endpoint %+v; tunnel %+v", h.name, c, tc)
		if c.EncapPackets < 3 || c.DecapPackets < 3 || tc.EncapPackets < 3 || tc.DecapPackets < 3 {
			t.Errorf("%s: want at least 3 packets each way through the tunnel", h.name)
		}
		if c.ARPReplies < 1 {
			t.Errorf("%s: no ARP answered in place", h.name)
		}
	}
	if n := a.ctr.must(t, "ip", "neigh", "show", "10.50.0.3"); !strings.Contains(n, b.ctr.mac.String()) {
		t.Errorf("container a's neighbour entry for 10.50.0.3 is %q, want MAC %s", n, b.ctr.mac)
	}

	t.Run("restart", func(t *testing.T) {
		if !bpfattach.HaveTCX() {
			t.Skip("kernel without TCX (6.6+): the clsact filters have no bpf_link to adopt")
		}
		// The daemon goes away: the pinned links keep forwarding; a new Load adopts it all.
		before := epCounters(t, a.o, a.ctr.ifidx)
		linkIDs := a.linkIDs(t)
		if err := a.o.Close(); err != nil {
			t.Fatal(err)
		}
		a.ctr.must(t, "ping", "-c", "2", "-W", "2", "10.50.0.3")
		a.o = loadOverlayAt(t, a.pinDir)
		a.attach(t)
		a.ctr.must(t, "ping", "-c", "1", "-W", "2", "10.50.0.3")
		if after := epCounters(t, a.o, a.ctr.ifidx); after.EncapPackets < before.EncapPackets+3 {
			t.Errorf("counters across the restart: %d -> %d encapsulated, want at least 3 more", before.EncapPackets, after.EncapPackets)
		}
		if got := a.linkIDs(t); got != linkIDs {
			t.Errorf("links after the restart %v, want the pinned ones %v adopted", got, linkIDs)
		}
	})

	t.Run("unknown endpoint at the far side", func(t *testing.T) {
		ghost := Endpoint{VNI: tVNI, MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0x32, 0, 0x66}, IPv4: netip.MustParseAddr("10.50.0.66"), VTEP: b.vtep}
		if err := a.o.PutEndpoint(ghost); err != nil {
			t.Fatal(err)
		}
		before := tunCounters(t, b.o, tVNI).Drops["NO_ENDPOINT"]
		if _, err := a.ctr.cmd(t, "ping", "-c", "1", "-W", "1", "10.50.0.66"); err == nil {
			t.Errorf("ping to an endpoint host b does not have succeeded")
		}
		if got := tunCounters(t, b.o, tVNI).Drops["NO_ENDPOINT"]; got < before+1 {
			t.Errorf("host b: NO_ENDPOINT drops %d -> %d, want one more", before, got)
		}
	})

	t.Run("sender behind another VTEP", func(t *testing.T) {
		// Host b believes container a lives behind 10.98.0.1: frames from 10.98.0.11 claiming it are forged.
		if err := b.o.PutEndpoint(a.ctr.remote(netip.MustParseAddr("10.98.0.1"))); err != nil {
			t.Fatal(err)
		}
		before := tunCounters(t, b.o, tVNI).Drops["SPOOF_MAC"]
		if _, err := a.ctr.cmd(t, "ping", "-c", "1", "-W", "1", "10.50.0.3"); err == nil {
			t.Errorf("ping with a forged tunnel source succeeded")
		}
		if got := tunCounters(t, b.o, tVNI).Drops["SPOOF_MAC"]; got < before+1 {
			t.Errorf("host b: SPOOF_MAC drops %d -> %d, want one more", before, got)
		}
		if err := b.o.PutEndpoint(a.ctr.remote(a.vtep)); err != nil {
			t.Fatal(err)
		}
		a.ctr.must(t, "ping", "-c", "1", "-W", "2", "10.50.0.3")
	})

	t.Run("other VNI", func(t *testing.T) {
		// Host a moves container b to another VNI: a's frames carry it, b has no endpoint there.
		if err := a.o.DeleteEndpoint(b.ctr.remote(b.vtep)); err != nil {
			t.Fatal(err)
		}
		other := b.ctr.remote(b.vtep)
		other.VNI = tVNI + 1
		self := a.ctr.endpoint()
		self.VNI = tVNI + 1
		if err := a.o.PutEndpoint(other); err != nil {
			t.Fatal(err)
		}
		if err := a.o.PutEndpoint(self); err != nil {
			t.Fatal(err)
		}
		before := tunCounters(t, b.o, OtherVNI).Drops["SPOOF_MAC"]
		if _, err := a.ctr.cmd(t, "ping", "-c", "1", "-W", "1", "10.50.0.3"); err == nil {
			t.Errorf("ping across VNIs succeeded")
		}
		if got := tunCounters(t, b.o, OtherVNI).Drops["SPOOF_MAC"]; got < before+1 {
			t.Errorf("host b: drops of VNI %d in the other-VNI slot %d -> %d, want one more", tVNI+1, before, got)
		}
	})
}

// TestInteropKernelHost: one host forwards in eBPF, the other the kernel's
// way (Docker's: bridge + VXLAN device with nolearning, proxy ARP, explicit
// local address, static FDB and neighbour entries): pings go both ways, so
// the wire format is standard VXLAN.
func TestInteropKernelHost(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ip", "ping", "tcpdump", "sysctl", "bridge")
	ha, hk := newNS(t, "a"), newNS(t, "k")
	underlay(t, ha, hk)
	a := newEBPFHost(t, ha, "10.98.0.1", "10.50.0.2")
	kvtep := netip.MustParseAddr("10.98.0.2")

	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hovbr0", MTU: tMTU}}
	if err := hk.h.LinkAdd(br); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	brl := hk.link(t, "hovbr0")
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: tVXLAN, MTU: tMTU, MasterIndex: brl.Attrs().Index},
		VxlanId:   tVNI, SrcAddr: net.IP(kvtep.AsSlice()), Port: 4789,
		Learning: false, Proxy: true, TTL: kernelTTL,
	}
	if err := hk.h.LinkAdd(vx); err != nil {
		t.Fatalf("add kernel vxlan: %v", err)
	}
	vxl := hk.link(t, tVXLAN)
	k := newContainer(t, hk, "kc", "hovk0", "10.50.0.3")
	if err := hk.h.LinkSetMaster(hk.link(t, k.hostIf), brl); err != nil {
		t.Fatalf("enslave %s: %v", k.hostIf, err)
	}
	hk.up(t, brl)
	hk.up(t, vxl)
	// Docker's peer entries: MAC -> remote VTEP on the VXLAN device, IP -> MAC for proxy ARP.
	if err := hk.h.NeighAppend(&netlink.Neigh{
		LinkIndex: vxl.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
		Flags: netlink.NTF_SELF, HardwareAddr: a.ctr.mac, IP: net.IP(a.vtep.AsSlice()),
	}); err != nil {
		t.Fatalf("add fdb entry: %v", err)
	}
	if err := hk.h.NeighSet(&netlink.Neigh{
		LinkIndex: vxl.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		HardwareAddr: a.ctr.mac, IP: net.IP(a.ctr.ip.AsSlice()),
	}); err != nil {
		t.Fatalf("add neighbour entry: %v", err)
	}
	t.Logf("kernel host fdb:\n%s", hk.must(t, "bridge", "fdb", "show", "dev", tVXLAN))
	if err := a.o.PutEndpoint(k.remote(kvtep)); err != nil {
		t.Fatal(err)
	}

	for _, dir := range []struct {
		name string
		from *container
		to   string
	}{{"ebpf to kernel", a.ctr, "10.50.0.3"}, {"kernel to ebpf", k, "10.50.0.2"}} {
		t.Run(dir.name, func(t *testing.T) {
			out := capture(t, ha, 6, func() {
				dir.from.must(t, "ping", "-c", "3", "-W", "2", dir.to)
			})
			wantPackets(t, out, map[string]int{
				fmt.Sprintf("10.98.0.1>10.98.0.2 vni %d ttl 64", tVNI):            3,
				fmt.Sprintf("10.98.0.2>10.98.0.1 vni %d ttl %d", tVNI, kernelTTL): 3,
			})
		})
	}
	c := epCounters(t, a.o, a.ctr.ifidx)
	t.Logf("ebpf host: endpoint %+v; tunnel %+v", c, tunCounters(t, a.o, tVNI))
	if c.EncapPackets < 6 || c.DecapPackets < 6 {
		t.Errorf("ebpf host: want at least 6 packets each way through the tunnel")
	}
}
