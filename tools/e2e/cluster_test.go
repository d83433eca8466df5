//go:build linux

package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// clusterLab is a tools/lab Cluster (hosts on an underlay switch, each
// daemon joined to the first host's, all with one gossip key) with the
// test's checks around it.
type clusterLab struct {
	l     *lab.Lab
	c     *lab.Cluster
	ul    *lab.Underlay
	hosts []*lab.Host
	key   string // key file path
}

func newKeyFile(t *testing.T, dir, name string) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newClusterLab builds n hosts on the kernel dataplane (extra daemon flags
// after it, e.g. --dataplane ebpf).
func newClusterLab(t *testing.T, n int, extra ...string) *clusterLab {
	t.Helper()
	return buildClusterLab(t, n, nil, extra...)
}

// buildClusterLab is newClusterLab with prepare run on each host before its
// daemon starts (after the NAT interface every host gets).
func buildClusterLab(t *testing.T, n int, prepare func(c *lab.Cluster, h *lab.Host) error, extra ...string) *clusterLab {
	t.Helper()
	l := newLab(t)
	c, err := l.Cluster(n, lab.ClusterOptions{
		Args: append([]string{"--dataplane", api.DataplaneKernel}, extra...),
		// Every third host gives no --advertise-addr: it must find its
		// underlay address from the route to the peer it joins, not from
		// its default route.
		DeriveAddr: func(i int) bool { return i%3 == 2 },
		Prepare: func(c *lab.Cluster, h *lab.Host) error {
			if err := addNAT(h); err != nil || prepare == nil {
				return err
			}
			return prepare(c, h)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := &clusterLab{l: l, c: c, ul: c.Underlay, hosts: c.Hosts, key: c.KeyFile}
	cl.waitAgree(t, 60*time.Second, cl.hosts, nil)
	// Everyone is listed at its underlay address, also the hosts that
	// derived it and have a NAT default route.
	out := ok(t, cl.hosts[0], "node", "ls", "--format", "{{.Name}} {{.Address}}")
	for _, h := range cl.hosts {
		if want := fmt.Sprintf("%s %s:7946", h.Node, cl.ul.Addr(h)); !strings.Contains(out, want) {
			t.Fatalf("node ls does not list %q:\n%s", want, out)
		}
	}
	return cl
}

// args are the daemon flags h was started with (a restart with them
// rejoins it).
func (cl *clusterLab) args(h *lab.Host) []string {
	return cl.c.DaemonArgs(slices.Index(cl.hosts, h))
}

// addNAT gives h a second interface with Vagrant's NAT address and the
// default route through it, as every Vagrant VM has.
func addNAT(h *lab.Host) error {
	for _, c := range [][]string{
		{"ip", "link", "add", "nat0", "type", "veth", "peer", "name", "nat1"},
		{"ip", "addr", "add", "10.0.2.15/24", "dev", "nat0"},
		{"ip", "link", "set", "nat0", "up"},
		{"ip", "link", "set", "nat1", "up"},
		{"ip", "route", "add", "default", "via", "10.0.2.2", "dev", "nat0"},
	} {
		if _, errOut, code := h.Run(c[0], c[1:]...); code != 0 {
			return fmt.Errorf("%v in %s: %s", c, h.Node, errOut)
		}
	}
	return nil
}

// nodes is `netd node ls` of h as name → "state endpoints".
func nodes(t *testing.T, h *lab.Host) map[string]string {
	t.Helper()
	out, errOut, code := h.Netd("node", "ls", "--format", "{{.Name}} {{.State}} {{.Endpoints}}")
	if code != 0 {
		t.Logf("node ls on %s: %s", h.Node, errOut)
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			m[f[0]] = f[1] + " " + f[2]
		}
	}
	return m
}

// waitAgree waits until every host in on lists exactly the members of
// want (node → "state endpoints"); nil want means "all of on alive with
// any endpoint count". It returns the time it took.
func (cl *clusterLab) waitAgree(t *testing.T, timeout time.Duration, on []*lab.Host, want map[string]string) time.Duration {
	t.Helper()
	start := time.Now()
	var last map[string]map[string]string
	for time.Since(start) < timeout {
		last = map[string]map[string]string{}
		agreed := true
		for _, h := range on {
			got := nodes(t, h)
			last[h.Node] = got
			if want == nil {
				if len(got) != len(on) {
					agreed = false
				}
				for _, o := range on {
					if !strings.HasPrefix(got[o.Node], "alive ") {
						agreed = false
					}
				}
				continue
			}
			for name, st := range want {
				if got[name] != st {
					agreed = false
				}
			}
		}
		if agreed {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("hosts did not agree within %v: want %v, last seen %v", timeout, want, last)
	return 0
}

func alive(hs []*lab.Host, eps map[string]int) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Node] = fmt.Sprintf("alive %d", eps[h.Node])
	}
	return m
}

func TestClusterJoinFailLeaveRejoin(t *testing.T) {
	t.Parallel()
	cl := newClusterLab(t, 3)
	h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
	ok(t, h2, "container", "create", "c2")
	ok(t, h3, "container", "create", "c3")
	eps := map[string]int{h2.Node: 1, h3.Node: 1}
	d := cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: endpoints seen on every host after %v", d)

	// node ls marks this node, and inspect lists the endpoint with its host.
	if out := ok(t, h1, "node", "ls"); !strings.Contains(out, h1.Node+" *") || !strings.Contains(out, "ENDPOINTS") {
		t.Fatalf("node ls on h1 does not mark h1:\n%s", out)
	}
	var ins []api.Node
	if err := json.Unmarshal([]byte(ok(t, h1, "node", "inspect", h3.Node)), &ins); err != nil || len(ins) != 1 {
		t.Fatalf("node inspect: %v", err)
	}
	if n := ins[0]; len(n.EndpointList) != 1 || n.EndpointList[0].Container != "c3" || n.EndpointList[0].VTEP != cl.ul.Addr(h3).String() || n.EndpointList[0].State != "live" {
		t.Fatalf("node inspect %s: %+v", h3.Node, n)
	}
	fails(t, h1, []string{"node nosuch not found"}, "node", "inspect", "nosuch")

	// kill -9: dead and withdrawn everywhere (the endpoint is kept as withdrawn).
	start := time.Now()
	if err := h3.KillDaemon(); err != nil {
		t.Fatal(err)
	}
	want := alive([]*lab.Host{h1, h2}, eps)
	want[h3.Node] = "dead 0"
	cl.waitAgree(t, 30*time.Second, []*lab.Host{h1, h2}, want)
	t.Logf("timing: kill -9 → dead and withdrawn on both others after %v", time.Since(start))
	if err := json.Unmarshal([]byte(ok(t, h2, "node", "inspect", h3.Node)), &ins); err != nil || len(ins[0].EndpointList) != 1 || ins[0].EndpointList[0].State != "withdrawn" {
		t.Fatalf("dead node's endpoint should be kept as withdrawn: %+v %v", ins, err)
	}

	// SIGTERM: left.
	start = time.Now()
	if err := h2.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{h1.Node: "alive 0", h2.Node: "left 0", h3.Node: "dead 0"}
	cl.waitAgree(t, 30*time.Second, []*lab.Host{h1}, want)
	t.Logf("timing: SIGTERM → left on h1 after %v", time.Since(start))

	// Restarts rejoin with the same names and bring their endpoints back.
	start = time.Now()
	for _, h := range []*lab.Host{h2, h3} {
		if err := h.StartDaemon(cl.args(h)...); err != nil {
			t.Fatal(err)
		}
	}
	cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: restarted hosts alive with their endpoints everywhere after %v", time.Since(start))

	// Removing a container withdraws its endpoint everywhere.
	ok(t, h3, "container", "rm", "c3")
	eps[h3.Node] = 0
	d = cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: removed endpoint gone everywhere after %v", d)

	// The first host restarts without --join and finds the others again,
	// also after kill -9 (it saved its peers when they joined).
	if err := h1.RestartDaemon(); err != nil {
		t.Fatal(err)
	}
	cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	ok(t, h1, "container", "create", "c1")
	eps[h1.Node] = 1
	cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	if err := h1.KillDaemon(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := h1.StartDaemon(cl.args(h1)...); err != nil {
		t.Fatal(err)
	}
	d = cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: first host (no --join) killed and restarted: alive with its endpoint everywhere %v after the restart began", time.Since(start))
}

func TestClusterPartitionHeals(t *testing.T) {
	t.Parallel()
	cl := newClusterLab(t, 3)
	h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
	ok(t, h3, "container", "create", "c3")
	eps := map[string]int{h3.Node: 1}
	cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))

	if err := cl.ul.Cut(h3); err != nil {
		t.Fatal(err)
	}
	want := alive([]*lab.Host{h1, h2}, eps)
	want[h3.Node] = "dead 0"
	cl.waitAgree(t, 30*time.Second, []*lab.Host{h1, h2}, want)
	// Longer than memberlist's GossipToTheDeadTime (30 s): it has
	// forgotten h3 by now; the reconnect loop must find it again.
	time.Sleep(40 * time.Second)
	if err := cl.ul.Restore(h3); err != nil {
		t.Fatal(err)
	}
	d := cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: partition of 40 s healed, h3 alive with its endpoint everywhere %v after the link came back", d)
}

func TestClusterLossAndJitter(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cl := buildClusterLab(t, 3, func(c *lab.Cluster, h *lab.Host) error {
		// 10 % loss and 100 ms ± 100 ms on every host's port (the frames
		// the switch sends to it), before its daemon starts.
		return c.Underlay.Impair(h, lab.Impairment{Loss: 0.1, Delay: 100 * time.Millisecond, Jitter: 100 * time.Millisecond})
	})
	t.Logf("timing: with 10%% loss and 100±100 ms, 3 hosts joined and agreeing %v after the first start", time.Since(start))
	for _, h := range cl.hosts {
		ok(t, h, "container", "create", "ct")
	}
	eps := map[string]int{}
	for _, h := range cl.hosts {
		eps[h.Node] = 1
	}
	d := cl.waitAgree(t, 60*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: with 10%% loss and 100±100 ms, their endpoints converged %v after the last container create (%v since the first start)", d, time.Since(start))
}

func TestClusterTenHosts(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cl := newClusterLab(t, 10)
	t.Logf("timing: 10 daemons started and agreeing after %v", time.Since(start))
	ok(t, cl.hosts[9], "container", "create", "c10")
	eps := map[string]int{cl.hosts[9].Node: 1}
	d := cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, eps))
	t.Logf("timing: an endpoint created on h10 was seen on all 10 hosts after %v", d)
	start = time.Now()
	if err := cl.hosts[9].KillDaemon(); err != nil {
		t.Fatal(err)
	}
	want := alive(cl.hosts[:9], nil)
	want[cl.hosts[9].Node] = "dead 0"
	cl.waitAgree(t, 30*time.Second, cl.hosts[:9], want)
	t.Logf("timing: kill -9 of h10 → dead and withdrawn on the 9 others after %v", time.Since(start))
}

