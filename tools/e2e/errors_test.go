//go:build linux

package e2e

import (
	"testing"
)

// TestBadInput runs every refused command against a daemon with some state
// and checks both the error text (Docker's) and that nothing changed.
func TestBadInput(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "n1", "--subnet", "10.215.0.0/24", "--ip-range", "10.215.0.0/25")
		createNet(t, h, dp, "n2", "--subnet", "10.215.1.0/24")
		createCtr(t, h, "c1", "--network", "n1", "--ip", "10.215.0.10")
		createCtr(t, h, "c3", "--network", "n2")
		ctrs := []string{"c1", "c2", "c3"}
		o := "-o=netd.dataplane=" + dp

		refuseAll(t, h, ctrs, func(t *testing.T) {
			if netnsExists(h.ContainerNS("c2")) {
				t.Errorf("failed command left netns %s", h.ContainerNS("c2"))
			}
		}, []refusal{
			{"duplicate name", []string{"network with name n1 already exists"},
				[]string{"network", "create", o, "--subnet", "10.215.9.0/24", "n1"}},
			{"rm with active endpoints", []string{"has active endpoints"},
				[]string{"network", "rm", "n1"}},
			{"pool overlap", []string{"Pool overlaps with other one on this address space"},
				[]string{"network", "create", o, "--subnet", "10.215.0.128/25", "n3"}},
			{"pool overlap, larger", []string{"Pool overlaps with other one on this address space"},
				[]string{"network", "create", o, "--subnet", "10.215.0.0/16", "n3"}},
			{"no such network: inspect", []string{"Error response from daemon: network nosuch not found"},
				[]string{"network", "inspect", "nosuch"}},
			{"no such network: rm", []string{"network nosuch not found"},
				[]string{"network", "rm", "nosuch"}},
			{"no such network: container create", []string{"network nosuch not found"},
				[]string{"container", "create", "--network", "nosuch", "c2"}},
			{"no such network: disconnect", []string{"network nosuch not found"},
				[]string{"network", "disconnect", "nosuch", "c1"}},
			{"invalid CIDR", []string{"invalid CIDR address: 10.215.5.0/33"},
				[]string{"network", "create", o, "--subnet", "10.215.5.0/33", "n3"}},
			{"invalid CIDR text", []string{"invalid CIDR address: banana"},
				[]string{"network", "create", o, "--subnet", "banana", "n3"}},
			{"invalid ip-range", []string{"invalid CIDR address"},
				[]string{"network", "create", o, "--subnet", "10.215.5.0/24", "--ip-range", "10.215.5.0/99", "n3"}},
			{"gateway outside subnet", []string{"no matching subnet for gateway 10.99.0.1"},
				[]string{"network", "create", o, "--subnet", "10.215.5.0/24", "--gateway", "10.99.0.1", "n3"}},
			{"ip-range outside subnet", []string{"no matching subnet for range 10.99.0.0/25"},
				[]string{"network", "create", o, "--subnet", "10.215.5.0/24", "--ip-range", "10.99.0.0/25", "n3"}},
			{"aux address outside subnet", []string{"no matching subnet for aux-address 10.99.0.7"},
				[]string{"network", "create", o, "--subnet", "10.215.5.0/24", "--aux-address", "x=10.99.0.7", "n3"}},
			{"gateway without subnet", []string{"subnet"},
				[]string{"network", "create", o, "--gateway", "10.215.5.1", "n3"}},
			{"unknown driver", []string{"nosuchdriver"},
				[]string{"network", "create", "-d", "nosuchdriver", "n3"}},
			{"unknown dataplane", []string{`invalid dataplane "warp"`},
				[]string{"network", "create", "-o", "netd.dataplane=warp", "n3"}},
			{"bad mtu", []string{"mtu"},
				[]string{"network", "create", o, "-o", "com.docker.network.driver.mtu=lots", "n3"}},
			{"IP outside subnet: create", []string{"does not belong to any of this network's subnets"},
				[]string{"container", "create", "--network", "n1", "--ip", "10.99.0.5", "c2"}},
			{"IP outside subnet: connect", []string{"does not belong to any of this network's subnets"},
				[]string{"network", "connect", "--ip", "10.99.0.5", "n2", "c1"}},
			{"IP in use: create", []string{"Address already in use"},
				[]string{"container", "create", "--network", "n1", "--ip", "10.215.0.10", "c2"}},
			{"IP is the gateway", []string{"Address already in use"},
				[]string{"container", "create", "--network", "n1", "--ip", "10.215.0.1", "c2"}},
			{"IP in use: connect", []string{"Address already in use"},
				[]string{"network", "connect", "--ip", "10.215.0.10", "n1", "c3"}},
			{"invalid IP", []string{"invalid"},
				[]string{"container", "create", "--network", "n1", "--ip", "10.215.0.300", "c2"}},
			{"duplicate container", []string{"already in use"},
				[]string{"container", "create", "--network", "n2", "c1"}},
			{"remove built-in bridge", []string{"bridge is a pre-defined network and cannot be removed"},
				[]string{"network", "rm", "bridge"}},
			{"remove built-in host", []string{"host is a pre-defined network and cannot be removed"},
				[]string{"network", "rm", "host"}},
			{"remove built-in none", []string{"none is a pre-defined network and cannot be removed"},
				[]string{"network", "rm", "-f", "none"}},
			{"create with a built-in name", []string{"operation is not permitted on predefined bridge network"},
				[]string{"network", "create", o, "--subnet", "10.215.6.0/24", "bridge"}},
		})
		// The refused addresses are still free: a failed command leaked nothing.
		createCtr(t, h, "c2", "--network", "n2", "--ip", "10.215.1.5")
		createNet(t, h, dp, "n3", "--subnet", "10.215.5.0/24")
		mustPing(t, h, "c1", "10.215.0.1")
	})
}
