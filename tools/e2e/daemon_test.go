//go:build linux

package e2e

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/tools/lab"
)

func TestVersion(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1")
	out := ok(t, h, "version")
	if !strings.Contains(out, h.Node) && !strings.Contains(out, "v1") {
		t.Errorf("netd version shows neither node name nor API version:\n%s", out)
	}
	// NETD_HOST works as well as -H.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.Command(ctx, l.NetdBin(), "network", "ls", "-q")
	cmd.Env = append(os.Environ(), "NETD_HOST="+h.HostURL())
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.Fields(string(out))) != 3 {
		t.Errorf("NETD_HOST: %v: %s", err, out)
	}
	// The socket is 0660, as the issue asks.
	if fi, err := os.Stat(h.Socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
}

func TestRestartPersistence(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "keep", "--subnet", "10.211.0.0/24", "--label", "a=b", "-o", "com.docker.network.bridge.name=ndtkeep")
		createNet(t, h, dp, "other", "--subnet", "10.211.1.0/24")
		createCtr(t, h, "ca", "--network", "keep")
		createCtr(t, h, "cb", "--network", "keep", "--network", "other")
		createCtr(t, h, "cc")
		ipB := ctrIP(t, h, "cb", "keep")
		mustPing(t, h, "ca", ipB)
		before := snapshot(t, h, "ca", "cb", "cc")

		if err := h.StopDaemon(); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		if err := h.StartDaemon("--dataplane", dp); err != nil {
			t.Fatal(err)
		}
		sameState(t, "daemon restart", before, snapshot(t, h, "ca", "cb", "cc"))
		checkDataplane(t, h, dp, "ca", "keep")
		mustPing(t, h, "ca", ipB)
		mustPing(t, h, "cb", ctrIP(t, h, "ca", "keep"))
		// Allocations persisted: a new container gets a fresh address.
		createCtr(t, h, "cd", "--network", "keep")
		if ipD := ctrIP(t, h, "cd", "keep"); ipD == ipB || ipD == ctrIP(t, h, "ca", "keep") {
			t.Errorf("after restart d got an address in use: %s", ipD)
		}

		// Reconcile: a bridge deleted while the daemon is down comes back.
		if err := h.StopDaemon(); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := h.Run("ip", "link", "del", "ndtkeep"); code != 0 {
			t.Fatalf("delete bridge: %s", errOut)
		}
		if err := h.StartDaemon("--dataplane", dp); err != nil {
			t.Fatal(err)
		}
		if _, _, code := h.Run("ip", "link", "show", "ndtkeep"); code != 0 {
			t.Errorf("reconcile did not recreate bridge ndtkeep")
		}
		mustPing(t, h, "ca", ipB)
	})
}

func TestTwoDaemonsSideBySide(t *testing.T) {
	l := newLab(t)
	h1 := startHost(t, l, "h1")
	h2 := startHost(t, l, "h2")
	// Same names, same subnets, same bridge names: nothing may collide.
	for _, h := range []*lab.Host{h1, h2} {
		createNet(t, h, "kernel", "shared", "--subnet", "10.212.0.0/24", "-o", "com.docker.network.bridge.name=ndtsh")
		createNet(t, h, "ebpf", "fast", "--subnet", "10.212.1.0/24")
		createCtr(t, h, "c1", "--network", "shared", "--network", "fast")
		createCtr(t, h, "c2", "--network", "shared", "--network", "fast")
	}
	for _, h := range []*lab.Host{h1, h2} {
		for _, c := range []string{"c1", "c2"} {
			if !netnsExists(h.ContainerNS(c)) {
				t.Errorf("netns %s missing", h.ContainerNS(c))
			}
			if got := inspectCtr(t, h, c).NetworkSettings.SandboxKey; got != "/run/netns/"+h.ContainerNS(c) {
				t.Errorf("%s on %s: SandboxKey %s", c, h.Node, got)
			}
		}
		mustPing(t, h, "c1", ctrIP(t, h, "c2", "shared"))
		mustPing(t, h, "c1", ctrIP(t, h, "c2", "fast"))
	}
	id1 := inspectNet(t, h1, "shared").ID
	id2 := inspectNet(t, h2, "shared").ID
	if id1 == id2 {
		t.Errorf("two daemons gave the same network ID %s", id1)
	}
	// Removing everything on one leaves the other untouched.
	before := snapshot(t, h2, "c1", "c2")
	ok(t, h1, "container", "rm", "c1", "c2")
	ok(t, h1, "network", "rm", "shared", "fast")
	sameState(t, "removing h1's objects on h2", before, snapshot(t, h2, "c1", "c2"))
	mustPing(t, h2, "c1", ctrIP(t, h2, "c2", "fast"))
	if netnsExists(h1.ContainerNS("c1")) || !netnsExists(h2.ContainerNS("c1")) {
		t.Errorf("container netns removal crossed daemons")
	}
	// Each daemon pins under its own node directory.
	if _, err := os.Stat(h2.BPFFSDir()); err != nil {
		t.Errorf("pin dir of h2 (ebpf network) missing: %v", err)
	}
}

func TestSecondDaemonSameStateDir(t *testing.T) {
	l := newLab(t)
	h1 := startHost(t, l, "h1")
	h2 := l.MustHost("h2")
	before := snapshot(t, h1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := []string{"daemon", "--socket", h2.Socket, "--state-dir", h1.StateDir,
		"--bpffs", lab.BPFFSDir, "--node-name", h2.Node}
	out, err := h2.Command(ctx, l.NetdBin(), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("second daemon on %s kept running instead of refusing", h1.StateDir)
	}
	if err == nil {
		t.Fatalf("second daemon on the same state dir exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), h1.StateDir) || !regexp.MustCompile(`(?i)lock|in use|another`).Match(out) {
		t.Errorf("refusal does not name the state dir and the lock:\n%s", out)
	}
	if !h1.Running() {
		t.Fatalf("first daemon died")
	}
	sameState(t, "a refused second daemon", before, snapshot(t, h1))
}

// bpfProgIDs lists the prog_id of every TC/TCX attachment in the host namespace.
