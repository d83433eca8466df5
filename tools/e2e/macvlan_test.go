//go:build linux

package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane/macvlan"
	"github.com/netd-dev/netd/tools/lab"
)

// macvlanLab is a lab host with a running daemon whose eth1 is plugged into
// an external network (switch, host, router, far host: see lab.External).
func macvlanLab(t *testing.T) (*lab.Host, *lab.External) {
	t.Helper()
	l := newLab(t)
	h := startHost(t, l, "h1")
	x, err := l.External()
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Plug(h, "eth1"); err != nil {
		t.Fatal(err)
	}
	return h, x
}

// createMacvlan creates a macvlan network on the external LAN (or with
// other addresses in flags) and returns its ID.
func createMacvlan(t *testing.T, h *lab.Host, name string, flags ...string) string {
	t.Helper()
	args := append([]string{"network", "create", "-d", "macvlan"}, flags...)
	return strings.TrimSpace(ok(t, h, append(args, name)...))
}

var lanFlags = []string{"--subnet", lab.ExtLAN, "--gateway", lab.ExtRouter, "--ip-range", "10.50.0.128/26"}

func hasLink(t *testing.T, h *lab.Host, name string) bool {
	t.Helper()
	return slices.Contains(hostLinks(t, h), name)
}

// checkOut runs `netd system check` and returns its output and exit code.
func checkOut(h *lab.Host) (string, int) {
	out, errOut, code := h.Netd("system", "check")
	return out + errOut, code
}

func TestMacvlanBridgeMode(t *testing.T) {
	h, _ := macvlanLab(t)
	createMacvlan(t, h, "lan", append(lanFlags, "-o", "parent=eth1")...)
	createCtr(t, h, "c1", "--network", "lan")
	createCtr(t, h, "c2", "--network", "lan")
	b := ctrIP(t, h, "c2", "lan")
	if !inPrefix(t, b, "10.50.0.128/26") {
		t.Errorf("b got %s, outside --ip-range", b)
	}
	mustPing(t, h, "c1", lab.ExtHost)   // the LAN
	mustPing(t, h, "c1", b)             // each other, through the parent's macvlan bridge
	mustPing(t, h, "c2", lab.ExtFar)    // beyond the router (default route via --gateway)
	mustPing(t, h, "c2", lab.ExtRouter) // the gateway itself

	// The host on the same LAN reaches the LAN but not its own containers
	// through the parent: the kernel never hands a parent's frames to its macvlans.
	if _, e, c := h.Run("ip", "addr", "add", "10.50.0.2/24", "dev", "eth1"); c != 0 {
		t.Fatal(e)
	}
	if err := h.PingFromHost(lab.ExtHost); err != nil {
		t.Fatal(err)
	}
	if out, _, c := h.Run("ping", "-c", "2", "-W", "1", "-i", "0.2", b); c == 0 {
		t.Errorf("the host reached its macvlan container %s through the parent, which the kernel does not do:\n%s", b, out)
	}

	// No eBPF here: dataplane show still works and lists no macvlan endpoint.
	out := ok(t, h, "dataplane", "show")
	for _, c := range []string{"c1", "c2"} {
		if id := inspectCtr(t, h, c).NetworkSettings.Networks["lan"].EndpointID; strings.Contains(out, id[:12]) {
			t.Errorf("dataplane show lists macvlan endpoint %s:\n%s", id[:12], out)
		}
	}
	if out, code := checkOut(h); code != 0 {
		t.Fatalf("system check on a healthy macvlan network: exit %d\n%s", code, out)
	}
	// A container's macvlan deleted behind netd's back is drift; a restart repairs it.
	if _, e, c := h.Run("ip", "-n", h.ContainerNS("c1"), "link", "del", "eth0"); c != 0 {
		t.Fatal(e)
	}
	if out, code := checkOut(h); code != 1 || !strings.Contains(out, "macvlan eth0 missing") {
		t.Fatalf("system check after deleting a's eth0: exit %d, want 1 naming the missing macvlan\n%s", code, out)
	}
	if err := h.RestartDaemon(); err != nil {
		t.Fatal(err)
	}
	if out, code := checkOut(h); code != 0 {
		t.Fatalf("system check after restart: exit %d\n%s", code, out)
	}
	mustPing(t, h, "c1", lab.ExtHost)
	ok(t, h, "container", "rm", "c1", "c2")
	ok(t, h, "network", "rm", "lan")
}

