//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// Overlay networks on the eBPF dataplane (overlay/ebpf.go, bpf/overlay.c):
// every host with --dataplane ebpf carries them through one collect-metadata
// VXLAN device, with ARP answered in eBPF and remote endpoints in maps.

// newOverlayCluster is lab hosts h1..hn joined into one cluster, host i on
// dataplanes[i].
func newOverlayCluster(t *testing.T, dataplanes ...string) *lab.Cluster {
	t.Helper()
	l := newLab(t)
	c, err := l.Cluster(len(dataplanes), lab.ClusterOptions{
		HostArgs: func(i int) []string { return []string{"--dataplane", dataplanes[i]} },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ebpfHostIf is the host-side veth of a container's endpoint on a network.
func ebpfHostIf(t *testing.T, h *lab.Host, ctr, network string) string {
	t.Helper()
	ep, found := inspectCtr(t, h, ctr).NetworkSettings.Networks[network]
	if !found || len(ep.EndpointID) < 12 {
		t.Fatalf("%s has no endpoint on %s", ctr, network)
	}
	return "nd" + ep.EndpointID[:12]
}

func ebpfStatus(t *testing.T, h *lab.Host) api.DataplaneStatus {
	t.Helper()
	var st api.DataplaneStatus
	if err := json.Unmarshal([]byte(ok(t, h, "dataplane", "show", "--format", "json")), &st); err != nil {
		t.Fatalf("dataplane show on %s: %v", h.Node, err)
	}
	return st
}

// ebpfEpCounters are the counters of the endpoint on host-side veth ifname.
func ebpfEpCounters(t *testing.T, h *lab.Host, ifname string) api.EndpointCounters {
	t.Helper()
	st := ebpfStatus(t, h)
	for _, e := range st.Endpoints {
		if e.Interface == ifname {
			return e
		}
	}
	t.Fatalf("dataplane show on %s has no counters of %s: %+v", h.Node, ifname, st.Endpoints)
	return api.EndpointCounters{}
}

func ebpfTunCounters(t *testing.T, h *lab.Host, network string) api.TunnelCounters {
	t.Helper()
	st := ebpfStatus(t, h)
	for _, c := range st.Tunnels {
		if c.Network == network {
			return c
		}
	}
	t.Fatalf("dataplane show on %s has no tunnel counters of %s: %+v", h.Node, network, st.Tunnels)
	return api.TunnelCounters{}
}

// ebpfProgram is the program dataplane show says runs on ifname.
func ebpfProgram(st api.DataplaneStatus, ifname string) (api.ProgramAttachment, bool) {
	for _, p := range st.Programs {
		if p.Interface == ifname {
			return p, true
		}
	}
	return api.ProgramAttachment{}, false
}

// ebpfCapture runs tcpdump on h's underlay interface while fn runs and
// returns the lines it printed (bounded: tcpdump is killed after fn, and
// after 60 s at most).
func ebpfCapture(t *testing.T, h *lab.Host, filter string, fn func()) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := h.Command(ctx, "tcpdump", append([]string{"-i", "ul0", "-nn", "-l", "-U"}, strings.Fields(filter)...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump on %s: %v", h.Node, err)
	}
	var lines []string
	var mu sync.Mutex
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	sc := bufio.NewScanner(stderr)
	listening := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on") {
			listening = true
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if !listening {
		cancel()
		_ = cmd.Wait()
		t.Fatalf("tcpdump on %s never listened", h.Node)
	}
	fn()
	time.Sleep(500 * time.Millisecond) // let the last frames reach tcpdump
	cancel()
	_ = cmd.Wait()
	<-read
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), lines...)
}

var ipv4Token = regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)

