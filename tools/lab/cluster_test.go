//go:build linux

package lab

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	l, err := New(nil, Options{LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	prepared := 0
	c, err := l.Cluster(3, ClusterOptions{
		Args:       []string{"--dataplane", "kernel"},
		HostArgs:   func(i int) []string { return []string{"--vxlan-port", "4789"} },
		DeriveAddr: func(i int) bool { return i == 2 },
		Prepare:    func(c *Cluster, h *Host) error { prepared++; return nil },
		Timeout:    30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if prepared != 3 || len(c.Hosts) != 3 || c.Hosts[2].Name != "h3" {
		t.Fatalf("prepared %d, hosts %v", prepared, c.Hosts)
	}
	if b, err := os.ReadFile(c.KeyFile); err != nil || len(strings.TrimSpace(string(b))) != 44 {
		t.Fatalf("key file %s: %q %v", c.KeyFile, b, err)
	}
	a0, a2 := strings.Join(c.DaemonArgs(0), " "), strings.Join(c.DaemonArgs(2), " ")
	if strings.Contains(a0, "--join") || !strings.Contains(a0, "--advertise-addr "+c.Addr(c.Hosts[0]).String()) {
		t.Errorf("h1 args: %s", a0)
	}
	if strings.Contains(a2, "--advertise-addr") || !strings.Contains(a2, "--join "+c.Addr(c.Hosts[0]).String()) || !strings.HasSuffix(a2, "--dataplane kernel --vxlan-port 4789") {
		t.Errorf("h3 args: %s", a2)
	}
	for _, h := range c.Hosts {
		m, err := c.Members(h)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 3 || m[c.Hosts[0].Node] != "alive" || m[c.Hosts[2].Node] != "alive" {
			t.Errorf("%s lists %v", h.Node, m)
		}
	}
	if _, _, code := c.Hosts[1].Netd("network", "create", "-d", "overlay", "ovc"); code != 0 {
		t.Fatalf("network create on h2 failed:\n%s", tail(c.Hosts[1].LogPath, 20))
	}
	if _, err := c.WaitNetwork("ovc", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	// A stopped host is not alive: WaitAlive over all three must time out.
	if err := c.Hosts[2].StopDaemon(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitAlive(c.Hosts, 2*time.Second); err == nil || !strings.Contains(err.Error(), "did not agree") {
		t.Fatalf("WaitAlive with h3 stopped: %v", err)
	}
	if _, err := c.WaitAlive(c.Hosts[:2], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := l.Namespaces(); len(names) != 0 {
		t.Fatalf("namespaces left after Close: %v", names)
	}
}
