//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// dataplaneStatus decodes `netd dataplane show --format json`.
func dataplaneStatus(t *testing.T, h *lab.Host) api.DataplaneStatus {
	t.Helper()
	out := ok(t, h, "dataplane", "show", "--format", "json")
	var st api.DataplaneStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("dataplane show --format json: %v\n%s", err, out)
	}
	return st
}

func counters(st api.DataplaneStatus, hostIf string) (api.EndpointCounters, bool) {
	for _, e := range st.Endpoints {
		if e.Interface == hostIf {
			return e, true
		}
	}
	return api.EndpointCounters{}, false
}

func TestEBPFCountersAndShow(t *testing.T) {
	h := dpHost(t, api.DataplaneEBPF)
	createNet(t, h, api.DataplaneEBPF, "fast", "--subnet", "10.213.0.0/24")
	createCtr(t, h, "ca", "--network", "fast")
	createCtr(t, h, "cb", "--network", "fast")
	hostIf := "nd" + inspectCtr(t, h, "ca").NetworkSettings.Networks["fast"].EndpointID[:12]

	// The human view lists the program on a's host-side veth.
	if out := ok(t, h, "dataplane", "show"); !strings.Contains(out, hostIf) {
		t.Errorf("dataplane show does not mention %s:\n%s", hostIf, out)
	}
	st := dataplaneStatus(t, h)
	if st.PinDir != h.BPFFSDir() {
		t.Errorf("PinDir %q, want %q", st.PinDir, h.BPFFSDir())
	}
	attached := false
	for _, p := range st.Programs {
		attached = attached || (p.Interface == hostIf && strings.Contains(p.Hook, "ingress") && p.ProgramID != 0)
	}
	if !attached {
		t.Errorf("no ingress program on %s: %+v", hostIf, st.Programs)
	}
	c0, found := counters(st, hostIf)
	if !found {
		t.Fatalf("no counters for %s: %+v", hostIf, st.Endpoints)
	}

	mustPing(t, h, "ca", ctrIP(t, h, "cb", "fast"))
	c1, _ := counters(dataplaneStatus(t, h), hostIf)
	// 3 echo requests leave a through the fast path (ARP goes the slow path).
	if c1.FastPackets < c0.FastPackets+3 || c1.FastBytes <= c0.FastBytes {
		t.Errorf("fast-path counters did not move: before %+v after %+v", c0, c1)
	}
	if c1.SlowPackets <= c0.SlowPackets {
		t.Errorf("slow-path counter did not move (ARP/gateway): before %+v after %+v", c0, c1)
	}

	// Spoofing: a's frames with b's source address are dropped and counted.
	ipB := ctrIP(t, h, "cb", "fast")
	// The gateway's neighbour entry is resolved first with a's real address,
	// so the spoofed pings leave as IPv4 (SPOOF_IP), not only as ARP.
	mustPing(t, h, "ca", "10.213.0.1")
	h.Exec("ca", "ip", "addr", "add", ipB+"/32", "dev", "eth0")
	h.Exec("ca", "ping", "-c", "3", "-W", "1", "-i", "0.2", "-I", ipB, "10.213.0.1")
	c2, _ := counters(dataplaneStatus(t, h), hostIf)
	if got := c2.Drops["SPOOF_IP"] - c1.Drops["SPOOF_IP"]; got < 3 {
		t.Errorf("SPOOF_IP drops moved by %d, want >= 3: before %v after %v", got, c1.Drops, c2.Drops)
	}
	var drops0, drops2 uint64
	for _, v := range c1.Drops {
		drops0 += v
	}
	for _, v := range c2.Drops {
		drops2 += v
	}
	if drops2 < drops0+3 {
		t.Errorf("spoofed packets not counted as drops: before %v after %v", c1.Drops, c2.Drops)
	}
}

