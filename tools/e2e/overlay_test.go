//go:build linux

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// containerIP is the address of a container on a network, from inspect.
func containerIP(t *testing.T, h *lab.Host, ctr, network string) string {
	t.Helper()
	var cs []api.Container
	if err := json.Unmarshal([]byte(ok(t, h, "container", "inspect", ctr)), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("container inspect %s: %v", ctr, err)
	}
	ep, found := cs[0].NetworkSettings.Networks[network]
	if !found || ep.IPAddress == "" {
		t.Fatalf("%s has no address on %s: %+v", ctr, network, cs[0].NetworkSettings.Networks)
	}
	return ep.IPAddress
}

// waitNetwork waits until h lists network name.
func waitNetwork(t *testing.T, h *lab.Host, name string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		out, _, code := h.Netd("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
		if code == 0 && strings.Contains(out, name+" overlay global") {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not list overlay network %s after %v", h.Node, name, timeout)
	return 0
}

// pingUntil pings addr from a container until it answers.
func pingUntil(t *testing.T, h *lab.Host, ctr, addr string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if _, _, code := h.Exec(ctr, "ping", "-c", "1", "-W", "1", addr); code == 0 {
			return time.Since(start)
		}
	}
	t.Fatalf("%s on %s cannot ping %s after %v", ctr, h.Node, addr, timeout)
	return 0
}

func TestOverlayAcrossHosts(t *testing.T) {
	t.Parallel()
	cl := newClusterLab(t, 3)
	h1, h2, h3 := cl.hosts[0], cl.hosts[1], cl.hosts[2]
	ok(t, h1, "network", "create", "-d", "overlay", "--attachable", "ov1")
	for _, h := range cl.hosts[1:] {
		d := waitNetwork(t, h, "ov1", 15*time.Second)
		t.Logf("timing: ov1 listed on %s after %v", h.Node, d)
	}
	var nets []api.Network
	if err := json.Unmarshal([]byte(ok(t, h3, "network", "inspect", "ov1")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	if n := nets[0]; n.Scope != "global" || n.Driver != "overlay" || len(n.IPAM.Config) != 1 || !strings.HasPrefix(n.IPAM.Config[0].Subnet, "10.") || n.Options["com.docker.network.driver.overlay.vxlanid_list"] != "4096" {
		t.Fatalf("inspect ov1 on h3: %+v", n)
	}

	ok(t, h1, "container", "create", "--network", "ov1", "c1")
	ok(t, h2, "container", "create", "--network", "ov1", "c2")
	ip1, ip2 := containerIP(t, h1, "c1", "ov1"), containerIP(t, h2, "c2", "ov1")
	if ip1 == ip2 {
		t.Fatalf("both containers got %s", ip1)
	}
	d := pingUntil(t, h1, "c1", ip2, 10*time.Second)
	t.Logf("timing: c1 (h1) reached c2 (h2) %v after c2 was created", d)
	pingUntil(t, h2, "c2", ip1, 5*time.Second)

	// Peers and the verbose view on the third host, which has no endpoint.
	if err := json.Unmarshal([]byte(ok(t, h3, "network", "inspect", "-v", "ov1")), &nets); err != nil {
		t.Fatal(err)
	}
	if n := nets[0]; len(n.Peers) != 2 || len(n.Services[""].Tasks) != 2 {
		t.Fatalf("inspect -v on h3: peers %+v services %+v", n.Peers, n.Services)
	}

	// rm refused while other hosts have endpoints, naming them.
	fails(t, h3, []string{"has active endpoints on host(s)", h1.Node, h2.Node}, "network", "rm", "ov1")
	ok(t, h1, "container", "rm", "c1")
	ok(t, h2, "container", "rm", "c2")
	// Removed from a host that did not create it: gone everywhere.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, errOut, code := h3.Netd("network", "rm", "ov1")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("network rm ov1 on h3: %s", errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, h := range cl.hosts {
		start := time.Now()
		for {
			out := ok(t, h, "network", "ls", "--format", "{{.Name}}")
			if !strings.Contains(out, "ov1") {
				break
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("%s still lists ov1", h.Node)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
