//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/tools/lab"
)

// kernelState is what a daemon runs in the kernel, as `ip`, /run/netns and
// bpffs show it, independent of the daemon's own view.
func kernelState(t *testing.T, h *lab.Host) string {
	t.Helper()
	links := hostLinks(t, h)
	sort.Strings(links)
	var ns []string
	entries, _ := os.ReadDir(lab.NetnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), h.Node+"-") {
			ns = append(ns, e.Name())
		}
	}
	var pins []string
	_ = filepath.WalkDir(h.BPFFSDir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			pins = append(pins, strings.TrimPrefix(p, h.BPFFSDir()))
		}
		return nil
	})
	sort.Strings(pins)
	rules, _, _ := h.Run("nft", "list", "ruleset")
	nrules := strings.Count(rules, "\n")
	return fmt.Sprintf("links %v\nnetns %v\npins %v\nnft lines %d", links, ns, pins, nrules)
}

// runDaemonOnce runs `netd daemon` with args in h's namespace and expects it
// to refuse (exit non-zero) within the timeout; it returns the output.
func runDaemonOnce(t *testing.T, h *lab.Host, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Command(ctx, h.Lab.NetdBin(), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("netd %s kept running instead of refusing:\n%s", strings.Join(args, " "), out)
	}
	if err == nil {
		t.Fatalf("netd %s exited 0, want a refusal:\n%s", strings.Join(args, " "), out)
	}
	if strings.Contains(string(out), "goroutine ") || strings.Contains(string(out), "panic:") {
		t.Errorf("refusal is a crash:\n%s", out)
	}
	return string(out)
}

// guardedHost is a daemon with two containers on an ebpf and a kernel network.
func guardedHost(t *testing.T, l *lab.Lab, name string) *lab.Host {
	t.Helper()
	h := startHost(t, l, name)
	createNet(t, h, "ebpf", "fast", "--subnet", "10.231.1.0/24")
	createNet(t, h, "kernel", "slow", "--subnet", "10.231.2.0/24")
	createCtr(t, h, "c1", "--network", "fast", "--network", "slow")
	createCtr(t, h, "c2", "--network", "fast", "--network", "slow")
	mustPing(t, h, "c1", ctrIP(t, h, "c2", "fast"))
	mustPing(t, h, "c1", ctrIP(t, h, "c2", "slow"))
	return h
}

// pingBoth pings from c1 with `ip netns exec`, which needs no daemon.
func pingBoth(t *testing.T, h *lab.Host, ipFast, ipSlow string) {
	t.Helper()
	for _, ip := range []string{ipFast, ipSlow} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.ContainerNS("c1"), "ping", "-c", "3", "-W", "2", "-i", "0.2", ip).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("ping %s from c1: %v\n%s", ip, err, out)
		}
	}
}

// A second daemon pointed at the same socket (another state dir), or with
// the same node name in another namespace (sharing the pin dir), must give
// up before it touches anything of the first one's.
func TestSecondDaemonTouchesNothing(t *testing.T) {
	l := newLab(t)
	h1 := guardedHost(t, l, "h1")
	ipFast, ipSlow := ctrIP(t, h1, "c2", "fast"), ctrIP(t, h1, "c2", "slow")
	before := kernelState(t, h1)

	// Same socket, another state dir, same netns.
	other := t.TempDir()
	out := runDaemonOnce(t, h1, "daemon", "--socket", h1.Socket, "--state-dir", other,
		"--bpffs", lab.BPFFSDir, "--node-name", h1.Node+"x")
	if !strings.Contains(out, "another daemon is listening on "+h1.Socket) {
		t.Errorf("same-socket refusal does not say why:\n%s", out)
	}
	if after := kernelState(t, h1); after != before {
		t.Errorf("a refused second daemon on the socket changed the kernel:\n--- before\n%s\n--- after\n%s", before, after)
	}
	pingBoth(t, h1, ipFast, ipSlow)

	// Same node name (so same pin dir and names), another netns and state dir.
	h2 := l.MustHost("h2")
	out = runDaemonOnce(t, h2, "daemon", "--socket", h2.Socket, "--state-dir", h2.StateDir,
		"--bpffs", lab.BPFFSDir, "--node-name", h1.Node)
	if !strings.Contains(out, "pin dir "+h1.BPFFSDir()) {
		t.Errorf("same-node-name refusal does not name the pin dir:\n%s", out)
	}
	if after := kernelState(t, h1); after != before {
		t.Errorf("a refused daemon with the same node name changed the kernel:\n--- before\n%s\n--- after\n%s", before, after)
	}
	pingBoth(t, h1, ipFast, ipSlow)
	ok(t, h1, "system", "check")
}