// Hosts with no key, a wrong key or a taken name are refused, say why, and
// show up nowhere.
func TestClusterRefusals(t *testing.T) {
	t.Parallel()
	cl := newClusterLab(t, 2)
	h1 := cl.hosts[0]
	join := []string{"--dataplane", api.DataplaneKernel, "--join", cl.ul.Addr(h1).String()}
	cases := []struct {
		name  string
		flags []string
		want  []string
	}{
		{"nokey", nil, []string{"join refused", "gossip key mismatch", "has no key"}},
		{"wrongkey", []string{"--gossip-key-file", newKeyFile(t, cl.l.Dir, "wrong.key")}, []string{"join refused", "gossip key mismatch", "has a key"}},
		{"dupname", []string{"--gossip-key-file", cl.key, "--node-name", cl.hosts[1].Node, "--bpffs", lab.BPFFSDir + "/" + cl.l.Prefix + "-dup"}, []string{"join refused", fmt.Sprintf("node name %q is already used", cl.hosts[1].Node)}},
	}
	for _, tc := range cases {
		h := cl.l.MustHost(tc.name)
		if _, err := cl.ul.Attach(h); err != nil {
			t.Fatal(err)
		}
		err := h.StartDaemon(append(append([]string{}, join...), tc.flags...)...)
		if err == nil {
			t.Fatalf("%s: daemon started, want a refusal", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: start error does not say %q:\n%v", tc.name, w, err)
			}
		}
	}
	time.Sleep(2 * time.Second)
	for _, h := range cl.hosts {
		got := nodes(t, h)
		if len(got) != 2 {
			t.Fatalf("%s lists %v, want only the two members", h.Node, got)
		}
	}
	// Bad flags are refused before anything starts.
	h := cl.l.MustHost("badflags")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--advertise-addr", "0.0.0.0"}, "others cannot reach an unspecified address"},
		{[]string{"--advertise-addr", "nonsense"}, "invalid --advertise-addr"},
		{[]string{"--gossip-key-file", "/nonexistent/key"}, "needs --advertise-addr or --join"},
		{[]string{"--advertise-addr", "10.99.0.200", "--gossip-key-file", filepath.Join(cl.l.Dir, "badkey")}, "read gossip key file"},
	} {
		if err := h.StartDaemon(tc.flags...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("daemon %v: %v, want %q", tc.flags, err, tc.want)
			_ = h.StopDaemon()
		}
	}
}

