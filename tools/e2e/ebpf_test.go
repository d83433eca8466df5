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
