//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// dataplanes are the values of -o netd.dataplane every bridge test runs on.
var dataplanes = []string{api.DataplaneKernel, api.DataplaneEBPF}

func TestMain(m *testing.M) {
	// Ctrl-C skips t.Cleanup; this removes the open labs instead.
	stop := lab.CloseOnSignal()
	code := m.Run()
	stop()
	lab.RemoveBuilt()
	os.Exit(code)
}

// newLab gives the test its own lab, removed in t.Cleanup even on failure.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests need root")
	}
	l, _ := lab.New(t, lab.Options{})
	return l
}

// startHost creates a lab host and starts its daemon with extra flags.
func startHost(t *testing.T, l *lab.Lab, name string, extra ...string) *lab.Host {
	t.Helper()
	h := l.MustHost(name)
	if err := h.StartDaemon(extra...); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	return h
}

// forEachDataplane runs f as one subtest per dataplane, each in its own lab.
func forEachDataplane(t *testing.T, f func(t *testing.T, dp string)) {
	for _, dp := range dataplanes {
		t.Run(dp, func(t *testing.T) { f(t, dp) })
	}
}

// dpOpt is the create flag choosing the dataplane.
func dpOpt(dp string) []string { return []string{"-o", api.OptDataplane + "=" + dp} }

// ok runs netd and fails the test unless it exits 0; it returns stdout.
func ok(t *testing.T, h *lab.Host, args ...string) string {
	t.Helper()
	out, errOut, code := h.Netd(args...)
	if code != 0 {
		t.Fatalf("netd %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs netd, expects a non-zero exit and every want in the error
// output (case-insensitive), and returns the combined output.
func fails(t *testing.T, h *lab.Host, want []string, args ...string) string {
	t.Helper()
	out, errOut, code := h.Netd(args...)
	if code == 0 {
		t.Errorf("netd %s: succeeded, want failure\nstdout: %s", strings.Join(args, " "), out)
		return out + errOut
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(errOut), strings.ToLower(w)) {
			t.Errorf("netd %s: stderr %q does not contain %q", strings.Join(args, " "), errOut, w)
		}
	}
	return out + errOut
}

// refusal is a command netd must refuse, its stderr holding each of want.
type refusal struct {
	name string
	want []string
	args []string
}

// refuseAll runs each refusal as a subtest that also checks the networks and
// ctrs are as they were before it, then runs check (if any).
func refuseAll(t *testing.T, h *lab.Host, ctrs []string, check func(t *testing.T), cases []refusal) {
	t.Helper()
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			before := snapshot(t, h, ctrs...)
			fails(t, h, c.want, c.args...)
			sameState(t, c.name, before, snapshot(t, h, ctrs...))
			if check != nil {
				check(t)
			}
		})
	}
}

// createNet creates a bridge network on dataplane dp and returns its full ID.
func createNet(t *testing.T, h *lab.Host, dp, name string, flags ...string) string {
	t.Helper()
	args := append([]string{"network", "create"}, dpOpt(dp)...)
	args = append(append(args, flags...), name)
	id := strings.TrimSpace(ok(t, h, args...))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("network create printed %q, want a 64-hex ID", id)
	}
	return id
}

// createCtr creates a container; flags go before the name.
func createCtr(t *testing.T, h *lab.Host, name string, flags ...string) {
	t.Helper()
	args := append([]string{"container", "create"}, flags...)
	ok(t, h, append(args, name)...)
}

// inspectNets runs `network inspect` and decodes Docker's JSON array.
func inspectNets(t *testing.T, h *lab.Host, names ...string) []api.Network {
	t.Helper()
	out := ok(t, h, append([]string{"network", "inspect"}, names...)...)
	var nets []api.Network
	if err := json.Unmarshal([]byte(out), &nets); err != nil {
		t.Fatalf("network inspect output is not a JSON array of networks: %v\n%s", err, out)
	}
	if len(nets) != len(names) {
		t.Fatalf("network inspect %v returned %d networks", names, len(nets))
	}
	return nets
}

func inspectNet(t *testing.T, h *lab.Host, name string) api.Network {
	t.Helper()
	return inspectNets(t, h, name)[0]
}

// inspectCtr decodes `container inspect` (a JSON array, as Docker's).
func inspectCtr(t *testing.T, h *lab.Host, name string) api.Container {
	t.Helper()
	out := ok(t, h, "container", "inspect", name)
	var cs []api.Container
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("container inspect output is not a JSON array of containers: %v\n%s", err, out)
	}
	if len(cs) != 1 {
		t.Fatalf("container inspect %s returned %d containers", name, len(cs))
	}
	return cs[0]
}

// ctrIP is the container's address on network (bare IPv4).
func ctrIP(t *testing.T, h *lab.Host, ctr, network string) string {
	t.Helper()
	c := inspectCtr(t, h, ctr)
	ep, found := c.NetworkSettings.Networks[network]
	if !found || ep.IPAddress == "" {
		t.Fatalf("container %s has no address on %s: %+v", ctr, network, c.NetworkSettings)
	}
	return ep.IPAddress
}

// lsRow is one row of the `network ls` table.
type lsRow struct{ ID, Name, Driver, Scope string }

