//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/tools/lab"
)

// dpHost starts a one-host lab whose daemon defaults to dataplane dp.
func dpHost(t *testing.T, dp string, extra ...string) *lab.Host {
	t.Helper()
	l := newLab(t)
	return startHost(t, l, "h1", append([]string{"--dataplane", dp}, extra...)...)
}

func TestNetworkLsBuiltins(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		rows := lsTable(t, h)
		want := map[string]string{"bridge": "bridge", "host": "host", "none": "null"}
		seen := map[string]bool{}
		for _, r := range rows {
			if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(r.ID) {
				t.Errorf("ls ID %q is not 12 hex digits", r.ID)
			}
			if d, builtin := want[r.Name]; builtin {
				seen[r.Name] = true
				if r.Driver != d || r.Scope != "local" {
					t.Errorf("built-in %s: driver %s scope %s, want %s local", r.Name, r.Driver, r.Scope, d)
				}
			}
		}
		if len(seen) != 3 || len(rows) != 3 {
			t.Errorf("fresh daemon lists %v, want exactly bridge, host, none", rows)
		}
		// The built-in bridge is netd0, like docker0, with the first pool subnet.
		br := inspectNet(t, h, "bridge")
		if br.Options["com.docker.network.bridge.name"] != "netd0" {
			t.Errorf("bridge options %v: want bridge name netd0", br.Options)
		}
		if len(br.IPAM.Config) != 1 || br.IPAM.Config[0].Subnet != "172.17.0.0/16" {
			t.Errorf("bridge IPAM %+v: want 172.17.0.0/16", br.IPAM.Config)
		}
		if _, errOut, code := h.Run("ip", "link", "show", "netd0"); code != 0 {
			t.Errorf("netd0 missing in the host namespace: %s", errOut)
		}
		if out, _, _ := h.Run("brctl", "show"); !strings.Contains(out, "netd0") {
			t.Errorf("brctl show does not list netd0:\n%s", out)
		}
	})
}

