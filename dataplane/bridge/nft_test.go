//go:build linux

package bridge

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

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

// TestWriteRuleset checks the rules derived from a set of networks, as the
// nft tool prints them.
func TestWriteRuleset(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "nft")
	labName, labPath := nstest.Sandbox(t)
	ns, err := netns.GetFromPath(labPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	write := func(nets []ruleNet) {
		t.Helper()
		c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		if err != nil {
			t.Fatal(err)
		}
		if err := writeRuleset(c, "netd_t1", nets); err != nil {
			t.Fatal(err)
		}
	}
	nets := []ruleNet{
		{Bridge: "br-pub", Subnet: netip.MustParsePrefix("10.1.0.0/24"), ICC: true, Masquerade: true},
		{Bridge: "br-int", Subnet: netip.MustParsePrefix("10.2.0.0/16"), Internal: true, ICC: true, Masquerade: true},
		{Bridge: "br-noicc", Subnet: netip.MustParsePrefix("10.3.0.0/24"), ICC: false, Ports: []string{"nd2", "nd1"}},
	}
	write(nets)
	first := nstest.Run(t, labName, "nft", "list", "ruleset")
	write(nets)
	if again := nstest.Run(t, labName, "nft", "list", "ruleset"); again != first {
		t.Errorf("rewriting the same networks changed the ruleset:\n%s\nvs\n%s", first, again)
	}

	want := []string{
		`table inet netd_t1`,
		`type filter hook forward priority filter; policy accept;`,
		`type nat hook postrouting priority srcnat; policy accept;`,
		`ip saddr 10.1.0.0/24 oifname != "br-pub" masquerade`,
		`iifname "br-int" oifname != "br-int" drop`,
		`oifname "br-int" iifname != "br-int" drop`,
		`iifname "br-pub" oifname @bridges oifname != "br-pub" drop`,
		`iifname "br-noicc" oifname @bridges oifname != "br-noicc" drop`,
		`table bridge netd_t1`,
		`iifname @noicc_br-noicc oifname @noicc_br-noicc drop`,
	}
	for _, w := range want {
		if !strings.Contains(first, w) {
			t.Errorf("ruleset lacks %q:\n%s", w, first)
		}
	}
	for _, bad := range []string{`10.2.0.0/16`, `10.3.0.0/24`, `noicc_br-pub`, `noicc_br-int`} {
		if strings.Contains(first, bad) {
			t.Errorf("ruleset has %q (internal or non-masquerade network masqueraded, or ICC set for an ICC network):\n%s", bad, first)
		}
	}
	if !regexp.MustCompile(`elements = \{ "nd1",\s+"nd2" \}`).MatchString(first) {
		t.Errorf("ICC port set wrong:\n%s", first)
	}

	// Fewer networks: the ruleset shrinks to them.
	write(nets[:1])
	if got := nstest.Run(t, labName, "nft", "list", "ruleset"); strings.Contains(got, "br-int") || strings.Contains(got, "noicc") {
		t.Errorf("removed networks still in ruleset:\n%s", got)
	}
	write(nil)
	if got := nstest.Run(t, labName, "nft", "list", "ruleset"); strings.TrimSpace(got) != "" {
		t.Errorf("ruleset with no networks:\n%s", got)
	}
}