// lsTable runs `network ls` with args and parses Docker's table.
func lsTable(t *testing.T, h *lab.Host, args ...string) []lsRow {
	t.Helper()
	out := ok(t, h, append([]string{"network", "ls"}, args...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !regexp.MustCompile(`^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE\s*$`).MatchString(lines[0]) {
		t.Fatalf("network ls header: got %q, want NETWORK ID  NAME  DRIVER  SCOPE", lines[0])
	}
	var rows []lsRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("network ls row %q: want 4 columns", l)
		}
		rows = append(rows, lsRow{f[0], f[1], f[2], f[3]})
	}
	return rows
}

// lsNames is the sorted set of names `network ls` shows with args.
func lsNames(t *testing.T, h *lab.Host, args ...string) []string {
	t.Helper()
	out := ok(t, h, append(append([]string{"network", "ls"}, args...), "--format", "{{.Name}}")...)
	names := strings.Fields(out)
	sort.Strings(names)
	return names
}

func sorted(s ...string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// snapshot captures everything the CLI shows about a daemon's state, in a
// form that does not depend on map or row order.
func snapshot(t *testing.T, h *lab.Host, containers ...string) string {
	t.Helper()
	var b strings.Builder
	ls := strings.Split(strings.TrimSpace(ok(t, h, "network", "ls", "--no-trunc")), "\n")
	sort.Strings(ls)
	fmt.Fprintf(&b, "network ls:\n%s\n", strings.Join(ls, "\n"))
	var ids []string
	for _, l := range ls {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "NETWORK" {
			ids = append(ids, f[0])
		}
	}
	if len(ids) > 0 {
		nets := inspectNets(t, h, ids...)
		sort.Slice(nets, func(i, j int) bool { return nets[i].ID < nets[j].ID })
		j, _ := json.MarshalIndent(nets, "", " ")
		fmt.Fprintf(&b, "network inspect:\n%s\n", j)
	}
	cl := strings.Split(strings.TrimSpace(ok(t, h, "container", "ls")), "\n")
	sort.Strings(cl)
	fmt.Fprintf(&b, "container ls:\n%s\n", strings.Join(cl, "\n"))
	for _, c := range containers {
		out, errOut, code := h.Netd("container", "inspect", c)
		fmt.Fprintf(&b, "container inspect %s (exit %d):\n%s%s\n", c, code, normalizeJSON(out), errOut)
	}
	return b.String()
}

// normalizeJSON re-encodes JSON so that key order does not matter.
func normalizeJSON(s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	j, _ := json.MarshalIndent(v, "", " ")
	return string(j)
}

// sameState fails the test if the daemon's state differs from before.
func sameState(t *testing.T, what, before, after string) {
	t.Helper()
	if before != after {
		t.Errorf("%s changed the state:\n--- before\n%s\n--- after\n%s", what, before, after)
	}
}

// mustPing fails unless all pings from ctr to addr are answered.
func mustPing(t *testing.T, h *lab.Host, ctr, addr string) {
	t.Helper()
	if err := h.Ping(ctr, addr); err != nil {
		t.Errorf("%v", err)
	}
}

// mustNotPing fails if any ping from ctr to addr is answered.
func mustNotPing(t *testing.T, h *lab.Host, ctr, addr string) {
	t.Helper()
	out, _, code := h.Exec(ctr, "ping", "-c", "3", "-W", "1", "-i", "0.2", addr)
	if code == 0 {
		t.Errorf("ping %s from %s succeeded, want it blocked:\n%s", addr, ctr, out)
	}
	if code != 1 && code != 2 {
		t.Errorf("ping %s from %s: exit %d, want ping's own failure (1 or 2), not a netd error", addr, ctr, code)
	}
}

// netnsExists says whether /run/netns/<name> is there.
func netnsExists(name string) bool {
	_, err := os.Stat(lab.NetnsDir + "/" + name)
	return err == nil
}

// hostLinks lists link names in the lab host's namespace.
func hostLinks(t *testing.T, h *lab.Host) []string {
	t.Helper()
	out, errOut, code := h.Run("ip", "-o", "link", "show")
	if code != 0 {
		t.Fatalf("ip link: %s", errOut)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return names
}

func inPrefix(t *testing.T, addr, prefix string) bool {
	t.Helper()
	a, err := netip.ParseAddr(strings.SplitN(addr, "/", 2)[0])
	if err != nil {
		t.Fatalf("bad address %q: %v", addr, err)
	}
	return netip.MustParsePrefix(prefix).Contains(a)
}

// waitFor polls cond every 100 ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// checkDataplane makes sure a test named after a dataplane really ran on it:
// on ebpf the container's host-side veth has an ingress program attached,
// on kernel it has none.
func checkDataplane(t *testing.T, h *lab.Host, dp, ctr, network string) {
	t.Helper()
	ep, found := inspectCtr(t, h, ctr).NetworkSettings.Networks[network]
	if !found || len(ep.EndpointID) < 12 {
		t.Fatalf("%s has no endpoint on %s", ctr, network)
	}
	hostIf := "nd" + ep.EndpointID[:12]
	progs := ingressPrograms(t, h)
	attached := len(progs[hostIf]) > 0
	out := fmt.Sprint(progs)
	switch {
	case dp == api.DataplaneEBPF && !attached:
		t.Errorf("network %s is on the ebpf dataplane but %s has no ingress program:\n%s", network, hostIf, out)
	case dp == api.DataplaneKernel && attached:
		t.Errorf("network %s is on the kernel dataplane but %s has an eBPF program:\n%s", network, hostIf, out)
	}
}