// inSubnet says whether line names an address of subnet.
func inSubnet(line, subnet string) bool {
	p := netip.MustParsePrefix(subnet)
	for _, w := range ipv4Token.FindAllString(line, -1) {
		if a, err := netip.ParseAddr(w); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// subnetAddr is the n-th address of subnet.
func subnetAddr(t *testing.T, subnet string, n int) string {
	t.Helper()
	a := netip.MustParsePrefix(subnet).Addr()
	for range n {
		a = a.Next()
	}
	return a.String()
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// ebpfPingCount pings addr n times every 50 ms from ctr on h: sent, received.
func ebpfPingCount(t *testing.T, h *lab.Host, ctr, addr string, n int) (int, int, string) {
	t.Helper()
	out, errOut, _ := h.Exec(ctr, "ping", "-n", "-q", "-i", "0.05", "-c", strconv.Itoa(n), "-w", "60", addr)
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s from %s on %s: no summary:\n%s%s", addr, ctr, h.Node, out, errOut)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	return sent, recv, out
}

// ebpfMapEntries counts the entries of one of the overlay's pinned maps on h.
func ebpfMapEntries(t *testing.T, h *lab.Host, name string) int {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(h.BPFFSDir()+"/overlay/"+name, nil)
	if err != nil {
		t.Fatalf("open %s of %s: %v", name, h.Node, err)
	}
	defer m.Close()
	n := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate %s of %s: %v", name, h.Node, err)
	}
	return n
}

// ebpfCheckClean fails the test on any drift `system check` reports on h,
// but the bridges and veths of overlay networks that the bridge driver's
// own check takes for orphans (the daemon hands it only bridge networks:
// the check does not yet add a layered driver's networks to its base's, as
// reconcile does).
func ebpfCheckClean(t *testing.T, h *lab.Host, overlays ...string) {
	t.Helper()
	ours := map[string]bool{}
	for _, name := range overlays {
		if _, _, code := h.Netd("network", "inspect", name); code != 0 {
			continue // removed
		}
		n := inspectNet(t, h, name)
		ours["bridge ov-"+n.ID[:12]] = true
		for _, ep := range n.Containers {
			ours["veth nd"+ep.EndpointID[:12]] = true
		}
	}
	out, errOut, code := h.Netd("system", "check")
	if code == 0 {
		return
	}
	var drifts []string
	for _, line := range strings.Split(strings.TrimSpace(out+errOut), "\n") {
		obj, problem, found := strings.Cut(strings.TrimSpace(line), ": ")
		switch {
		case !found || strings.HasSuffix(line, "drift(s) found"):
		case strings.HasPrefix(problem, "orphan:") && ours[obj]:
		default:
			drifts = append(drifts, line)
		}
	}
	if len(drifts) > 0 {
		t.Errorf("system check on %s found drift:\n%s", h.Node, strings.Join(drifts, "\n"))
	}
}

func TestOverlayEBPF(t *testing.T) {
	t.Parallel()
	c := newOverlayCluster(t, api.DataplaneEBPF, api.DataplaneEBPF, api.DataplaneEBPF)
	h1, h2, h3 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	ok(t, h1, "network", "create", "-d", "overlay", "--attachable", "ov1")
	for _, h := range c.Hosts[1:] {
		waitNetwork(t, h, "ov1", 15*time.Second)
	}
	start := time.Now()
	ok(t, h1, "container", "create", "--network", "ov1", "c1")
	ok(t, h1, "container", "create", "--network", "ov1", "c1b")
	ok(t, h2, "container", "create", "--network", "ov1", "c2")
	ip1, ip1b, ip2 := containerIP(t, h1, "c1", "ov1"), containerIP(t, h1, "c1b", "ov1"), containerIP(t, h2, "c2", "ov1")
	d := pingUntil(t, h1, "c1", ip2, 10*time.Second)
	t.Logf("timing: c1 (h1) reached c2 (h2) %v after the containers were created (%v in all)", d, time.Since(start))
	pingUntil(t, h2, "c2", ip1, 5*time.Second)
	pingUntil(t, h1, "c1", ip1b, 5*time.Second)
	if1, if2 := ebpfHostIf(t, h1, "c1", "ov1"), ebpfHostIf(t, h2, "c2", "ov1")
	nw := inspectNet(t, h1, "ov1")
	subnet, gw := nw.IPAM.Config[0].Subnet, nw.IPAM.Config[0].Gateway

	t.Run("attachments", func(t *testing.T) {
		st := ebpfStatus(t, h1)
		if p, found := ebpfProgram(st, if1); !found || p.Program != "overlay_from_container" || p.Pinned == "" {
			t.Errorf("%s on h1: %+v (found %v), want overlay_from_container, pinned", if1, p, found)
		}
		if p, found := ebpfProgram(st, "netd_vxlan"); !found || p.Program != "overlay_from_tunnel" {
			t.Errorf("netd_vxlan on h1: %+v (found %v), want overlay_from_tunnel", p, found)
		}
		// Exactly one program on the veth: the bridge attached none of its own.
		if progs := ingressPrograms(t, h1)[if1]; len(progs) != 1 {
			t.Errorf("%s has %d ingress programs, want 1 (the overlay's): %v", if1, len(progs), progs)
		}
		// No per-network VXLAN device on an ebpf host.
		if out, _, _ := h1.Run("ip", "-o", "link", "show", "type", "vxlan"); strings.Contains(out, "vx-") || !strings.Contains(out, "netd_vxlan") {
			t.Errorf("VXLAN devices on h1:\n%s", out)
		}
	})

	t.Run("no ARP on the underlay", func(t *testing.T) {
		before := ebpfEpCounters(t, h1, if1)
		lines := ebpfCapture(t, h1, "arp or udp port 4789", func() {
			h1.Exec("c1", "ip", "neigh", "flush", "all")
			if _, _, code := h1.Exec("c1", "ping", "-c", "3", "-i", "0.2", "-W", "2", ip2); code != 0 {
				t.Errorf("c1 cannot ping c2 after flushing its neighbours")
			}
		})
		vxlan := 0
		for _, l := range lines {
			if strings.Contains(l, "ARP") && inSubnet(l, subnet) {
				t.Errorf("ARP of an overlay address on h1's underlay: %s", l)
			}
			if strings.Contains(l, ".4789:") {
				vxlan++
			}
		}
		if vxlan < 6 {
			t.Errorf("tcpdump saw %d VXLAN packets of 3 pings, want at least 6 (capture broken?):\n%s", vxlan, strings.Join(lines, "\n"))
		}
		after := ebpfEpCounters(t, h1, if1)
		if after.ARPReplies <= before.ARPReplies || after.EncapPackets < before.EncapPackets+3 || after.DecapPackets < before.DecapPackets+3 {
			t.Errorf("counters of c1: %+v -> %+v, want ARP replies, 3+ encapsulated and decapsulated", before, after)
		}
	})

	t.Run("counters", func(t *testing.T) {
		before := ebpfTunCounters(t, h2, "ov1")
		if _, recv, out := ebpfPingCount(t, h2, "c2", ip1, 5); recv != 5 {
			t.Fatalf("c2 -> c1: %s", out)
		}
		after := ebpfTunCounters(t, h2, "ov1")
		if after.VNI < 4096 || after.EncapPackets < before.EncapPackets+5 || after.DecapPackets < before.DecapPackets+5 {
			t.Errorf("tunnel counters of ov1 on h2: %+v -> %+v, want 5+ more each way", before, after)
		}
		table := ok(t, h2, "dataplane", "show")
		for _, want := range []string{"OVERLAY NETWORK", "ov1", "netd_vxlan", "overlay_from_container", if2} {
			if !strings.Contains(table, want) {
				t.Errorf("dataplane show on h2 lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("unknown destination dropped", func(t *testing.T) {
		before := ebpfEpCounters(t, h1, if1)
		nobody := subnetAddr(t, subnet, 250)
		if _, _, code := h1.Exec("c1", "ping", "-c", "1", "-W", "1", nobody); code == 0 {
			t.Errorf("ping of %s, which nobody has, answered", nobody)
		}
		// A neighbour entry for a MAC no endpoint has: the frame itself is dropped.
		h1.Exec("c1", "ip", "neigh", "replace", nobody, "lladdr", "02:42:de:ad:be:ef", "dev", "eth0")
		h1.Exec("c1", "ping", "-c", "2", "-i", "0.2", "-W", "1", nobody)
		after := ebpfEpCounters(t, h1, if1)
		if got := after.Drops["NO_ENDPOINT"] - before.Drops["NO_ENDPOINT"]; got < 3 {
			t.Errorf("NO_ENDPOINT drops of c1 moved by %d, want 3 or more (ARP and 2 frames): %+v", got, after.Drops)
		}
		h1.Exec("c1", "ip", "neigh", "del", nobody, "dev", "eth0")
	})

	t.Run("gateway and outside", func(t *testing.T) {
		before := ebpfEpCounters(t, h1, if1)
		mustPing(t, h1, "c1", gw)
		// Outside the subnet: h2's underlay address, through h1's bridge and masquerade.
		mustPing(t, h1, "c1", c.Addr(h2).String())
		if after := ebpfEpCounters(t, h1, if1); after.SlowPackets < before.SlowPackets+2 {
			t.Errorf("c1's frames to the bridge: %d -> %d, want 2+ more", before.SlowPackets, after.SlowPackets)
		}
	})

	// The killed daemon is h2's, as the receiver's and as the sender's host.
	// (Not h1's: it joins no one when it restarts, so the others take it
	// for dead and withdraw its endpoints until it finds them again.)
	t.Run("kill -9 loses nothing", func(t *testing.T) {
		for _, x := range []struct {
			from   *lab.Host
			ctr    string
			to     string
			killed *lab.Host
		}{{h1, "c1", ip2, h2}, {h2, "c2", ip1, h2}} {
			res := make(chan [3]any, 1)
			go func() {
				s, r, out := ebpfPingCount(t, x.from, x.ctr, x.to, 100)
				res <- [3]any{s, r, out}
			}()
			time.Sleep(time.Second) // the pings are under way
			if err := x.killed.KillDaemon(); err != nil {
				t.Fatal(err)
			}
			if err := x.killed.RestartDaemon(); err != nil {
				t.Fatal(err)
			}
			r := <-res
			if r[0] != 100 || r[1] != 100 {
				t.Errorf("%s -> %s with the daemon of %s killed and restarted: %v", x.ctr, x.to, x.killed.Node, r[2])
			}
		}
		if _, err := c.WaitAlive(c.Hosts, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		// The restarted daemons adopted their state and keep programming it: a
		// new container on h3 is reached from both.
		ok(t, h3, "container", "create", "--network", "ov1", "c3")
		ip3 := containerIP(t, h3, "c3", "ov1")
		pingUntil(t, h1, "c1", ip3, 15*time.Second)
		pingUntil(t, h2, "c2", ip3, 15*time.Second)
		for _, h := range c.Hosts {
			ebpfCheckClean(t, h, "ov1")
		}
	})

	t.Run("removed endpoint leaves the maps", func(t *testing.T) {
		n := ebpfMapEntries(t, h1, "netd_ov_macs")
		ok(t, h2, "container", "rm", "c2")
		if !waitFor(15*time.Second, func() bool { return ebpfMapEntries(t, h1, "netd_ov_macs") == n-1 }) {
			t.Errorf("h1's endpoint map has %d entries after c2 was removed, want %d", ebpfMapEntries(t, h1, "netd_ov_macs"), n-1)
		}
		ebpfCheckClean(t, h1, "ov1")
	})

	t.Run("last network gone, nothing left", func(t *testing.T) {
		for _, x := range []struct {
			h   *lab.Host
			ctr []string
		}{{h1, []string{"c1", "c1b"}}, {h3, []string{"c3"}}} {
			ok(t, x.h, append([]string{"container", "rm"}, x.ctr...)...)
		}
		if !waitFor(15*time.Second, func() bool { _, _, code := h1.Netd("network", "rm", "ov1"); return code == 0 }) {
			t.Fatalf("network rm ov1 never succeeded")
		}
		for _, h := range c.Hosts {
			if !waitFor(15*time.Second, func() bool {
				out, _, _ := h.Run("ip", "-o", "link", "show", "netd_vxlan")
				return out == ""
			}) {
				t.Errorf("%s still has netd_vxlan after its last overlay network", h.Node)
			}
			ebpfCheckClean(t, h)
		}
	})
}

// One network across a host on the kernel path and a host on the eBPF
// path: both speak standard VXLAN.
func TestOverlayMixedDataplanes(t *testing.T) {
	t.Parallel()
	c := newOverlayCluster(t, api.DataplaneKernel, api.DataplaneEBPF)
	hk, he := c.Hosts[0], c.Hosts[1]
	ok(t, he, "network", "create", "-d", "overlay", "--attachable", "mix")
	waitNetwork(t, hk, "mix", 15*time.Second)
	ok(t, hk, "container", "create", "--network", "mix", "ck")
	ok(t, he, "container", "create", "--network", "mix", "ce")
	ipk, ipe := containerIP(t, hk, "ck", "mix"), containerIP(t, he, "ce", "mix")
	d := pingUntil(t, hk, "ck", ipe, 10*time.Second)
	t.Logf("timing: kernel host reached the ebpf host's container after %v", d)
	pingUntil(t, he, "ce", ipk, 5*time.Second)
	for _, x := range []struct {
		from *lab.Host
		ctr  string
		to   string
	}{{hk, "ck", ipe}, {he, "ce", ipk}} {
		if s, r, out := ebpfPingCount(t, x.from, x.ctr, x.to, 20); s != r {
			t.Errorf("%s -> %s: %s", x.ctr, x.to, out)
		}
	}
	// Each host on its own path: a per-network device on the kernel host,
	// the shared one and the programs on the ebpf host.
	if out, _, _ := hk.Run("ip", "-o", "link", "show", "type", "vxlan"); !strings.Contains(out, "vx-") || strings.Contains(out, "netd_vxlan") {
		t.Errorf("VXLAN devices on the kernel host:\n%s", out)
	}
	if progs := ingressPrograms(t, hk)[ebpfHostIf(t, hk, "ck", "mix")]; len(progs) != 0 {
		t.Errorf("the kernel host's veth runs eBPF programs: %v", progs)
	}
	ife := ebpfHostIf(t, he, "ce", "mix")
	if p, found := ebpfProgram(ebpfStatus(t, he), ife); !found || p.Program != "overlay_from_container" {
		t.Errorf("%s on the ebpf host: %+v (found %v)", ife, p, found)
	}
	if cnt := ebpfEpCounters(t, he, ife); cnt.EncapPackets < 20 || cnt.DecapPackets < 20 {
		t.Errorf("counters of ce: %+v, want 20+ each way", cnt)
	}
	for _, h := range c.Hosts {
		ebpfCheckClean(t, h, "mix")
	}
}
