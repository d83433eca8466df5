//go:build linux

package bridge

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// lab is a throwaway netns standing in for a daemon's host, with a driver in it.
type lab struct {
	t    *testing.T
	name string
	path string
	node string
	d    *Driver
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip", "ping", "nft")
	l := &lab{t: t, node: "ndt-" + stringid.RandomHex(6)}
	l.name, l.path = nstest.Sandbox(t)
	l.d = l.newDriver()
	return l
}

// newDriver makes a driver with the lab as the calling thread's netns, the way
// the daemon (started in its netns) creates it.
func (l *lab) newDriver() *Driver {
	l.t.Helper()
	var d *Driver
	l.do(func() (err error) {
		d, err = New(Config{NodeName: l.node})
		return err
	})
	l.t.Cleanup(func() { d.Close() })
	return d
}

// do runs fn with the lab as the current netns, so a driver bug cannot reach
// the root netns, and fails the test on error.
func (l *lab) do(fn func() error) {
	l.t.Helper()
	if err := sandbox.DoPath(l.path, fn); err != nil {
		l.t.Fatal(err)
	}
}

// sh runs a command inside the lab netns.
func (l *lab) sh(args ...string) string {
	l.t.Helper()
	return nstest.Run(l.t, l.name, args...)
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

// testNet is a network config with its bridge State at hand, so tests set
// and read ICC, MTU, ... directly; testNetwork encodes the State into
// DriverState as ValidateNetwork would.
type testNet struct {
	*dataplane.NetworkConfig
	State
}

func testNetwork(subnet string, mutate func(*testNet)) *testNet {
	p := netip.MustParsePrefix(subnet)
	n := &testNet{
		NetworkConfig: &dataplane.NetworkConfig{
			ID:      stringid.RandomHex(64),
			Name:    "ndt-net-" + stringid.RandomHex(4),
			Driver:  "bridge",
			Subnet:  p,
			Gateway: p.Addr().Next(),
		},
		State: State{
			Dataplane:  "kernel",
			BridgeName: "ndtb" + stringid.RandomHex(8),
			ICC:        true,
			Masquerade: true,
		},
	}
	if mutate != nil {
		mutate(n)
	}
	n.DriverState = n.State.Map()
	return n
}

func testEndpoint(n *testNet, sandboxPath, ifname string, hostNum int) *dataplane.EndpointConfig {
	id := stringid.RandomHex(64)
	addr := n.Subnet.Addr()
	for range hostNum {
		addr = addr.Next()
	}
	mac := net.HardwareAddr{0x02, 0x42, 0, byte(hostNum), byte(len(id)), 0}
	if _, err := rand.Read(mac[3:]); err != nil {
		panic(err)
	}
	return &dataplane.EndpointConfig{
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
func (l *lab) createNetwork(n *testNet) {
	l.t.Helper()
	ctx := context.Background()
	l.do(func() error { return l.d.CreateNetwork(ctx, n.NetworkConfig) })
}

// attach creates a container sandbox and joins it to n with address host number hostNum.
func (l *lab) attach(n *testNet, hostNum int) (sandbox string, ep *dataplane.EndpointConfig) {
	l.t.Helper()
	sandbox, path := nstest.Sandbox(l.t)
	ep = testEndpoint(n, path, "eth0", hostNum)
	l.join(n, ep)
	return sandbox, ep
}

func (l *lab) join(n *testNet, ep *dataplane.EndpointConfig) {
	l.t.Helper()
	ctx := context.Background()
	l.do(func() error {
		if err := l.d.CreateEndpoint(ctx, n.NetworkConfig, ep); err != nil {
			return err
		}
		return l.d.Join(ctx, n.NetworkConfig, ep)
	})
}

// linkExists reports whether the lab has a link with that name.
func (l *lab) linkExists(name string) bool {
	l.t.Helper()
	err := exec.Command("ip", "netns", "exec", l.name, "ip", "link", "show", "dev", name).Run()
	return err == nil
}
