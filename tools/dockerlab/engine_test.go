//go:build linux

package dockerlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netd-dev/netd/api/stringid"
)

// labName matches the names tools/lab and its users give (ndl1234, ndb1234...): other labs may
// come and go in the root namespace while this test runs.
var labName = regexp.MustCompile(`nd[a-z][0-9a-f]{4}`)

// TestEngineLeavesRootAsFound starts the real dockerd in a fresh namespace, runs two
// containers on a user-defined bridge network that ping each other by name, closes it,
// and compares the root namespace and the machine's mounts, cgroups and state dirs
// before and after.
func TestEngineLeavesRootAsFound(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := FindBinaries(); err != nil {
		t.Skipf("no Docker engine on this machine: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A lab-style name, so make lab-clean finds it after a killed run.
	prefix := "ndl" + stringid.RandomHex(4)
	ns := prefix + "-docker"
	ignore := func(line string) bool {
		// Other labs' namespaces, cgroups and dirs, and anyone's named namespaces.
		if m := labName.FindString(line); m != "" && m != prefix {
			return true
		}
		// bpffs is mounted on demand by any lab (tools/lab) starting meanwhile.
		if strings.HasPrefix(line, "bpf ") {
			return true
		}
		return strings.Contains(line, NetnsDir+"/") && !strings.Contains(line, prefix)
	}
	before, err := CaptureRootState(ctx)
	if err != nil {
		t.Fatal(err)
	}

	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")

	dir := filepath.Join(os.TempDir(), prefix+"-dockerlab")
	eng, err := Start(ctx, Options{NetNS: ns, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = eng.Close()
		}
	})
	if eng.CgroupParent != "/"+ns {
		t.Errorf("cgroup parent %q, want /%s", eng.CgroupParent, ns)
	}
	versions, err := eng.Docker(ctx, "version", "--format", "client {{.Client.Version}} server {{.Server.Version}} API {{.Server.APIVersion}}")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dockerd %s, containerd %s, CLI %s: %s", eng.Dockerd, eng.Containerd, eng.CLI, versions)

	img, err := eng.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Docker(ctx, "network", "create", "--subnet", "10.210.0.0/24", "labnet"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2"} {
		if _, err := eng.Docker(ctx, "run", "-d", "--name", c, "--network", "labnet", img, "sleep", "600"); err != nil {
			t.Fatalf("%v\n%s", err, eng.LogTail(30))
		}
	}
	// By name: Docker's embedded DNS of a user-defined network answers for c2.
	out, err := eng.Docker(ctx, "exec", "c1", "ping", "-c", "3", "-W", "2", "c2")
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping c2 from c1: %v\n%s", err, out)
	}
	ip2, err := eng.ContainerIP(ctx, "c2", "labnet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ip2, "10.210.0.") {
		t.Errorf("c2 has %s, not an address of labnet", ip2)
	}
	// The container's namespace, named for host tools: what the bench measures through.
	if err := eng.AttachNetns(ctx, "c1", ns+"-c1"); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "nsenter", "--net="+filepath.Join(NetnsDir, ns+"-c1"), "--", "ping", "-c", "1", "-W", "2", ip2); !strings.Contains(out, "1 received") {
		t.Errorf("host ping from c1's namespace to %s:\n%s", ip2, out)
	}

	// dockerd's firewall rules exist, in its namespace; the root's are compared below.
	rules := ""
	if _, err := exec.LookPath("nft"); err == nil {
		rules = run(t, "nsenter", "--net="+eng.NetNS, "--", "nft", "list", "ruleset")
	} else {
		rules = run(t, "nsenter", "--net="+eng.NetNS, "--", "iptables-save")
	}
	if !strings.Contains(rules, "DOCKER") {
		t.Errorf("no DOCKER chain in the engine's namespace:\n%s", rules)
	}
	// There is something to clean up outside the namespace, or the comparison proves nothing.
	if len(existingCgroups(eng.CgroupParent)) == 0 {
		t.Error("no container cgroup under the cgroup parent while containers run")
	}
	ms, _ := mounts()
	under := 0
	for _, m := range ms {
		if strings.HasPrefix(m.Point, dir+"/") || m.Point == dir {
			under++
		}
	}
	if under < 3 { // data root, two overlays, two netns files
		t.Errorf("%d mounts under %s while two containers run, want the data root, overlays and netns files", under, dir)
	}

	closed = true
	if err := eng.Close(); err != nil {
		t.Errorf("close: %v\n%s", err, eng.LogTail(30))
	}
	run(t, "ip", "netns", "del", ns)

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir %s still there (%v)", dir, err)
	}
	if left := existingCgroups(eng.CgroupParent); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if pids := shimPIDs(eng.containerdSock); len(pids) > 0 {
		t.Errorf("shims left: %v", pids)
	}
	after, err := CaptureRootState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if othersRunning() {
		// Another engine on the machine shares /run/containerd and /run/docker.
		t.Log("another dockerd or containerd runs: /run/containerd and /run/docker not compared")
		base := ignore
		ignore = func(l string) bool {
			return base(l) || strings.HasPrefix(l, "/run/containerd") || strings.HasPrefix(l, "/run/docker")
		}
	}
	if d := before.Diff(after, ignore); d != "" {
		t.Errorf("the root namespace or the machine changed:\n%s", d)
	}
	t.Logf("compared before and after: %s", summary(after))
}