// TestEBPFKill9ZeroLoss kills the daemon while a fast ping runs between two
// containers: forwarding must not notice, and the restarted daemon must adopt
// the pinned programs instead of reloading them.
func TestEBPFKill9ZeroLoss(t *testing.T) {
	h := dpHost(t, api.DataplaneEBPF)
	createNet(t, h, api.DataplaneEBPF, "fast", "--subnet", "10.214.0.0/24")
	createCtr(t, h, "ca", "--network", "fast")
	createCtr(t, h, "cb", "--network", "fast")
	ipB := ctrIP(t, h, "cb", "fast")
	mustPing(t, h, "ca", ipB)
	progs := bpfProgIDs(t, h)
	if len(progs) == 0 {
		t.Fatalf("no eBPF programs attached in the host namespace")
	}

	// Straight into the container's netns: the ping must not depend on the
	// daemon that is about to die.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ping := h.Command(ctx, "nsenter", "--net=/run/netns/"+h.ContainerNS("ca"), "--",
		"ping", "-c", "400", "-i", "0.01", "-W", "1", ipB)
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1 * time.Second)
	if err := h.KillDaemon(); err != nil {
		t.Fatal(err)
	}
	err := ping.Wait()
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
	if err != nil || m == nil || m[1] != m[2] {
		t.Errorf("ping across kill -9 lost packets (%v):\n%s", err, out.String())
	}
	if err := h.StartDaemon("--dataplane", api.DataplaneEBPF); err != nil {
		t.Fatal(err)
	}
	if after := bpfProgIDs(t, h); !equal(after, progs) {
		t.Errorf("programs reloaded on restart: before %v after %v", progs, after)
	}
	mustPing(t, h, "ca", ipB)
}

// hostIf is the host-side veth of ctr's endpoint on network.
func hostIf(t *testing.T, h *lab.Host, ctr, network string) string {
	t.Helper()
	ep, found := inspectCtr(t, h, ctr).NetworkSettings.Networks[network]
	if !found || len(ep.EndpointID) < 12 {
		t.Fatalf("%s has no endpoint on %s", ctr, network)
	}
	return "nd" + ep.EndpointID[:12]
}

// epCounters reads the counters of one host-side veth, failing if it has none.
func epCounters(t *testing.T, h *lab.Host, hostIf string) api.EndpointCounters {
	t.Helper()
	c, found := counters(dataplaneStatus(t, h), hostIf)
	if !found {
		t.Fatalf("no counters for %s", hostIf)
	}
	return c
}

// dropsMoved fails unless drop reason of hostIf moved by at least min since before.
func dropsMoved(t *testing.T, h *lab.Host, hostIf, reason string, before api.EndpointCounters, min uint64) api.EndpointCounters {
	t.Helper()
	after := epCounters(t, h, hostIf)
	got := after.Drops[reason] - before.Drops[reason]
	if got < min {
		t.Errorf("%s: %s drops moved by %d, want >= %d: before %v after %v", hostIf, reason, got, min, before.Drops, after.Drops)
	} else {
		t.Logf("%s: %s drops %d -> %d", hostIf, reason, before.Drops[reason], after.Drops[reason])
	}
	return after
}

