//go:build linux

package bridge

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
)

// MTU bounds: 68 is the IPv4 minimum (RFC 791), 65535 the largest IP packet.
const (
	minMTU = 68
	maxMTU = 65535
)

// Option keys of the bridge driver's own namespaces that it knows but does
// not act on itself (the daemon's default bridge carries them, as Docker's).
const (
	optDefaultBridge   = "com.docker.network.bridge.default_bridge"
	optHostBindingIPv4 = "com.docker.network.bridge.host_binding_ipv4"
)

// ownNamespaces are the option prefixes the bridge driver owns: an unknown
// key in them is a typo, refused rather than silently ignored.
var ownNamespaces = []string{"com.docker.network.bridge.", "netd."}

var knownOptions = map[string]bool{
	api.OptBridgeName:  true,
	api.OptEnableICC:   true,
	api.OptEnableMasq:  true,
	api.OptMTU:         true,
	api.OptDataplane:   true,
	optDefaultBridge:   true,
	optHostBindingIPv4: true,
}

// Options are the -o options of a bridge network, parsed and checked.
// Name is empty when the user gave none: the network is then named like
// Docker's ("br-" + short network ID).
type Options struct {
	Name       string
	ICC        bool
	Masquerade bool
	MTU        int // 0 means the driver default (1500)
	Dataplane  string
	// HostIPv4 is the host address -p binds to when it names none
	// (host_binding_ipv4); the zero Addr means the default, 0.0.0.0.
	HostIPv4 netip.Addr
}

// ParseOptions reads the bridge driver's options from a network's Options
// map. Keys outside the driver's namespaces are ignored, as Docker's
// bridge driver does; unknown keys inside them are refused. An empty
// defaultDataplane means ebpf.
func ParseOptions(opts map[string]string, defaultDataplane string) (Options, error) {
	defaultDataplane = cmp.Or(defaultDataplane, dataplane.DataplaneEBPF)
	o := Options{ICC: true, Masquerade: true}
	for k := range opts {
		if knownOptions[k] {
			continue
		}
		for _, ns := range ownNamespaces {
			if strings.HasPrefix(k, ns) {
				return Options{}, errdefs.InvalidParameter("invalid option %s: the bridge driver has no such option", k)
			}
		}
	}
	var err error
	if v, ok := opts[api.OptBridgeName]; ok {
		if err := validIfName(v); err != nil {
			return Options{}, errdefs.InvalidParameter("invalid bridge name %q: %v", v, err)
		}
		o.Name = v
	}
	if v, ok := opts[api.OptEnableICC]; ok {
		if o.ICC, err = strconv.ParseBool(v); err != nil {
			return Options{}, optParseErr(api.OptEnableICC, v, err.Error())
		}
	}
	if v, ok := opts[api.OptEnableMasq]; ok {
		if o.Masquerade, err = strconv.ParseBool(v); err != nil {
			return Options{}, optParseErr(api.OptEnableMasq, v, err.Error())
		}
	}
	if v, ok := opts[api.OptMTU]; ok {
		if o.MTU, err = strconv.Atoi(v); err != nil {
			return Options{}, optParseErr(api.OptMTU, v, err.Error())
		}
		if o.MTU != 0 && (o.MTU < minMTU || o.MTU > maxMTU) {
			return Options{}, optParseErr(api.OptMTU, v,
				fmt.Sprintf("MTU must be between %d and %d", minMTU, maxMTU))
		}
	}
	if v, ok := opts[optHostBindingIPv4]; ok {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			return Options{}, optParseErr(optHostBindingIPv4, v, "not an IPv4 address")
		}
		o.HostIPv4 = a
	}
	dp := defaultDataplane
	if v, ok := opts[api.OptDataplane]; ok {
		dp = v
	}
	if o.Dataplane, err = dataplane.ParseDataplane(dp); err != nil {
		return Options{}, err
	}
	return o, nil
}

// optParseErr is Docker's bridge driver text for an option it cannot parse.
func optParseErr(key, value, why string) error {
	return errdefs.InvalidParameter("failed to parse %s value: %s (%s)", key, value, why)
}

// validIfName applies the kernel's dev_valid_name rules.
func validIfName(s string) error {
	switch {
	case s == "":
		return errors.New("name is empty")
	case len(s) > 15:
		return errors.New("name is longer than 15 characters")
	case s == "." || s == "..":
		return errors.New("name cannot be . or ..")
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("name contains invalid character %q", r)
		}
	}
	return nil
}

// State is a bridge network's settings as stored with it (its
// DriverState): the options resolved, with every default filled in, so a
// later change of the daemon's defaults never changes an existing network.
type State struct {
	BridgeName string
	ICC        bool
	Masquerade bool
	MTU        int // 0 means the default (1500)
	Dataplane  string
	HostIPv4   netip.Addr // default host address of -p; always valid once decoded
}

// Keys of State in DriverState.
const (
	stateBridgeName = "bridge"
	stateICC        = "icc"
	stateMasquerade = "masquerade"
	stateMTU        = "mtu"
	stateDataplane  = "dataplane"
	stateHostIPv4   = "host_binding_ipv4"
)