// A wrong --state-dir (or an emptied database) must not tear down what
// runs: the objects without a record are kept and listed; only an
// explicit --prune-orphans removes them, and in one start the default
// bridge they were in the way of comes up.
func TestUnrecordedObjectsAreKept(t *testing.T) {
	l := newLab(t)
	h := guardedHost(t, l, "h1")
	ipFast, ipSlow := ctrIP(t, h, "c2", "fast"), ctrIP(t, h, "c2", "slow")
	ok(t, h, "system", "check")
	if err := h.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	before := kernelState(t, h)

	typo := filepath.Join(t.TempDir(), "typo")
	args := h.DaemonArgs("--state-dir", typo)
	out := runDaemonOnce(t, h, args...)
	for _, want := range []string{"netd0", "--prune-orphans", "no record"} {
		if !strings.Contains(out, want) {
			t.Errorf("start on an empty state dir does not mention %q:\n%s", want, out)
		}
	}
	if after := kernelState(t, h); after != before {
		t.Errorf("a daemon on an empty state dir changed the kernel:\n--- before\n%s\n--- after\n%s", before, after)
	}
	pingBoth(t, h, ipFast, ipSlow)

	// The right state dir again: everything is there and consistent.
	if err := h.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	ok(t, h, "system", "check")
	pingBoth(t, h, ipFast, ipSlow)

	// Explicitly pruning from the empty state dir removes exactly the old
	// objects and brings the default bridge up in one start.
	if err := h.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	if err := h.StartDaemon("--state-dir", typo, "--prune-orphans"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2"} {
		if netnsExists(h.ContainerNS(c)) {
			t.Errorf("--prune-orphans kept the netns of %s", c)
		}
	}
	for _, link := range hostLinks(t, h) {
		if strings.HasPrefix(link, "nd") || strings.HasPrefix(link, "br-") {
			t.Errorf("--prune-orphans kept link %s", link)
		}
	}
	if _, _, code := h.Run("ip", "link", "show", "netd0"); code != 0 {
		t.Error("the default bridge network has no bridge after one start with --prune-orphans")
	}
	createCtr(t, h, "c3")
	if _, _, code := h.Run("ping", "-c", "1", "-W", "2", ctrIP(t, h, "c3", "bridge")); code != 0 {
		t.Error("a container on the default bridge is not reachable from its host")
	}
	ok(t, h, "system", "check")
}

