//go:build linux

package bridge

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

func TestNftTableName(t *testing.T) {
	for node, want := range map[string]string{
		"node1":       "netd_node1",
		"lab-a.local": "netd_lab_a_local",
		"Host_2":      "netd_Host_2",
		"":            "netd_",
		"we ird/näme": "netd_we_ird_n_me",
	} {
		if got := NftTableName(node); got != want {
			t.Errorf("NftTableName(%q) = %q, want %q", node, got, want)
		}
	}
	if got := NftTableName(strings.Repeat("x", 400)); len(got) != 255 {
		t.Errorf("long name not cut to 255: %d", len(got))
	}
}

func TestSubnetElems(t *testing.T) {
	for p, want := range map[string]string{
		"10.1.0.0/24":     "10.1.0.0 10.1.1.0",
		"10.2.0.0/16":     "10.2.0.0 10.3.0.0",
		"10.1.2.3/23":     "10.1.2.0 10.1.4.0",
		"192.168.7.9/32":  "192.168.7.9 192.168.7.10",
		"240.0.0.0/4":     "240.0.0.0", // no end: the interval runs to the last address
		"172.16.128.0/17": "172.16.128.0 172.17.0.0",
	} {
		var got []string
		for i, e := range subnetElems(netip.MustParsePrefix(p), nil) {
			if e.IntervalEnd != (i == 1) {
				t.Errorf("%s: element %d IntervalEnd = %v", p, i, e.IntervalEnd)
			}
			a, _ := netip.AddrFromSlice(e.Key)
			got = append(got, a.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("subnetElems(%s) = %v, want %s", p, got, want)
		}
	}
}

// nftLab is a throwaway netns for firewall tests, with one connection
// into it, as a driver has.
type nftLab struct {
	t    *testing.T
	name string
	ns   netns.NsHandle
	c    *nftables.Conn
}

const nftTestTable = "netd_t1"

func newNftLab(t *testing.T) *nftLab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "nft")
	name, path := nstest.Sandbox(t)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := nftOpen(int(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseLasting() })
	return &nftLab{t: t, name: name, ns: ns, c: c}
}

// conn runs f on the lab's connection and fails the test on error.
func (l *nftLab) conn(f func(c *nftables.Conn) error) {
	l.t.Helper()
	if err := f(l.c); err != nil {
		l.t.Fatal(err)
	}
}

func (l *nftLab) sync(nets []ruleNet) {
	l.t.Helper()
	l.conn(func(c *nftables.Conn) error { return syncRuleset(c, nftTestTable, nets, keptRules{}) })
}

func (l *nftLab) up(n ruleNet, withBase bool) {
	l.t.Helper()
	l.conn(func(c *nftables.Conn) error { return netUpTx(c, nftTestTable, n, withBase) })
}

func (l *nftLab) down(n ruleNet, last bool) {
	l.t.Helper()
	l.conn(func(c *nftables.Conn) error { return netDownTx(c, nftTestTable, n, false, last) })
}

func (l *nftLab) port(n ruleNet, port string, add bool) {
	l.t.Helper()
	l.conn(func(c *nftables.Conn) error { return portTx(c, nftTestTable, n, port, add, false) })
}

func (l *nftLab) ruleset() string {
	l.t.Helper()
	return nstest.Run(l.t, l.name, "nft", "list", "ruleset")
}

// nft runs an nft command (a script on stdin with "-f -") in the lab.
func (l *nftLab) nft(args ...string) string {
	l.t.Helper()
	return nstest.Run(l.t, l.name, append([]string{"nft"}, args...)...)
}

// canon makes a listing independent of the order nft lists chains and
// elements in: its sorted tokens.
func canon(s string) string {
	toks := regexp.MustCompile(`[\s,{}]*\n[\s,{}]*|\s*[,{}]\s*`).Split(s, -1)
	sort.Strings(toks)
	return strings.Join(toks, "\n")
}

var testNets = []ruleNet{
	{Bridge: "br-pub", Subnet: netip.MustParsePrefix("10.1.0.0/24"), ICC: true, Masquerade: true},
	{Bridge: "br-int", Subnet: netip.MustParsePrefix("10.2.0.0/16"), Internal: true, ICC: true, Masquerade: true},
	{Bridge: "br-noicc", Subnet: netip.MustParsePrefix("10.3.0.0/24"), ICC: false, Ports: []string{"nd2", "nd1"}},
}