func TestMacvlanHostShim(t *testing.T) {
	h, _ := macvlanLab(t)
	if _, e, c := h.Run("ip", "addr", "add", "10.50.0.2/24", "dev", "eth1"); c != 0 {
		t.Fatal(e)
	}
	id := createMacvlan(t, h, "lan", append(lanFlags, "-o", "parent=eth1", "-o", macvlan.OptHostShim+"=10.50.0.250")...)
	shim := macvlan.ShimName(id)
	if !hasLink(t, h, shim) {
		t.Fatalf("no host shim %s: %v", shim, hostLinks(t, h))
	}
	createCtr(t, h, "c1", "--network", "lan")
	a := ctrIP(t, h, "c1", "lan")
	if err := h.PingFromHost(a); err != nil {
		t.Fatalf("the host cannot reach its container through the shim: %v", err)
	}
	mustPing(t, h, "c1", "10.50.0.250")
	mustPing(t, h, "c1", lab.ExtHost)
	if out, code := checkOut(h); code != 0 {
		t.Fatalf("system check with a host shim: exit %d\n%s", code, out)
	}
	if _, e, c := h.Run("ip", "link", "del", shim); c != 0 {
		t.Fatal(e)
	}
	if out, code := checkOut(h); code != 1 || !strings.Contains(out, "host shim "+shim+" missing") {
		t.Fatalf("system check without the shim: exit %d\n%s", code, out)
	}
	if err := h.RestartDaemon(); err != nil {
		t.Fatal(err)
	}
	if err := h.PingFromHost(a); err != nil {
		t.Fatalf("shim not re-made by the restart: %v", err)
	}
	ok(t, h, "container", "rm", "c1")
	ok(t, h, "network", "rm", "lan")
	if hasLink(t, h, shim) {
		t.Errorf("host shim %s left after network rm", shim)
	}
	// Without an --ip-range the shim would have to route the subnet the
	// host already routes through eth1: said so, nothing made.
	before := strings.Join(hostLinks(t, h), " ")
	fails(t, h, []string{"the host already routes 10.50.0.0/24 through another interface", "--ip-range"},
		"network", "create", "-d", "macvlan", "--subnet", lab.ExtLAN, "--aux-address", "host=10.50.0.250", "-o", "parent=eth1",
		"-o", macvlan.OptHostShim+"=10.50.0.250", "lan2")
	if after := strings.Join(hostLinks(t, h), " "); after != before {
		t.Errorf("a refused create changed the links:\n%s\n%s", before, after)
	}
}

// TestMacvlanModes shows what the kernel does per mode: vepa sends
// container-to-container frames to the switch, so they meet only if the
// switch hairpins; private never lets them meet, hairpin or not.
func TestMacvlanModes(t *testing.T) {
	h, x := macvlanLab(t)
	for _, c := range []struct {
		mode           string
		withHairpinToo bool // containers meet once the switch hairpins
	}{
		{mode: "vepa", withHairpinToo: true},
		{mode: "private", withHairpinToo: false},
	} {
		t.Run(c.mode, func(t *testing.T) {
			createMacvlan(t, h, c.mode, append(lanFlags, "-o", "parent=eth1", "-o", "macvlan_mode="+c.mode)...)
			createCtr(t, h, c.mode+"-a", "--network", c.mode)
			createCtr(t, h, c.mode+"-b", "--network", c.mode)
			b := ctrIP(t, h, c.mode+"-b", c.mode)
			mustPing(t, h, c.mode+"-a", lab.ExtHost)
			mustPing(t, h, c.mode+"-b", lab.ExtFar)
			mustNotPing(t, h, c.mode+"-a", b)
			if err := x.Hairpin(h, "eth1", true); err != nil {
				t.Fatal(err)
			}
			if c.withHairpinToo {
				mustPing(t, h, c.mode+"-a", b)
			} else {
				mustNotPing(t, h, c.mode+"-a", b)
			}
			if err := x.Hairpin(h, "eth1", false); err != nil {
				t.Fatal(err)
			}
			ok(t, h, "container", "rm", c.mode+"-a", c.mode+"-b")
			ok(t, h, "network", "rm", c.mode)
		})
	}
}