// TestEBPFIsolationAndInternal checks that on the ebpf dataplane the program
// itself (its counters move) drops IPv4 routed into another network and out
// of an internal one, while the gateway, the host, the outside world and a
// container on two networks keep working.
func TestEBPFIsolationAndInternal(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1", "--dataplane", api.DataplaneEBPF)
	out := l.MustHost("out")
	if err := l.Wire(h, out, "uplink", "10.250.0.1/24", "10.250.0.2/24"); err != nil {
		t.Fatal(err)
	}
	createNet(t, h, api.DataplaneEBPF, "red", "--subnet", "10.217.1.0/24")
	createNet(t, h, api.DataplaneEBPF, "blue", "--subnet", "10.217.2.0/24")
	createNet(t, h, api.DataplaneEBPF, "closed", "--subnet", "10.217.3.0/24", "--internal")
	createCtr(t, h, "r1", "--network", "red")
	createCtr(t, h, "r2", "--network", "red")
	createCtr(t, h, "b1", "--network", "blue")
	createCtr(t, h, "i1", "--network", "closed")
	createCtr(t, h, "i2", "--network", "closed")
	checkDataplane(t, h, api.DataplaneEBPF, "r1", "red")
	checkDataplane(t, h, api.DataplaneEBPF, "i1", "closed")
	ipR2, ipB1 := ctrIP(t, h, "r2", "red"), ctrIP(t, h, "b1", "blue")

	// Isolation: red -> blue and blue -> red die in eBPF, counted as ISOLATED.
	r1If, b1If := hostIf(t, h, "r1", "red"), hostIf(t, h, "b1", "blue")
	mustPing(t, h, "r1", ipR2) // control: the network itself works
	c := epCounters(t, h, r1If)
	mustNotPing(t, h, "r1", ipB1)
	c = dropsMoved(t, h, r1If, "ISOLATED", c, 3)
	cb := epCounters(t, h, b1If)
	mustNotPing(t, h, "b1", ctrIP(t, h, "r1", "red"))
	dropsMoved(t, h, b1If, "ISOLATED", cb, 3)

	// The gateway (the host), the host's other addresses and the outside stay reachable.
	mustPing(t, h, "r1", "10.217.1.1")
	mustPing(t, h, "r1", "10.250.0.1")
	mustPing(t, h, "r1", "10.250.0.2")
	// Blue's gateway address is the host too: reachable as on the kernel dataplane.
	mustPing(t, h, "r1", "10.217.2.1")
	if after := epCounters(t, h, r1If); after.Drops["ISOLATED"] != c.Drops["ISOLATED"] || after.Drops["INTERNAL"] != 0 {
		t.Errorf("allowed traffic counted as dropped: before %v after %v", c.Drops, after.Drops)
	}

	// Internal: even with a default route through the gateway nothing leaves the subnet.
	i1If := hostIf(t, h, "i1", "closed")
	if o, e, code := h.Exec("i1", "ip", "route", "replace", "default", "via", "10.217.3.1"); code != 0 {
		t.Fatalf("add default route in i1: %s%s", o, e)
	}
	ci := epCounters(t, h, i1If)
	mustNotPing(t, h, "i1", "10.250.0.2")
	mustNotPing(t, h, "i1", "10.250.0.1")
	ci = dropsMoved(t, h, i1If, "INTERNAL", ci, 6)
	mustNotPing(t, h, "i1", ipR2)
	ci = dropsMoved(t, h, i1If, "ISOLATED", ci, 3)
	mustPing(t, h, "i1", "10.217.3.1")
	mustPing(t, h, "i1", ctrIP(t, h, "i2", "closed"))
	if after := epCounters(t, h, i1If); after.Drops["INTERNAL"] != ci.Drops["INTERNAL"] {
		t.Errorf("traffic inside the internal subnet dropped: before %v after %v", ci.Drops, after.Drops)
	}

	// A container on red (eth0) and blue (eth1, connected later) reaches both.
	createCtr(t, h, "both", "--network", "red")
	ok(t, h, "network", "connect", "blue", "both")
	bothBlue := hostIf(t, h, "both", "blue")
	c0 := epCounters(t, h, bothBlue)
	mustPing(t, h, "both", ctrIP(t, h, "r1", "red"))
	mustPing(t, h, "both", ipB1)
	c1 := epCounters(t, h, bothBlue)
	if c1.FastPackets < c0.FastPackets+3 {
		t.Errorf("both -> b1 did not take blue's fast path: before %+v after %+v", c0, c1)
	}
	for _, ifname := range []string{hostIf(t, h, "both", "red"), bothBlue} {
		if d := epCounters(t, h, ifname).Drops; d["ISOLATED"] != 0 || d["INTERNAL"] != 0 {
			t.Errorf("%s of the two-network container has policy drops: %v", ifname, d)
		}
	}
}
