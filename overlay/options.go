//go:build linux

package overlay

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
)

// Option keys of the overlay driver (Docker's).
const (
	OptVXLANIDList = "com.docker.network.driver.overlay.vxlanid_list"
	optEncrypted   = "encrypted"
)

// VNI bounds: Docker's overlay starts at 4096 (below is left to others);
// 2^24 - 1 is VXLAN's largest.
const (
	MinVNI = 4096
	MaxVNI = 1<<24 - 1
)

// Keys of the overlay state in DriverState, beside the bridge's keys: an
// overlay network is a bridge network plus a VXLAN port on its bridge.
const (
	stateVNI     = "vni"
	stateUserMTU = "user_mtu" // 0: derived on each host from its underlay
)

// Options are an overlay network's -o options, parsed.
type Options struct {
	VNI uint32 // 0: allocate
	MTU int    // 0: underlay MTU minus 50 on each host
}

// ParseOptions reads the overlay driver's options; keys of its own
// namespaces it does not know are refused.
func ParseOptions(opts map[string]string) (Options, error) {
	var o Options
	for k, v := range opts {
		switch {
		case k == OptVXLANIDList:
			ids := strings.Split(v, ",")
			if len(ids) != 1 {
				return Options{}, errdefs.InvalidParameter("invalid %s %q: a netd overlay network has one subnet, so give one VXLAN ID", k, v)
			}
			n, err := strconv.ParseUint(strings.TrimSpace(ids[0]), 10, 32)
			if err != nil || n < 1 || n > MaxVNI {
				return Options{}, errdefs.InvalidParameter("invalid VXLAN ID %q: want 1-%d", v, MaxVNI)
			}
			o.VNI = uint32(n)
		case k == api.OptMTU:
			n, err := strconv.Atoi(v)
			if err != nil || n < 68 || n > 65535 {
				return Options{}, errdefs.InvalidParameter("failed to parse %s value: %s (MTU must be between 68 and 65535)", k, v)
			}
			o.MTU = n
		case k == api.OptDataplane:
			return Options{}, errdefs.InvalidParameter("invalid option %s for an overlay network: each host carries it on its own dataplane (netd daemon --dataplane), so hosts on ebpf and on kernel share one network", k)
		case k == optEncrypted:
			return Options{}, errdefs.InvalidParameter("encrypted overlay networks (IPsec) are not supported by netd; encrypt the underlay or use gossip encryption for the control plane")
		case strings.HasPrefix(k, "com.docker.network.driver.overlay.") || strings.HasPrefix(k, "netd."):
			return Options{}, errdefs.InvalidParameter("invalid option %s: the overlay driver has no such option", k)
		}
	}
	return o, nil
}

// bridgeName and vxlanName name a network's devices on every host.
func bridgeName(id string) string { return "ov-" + stringid.ShortID(id) }
func vxlanName(id string) string  { return "vx-" + stringid.ShortID(id) }

// State is what an overlay network stores: its VNI and a user MTU.
type State struct {
	VNI     uint32
	UserMTU int
}

// StateOf decodes the overlay part of n's DriverState.
func StateOf(n *dataplane.NetworkConfig) (State, error) {
	vni, err := strconv.ParseUint(n.DriverState[stateVNI], 10, 32)
	if err != nil || vni == 0 || vni > MaxVNI {
		return State{}, fmt.Errorf("network %s: bad overlay state vni=%q", n.Name, n.DriverState[stateVNI])
	}
	mtu, err := strconv.Atoi(n.DriverState[stateUserMTU])
	if err != nil {
		return State{}, fmt.Errorf("network %s: bad overlay state %s=%q", n.Name, stateUserMTU, n.DriverState[stateUserMTU])
	}
	return State{VNI: uint32(vni), UserMTU: mtu}, nil
}

// Map is s as DriverState.
func (s State) Map() map[string]string {
	return map[string]string{stateVNI: strconv.FormatUint(uint64(s.VNI), 10), stateUserMTU: strconv.Itoa(s.UserMTU)}
}
