package daemon

import (
	"maps"
	"strings"

	"github.com/docker/docker/api/types/network"

	"github.com/netd-dev/netd/api"
)

// Translation between Docker's Engine API network types (the SDK's own, from
// api/types/network: a leaf package with no dependencies beyond the
// standard library and the SDK's filters) and netd's wire types, which
// follow Docker's field by field but leave out what netd does not do.

// engineNetwork is n as Docker's network resource.
func engineNetwork(n api.Network) network.Inspect {
	out := network.Inspect{
		Name:       n.Name,
		ID:         n.ID,
		Created:    n.Created,
		Scope:      n.Scope,
		Driver:     n.Driver,
		EnableIPv4: n.EnableIPv4,
		EnableIPv6: n.EnableIPv6,
		IPAM: network.IPAM{
			Driver:  n.IPAM.Driver,
			Options: maps.Clone(n.IPAM.Options), // nil stays null, as for the built-in networks
			Config:  []network.IPAMConfig{},
		},
		Internal:   n.Internal,
		Attachable: n.Attachable,
		Ingress:    n.Ingress,
		ConfigFrom: network.ConfigReference{Network: n.ConfigFrom.Network},
		ConfigOnly: n.ConfigOnly,
		Containers: make(map[string]network.EndpointResource, len(n.Containers)),
		Options:    cloneLabels(n.Options),
		Labels:     cloneLabels(n.Labels),
	}
	for _, c := range n.IPAM.Config {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{
			Subnet:     c.Subnet,
			IPRange:    c.IPRange,
			Gateway:    c.Gateway,
			AuxAddress: maps.Clone(c.AuxiliaryAddresses),
		})
	}
	for id, ep := range n.Containers {
		out.Containers[id] = network.EndpointResource{
			Name:        ep.Name,
			EndpointID:  ep.EndpointID,
			MacAddress:  ep.MacAddress,
			IPv4Address: ep.IPv4Address,
			IPv6Address: ep.IPv6Address,
		}
	}
	return out
}

// netdCreateRequest translates a Docker create request, refusing what netd
// cannot do rather than silently creating something else.
func netdCreateRequest(req network.CreateRequest) (api.NetworkCreateRequest, error) {
	switch {
	case req.EnableIPv6 != nil && *req.EnableIPv6:
		return api.NetworkCreateRequest{}, errInvalid("IPv6 networks are not supported yet")
	case req.EnableIPv4 != nil && !*req.EnableIPv4:
		return api.NetworkCreateRequest{}, errInvalid("IPv4 cannot be disabled: netd networks are IPv4 networks")
	case req.Scope != "" && req.Scope != "local":
		return api.NetworkCreateRequest{}, errInvalid("scope %q is not supported: netd creates local networks only", req.Scope)
	case req.Ingress:
		return api.NetworkCreateRequest{}, errInvalid("ingress networks are not supported: netd has no swarm routing mesh")
	case req.ConfigOnly || (req.ConfigFrom != nil && req.ConfigFrom.Network != ""):
		return api.NetworkCreateRequest{}, errInvalid("config-only networks (--config-only, --config-from) are not supported by netd")
	}
	out := api.NetworkCreateRequest{
		Name:       req.Name,
		Driver:     req.Driver,
		Internal:   req.Internal,
		Attachable: req.Attachable,
		Options:    maps.Clone(req.Options),
		Labels:     maps.Clone(req.Labels),
	}
	if req.IPAM != nil {
		out.IPAM = &api.IPAM{Driver: req.IPAM.Driver, Options: maps.Clone(req.IPAM.Options)}
		for _, c := range req.IPAM.Config {
			out.IPAM.Config = append(out.IPAM.Config, api.IPAMConfig{
				Subnet:             c.Subnet,
				IPRange:            c.IPRange,
				Gateway:            c.Gateway,
				AuxiliaryAddresses: maps.Clone(c.AuxAddress),
			})
		}
	}
	return out, nil
}

// netdEndpointSettings translates what `docker network connect` asks for;
// nil when nothing was asked. The docker CLI always sends an IPAMConfig,
// empty when --ip was not given.
func netdEndpointSettings(s *network.EndpointSettings) (*api.EndpointSettings, error) {
	if s == nil {
		return nil, nil
	}
	var unsupported []string
	if s.IPAMConfig != nil && s.IPAMConfig.IPv6Address != "" {
		unsupported = append(unsupported, "an IPv6 address (--ip6)")
	}
	if s.IPAMConfig != nil && len(s.IPAMConfig.LinkLocalIPs) > 0 {
		unsupported = append(unsupported, "link-local addresses (--link-local-ip)")
	}
	if len(s.Links) > 0 {
		unsupported = append(unsupported, "links (--link)")
	}
	if len(s.DriverOpts) > 0 {
		unsupported = append(unsupported, "driver options (--driver-opt)")
	}
	if s.GwPriority != 0 {
		unsupported = append(unsupported, "a gateway priority (--gw-priority)")
	}
	if len(unsupported) > 0 {
		return nil, errInvalid("netd does not support %s on an endpoint", strings.Join(unsupported, ", "))
	}
	out := &api.EndpointSettings{Aliases: s.Aliases, MacAddress: s.MacAddress}
	if s.IPAMConfig != nil && s.IPAMConfig.IPv4Address != "" {
		out.IPAMConfig = &api.EndpointIPAMConfig{IPv4Address: s.IPAMConfig.IPv4Address}
	}
	if out.IPAMConfig == nil && len(out.Aliases) == 0 && out.MacAddress == "" {
		return nil, nil
	}
	return out, nil
}