// TestSyncRuleset checks the rules derived from a set of networks, as the
// nft tool prints them.
func TestSyncRuleset(t *testing.T) {
	l := newNftLab(t)
	l.sync(testNets)
	first := l.ruleset()
	l.sync(testNets)
	if again := l.ruleset(); again != first {
		t.Errorf("rewriting the same networks changed the ruleset:\n%s\nvs\n%s", first, again)
	}

	want := []string{
		`table inet netd_t1`,
		`type filter hook forward priority filter; policy accept;`,
		`type nat hook postrouting priority srcnat; policy accept;`,
		`iifname vmap @from_bridge`,
		`oifname vmap @to_bridge`,
		`ip saddr vmap @masq_subnet`,
		`ip saddr 10.1.0.0/24 oifname != "br-pub" masquerade`,
		`10.1.0.0/24 : jump masq_10.1.0.0-24`,
		`iifname "br-int" oifname != "br-int" drop`,
		`oifname "br-int" iifname != "br-int" drop`,
		`"br-int" : jump to_br-int`,
		`iifname "br-pub" oifname @bridges oifname != "br-pub" drop`,
		`iifname "br-noicc" oifname @bridges oifname != "br-noicc" drop`,
		`"br-noicc" : jump from_br-noicc`,
		`table bridge netd_t1`,
		`iifname @noicc_ports oifname @noicc_ports drop`,
	}
	for _, w := range want {
		if !strings.Contains(first, w) {
			t.Errorf("ruleset lacks %q:\n%s", w, first)
		}
	}
	// Internal and non-masquerade networks are not masqueraded; only an
	// internal network gets to_ rules.
	for _, bad := range []string{`10.2.0.0/16`, `10.3.0.0/24`, `to_br-pub`, `to_br-noicc`} {
		if strings.Contains(first, bad) {
			t.Errorf("ruleset has %q:\n%s", bad, first)
		}
	}
	if !regexp.MustCompile(`elements = \{ "nd1" comment "br-noicc",\s+"nd2" comment "br-noicc" \}`).MatchString(first) {
		t.Errorf("ICC port set wrong:\n%s", first)
	}

	// Fewer networks: the ruleset shrinks to them.
	l.sync(testNets[:1])
	if got := l.ruleset(); strings.Contains(got, "br-int") || strings.Contains(got, "br-noicc") || strings.Contains(got, `"nd1"`) {
		t.Errorf("removed networks still in ruleset:\n%s", got)
	}
	l.sync(nil)
	if got := l.ruleset(); strings.TrimSpace(got) != "" {
		t.Errorf("ruleset with no networks:\n%s", got)
	}
}

// TestNftIncremental builds the same networks one change at a time: the
// result is what a full sync writes, and each change is idempotent.
func TestNftIncremental(t *testing.T) {
	l := newNftLab(t)
	l.sync(testNets)
	full := canon(l.ruleset())
	l.sync(nil)

	noicc := testNets[2]
	noicc.Ports = nil
	l.up(testNets[0], true)
	l.up(testNets[0], false) // again: no change
	l.up(testNets[1], false)
	l.up(noicc, false)
	for _, p := range []string{"nd1", "nd9", "nd2", "nd9"} {
		l.port(noicc, p, true)
	}
	l.port(noicc, "nd9", false)
	l.port(noicc, "nd9", false) // already gone
	if got := canon(l.ruleset()); got != full {
		t.Errorf("incremental ruleset differs from a full sync:\n%s\n--- full\n%s", l.ruleset(), full)
	}

	// Removing a network takes exactly its chains, elements and ports.
	l.down(testNets[2], false)
	l.down(testNets[2], false) // again: nothing left to remove
	l.down(testNets[1], false)
	got := l.ruleset()
	for _, bad := range []string{"br-int", "br-noicc", `"nd1"`, "10.2.0.0", "10.3.0.0"} {
		if strings.Contains(got, bad) {
			t.Errorf("ruleset still has %q after the network went:\n%s", bad, got)
		}
	}
	l.sync(testNets[:1])
	if again := l.ruleset(); canon(again) != canon(got) {
		t.Errorf("after removals the ruleset differs from a full sync of what is left:\n%s\n--- full\n%s", got, again)
	}
	l.down(testNets[0], true)
	if got := l.ruleset(); strings.TrimSpace(got) != "" {
		t.Errorf("ruleset after the last network:\n%s", got)
	}
	l.down(testNets[0], true) // the tables are already gone
}