func TestMacvlanPassthru(t *testing.T) {
	h, x := macvlanLab(t)
	if err := x.Plug(h, "eth2"); err != nil {
		t.Fatal(err)
	}
	bridged := createMacvlan(t, h, "lan", append(lanFlags, "-o", "parent=eth1")...)
	pt := createMacvlan(t, h, "pt", "--subnet", "10.90.0.0/24", "-o", "parent=eth2", "-o", "macvlan_mode=passthru")
	refuseAll(t, h, nil, nil, []refusal{
		{"passthru on a used parent", []string{"cannot use mode passthru, macvlan network " + bridged + " is already using parent interface eth1"},
			[]string{"network", "create", "-d", "macvlan", "--subnet", "10.91.0.0/24", "-o", "parent=eth1", "-o", "macvlan_mode=passthru", "pt2"}},
		{"bridge on a passthru parent", []string{"macvlan network " + pt + " is already using parent interface eth2 in mode passthru"},
			[]string{"network", "create", "-d", "macvlan", "--subnet", "10.92.0.0/24", "-o", "parent=eth2", "other"}},
	})
	createCtr(t, h, "only", "--network", "pt")
	before := snapshot(t, h, "only")
	fails(t, h, []string{"passthru", "eth2", "one container"}, "container", "create", "--network", "pt", "second")
	sameState(t, "a second container on a passthru network", before, snapshot(t, h, "only"))
	// The container has the parent: eth2 is its, with the container's MAC.
	out, _, _ := h.Exec("only", "ip", "-o", "link", "show", "eth0")
	if mac := inspectCtr(t, h, "only").NetworkSettings.Networks["pt"].MacAddress; !strings.Contains(out, mac) {
		t.Errorf("passthru eth0 does not carry the container's MAC %s:\n%s", mac, out)
	}
	if out, code := checkOut(h); code != 0 {
		t.Errorf("system check with a passthru network: exit %d\n%s", code, out)
	}
	ok(t, h, "container", "rm", "only")
	ok(t, h, "network", "rm", "pt", "lan")
}

func TestMacvlanVLAN(t *testing.T) {
	h, _ := macvlanLab(t)
	vlanFlags := []string{"--subnet", lab.ExtVLANNet, "--gateway", lab.ExtVLANRouter, "--ip-range", "10.60.0.128/26", "-o", "parent=eth1.10"}
	createMacvlan(t, h, "v10", vlanFlags...)
	if !hasLink(t, h, "eth1.10") {
		t.Fatalf("sub-interface eth1.10 not created: %v", hostLinks(t, h))
	}
	createCtr(t, h, "c1", "--network", "v10")
	mustPing(t, h, "c1", lab.ExtVLANHost) // tagged: the VLAN's host answers
	mustPing(t, h, "c1", lab.ExtFar)      // through the router's VLAN leg
	// A second network on the same sub-interface keeps it when the first goes.
	createMacvlan(t, h, "v10b", "--subnet", "10.61.0.0/24", "-o", "parent=eth1.10")
	ok(t, h, "container", "rm", "c1")
	ok(t, h, "network", "rm", "v10")
	if !hasLink(t, h, "eth1.10") {
		t.Fatal("eth1.10 removed while network v10b still uses it")
	}
	// kill -9, restart: rm still works and leaves no VLAN link of netd's.
	createCtr(t, h, "c2", "--network", "v10b")
	if err := h.KillDaemon(); err != nil {
		t.Fatal(err)
	}
	if err := h.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	ok(t, h, "container", "rm", "c2")
	ok(t, h, "network", "rm", "v10b")
	for _, l := range hostLinks(t, h) {
		if strings.HasPrefix(l, "eth1.") || strings.HasPrefix(l, "nvp") {
			t.Errorf("link %s left after the last VLAN network went: %v", l, hostLinks(t, h))
		}
	}
	if out, _, _ := h.Run("tc", "filter", "show", "dev", "eth1", "ingress"); strings.Contains(out, "netd_vlan") {
		t.Errorf("VLAN filter left on eth1:\n%s", out)
	}
	// A sub-interface netd did not make is used as it is and stays.
	if _, e, c := h.Run("ip", "link", "add", "eth1.20", "type", "veth", "peer", "name", "eth1p20"); c != 0 {
		t.Fatal(e)
	}
	h.Run("ip", "link", "set", "eth1.20", "up")
	createMacvlan(t, h, "v20", "--subnet", "10.62.0.0/24", "-o", "parent=eth1.20")
	ok(t, h, "network", "rm", "v20")
	if !hasLink(t, h, "eth1.20") {
		t.Error("network rm deleted eth1.20, which netd did not create")
	}
}

