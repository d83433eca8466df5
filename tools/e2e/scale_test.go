//go:build linux

package e2e

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/netd-dev/netd/tools/lab"
)

// scaleNetworks is past the 69 networks at which the old whole-ruleset
// rewrite ran out of netlink buffer.
const scaleNetworks = 150

// scaleWorkers CLI calls run at once: the daemon serialises them, but the
// CLI's own start-up overlaps.
const scaleWorkers = 4

// parallel runs f(0..n-1) on scaleWorkers goroutines and returns the errors
// by index.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < scaleWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// netdErr runs netd and turns a non-zero exit into an error (usable off the
// test goroutine, unlike ok).
func netdErr(h *lab.Host, args ...string) (string, error) {
	out, errOut, code := h.Netd(args...)
	if code != 0 {
		return out, fmt.Errorf("netd %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(errOut))
	}
	return out, nil
}

// ruleset is `nft list ruleset` of the lab host's namespace.
func ruleset(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, errOut, code := h.Run("nft", "list", "ruleset")
	if code != 0 {
		t.Fatalf("nft list ruleset: exit %d: %s", code, errOut)
	}
	return out
}

// rulesetTokens splits a ruleset into sorted tokens, so that the order in
// which nft lists set elements does not matter.
func rulesetTokens(s string) string {
	toks := regexp.MustCompile(`[\s,{}]*\n[\s,{}]*|\s*[,{}]\s*`).Split(s, -1)
	sort.Strings(toks)
	return strings.Join(toks, "\n")
}

// TestScaleManyNetworks creates scaleNetworks bridge networks (some internal,
// some with ICC off) on each dataplane: every create succeeds, the last
// network carries traffic and stays isolated from the first, a daemon
// restart keeps the firewall as it was, and removing them all leaves no rule
// of theirs behind.
func TestScaleManyNetworks(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp, "--default-address-pool", "base=10.128.0.0/9,size=24")
		baseline := ruleset(t, h)

		ids := make([]string, scaleNetworks)
		errs := parallel(scaleNetworks, func(i int) error {
			args := append([]string{"network", "create"}, dpOpt(dp)...)
			switch {
			case i%10 == 3:
				args = append(args, "--internal")
			case i%10 == 7:
				args = append(args, "-o", "com.docker.network.bridge.enable_icc=false")
			}
			out, err := netdErr(h, append(args, fmt.Sprintf("s%03d", i))...)
			ids[i] = strings.TrimSpace(out)
			return err
		})
		failed := 0
		for i, err := range errs {
			if err != nil {
				if failed < 5 {
					t.Errorf("network %d: %v", i, err)
				}
				failed++
			}
		}
		if failed > 0 {
			t.Fatalf("%d of %d network creates failed", failed, scaleNetworks)
		}
		if got := len(lsNames(t, h)); got != scaleNetworks+3 {
			t.Fatalf("network ls shows %d networks, want %d custom + 3 built-in", got, scaleNetworks)
		}

		first, last := "s000", fmt.Sprintf("s%03d", scaleNetworks-1)
		createCtr(t, h, "c1", "--network", last)
		createCtr(t, h, "c2", "--network", last)
		createCtr(t, h, "far", "--network", first)
		checkDataplane(t, h, dp, "c1", last)
		gw := inspectNet(t, h, last).IPAM.Config[0].Gateway
		mustPing(t, h, "c1", gw)
		mustPing(t, h, "c1", ctrIP(t, h, "c2", last))
		mustNotPing(t, h, "c1", ctrIP(t, h, "far", first))
		ok(t, h, "system", "check") // 150 networks' bridges, veths and firewall entries as recorded

		rules := ruleset(t, h)
		for _, i := range []int{0, scaleNetworks / 2, scaleNetworks - 1} {
			if br := "br-" + ids[i][:12]; !strings.Contains(rules, br) {
				t.Errorf("ruleset has no rule for network %d (%s):\n%s", i, br, rules)
			}
		}
		// Start-up reconcile rewrites the firewall of all these networks:
		// the same rules as before, and traffic still flows.
		if err := h.RestartDaemon(); err != nil {
			t.Fatalf("restart daemon: %v", err)
		}
		if again := ruleset(t, h); rulesetTokens(again) != rulesetTokens(rules) {
			t.Errorf("ruleset changed across a daemon restart:\n--- before\n%s\n--- after\n%s", rules, again)
		}
		mustPing(t, h, "c1", ctrIP(t, h, "c2", last))
		mustNotPing(t, h, "c1", ctrIP(t, h, "far", first))

		for _, c := range []string{"c1", "c2", "far"} {
			ok(t, h, "container", "rm", "-f", c)
		}
		errs = parallel(scaleNetworks, func(i int) error {
			_, err := netdErr(h, "network", "rm", fmt.Sprintf("s%03d", i))
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("network rm %d: %v", i, err)
			}
		}
		rules = ruleset(t, h)
		for i, id := range ids {
			if br := "br-" + id[:12]; strings.Contains(rules, br) {
				t.Errorf("ruleset still mentions removed network %d (%s):\n%s", i, br, rules)
				break
			}
		}
		if rulesetTokens(rules) != rulesetTokens(baseline) {
			t.Errorf("ruleset after removing every network differs from the fresh daemon's:\n--- fresh\n%s\n--- now\n%s", baseline, rules)
		}
	})
}