func TestNetworkLsFlags(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		idA := createNet(t, h, dp, "alpha", "--subnet", "10.201.1.0/24", "--label", "tier=web", "--label", "team")
		idB := createNet(t, h, dp, "beta", "--subnet", "10.201.2.0/24", "--label", "tier=db", "--internal")
		createNet(t, h, dp, "gamma-alpha", "--subnet", "10.201.3.0/24")
		createCtr(t, h, "c1", "--network", "alpha")

		// -q: 12-char IDs only, one per network; --no-trunc: 64.
		q := strings.Fields(ok(t, h, "network", "ls", "-q"))
		if len(q) != 6 {
			t.Errorf("ls -q: %d IDs, want 6: %v", len(q), q)
		}
		for _, id := range q {
			if len(id) != 12 {
				t.Errorf("ls -q printed %q, want 12 chars", id)
			}
		}
		if !strings.Contains(strings.Join(q, " "), idA[:12]) {
			t.Errorf("ls -q lacks %s", idA[:12])
		}
		full := lsTable(t, h, "--no-trunc")
		found := false
		for _, r := range full {
			if len(r.ID) != 64 {
				t.Errorf("ls --no-trunc ID %q is not 64 chars", r.ID)
			}
			found = found || r.ID == idB
		}
		if !found {
			t.Errorf("ls --no-trunc lacks %s", idB)
		}
		qn := strings.Fields(ok(t, h, "network", "ls", "-q", "--no-trunc"))
		if len(qn) != 6 || len(qn[0]) != 64 {
			t.Errorf("ls -q --no-trunc: %v", qn)
		}
		// `list` is an alias.
		if a, b := ok(t, h, "network", "list"), ok(t, h, "network", "ls"); a != b {
			t.Errorf("network list differs from network ls:\n%s\n%s", a, b)
		}

		builtins := []string{"bridge", "host", "none"}
		cases := []struct {
			filters []string
			want    []string
		}{
			{[]string{"driver=bridge"}, sorted("alpha", "beta", "gamma-alpha", "bridge")},
			{[]string{"driver=null"}, sorted("none")},
			{[]string{"name=alpha"}, sorted("alpha", "gamma-alpha")}, // name matches part of the name
			{[]string{"name=beta"}, sorted("beta")},
			{[]string{"name=beta", "name=host"}, sorted("beta", "host")}, // same key: OR
			{[]string{"id=" + idA[:10]}, sorted("alpha")},
			{[]string{"id=" + idA}, sorted("alpha")},
			{[]string{"label=tier"}, sorted("alpha", "beta")},
			{[]string{"label=tier=db"}, sorted("beta")},
			{[]string{"label=team"}, sorted("alpha")},
			{[]string{"label=tier", "name=alpha"}, sorted("alpha")}, // different keys: AND
			// label is the exception, as in Docker (MatchKVList): every label filter must match.
			{[]string{"label=tier", "label=team"}, sorted("alpha")},
			{[]string{"label=tier=web", "label=tier=db"}, nil},
			{[]string{"scope=local"}, sorted("alpha", "beta", "gamma-alpha", "bridge", "host", "none")},
			{[]string{"scope=swarm"}, nil},
			{[]string{"type=builtin"}, sorted(builtins...)},
			{[]string{"type=custom"}, sorted("alpha", "beta", "gamma-alpha")},
			{[]string{"type=custom", "driver=bridge", "label=tier=db"}, sorted("beta")},
			{[]string{"dangling=true"}, sorted("beta", "gamma-alpha")},
			{[]string{"dangling=false"}, sorted("alpha", "bridge", "host", "none")},
		}
		for _, c := range cases {
			var args []string
			for _, f := range c.filters {
				args = append(args, "--filter", f)
			}
			if got := lsNames(t, h, args...); !equal(got, c.want) {
				t.Errorf("ls %v: got %v, want %v", args, got, c.want)
			}
		}
		// -f is the short form of --filter.
		if got := lsNames(t, h, "-f", "name=beta"); !equal(got, []string{"beta"}) {
			t.Errorf("ls -f name=beta: %v", got)
		}
		fails(t, h, []string{"invalid filter"}, "network", "ls", "--filter", "color=red")
		fails(t, h, nil, "network", "ls", "--filter", "type=weird")

		// --format json: one object per line with Docker's fields.
		lines := strings.Split(strings.TrimSpace(ok(t, h, "network", "ls", "--format", "json")), "\n")
		if len(lines) != 6 {
			t.Fatalf("ls --format json: %d lines, want 6", len(lines))
		}
		var sawBeta bool
		for _, l := range lines {
			var row map[string]any
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("ls --format json line %q: %v", l, err)
			}
			for _, k := range []string{"ID", "Name", "Driver", "Scope", "Internal", "Labels", "CreatedAt"} {
				if _, has := row[k]; !has {
					t.Errorf("ls --format json row lacks %s: %s", k, l)
				}
			}
			if row["Name"] == "beta" {
				sawBeta = true
				if row["Driver"] != "bridge" || row["Scope"] != "local" || row["ID"] != idB[:12] {
					t.Errorf("ls json beta row: %s", l)
				}
				if s, _ := row["Labels"].(string); s != "tier=db" {
					t.Errorf("ls json beta labels %q, want tier=db", row["Labels"])
				}
			}
		}
		if !sawBeta {
			t.Errorf("ls json lacks beta")
		}
		// --format table is the default table; "table TEMPLATE" gets a header.
		if a, b := ok(t, h, "network", "ls", "--format", "table"), ok(t, h, "network", "ls"); a != b {
			t.Errorf("--format table differs from the default:\n%s\n%s", a, b)
		}
		tt := strings.Split(strings.TrimSpace(ok(t, h, "network", "ls", "--format", "table {{.Name}}\t{{.Internal}}", "--filter", "name=beta")), "\n")
		if len(tt) != 2 || !strings.HasPrefix(tt[0], "NAME") || !regexp.MustCompile(`^beta\s+true$`).MatchString(tt[1]) {
			t.Errorf("ls --format 'table {{.Name}}\\t{{.Internal}}': %q", tt)
		}
		// Go templates, no header.
		got := strings.TrimSpace(ok(t, h, "network", "ls", "--filter", "name=beta", "--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.Labels}}"))
		if want := idB[:12] + " beta bridge local true tier=db"; got != want {
			t.Errorf("ls template: got %q, want %q", got, want)
		}
		got = strings.TrimSpace(ok(t, h, "network", "ls", "--no-trunc", "--filter", "name=beta", "--format", "{{.ID}}"))
		if got != idB {
			t.Errorf("ls --no-trunc template ID %q, want %q", got, idB)
		}
		ca := strings.TrimSpace(ok(t, h, "network", "ls", "--filter", "name=beta", "--format", "{{.CreatedAt}}"))
		if !regexp.MustCompile(`^20\d\d-\d\d-\d\d \d\d:\d\d:\d\d`).MatchString(ca) {
			t.Errorf("ls {{.CreatedAt}} = %q, want a date", ca)
		}
		fails(t, h, nil, "network", "ls", "--format", "{{.Nope")
	})
}