// Map is s as DriverState.
func (s State) Map() map[string]string {
	return map[string]string{
		stateBridgeName: s.BridgeName,
		stateICC:        strconv.FormatBool(s.ICC),
		stateMasquerade: strconv.FormatBool(s.Masquerade),
		stateMTU:        strconv.Itoa(s.MTU),
		stateDataplane:  s.Dataplane,
		stateHostIPv4:   hostIPv4(s.HostIPv4).String(),
	}
}

// hostIPv4 is the default host address a, or 0.0.0.0 when a is unset.
func hostIPv4(a netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return netip.IPv4Unspecified()
}

// StateOf decodes n's DriverState.
func StateOf(n *dataplane.NetworkConfig) (State, error) {
	m := n.DriverState
	s := State{BridgeName: m[stateBridgeName], Dataplane: m[stateDataplane]}
	var err error
	if s.ICC, err = strconv.ParseBool(m[stateICC]); err != nil {
		return State{}, fmt.Errorf("network %s: bad bridge state %s=%q", n.Name, stateICC, m[stateICC])
	}
	if s.Masquerade, err = strconv.ParseBool(m[stateMasquerade]); err != nil {
		return State{}, fmt.Errorf("network %s: bad bridge state %s=%q", n.Name, stateMasquerade, m[stateMasquerade])
	}
	if s.MTU, err = strconv.Atoi(m[stateMTU]); err != nil {
		return State{}, fmt.Errorf("network %s: bad bridge state %s=%q", n.Name, stateMTU, m[stateMTU])
	}
	if s.BridgeName == "" || len(s.BridgeName) > 15 {
		return State{}, fmt.Errorf("network %s: invalid bridge name %q", n.Name, s.BridgeName)
	}
	if _, err := dataplane.ParseDataplane(s.Dataplane); err != nil {
		return State{}, fmt.Errorf("network %s: %w", n.Name, err)
	}
	// Networks of older builds have no default host address: 0.0.0.0.
	if v, ok := m[stateHostIPv4]; ok {
		if s.HostIPv4, err = netip.ParseAddr(v); err != nil || !s.HostIPv4.Is4() {
			return State{}, fmt.Errorf("network %s: bad bridge state %s=%q", n.Name, stateHostIPv4, v)
		}
	}
	s.HostIPv4 = hostIPv4(s.HostIPv4)
	return s, nil
}

// Validate parses a new network's options into its State and refuses a
// bridge name that another network has. It is the pure part of
// Driver.ValidateNetwork, usable without a kernel.
func Validate(defaultDataplane string, n *dataplane.NetworkConfig, others []*dataplane.NetworkConfig) (State, error) {
	o, err := ParseOptions(n.Options, defaultDataplane)
	if err != nil {
		return State{}, err
	}
	s := State{
		BridgeName: cmp.Or(o.Name, "br-"+stringid.ShortID(n.ID)),
		ICC:        o.ICC,
		Masquerade: o.Masquerade,
		MTU:        o.MTU,
		Dataplane:  o.Dataplane,
		HostIPv4:   hostIPv4(o.HostIPv4),
	}
	for _, other := range others {
		os, err := StateOf(other)
		if err == nil && os.BridgeName == s.BridgeName {
			return State{}, errdefs.Forbidden(
				"cannot create network %s (%s): conflicts with network %s (%s): networks have same bridge name",
				n.ID, s.BridgeName, other.ID, os.BridgeName)
		}
	}
	return s, nil
}

// Builtin is the default `bridge` network, as dockerd makes docker0.
func Builtin(defaultDataplane string) dataplane.BuiltinNetwork {
	return dataplane.BuiltinNetwork{
		Name: "bridge",
		Options: map[string]string{
			optDefaultBridge:   "true",
			api.OptEnableICC:   "true",
			api.OptEnableMasq:  "true",
			optHostBindingIPv4: "0.0.0.0",
			api.OptBridgeName:  api.DefaultBridgeName,
			api.OptMTU:         "1500",
			api.OptDataplane:   cmp.Or(defaultDataplane, dataplane.DataplaneEBPF),
		},
	}
}

// legacyRecord is how netd before the driver contract stored a bridge
// network's settings: as fields of the network record.
type legacyRecord struct {
	Dataplane  string `json:"dataplane"`
	BridgeName string `json:"bridgeName"`
	MTU        int    `json:"mtu"`
	ICC        bool   `json:"icc"`
	Masquerade bool   `json:"masquerade"`
}

// DecodeLegacyState turns such a record into State.
func DecodeLegacyState(record []byte) (map[string]string, error) {
	var r legacyRecord
	if err := json.Unmarshal(record, &r); err != nil {
		return nil, fmt.Errorf("decode legacy bridge record: %w", err)
	}
	if r.BridgeName == "" {
		return nil, errors.New("decode legacy bridge record: no bridge name")
	}
	s := State{BridgeName: r.BridgeName, ICC: r.ICC, Masquerade: r.Masquerade, MTU: r.MTU,
		Dataplane: cmp.Or(r.Dataplane, dataplane.DataplaneKernel)}
	return s.Map(), nil
}
