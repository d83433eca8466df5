//go:build linux

package e2e

import (
	"strings"
	"testing"
)

func TestContainerLifecycle(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		// "k1", not "c1": after k1 is removed the test expects "No such container",
		// but like Docker a name that is not found is tried as an ID prefix, and
		// "c1" is valid hex that another container's random ID may start with.
		createNet(t, h, dp, "n1", "--subnet", "10.204.0.0/24")
		createCtr(t, h, "k1", "--network", "n1", "--ip", "10.204.0.10", "--mac-address", "02:42:0a:cc:00:0a")

		checkDataplane(t, h, dp, "k1", "n1")
		c := inspectCtr(t, h, "k1")
		ep := c.NetworkSettings.Networks["n1"]
		if c.Name != "k1" || len(c.ID) != 64 {
			t.Errorf("inspect name %q id %q", c.Name, c.ID)
		}
		if ep.IPAddress != "10.204.0.10" || ep.IPPrefixLen != 24 || ep.Gateway != "10.204.0.1" ||
			ep.MacAddress != "02:42:0a:cc:00:0a" || ep.Interface != "eth0" || len(ep.EndpointID) != 64 {
			t.Errorf("inspect endpoint %+v", ep)
		}
		if want := "/run/netns/" + h.ContainerNS("k1"); c.NetworkSettings.SandboxKey != want {
			t.Errorf("SandboxKey %q, want %q", c.NetworkSettings.SandboxKey, want)
		}
		if !netnsExists(h.ContainerNS("k1")) {
			t.Errorf("container netns %s missing", h.ContainerNS("k1"))
		}
		hostIf := "nd" + ep.EndpointID[:12]
		if !contains(hostLinks(t, h), hostIf) {
			t.Errorf("host side veth %s missing: %v", hostIf, hostLinks(t, h))
		}

		// Inside: lo and eth0 up with the address and MAC, default route via the gateway.
		out, _, _ := h.Exec("k1", "ip", "-o", "-4", "addr", "show")
		if !strings.Contains(out, "lo") || !strings.Contains(out, "eth0") || !strings.Contains(out, "10.204.0.10/24") {
			t.Errorf("addresses in k1:\n%s", out)
		}
		if out, _, _ = h.Exec("k1", "ip", "link", "show", "eth0"); !strings.Contains(out, "02:42:0a:cc:00:0a") || !strings.Contains(out, "UP") {
			t.Errorf("eth0 in k1:\n%s", out)
		}
		if out, _, _ = h.Exec("k1", "ip", "route", "show", "default"); !strings.Contains(out, "via 10.204.0.1 dev eth0") {
			t.Errorf("default route in k1: %q", out)
		}

		// exec passes stdout, stderr and the exit code through.
		out, errOut, code := h.Exec("k1", "sh", "-c", "echo out; echo err >&2; exit 7")
		if out != "out\n" || errOut != "err\n" || code != 7 {
			t.Errorf("exec: stdout %q stderr %q exit %d, want out/err/7", out, errOut, code)
		}
		if _, _, code = h.Exec("k1", "true"); code != 0 {
			t.Errorf("exec true: exit %d", code)
		}
		if _, _, code = h.Exec("k1", "/nonexistent/binary"); code == 0 {
			t.Errorf("exec of a missing binary succeeded")
		}
		fails(t, h, []string{"no such container"}, "container", "exec", "nosuch", "--", "true")

		// No --network: the default bridge network. none: loopback only.
		createCtr(t, h, "c2")
		if ip := ctrIP(t, h, "c2", "bridge"); !inPrefix(t, ip, "172.17.0.0/16") {
			t.Errorf("c2 on bridge got %s", ip)
		}
		createCtr(t, h, "c3", "--network", "none")
		if out, _, _ := h.Exec("c3", "ip", "-o", "link", "show"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "lo") {
			t.Errorf("container on none has links:\n%s", out)
		}
		// host: the daemon's own namespace, where netd0 lives.
		createCtr(t, h, "c4", "--network", "host")
		if out, _, _ := h.Exec("c4", "ip", "link", "show", "netd0"); !strings.Contains(out, "netd0") {
			t.Errorf("container on host network does not see netd0:\n%s", out)
		}

		// run = create, then exec.
		out, _, code = h.Netd("container", "run", "--network", "n1", "c5", "--", "sh", "-c", "ip -o -4 addr show eth0; exit 3")
		if code != 3 || !strings.Contains(out, "10.204.0.") {
			t.Errorf("container run: exit %d, out %q", code, out)
		}
		if ip := ctrIP(t, h, "c5", "n1"); ip == "10.204.0.10" {
			t.Errorf("c5 got k1's address")
		}

		// ls shows all of them.
		ls := ok(t, h, "container", "ls")
		for _, name := range []string{"k1", "c2", "c3", "c4", "c5"} {
			if !strings.Contains(ls, name) {
				t.Errorf("container ls lacks %s:\n%s", name, ls)
			}
		}

		// rm removes the netns, the veth and the endpoint; the address is free again.
		ok(t, h, "container", "rm", "k1")
		if netnsExists(h.ContainerNS("k1")) {
			t.Errorf("netns of k1 left after rm")
		}
		if contains(hostLinks(t, h), hostIf) {
			t.Errorf("veth %s left after rm", hostIf)
		}
		for _, e := range inspectNet(t, h, "n1").Containers {
			if e.Name == "k1" {
				t.Errorf("n1 still lists k1 after rm")
			}
		}
		fails(t, h, []string{"no such container"}, "container", "inspect", "k1")
		fails(t, h, []string{"no such container"}, "container", "rm", "k1")
		createCtr(t, h, "c6", "--network", "n1", "--ip", "10.204.0.10")
		ok(t, h, "container", "rm", "-f", "c2", "c3", "c4", "c5", "c6")
		if ls := strings.TrimSpace(ok(t, h, "container", "ls")); strings.Count(ls, "\n") != 0 {
			t.Errorf("container ls after rm of all: %q", ls)
		}
		ok(t, h, "network", "rm", "n1")
	})
}

