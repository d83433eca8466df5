//go:build linux

package macvlan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/dataplane"
)

const testID = "4f3c2b1a0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"

func netCfg(id string, opts map[string]string) *dataplane.NetworkConfig {
	return &dataplane.NetworkConfig{
		ID: id, Name: "n-" + id[:4], Driver: Type, Options: opts,
		Subnet: netip.MustParsePrefix("10.50.0.0/24"), Gateway: netip.MustParseAddr("10.50.0.1"),
	}
}

func withState(t *testing.T, n *dataplane.NetworkConfig, exists func(string) bool) *dataplane.NetworkConfig {
	t.Helper()
	s, err := Validate(n, nil, exists)
	if err != nil {
		t.Fatal(err)
	}
	n.DriverState = s.Map()
	return n
}

func TestValidate(t *testing.T) {
	links := map[string]bool{"eth1": true, "eth2": true, "eth2.7": true}
	exists := func(name string) bool { return links[name] }
	passthru := withState(t, netCfg(strings.Repeat("a", 64), map[string]string{OptParent: "eth2", OptMode: ModePassthru}), exists)
	bridged := withState(t, netCfg(strings.Repeat("b", 64), map[string]string{OptParent: "eth1"}), exists)
	vlanMade := netCfg(strings.Repeat("c", 64), nil)
	vlanMade.DriverState = State{Parent: "eth2.7", Mode: ModeBridge, VLANBase: "eth2", VLANID: 7}.Map()
	others := []*dataplane.NetworkConfig{passthru, bridged, vlanMade}

	for _, c := range []struct {
		name string
		opts map[string]string
		mod  func(n *dataplane.NetworkConfig)
		want string // error text; empty: valid
		kind func(error) bool
		s    State
	}{
		{name: "sub-interface the user made", opts: map[string]string{OptParent: "eth1.7"}, mod: func(*dataplane.NetworkConfig) { links["eth1.7"] = true },
			s: State{Parent: "eth1.7", Mode: ModeBridge}},
		{name: "sub-interface netd made for another network", opts: map[string]string{OptParent: "eth2.7"}, s: State{Parent: "eth2.7", Mode: ModeBridge, VLANBase: "eth2", VLANID: 7}},
		{name: "no parent makes a dummy", opts: nil, s: State{Parent: DummyName(testID), Mode: ModeBridge, Dummy: true}},
		{name: "vlan to create", opts: map[string]string{OptParent: "eth1.10", OptMode: ModeVEPA}, s: State{Parent: "eth1.10", Mode: ModeVEPA, VLANBase: "eth1", VLANID: 10}},
		{name: "bad mode", opts: map[string]string{OptParent: "eth1", OptMode: "bridged"},
			want: "requested macvlan mode 'bridged' is not valid, 'bridge' mode is the macvlan driver default", kind: errdefs.IsInvalidParameter},
		{name: "loopback", opts: map[string]string{OptParent: "lo"}, want: "loopback interface is not a valid macvlan parent link"},
		{name: "vlan id 0", opts: map[string]string{OptParent: "eth1.0"}, want: "vlan id must be between 1-4094, received: 0"},
		{name: "vlan id 4095", opts: map[string]string{OptParent: "eth1.4095"}, want: "vlan id must be between 1-4094, received: 4095"},
		{name: "vlan id not a number", opts: map[string]string{OptParent: "eth1.x"}, want: "unable to parse a valid vlan id from: x (ex. eth0.10 for vlan 10)"},
		{name: "two dots", opts: map[string]string{OptParent: "eth1.1.2"}, want: "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received eth1.1.2"},
		{name: "vlan base missing", opts: map[string]string{OptParent: "eth9.10"}, want: "-o parent interface was not found on the host: eth9", kind: errdefs.IsNotFound},
		{name: "parent missing", opts: map[string]string{OptParent: "eth9"},
			want: "the requested parent interface eth9 was not found on the host (and it is no sub-interface to create: invalid subinterface vlan name eth9, example formatting is eth0.10)"},
		{name: "passthru on a used parent", opts: map[string]string{OptParent: "eth1", OptMode: ModePassthru},
			want: "cannot use mode passthru, macvlan network " + bridged.ID + " is already using parent interface eth1", kind: errdefs.IsForbidden},
		{name: "parent taken by passthru", opts: map[string]string{OptParent: "eth2"},
			want: "macvlan network " + passthru.ID + " is already using parent interface eth2 in mode passthru", kind: errdefs.IsForbidden},
		{name: "unknown netd option", opts: map[string]string{OptParent: "eth1", "netd.host-shim": "10.50.0.9"}, want: "invalid option netd.host-shim: the macvlan driver has no such option"},
		{name: "docker option of another driver ignored", opts: map[string]string{OptParent: "eth1", "com.docker.network.bridge.name": "x"}, s: State{Parent: "eth1", Mode: ModeBridge}},
		{name: "ebpf dataplane refused", opts: map[string]string{OptParent: "eth1", "netd.dataplane": "ebpf"}, want: "macvlan networks have no eBPF dataplane"},
		{name: "kernel dataplane", opts: map[string]string{OptParent: "eth1", "netd.dataplane": "kernel"}, s: State{Parent: "eth1", Mode: ModeBridge}},
		{name: "bad dataplane", opts: map[string]string{OptParent: "eth1", "netd.dataplane": "xdp"}, want: `invalid dataplane "xdp"`},
		{name: "shim reserved by aux", opts: map[string]string{OptParent: "eth1", OptHostShim: "10.50.0.250"},
			mod: func(n *dataplane.NetworkConfig) {
				n.Aux = map[string]netip.Addr{"host": netip.MustParseAddr("10.50.0.250")}
			},
			s: State{Parent: "eth1", Mode: ModeBridge, HostShim: netip.MustParseAddr("10.50.0.250"), ShimRoute: netip.MustParsePrefix("10.50.0.0/24")}},
		{name: "shim outside ip-range", opts: map[string]string{OptParent: "eth1", OptHostShim: "10.50.0.250"},
			mod: func(n *dataplane.NetworkConfig) { n.IPRange = netip.MustParsePrefix("10.50.0.64/26") },
			s:   State{Parent: "eth1", Mode: ModeBridge, HostShim: netip.MustParseAddr("10.50.0.250"), ShimRoute: netip.MustParsePrefix("10.50.0.64/26")}},
		{name: "shim allocatable", opts: map[string]string{OptParent: "eth1", OptHostShim: "10.50.0.250"}, want: "could be given to a container: reserve it with --aux-address host=10.50.0.250"},
		{name: "shim outside subnet", opts: map[string]string{OptParent: "eth1", OptHostShim: "10.51.0.2"}, want: "is not in the network's subnet 10.50.0.0/24"},
		{name: "shim is gateway", opts: map[string]string{OptParent: "eth1", OptHostShim: "10.50.0.1"}, want: "is the network's gateway"},
		{name: "shim not an address", opts: map[string]string{OptParent: "eth1", OptHostShim: "host"}, want: `invalid netd.host_shim value "host"`},
		{name: "shim without parent", opts: map[string]string{OptHostShim: "10.50.0.250"}, want: "netd.host_shim needs -o parent"},
		{name: "shim in private mode", opts: map[string]string{OptParent: "eth1", OptMode: ModePrivate, OptHostShim: "10.50.0.250"}, want: "netd.host_shim needs macvlan_mode bridge"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			n := netCfg(testID, c.opts)
			if c.mod != nil {
				c.mod(n)
			}
			s, err := Validate(n, others, exists)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if s != c.s {
					t.Fatalf("state %+v, want %+v", s, c.s)
				}
				n.DriverState = s.Map()
				if back, err := StateOf(n); err != nil || back != s {
					t.Fatalf("state does not survive DriverState: %+v, %v", back, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if c.kind != nil && !c.kind(err) {
				t.Errorf("error %v has kind %v", err, errdefs.KindOf(err))
			}
		})
	}
}

func TestStateOfRefusesDamage(t *testing.T) {
	n := netCfg(testID, nil)
	for _, m := range []map[string]string{
		{},
		{stateParent: "eth1", stateMode: "bridged", stateDummy: "false"},
		{stateParent: "eth1", stateMode: "bridge", stateDummy: "maybe"},
		{stateParent: "eth1.5", stateMode: "bridge", stateDummy: "false", stateVLANID: "5"},
		{stateParent: "eth1", stateMode: "bridge", stateDummy: "false", stateHostShim: "10.50.0.9", stateShimRoute: "x"},
	} {
		n.DriverState = m
		if _, err := StateOf(n); err == nil {
			t.Errorf("StateOf(%v) succeeded, want an error", m)
		}
	}
}

func TestNames(t *testing.T) {
	if got := DummyName(testID); got != "dm-4f3c2b1a0d9e" {
		t.Errorf("DummyName = %q, want Docker's dm-<short id>", got)
	}
	if got := ShimName(testID); len(got) > 15 || !strings.HasPrefix(got, shimPrefix) {
		t.Errorf("ShimName = %q: not a valid interface name with prefix %s", got, shimPrefix)
	}
	if a, b := vlanPeerName("eth1.10"), vlanPeerName("eth1.11"); a == b || len(a) > 15 {
		t.Errorf("vlanPeerName: %q, %q", a, b)
	}
}