func TestMacvlanNoParent(t *testing.T) {
	h, _ := macvlanLab(t)
	id := createMacvlan(t, h, "inner", "--subnet", "10.80.0.0/24")
	dm := macvlan.DummyName(id)
	if !hasLink(t, h, dm) {
		t.Fatalf("no dummy parent %s: %v", dm, hostLinks(t, h))
	}
	var n api.Network
	if err := json.Unmarshal([]byte(ok(t, h, "network", "inspect", "-f", "{{json .}}", "inner")), &n); err != nil {
		t.Fatal(err)
	}
	createCtr(t, h, "c1", "--network", "inner")
	createCtr(t, h, "c2", "--network", "inner")
	mustPing(t, h, "c1", ctrIP(t, h, "c2", "inner"))
	mustNotPing(t, h, "c1", lab.ExtHost)
	if out, _, _ := h.Exec("c1", "ip", "route"); strings.Contains(out, "default") {
		t.Errorf("container of a network without parent has a default route:\n%s", out)
	}
	ok(t, h, "container", "rm", "c1", "c2")
	ok(t, h, "network", "rm", "inner")
	if hasLink(t, h, dm) {
		t.Errorf("dummy parent %s left after network rm", dm)
	}
}

func TestMacvlanBadInput(t *testing.T) {
	h, _ := macvlanLab(t)
	for _, s := range [][]string{
		{"ip", "link", "add", "eth3", "type", "veth", "peer", "name", "eth3p"}, // down
		{"ip", "link", "add", "br9", "type", "bridge"},
		{"ip", "link", "add", "eth4", "type", "veth", "peer", "name", "eth4p"},
		{"ip", "link", "set", "eth4", "master", "br9"},
		{"ip", "link", "set", "eth4", "up"},
	} {
		if _, e, c := h.Run(s[0], s[1:]...); c != 0 {
			t.Fatal(e)
		}
	}
	createMacvlan(t, h, "pt", "--subnet", "10.93.0.0/24", "-o", "parent=eth1", "-o", "macvlan_mode=passthru")
	links := strings.Join(hostLinks(t, h), " ")
	create := func(opts ...string) []string {
		args := []string{"network", "create", "-d", "macvlan", "--subnet", "10.94.0.0/24"}
		for _, o := range opts {
			args = append(args, "-o", o)
		}
		return append(args, "bad")
	}
	refuseAll(t, h, nil, func(t *testing.T) {
		if now := strings.Join(hostLinks(t, h), " "); now != links {
			t.Errorf("links changed:\nbefore %s\nafter  %s", links, now)
		}
	}, []refusal{
		{"bad mode", []string{"requested macvlan mode 'bridged' is not valid, 'bridge' mode is the macvlan driver default"}, create("parent=eth1", "macvlan_mode=bridged")},
		{"vlan id 0", []string{"vlan id must be between 1-4094, received: 0"}, create("parent=eth3.0")},
		{"vlan id 4095", []string{"vlan id must be between 1-4094, received: 4095"}, create("parent=eth3.4095")},
		{"vlan name", []string{"unable to parse a valid vlan id from: ten (ex. eth0.10 for vlan 10)"}, create("parent=eth1.ten")},
		{"vlan dots", []string{"required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received eth1.1.2"}, create("parent=eth1.1.2")},
		{"vlan base missing", []string{"-o parent interface was not found on the host: eth9"}, create("parent=eth9.10")},
		{"parent missing", []string{"the requested parent interface eth9 was not found on the host", "invalid subinterface vlan name eth9, example formatting is eth0.10"}, create("parent=eth9")},
		{"loopback", []string{"loopback interface is not a valid macvlan parent link"}, create("parent=lo")},
		{"parent down", []string{"parent interface eth3 is down"}, create("parent=eth3")},
		{"vlan base down", []string{"parent interface eth3 is down"}, create("parent=eth3.10")},
		{"bridge port", []string{"parent interface eth4 is a port of bridge br9"}, create("parent=eth4")},
		{"passthru parent", []string{"is already using parent interface eth1 in mode passthru"}, create("parent=eth1")},
		{"ebpf dataplane", []string{"macvlan networks have no eBPF dataplane"}, create("parent=eth3", "netd.dataplane=ebpf")},
		{"unknown option", []string{"invalid option netd.shim: the macvlan driver has no such option"}, create("parent=eth1", "netd.shim=1.2.3.4")},
		{"shim not in subnet", []string{"netd.host_shim address 10.50.0.9 is not in the network's subnet 10.94.0.0/24"}, create("parent=eth3", "netd.host_shim=10.50.0.9")},
		{"shim allocatable", []string{"could be given to a container"}, create("parent=eth3", "netd.host_shim=10.94.0.9")},
	})
}