// othersRunning reports whether any dockerd or containerd process runs now.
func othersRunning() bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(b)) {
		case "dockerd", "containerd":
			return true
		}
	}
	return false
}

func summary(st RootState) string {
	var parts []string
	for _, k := range []string{"links", "addresses", "routes4", "routes6", "rules4", "nft", "iptables", "sysctls", "mounts", "cgroups", "dirs"} {
		if lines, ok := st[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", k, len(lines)))
		}
	}
	return strings.Join(parts, ", ")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCloseAfterDaemonsKilled kills dockerd and containerd under a running container, as
// a crash would, and checks that Close still removes the shim, the container, its
// cgroups and the mounts.
func TestCloseAfterDaemonsKilled(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := FindBinaries(); err != nil {
		t.Skipf("no Docker engine on this machine: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := "ndl" + stringid.RandomHex(4)
	ns := prefix + "-docker"
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	dir := filepath.Join(os.TempDir(), prefix+"-dockerlab")
	eng, err := Start(ctx, Options{NetNS: ns, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	img, err := eng.Image(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Docker(ctx, "run", "-d", "--name", "c1", img, "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	pid, err := eng.ContainerPID(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	running := shims(eng.containerdSock)
	if len(running) == 0 {
		t.Fatal("no shim found for the running container")
	}
	for _, sh := range running {
		if fi, err := os.Lstat(sh.socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("shim %d: no socket at %s (%v): containerd puts shim sockets elsewhere", sh.pid, sh.socket, err)
		}
	}
	for _, p := range []*proc{eng.dockerd, eng.containerd} {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if err := eng.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil && !isZombie(pid) {
		t.Errorf("container process %d still runs", pid)
	}
	if pids := shimPIDs(eng.containerdSock); len(pids) > 0 {
		t.Errorf("shims left: %v", pids)
	}
	for _, sh := range running {
		if _, err := os.Lstat(sh.socket); !os.IsNotExist(err) {
			t.Errorf("socket of killed shim %d left at %s (%v)", sh.pid, sh.socket, err)
		}
	}
	if left := existingCgroups(eng.CgroupParent); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	ms, _ := mounts()
	for _, m := range ms {
		if strings.HasPrefix(m.Point, dir) {
			t.Errorf("mount left: %s %s", m.FSType, m.Point)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir %s still there (%v)", dir, err)
	}
}