func TestNetworkConnectDisconnect(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "front", "--subnet", "10.205.0.0/24")
		createNet(t, h, dp, "back", "--subnet", "10.206.0.0/24")
		createCtr(t, h, "c1", "--network", "front")
		createCtr(t, h, "c2", "--network", "back")

		ok(t, h, "network", "connect", "--ip", "10.206.0.50", "--alias", "web", "--alias", "www", "back", "c1")
		c := inspectCtr(t, h, "c1")
		ep := c.NetworkSettings.Networks["back"]
		if ep.IPAddress != "10.206.0.50" || ep.Interface != "eth1" || !contains(ep.Aliases, "web") || !contains(ep.Aliases, "www") {
			t.Errorf("after connect: %+v", ep)
		}
		if out, _, _ := h.Exec("c1", "ip", "-o", "-4", "addr", "show", "eth1"); !strings.Contains(out, "10.206.0.50/24") {
			t.Errorf("eth1 in c1: %q", out)
		}
		// The default route stays on the first network.
		if out, _, _ := h.Exec("c1", "ip", "route", "show", "default"); !strings.Contains(out, "via 10.205.0.1 dev eth0") {
			t.Errorf("default route after connect: %q", out)
		}
		got := inspectNet(t, h, "back").Containers[c.ID]
		if got.Name != "c1" || got.IPv4Address != "10.206.0.50/24" {
			t.Errorf("back lists c1 as %+v", got)
		}
		mustPing(t, h, "c2", "10.206.0.50")

		fails(t, h, []string{"already exists in network"}, "network", "connect", "back", "c1")
		fails(t, h, []string{"no such container"}, "network", "connect", "back", "nosuch")
		fails(t, h, []string{"network nosuch not found"}, "network", "connect", "nosuch", "c1")

		ok(t, h, "network", "disconnect", "back", "c1")
		if _, ok := inspectCtr(t, h, "c1").NetworkSettings.Networks["back"]; ok {
			t.Errorf("c1 still on back after disconnect")
		}
		if _, _, code := h.Exec("c1", "ip", "link", "show", "eth1"); code == 0 {
			t.Errorf("eth1 left in c1 after disconnect")
		}
		if n := inspectNet(t, h, "back"); len(n.Containers) != 1 {
			t.Errorf("back after disconnect: %+v", n.Containers)
		}
		fails(t, h, []string{"is not connected to network"}, "network", "disconnect", "back", "c1")
		// Connect again without --ip: an address from the pool, eth1 again.
		ok(t, h, "network", "connect", "back", "c1")
		ep = inspectCtr(t, h, "c1").NetworkSettings.Networks["back"]
		if ep.Interface != "eth1" || !inPrefix(t, ep.IPAddress, "10.206.0.0/24") {
			t.Errorf("reconnect: %+v", ep)
		}
		ok(t, h, "network", "disconnect", "-f", "back", "c1")
		fails(t, h, []string{"has active endpoints"}, "network", "rm", "back")
		ok(t, h, "container", "rm", "c2")
		ok(t, h, "network", "rm", "back")
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
