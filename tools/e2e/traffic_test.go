//go:build linux

package e2e

import (
	"testing"
)

func TestPingSameNetwork(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "n1", "--subnet", "10.207.0.0/24")
		createCtr(t, h, "ca", "--network", "n1")
		createCtr(t, h, "cb", "--network", "n1")
		checkDataplane(t, h, dp, "ca", "n1")
		ipA, ipB := ctrIP(t, h, "ca", "n1"), ctrIP(t, h, "cb", "n1")
		mustPing(t, h, "ca", ipB)
		mustPing(t, h, "cb", ipA)
		mustPing(t, h, "ca", "10.207.0.1")
		// Between a container and the host it runs on.
		if err := h.PingFromHost(ipA); err != nil {
			t.Errorf("host -> container: %v", err)
		}
		// The default bridge network works too.
		createCtr(t, h, "d1")
		createCtr(t, h, "d2")
		mustPing(t, h, "d1", ctrIP(t, h, "d2", "bridge"))
	})
}

func TestICCDisabled(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "noicc", "--subnet", "10.208.0.0/24", "-o", "com.docker.network.bridge.enable_icc=false")
		createCtr(t, h, "ca", "--network", "noicc")
		createCtr(t, h, "cb", "--network", "noicc")
		checkDataplane(t, h, dp, "ca", "noicc")
		mustNotPing(t, h, "ca", ctrIP(t, h, "cb", "noicc"))
		mustNotPing(t, h, "cb", ctrIP(t, h, "ca", "noicc"))
		// The gateway still answers.
		mustPing(t, h, "ca", "10.208.0.1")
		mustPing(t, h, "cb", "10.208.0.1")
	})
}

func TestIsolationBetweenNetworks(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "red", "--subnet", "10.209.1.0/24")
		createNet(t, h, dp, "blue", "--subnet", "10.209.2.0/24")
		createCtr(t, h, "r1", "--network", "red")
		createCtr(t, h, "r2", "--network", "red")
		createCtr(t, h, "b1", "--network", "blue")
		checkDataplane(t, h, dp, "r1", "red")
		mustPing(t, h, "r1", ctrIP(t, h, "r2", "red")) // control: the network itself works
		mustNotPing(t, h, "r1", ctrIP(t, h, "b1", "blue"))
		mustNotPing(t, h, "b1", ctrIP(t, h, "r1", "red"))
		mustPing(t, h, "b1", "10.209.2.1")
		// A container on both networks reaches both sides.
		createCtr(t, h, "both", "--network", "red", "--network", "blue")
		mustPing(t, h, "both", ctrIP(t, h, "r1", "red"))
		mustPing(t, h, "both", ctrIP(t, h, "b1", "blue"))
	})
}

// TestInternalNetwork puts a second lab host ("outside") on a wire next to
// the daemon's host: a normal network reaches it through the gateway (and
// masquerade), an internal network reaches nothing beyond its subnet.
func TestInternalNetwork(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		l := newLab(t)
		h := startHost(t, l, "h1", "--dataplane", dp)
		out := l.MustHost("out")
		if err := l.Wire(h, out, "uplink", "10.250.0.1/24", "10.250.0.2/24"); err != nil {
			t.Fatal(err)
		}
		createNet(t, h, dp, "open", "--subnet", "10.210.1.0/24")
		createNet(t, h, dp, "closed", "--subnet", "10.210.2.0/24", "--internal")
		createCtr(t, h, "o1", "--network", "open")
		createCtr(t, h, "i1", "--network", "closed")
		createCtr(t, h, "i2", "--network", "closed")

		checkDataplane(t, h, dp, "i1", "closed")
		mustPing(t, h, "o1", "10.250.0.2") // control: egress through the gateway works
		mustPing(t, h, "o1", "10.250.0.1") // and so does the host
		mustNotPing(t, h, "i1", "10.250.0.2")
		mustNotPing(t, h, "i1", "10.250.0.1")
		mustNotPing(t, h, "i1", ctrIP(t, h, "o1", "open"))
		mustPing(t, h, "i1", ctrIP(t, h, "i2", "closed")) // inside the subnet is fine
	})
}