// `netd system check` reports every drift between the records and the
// kernel and exits 1; a restart repairs them, and `netd system prune`
// removes an orphan.
func TestSystemCheck(t *testing.T) {
	l := newLab(t)
	h := guardedHost(t, l, "h1")
	if out := ok(t, h, "system", "check"); !strings.Contains(out, "OK") {
		t.Errorf("check of a consistent host:\n%s", out)
	}
	c1 := inspectCtr(t, h, "c1").NetworkSettings.Networks
	fastIf := "nd" + c1["fast"].EndpointID[:12]
	slowIf := "nd" + c1["slow"].EndpointID[:12]
	slowBr := "br-" + inspectNet(t, h, "slow").ID[:12]
	for _, cmd := range [][]string{
		{"ip", "link", "del", fastIf},
		{"ip", "link", "set", slowBr, "down"},
		{"ip", "link", "set", slowIf, "mtu", "1400"},
		{"ip", "link", "add", "ndorphan0", "type", "veth", "peer", "name", "ndorphan1"},
		{"ip", "link", "set", "ndorphan0", "alias", "netd:bridge-ep:" + strings.Repeat("ab", 32)},
		{"nft", "delete", "element", "inet", "netd_" + strings.NewReplacer("-", "_", ".", "_").Replace(h.Node), "bridges", "{", slowBr, "}"},
	} {
		if _, errOut, code := h.Run(cmd[0], cmd[1:]...); code != 0 {
			t.Fatalf("%v: %s", cmd, errOut)
		}
	}
	out, _, code := h.Netd("system", "check")
	if code != 1 {
		t.Errorf("check with drift: exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{fastIf + " of container", "bridge is down", "MTU 1400", "veth ndorphan0",
		"nftables element " + slowBr + " of set bridges missing", "drift(s) found"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if err := h.RestartDaemon(); err != nil {
		t.Fatal(err)
	}
	out, _, _ = h.Netd("system", "check")
	if strings.Contains(out, fastIf) || strings.Contains(out, "bridge is down") || strings.Contains(out, "MTU 1400") || strings.Contains(out, "nftables") {
		t.Errorf("restart did not repair the recorded objects:\n%s", out)
	}
	if !strings.Contains(out, "ndorphan0") {
		t.Errorf("restart removed (or forgot to report) an unrecorded veth:\n%s", out)
	}
	if _, _, code := h.Run("ip", "link", "show", "ndorphan0"); code != 0 {
		t.Error("restart deleted an unrecorded veth")
	}
	if pr := ok(t, h, "system", "prune", "-f"); !strings.Contains(pr, "veth ndorphan0") {
		t.Errorf("prune output:\n%s", pr)
	}
	if _, _, code := h.Run("ip", "link", "show", "ndorphan0"); code == 0 {
		t.Error("prune kept the orphaned veth")
	}
	ok(t, h, "system", "check")
	mustPing(t, h, "c1", ctrIP(t, h, "c2", "fast"))
}

// kill -9 in the middle of creates leaves nothing behind that the next
// start does not undo: the operations recorded their intent first.
func TestKill9ChurnStaysConsistent(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1")
	createNet(t, h, "ebpf", "fast", "--subnet", "10.232.1.0/24")
	createNet(t, h, "kernel", "slow", "--subnet", "10.232.2.0/24")
	deadline := time.Now().Add(40 * time.Second)
	for round := 0; round < 8 && time.Now().Before(deadline); round++ {
		// Creates in flight while the daemon is killed at a varying moment.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 6 {
				h.Netd("container", "create", "--network", "fast", "--network", "slow", fmt.Sprintf("r%dc%d", round, i))
				h.Netd("network", "create", "-o", "netd.dataplane=kernel", fmt.Sprintf("r%dn%d", round, i))
			}
		}()
		time.Sleep(time.Duration(50+round*40) * time.Millisecond)
		if err := h.KillDaemon(); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := h.StartDaemon(); err != nil {
			t.Fatal(err)
		}
		if out, _, code := h.Netd("system", "check"); code != 0 {
			t.Fatalf("round %d: inconsistent after kill -9 and restart:\n%s\n%s", round, out, h.DaemonLog())
		}
	}
	t.Logf("interrupted creates undone at restarts: %d", strings.Count(h.DaemonLog(), "undoing interrupted"))
	// Everything that was created works; everything removes cleanly.
	cts := strings.Fields(ok(t, h, "container", "ls", "-q"))
	if len(cts) > 0 {
		ok(t, h, append([]string{"container", "rm"}, cts...)...)
	}
	ok(t, h, "network", "prune", "-f")
	ok(t, h, "system", "check")
	for _, link := range hostLinks(t, h) {
		if strings.HasPrefix(link, "nd") {
			t.Errorf("veth %s left after removing every container", link)
		}
	}
}