func TestNetworkCreateInspect(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		id := createNet(t, h, dp, "full",
			"-d", "bridge",
			"--subnet", "10.202.0.0/24", "--gateway", "10.202.0.254", "--ip-range", "10.202.0.128/25",
			"--aux-address", "printer=10.202.0.130", "--aux-address", "nas=10.202.0.131",
			"--internal", "--attachable", "--label", "env=test", "--label", "bare",
			"-o", "com.docker.network.bridge.name=ndtbr0", "-o", "com.docker.network.driver.mtu=1400",
			"-o", "com.docker.network.bridge.enable_icc=true")
		n := inspectNet(t, h, "full")
		if n.ID != id || n.Name != "full" || n.Driver != "bridge" || n.Scope != "local" {
			t.Errorf("inspect: id %s name %s driver %s scope %s", n.ID, n.Name, n.Driver, n.Scope)
		}
		if !n.Internal || !n.Attachable || n.Ingress || n.ConfigOnly || !n.EnableIPv4 || n.EnableIPv6 {
			t.Errorf("inspect flags: internal %v attachable %v ingress %v configonly %v ipv4 %v ipv6 %v",
				n.Internal, n.Attachable, n.Ingress, n.ConfigOnly, n.EnableIPv4, n.EnableIPv6)
		}
		if time.Since(n.Created) > 5*time.Minute || time.Since(n.Created) < 0 {
			t.Errorf("Created %v is not now", n.Created)
		}
		if n.IPAM.Driver != "default" || len(n.IPAM.Config) != 1 {
			t.Fatalf("IPAM %+v", n.IPAM)
		}
		c := n.IPAM.Config[0]
		if c.Subnet != "10.202.0.0/24" || c.Gateway != "10.202.0.254" || c.IPRange != "10.202.0.128/25" ||
			c.AuxiliaryAddresses["printer"] != "10.202.0.130" || c.AuxiliaryAddresses["nas"] != "10.202.0.131" {
			t.Errorf("IPAM config %+v", c)
		}
		if n.Labels["env"] != "test" || len(n.Labels) != 2 {
			t.Errorf("labels %v", n.Labels)
		}
		if _, has := n.Labels["bare"]; !has {
			t.Errorf("label without value lost: %v", n.Labels)
		}
		if n.Options["com.docker.network.bridge.name"] != "ndtbr0" || n.Options["com.docker.network.driver.mtu"] != "1400" {
			t.Errorf("options %v", n.Options)
		}
		if len(n.Containers) != 0 {
			t.Errorf("fresh network has containers %v", n.Containers)
		}
		// The bridge carries the gateway address, as docker0 does.
		out, errOut, code := h.Run("ip", "-o", "-4", "addr", "show", "dev", "ndtbr0")
		if code != 0 || !strings.Contains(out, "10.202.0.254/24") {
			t.Errorf("bridge ndtbr0 address: %s%s", out, errOut)
		}
		// A container gets an address from the ip-range, not an aux one, and the MTU.
		createCtr(t, h, "c1", "--network", "full")
		ip := ctrIP(t, h, "c1", "full")
		if !inPrefix(t, ip, "10.202.0.128/25") || ip == "10.202.0.130" || ip == "10.202.0.131" || ip == "10.202.0.254" {
			t.Errorf("container address %s: want inside the ip-range, not aux or gateway", ip)
		}
		if out, _, _ := h.Exec("c1", "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "mtu 1400") {
			t.Errorf("eth0 MTU option not applied: %s", out)
		}
		n = inspectNet(t, h, "full")
		var ep struct{ name, ip string }
		for _, e := range n.Containers {
			ep.name, ep.ip = e.Name, e.IPv4Address
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(e.EndpointID) || !regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`).MatchString(e.MacAddress) {
				t.Errorf("endpoint resource %+v", e)
			}
		}
		if len(n.Containers) != 1 || ep.name != "c1" || ep.ip != ip+"/24" {
			t.Errorf("inspect Containers %+v, want c1 with %s/24", n.Containers, ip)
		}

		// -f/--format templates; several names at once; by ID and ID prefix.
		if got := strings.TrimSpace(ok(t, h, "network", "inspect", "-f", "{{.Id}}", "full")); got != id {
			t.Errorf("inspect -f {{.Id}} = %q", got)
		}
		if got := strings.TrimSpace(ok(t, h, "network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Internal}}", "full", "bridge")); got != "full bridge true\nbridge bridge false" {
			t.Errorf("inspect --format over two networks = %q", got)
		}
		if got := strings.TrimSpace(ok(t, h, "network", "inspect", "-f", "{{json .Labels}}", "full")); normalizeJSON(got) != normalizeJSON(`{"bare":"","env":"test"}`) {
			t.Errorf("inspect -f json .Labels = %q", got)
		}
		if got := strings.TrimSpace(ok(t, h, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", "full")); got != "10.202.0.0/24" {
			t.Errorf("inspect -f range IPAM.Config = %q", got)
		}
		if nets := inspectNets(t, h, id, id[:12], "host"); nets[0].Name != "full" || nets[1].Name != "full" || nets[2].Driver != "host" {
			t.Errorf("inspect by id/prefix: %s %s %s", nets[0].Name, nets[1].Name, nets[2].Driver)
		}
		fails(t, h, []string{"nosuch"}, "network", "inspect", "full", "nosuch")

		// Without --subnet: the next free pool subnet, overlapping nobody.
		createNet(t, h, dp, "auto1")
		createNet(t, h, dp, "auto2")
		s1 := inspectNet(t, h, "auto1").IPAM.Config
		s2 := inspectNet(t, h, "auto2").IPAM.Config
		if len(s1) != 1 || len(s2) != 1 || s1[0].Subnet == s2[0].Subnet || s1[0].Subnet == "172.17.0.0/16" || s1[0].Gateway == "" {
			t.Errorf("auto subnets %+v %+v (bridge has 172.17.0.0/16)", s1, s2)
		} else if !inPrefix(t, s1[0].Gateway, s1[0].Subnet) {
			t.Errorf("auto gateway %s outside %s", s1[0].Gateway, s1[0].Subnet)
		}
	})
}

func TestNetworkDefaultAddressPool(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp, "--default-address-pool", "base=10.203.0.0/16,size=24")
		createNet(t, h, dp, "p1")
		createNet(t, h, dp, "p2")
		seen := map[string]bool{}
		for _, name := range []string{"bridge", "p1", "p2"} {
			cfg := inspectNet(t, h, name).IPAM.Config
			if len(cfg) != 1 || !strings.HasSuffix(cfg[0].Subnet, "/24") || !inPrefix(t, strings.TrimSuffix(cfg[0].Subnet, "/24"), "10.203.0.0/16") {
				t.Errorf("%s subnet %+v: want a /24 of 10.203.0.0/16", name, cfg)
				continue
			}
			if seen[cfg[0].Subnet] {
				t.Errorf("%s reuses subnet %s", name, cfg[0].Subnet)
			}
			seen[cfg[0].Subnet] = true
		}
	})
}

func TestNetworkRm(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		// --opt is the long form of -o.
		ok(t, h, "network", "create", "--opt", "netd.dataplane="+dp, "--opt", "com.docker.network.bridge.name=ndtr1", "r1")
		if got := inspectNet(t, h, "r1").Options["com.docker.network.bridge.name"]; got != "ndtr1" {
			t.Errorf("--opt bridge name: %q", got)
		}
		id2 := createNet(t, h, dp, "r2")
		createNet(t, h, dp, "r3")
		createNet(t, h, dp, "r4")
		if out := strings.TrimSpace(ok(t, h, "network", "rm", "r1")); out != "r1" {
			t.Errorf("rm prints %q, want the name", out)
		}
		if _, _, code := h.Run("ip", "link", "show", "ndtr1"); code == 0 {
			t.Errorf("bridge ndtr1 still exists after rm")
		}
		ok(t, h, "network", "remove", id2[:12])
		ok(t, h, "network", "rm", "r3", "r4")
		if got := lsNames(t, h); !equal(got, sorted("bridge", "host", "none")) {
			t.Errorf("after rm: %v", got)
		}
		fails(t, h, []string{"network r1 not found"}, "network", "rm", "r1")
		ok(t, h, "network", "rm", "-f", "r1") // -f: a missing network is not an error
		// One bad name does not stop the others, and the exit code says so.
		createNet(t, h, dp, "r5")
		fails(t, h, []string{"nosuch"}, "network", "rm", "nosuch", "r5")
		if got := lsNames(t, h, "--filter", "name=r5"); len(got) != 0 {
			t.Errorf("r5 not removed after a failing name before it: %v", got)
		}
	})
}

func TestNetworkPrune(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "old", "--label", "tmp")
		// until= takes the midpoint of a gap between "old" and "tmp1" as a Unix
		// timestamp: the split holds however slowly the commands after it run.
		gapStart := time.Now()
		time.Sleep(1 * time.Second)
		cut := gapStart.Add(500 * time.Millisecond)
		createNet(t, h, dp, "tmp1", "--label", "tmp=yes")
		createNet(t, h, dp, "keep", "--label", "keep")
		createNet(t, h, dp, "used", "--label", "tmp")
		createCtr(t, h, "c1", "--network", "used")

		// Without -f it asks; anything but y keeps everything.
		before := snapshot(t, h)
		out, errOut, code := h.NetdStdin("n\n", "network", "prune")
		if !strings.Contains(out+errOut, "Are you sure you want to continue? [y/N]") {
			t.Errorf("prune without -f does not ask: %q (exit %d)", out, code)
		}
		sameState(t, "prune answered n", before, snapshot(t, h))

		// until=<timestamp>: only networks created before it.
		until := fmt.Sprintf("until=%d.%09d", cut.Unix(), cut.Nanosecond())
		out = ok(t, h, "network", "prune", "-f", "--filter", until)
		if !strings.Contains(out, "Deleted Networks:") || !strings.Contains(out, "old") || strings.Contains(out, "tmp1") {
			t.Errorf("prune %s output %q", until, out)
		}
		if got := lsNames(t, h, "--filter", "type=custom"); !equal(got, sorted("tmp1", "keep", "used")) {
			t.Errorf("after prune %s: %v", until, got)
		}
		// until=<duration> counts back from the daemon's now: 1h is before everything.
		ok(t, h, "network", "prune", "-f", "--filter", "until=1h")
		if got := lsNames(t, h, "--filter", "type=custom"); !equal(got, sorted("tmp1", "keep", "used")) {
			t.Errorf("prune until=1h removed something: %v", got)
		}
		// label=tmp: unused networks with the label; used ones stay.
		ok(t, h, "network", "prune", "--force", "--filter", "label=tmp")
		if got := lsNames(t, h, "--filter", "type=custom"); !equal(got, sorted("keep", "used")) {
			t.Errorf("after prune label=tmp: %v", got)
		}
		// Answer y: every unused custom network goes, built-ins and used stay.
		h.NetdStdin("y\n", "network", "prune")
		if got := lsNames(t, h); !equal(got, sorted("bridge", "host", "none", "used")) {
			t.Errorf("after prune y: %v", got)
		}
	})
}
