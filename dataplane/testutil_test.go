//go:build linux

package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// testSandbox creates a throwaway named netns ("ndt-" + random) removed at cleanup.
func testSandbox(t *testing.T) (name, path string) {
	t.Helper()
	name = "ndt-" + randHex(8)
	path, err := CreateSandbox(name)
	if err != nil {
		t.Fatalf("CreateSandbox(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := DeleteSandbox(name); err != nil {
			t.Errorf("DeleteSandbox(%s): %v", name, err)
		}
	})
	return name, path
}

// lab is a throwaway netns standing in for a daemon's host, with a driver in it.
type lab struct {
	t    *testing.T
	name string
	path string
	node string
	d    *BridgeDriver
}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	requireTools(t, "ip", "ping", "nft")
	l := &lab{t: t, node: "ndt-" + randHex(6)}
	l.name, l.path = testSandbox(t)
	l.d = l.newDriver()
	return l
}

// newDriver makes a driver with the lab as the calling thread's netns, the way
// the daemon (started in its netns) creates it.
func (l *lab) newDriver() *BridgeDriver {
	l.t.Helper()
	var d *BridgeDriver
	l.do(func() (err error) {
		d, err = NewBridgeDriver(BridgeDriverConfig{NodeName: l.node})
		return err
	})
	l.t.Cleanup(func() { d.Close() })
	return d
}

// do runs fn with the lab as the current netns, so a driver bug cannot reach
// the root netns, and fails the test on error.
func (l *lab) do(fn func() error) {
	l.t.Helper()
	if err := InSandbox(l.path, fn); err != nil {
		l.t.Fatal(err)
	}
}

// sh runs a command inside the lab netns.
func (l *lab) sh(args ...string) string {
	l.t.Helper()
	return nsRun(l.t, l.name, args...)
}

func nsRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func ping(ns string, ip netip.Addr) error {
	return exec.Command("ip", "netns", "exec", ns, "ping", "-c1", "-W1", ip.String()).Run()
}

func pingOK(t *testing.T, ns string, ip netip.Addr) {
	t.Helper()
	var err error
	for range 3 {
		if err = ping(ns, ip); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("ping %s from %s failed: %v", ip, ns, err)
}

func pingFails(t *testing.T, ns string, ip netip.Addr) {
	t.Helper()
	if err := ping(ns, ip); err == nil {
		t.Errorf("ping %s from %s succeeded, want blocked", ip, ns)
	}
}

func testNetwork(subnet string, mutate func(*NetworkConfig)) *NetworkConfig {
	p := netip.MustParsePrefix(subnet)
	n := &NetworkConfig{
		ID:         randHex(64),
		Name:       "ndt-net-" + randHex(4),
		Driver:     "bridge",
		Dataplane:  "kernel",
		BridgeName: "ndtb" + randHex(8),
		Subnet:     p,
		Gateway:    p.Addr().Next(),
		ICC:        true,
		Masquerade: true,
	}
	if mutate != nil {
		mutate(n)
	}
	return n
}

func testEndpoint(n *NetworkConfig, sandboxPath, ifname string, hostNum int) *EndpointConfig {
	id := randHex(64)
	addr := n.Subnet.Addr()
	for range hostNum {
		addr = addr.Next()
	}
	mac := net.HardwareAddr{0x02, 0x42, 0, byte(hostNum), byte(len(id)), 0}
	if _, err := rand.Read(mac[3:]); err != nil {
		panic(err)
	}
	return &EndpointConfig{
		ID:          id,
		NetworkID:   n.ID,
		HostIfName:  HostVethPrefix + id[:12],
		IfName:      ifname,
		MAC:         mac,
		Addr:        netip.PrefixFrom(addr, n.Subnet.Bits()),
		Gateway:     n.Gateway,
		DefaultGW:   true,
		SandboxPath: sandboxPath,
	}
}

// createNetwork creates n through the lab's driver; the lab netns takes it along when deleted.
func (l *lab) createNetwork(n *NetworkConfig) {
	l.t.Helper()
	ctx := context.Background()
	l.do(func() error { return l.d.CreateNetwork(ctx, n) })
}

// attach creates a container sandbox and joins it to n with address host number hostNum.
func (l *lab) attach(n *NetworkConfig, hostNum int) (sandbox string, ep *EndpointConfig) {
	l.t.Helper()
	sandbox, path := testSandbox(l.t)
	ep = testEndpoint(n, path, "eth0", hostNum)
	l.join(n, ep)
	return sandbox, ep
}

func (l *lab) join(n *NetworkConfig, ep *EndpointConfig) {
	l.t.Helper()
	ctx := context.Background()
	l.do(func() error {
		if err := l.d.CreateEndpoint(ctx, n, ep); err != nil {
			return err
		}
		return l.d.Join(ctx, n, ep)
	})
}

// linkExists reports whether the lab has a link with that name.
func (l *lab) linkExists(name string) bool {
	l.t.Helper()
	err := exec.Command("ip", "netns", "exec", l.name, "ip", "link", "show", "dev", name).Run()
	return err == nil
}