// Key rotation without restarts: install, use, remove, with no decrypt
// errors anywhere after the switch.
func TestClusterKeyRotation(t *testing.T) {
	t.Parallel()
	cl := newClusterLab(t, 3)
	h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
	old, _ := os.ReadFile(cl.key)
	oldKey := strings.TrimSpace(string(old))
	newKey := strings.TrimSpace(string(mustRead(t, newKeyFile(t, cl.l.Dir, "new.key"))))

	fails(t, h1, []string{"installed on 0 of 3", "install"}, "node", "key", "use", newKey)
	fails(t, h1, []string{"invalid gossip key"}, "node", "key", "install", "not-base64!")
	if out := ok(t, h1, "node", "key", "install", newKey); !strings.Contains(out, "done on 3 of 3") {
		t.Fatalf("install: %s", out)
	}
	ok(t, h2, "node", "key", "use", newKey)
	fails(t, h3, []string{"primary key"}, "node", "key", "remove", newKey)
	ok(t, h3, "node", "key", "remove", oldKey)
	out := ok(t, h1, "node", "key", "list")
	if !strings.Contains(out, newKey) || strings.Contains(out, oldKey) || !strings.Contains(strings.Join(strings.Fields(out), " "), newKey+" 3/3 3/3") {
		t.Fatalf("key list after rotation:\n%s", out)
	}
	before := decryptErrors(t, cl.hosts)
	ok(t, h2, "container", "create", "after")
	cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, map[string]int{h2.Node: 1}))
	time.Sleep(3 * time.Second)
	if after := decryptErrors(t, cl.hosts); after != before {
		t.Fatalf("decrypt errors after the switch: %d → %d", before, after)
	}
	// A restart keeps the rotated keyring, although --gossip-key-file
	// still names the old key.
	if err := h3.RestartDaemon(); err != nil {
		t.Fatal(err)
	}
	cl.waitAgree(t, 30*time.Second, cl.hosts, alive(cl.hosts, map[string]int{h2.Node: 1}))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decryptErrors(t *testing.T, hs []*lab.Host) uint64 {
	t.Helper()
	var sum uint64
	var per []string
	for _, h := range hs {
		var ins []api.Node
		if err := json.Unmarshal([]byte(ok(t, h, "node", "inspect", h.Node)), &ins); err != nil || len(ins) != 1 || ins[0].Gossip == nil {
			t.Fatalf("node inspect self on %s: %v", h.Node, err)
		}
		sum += ins[0].Gossip.DecryptErrors
		per = append(per, fmt.Sprintf("%s=%d", h.Node, ins[0].Gossip.DecryptErrors))
	}
	sort.Strings(per)
	t.Logf("decrypt errors: %s", strings.Join(per, " "))
	return sum
}

// A daemon outside a cluster says so.
func TestNodeCommandsWithoutCluster(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	h := startHost(t, l, "h1", "--dataplane", api.DataplaneKernel)
	fails(t, h, []string{"not in a cluster", "--advertise-addr"}, "node", "ls")
	fails(t, h, []string{"not in a cluster"}, "node", "key", "list")
}