// TestSyncRulesetRepairs: start-up reconcile removes what belongs to no live
// network (elements, chains, sets, an older layout's rules) and restores
// rules someone deleted.
func TestSyncRulesetRepairs(t *testing.T) {
	l := newNftLab(t)
	l.sync(testNets)
	clean := canon(l.ruleset())

	gone := ruleNet{Bridge: "br-gone", Subnet: netip.MustParsePrefix("10.9.0.0/24"), Internal: true, ICC: false, Ports: []string{"nd7"}}
	gone2 := ruleNet{Bridge: "br-gone2", Subnet: netip.MustParsePrefix("10.8.0.0/24"), ICC: true, Masquerade: true}
	l.up(gone, false)
	l.up(gone2, false)
	l.nft("flush", "chain", "inet", nftTestTable, "from_br-pub")
	l.nft("delete", "element", "inet", nftTestTable, "masq_subnet", "{ 10.1.0.0/24 }")
	l.nft("delete", "element", "bridge", nftTestTable, "noicc_ports", `{ "nd1" }`)
	// Rules of an older layout: per-network rules in the base chains, one set per ICC=false network.
	l.nft("-f", "-", fmt.Sprintf(`
add rule inet %[1]s forward iifname "br-old" drop
add chain inet %[1]s junk
add rule inet %[1]s junk drop
add rule inet %[1]s forward jump junk
add set bridge %[1]s noicc_br-old { type ifname; elements = { "nd5" }; }
add rule bridge %[1]s forward iifname @noicc_br-old oifname @noicc_br-old drop
add element inet %[1]s bridges { "br-old" }
`, nftTestTable))
	l.sync(testNets)
	if got := canon(l.ruleset()); got != clean {
		t.Errorf("reconcile did not restore the ruleset:\n%s\n--- want\n%s", l.ruleset(), clean)
	}

	// Tables of a shape netd cannot reuse (a set of another type) are rebuilt.
	l.sync(nil)
	l.nft("-f", "-", fmt.Sprintf("add table inet %[1]s\nadd set inet %[1]s bridges { type ipv4_addr; }\n", nftTestTable))
	l.sync(testNets)
	if got := canon(l.ruleset()); got != clean {
		t.Errorf("reconcile over a foreign layout:\n%s\n--- want\n%s", l.ruleset(), clean)
	}
}

// TestNftScale: a thousand networks, each added and removed in its own small
// transaction, and a full sync of all of them (the old whole-ruleset
// rewrite failed from the 69th network on).
func TestNftScale(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	l := newNftLab(t)
	const count = 1000
	nets := make([]ruleNet, count)
	for i := range nets {
		nets[i] = ruleNet{
			Bridge:     fmt.Sprintf("br-s%04d", i),
			Subnet:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i/256), byte(i % 256), 0}), 24),
			Internal:   i%10 == 3,
			ICC:        i%10 != 7,
			Masquerade: true,
		}
		if !nets[i].ICC {
			nets[i].Ports = []string{fmt.Sprintf("nd%04da", i), fmt.Sprintf("nd%04db", i)}
		}
	}
	timed := func(what string, f func()) time.Duration {
		start := time.Now()
		f()
		d := time.Since(start)
		t.Logf("%s: %v", what, d)
		return d
	}
	var firstUp, lastUp time.Duration
	timed("add 1000 networks", func() {
		for i, n := range nets {
			start := time.Now()
			l.up(n, i == 0)
			if d := time.Since(start); i < 10 {
				firstUp += d
			} else if i >= count-10 {
				lastUp += d
			}
		}
	})
	t.Logf("mean of the first 10 adds %v, of the last 10 %v", firstUp/10, lastUp/10)
	incremental := l.ruleset()
	for _, n := range []ruleNet{nets[0], nets[count/2], nets[count-1]} {
		if !strings.Contains(incremental, `"`+n.Bridge+`" : jump from_`+n.Bridge) {
			t.Fatalf("network %s missing from the ruleset", n.Bridge)
		}
	}
	timed("sync 1000 networks", func() { l.sync(nets) })
	if got := l.ruleset(); canon(got) != canon(incremental) {
		t.Errorf("full sync of 1000 networks differs from adding them one by one")
	}
	timed("remove 1000 networks", func() {
		for i, n := range nets {
			l.down(n, i == count-1)
		}
	})
	if got := l.ruleset(); strings.TrimSpace(got) != "" {
		t.Errorf("ruleset after removing every network:\n%.2000s", got)
	}
}
