//go:build linux

package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/daemon/portalloc"
	"github.com/netd-dev/netd/dataplane"
)

// warnHostPorts is Docker's warning for -p on the host network.
const warnHostPorts = "Published ports are discarded when using host network mode"

// portSpec is one validated entry of a container's PortBindings.
type portSpec struct {
	proto         string
	containerPort uint16
	hostIP        netip.Addr // invalid: the network's default
	hostPort      uint16     // 0: picked from first..last (0, 0: ephemeral)
	first, last   uint16
}

// hostIPDefaulter is a driver with a per-network default host address for
// -p (the bridge driver's host_binding_ipv4).
type hostIPDefaulter interface {
	DefaultHostIP(n *dataplane.NetworkConfig) (netip.Addr, error)
}

// parsePortBindings validates Docker's HostConfig.PortBindings: keys
// "PORT[/PROTO]", host ports "", "N" or "FIRST-LAST". The specs come in a
// stable order (container port, proto, host address, host port).
func parsePortBindings(pm api.PortMap) ([]portSpec, error) {
	var out []portSpec
	for key, bindings := range pm {
		port, proto, _ := strings.Cut(key, "/")
		proto = strings.ToLower(cmp.Or(proto, "tcp"))
		if proto != "tcp" && proto != "udp" {
			if proto == "sctp" {
				return nil, errInvalid("invalid port %q: sctp is not supported by netd, only tcp and udp", key)
			}
			return nil, errInvalid("invalid proto: %s", proto)
		}
		cp, err := parsePortNumber(port)
		if err != nil {
			return nil, errInvalid("invalid containerPort: %s", port)
		}
		if len(bindings) == 0 {
			bindings = []api.PortBinding{{}}
		}
		for _, b := range bindings {
			s := portSpec{proto: proto, containerPort: cp}
			if h := strings.Trim(b.HostIP, "[]"); h != "" {
				ip, err := netip.ParseAddr(h)
				if err != nil || ip.Zone() != "" {
					return nil, errInvalid("invalid IP address: %s", b.HostIP)
				}
				s.hostIP = ip.Unmap()
			}
			if b.HostPort != "" {
				lo, hi, isRange := strings.Cut(b.HostPort, "-")
				first, err1 := parsePortNumber(lo)
				last, err2 := first, error(nil)
				if isRange {
					last, err2 = parsePortNumber(hi)
				}
				if err1 != nil || err2 != nil || last < first {
					return nil, errInvalid("invalid hostPort: %s", b.HostPort)
				}
				if first == last {
					s.hostPort = first
				} else {
					s.first, s.last = first, last
				}
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b portSpec) int {
		return cmp.Or(cmp.Compare(a.containerPort, b.containerPort), strings.Compare(a.proto, b.proto),
			a.hostIP.Compare(b.hostIP), cmp.Compare(a.hostPort, b.hostPort), cmp.Compare(a.first, b.first))
	})
	return out, nil
}

func parsePortNumber(s string) (uint16, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return uint16(p), nil
}

// publishTarget is the endpoint a container's ports are published on: the
// one carrying its default route, as in Docker. m.mu held.
func (m *Manager) publishTarget(c *ContainerRecord, eps []*EndpointRecord) (*NetworkRecord, *EndpointRecord, error) {
	for _, ep := range eps {
		if ep.DefaultGW {
			return m.networks[ep.NetworkID], ep, nil
		}
	}
	return nil, nil, errInvalid("cannot publish ports of container %s: none of its networks has a gateway (none and internal networks cannot publish): connect it to a bridge network", c.Name)
}

// planPorts turns specs into host-port requests on network n, resolving
// an unnamed host address to n's default. The error says n cannot publish.
func (m *Manager) planPorts(n *NetworkRecord, specs []portSpec) ([]portalloc.Request, error) {
	d, err := m.driver(n.Driver)
	if err != nil {
		return nil, err
	}
	if _, ok := d.(dataplane.Publisher); !ok {
		return nil, errInvalid("cannot publish ports on network %s: driver %s does not publish ports; use a bridge network", n.Name, n.Driver)
	}
	def := netip.IPv4Unspecified()
	if hd, ok := d.(hostIPDefaulter); ok {
		if def, err = hd.DefaultHostIP(networkConfig(n)); err != nil {
			return nil, fmt.Errorf("default host address of network %s: %w", n.Name, err)
		}
	}
	reqs := make([]portalloc.Request, len(specs))
	for i, s := range specs {
		ip := s.hostIP
		if !ip.IsValid() {
			ip = def
		}
		if !ip.Is4() {
			return nil, errInvalid("cannot publish %d/%s on host address %s: netd publishes on IPv4 host addresses only", s.containerPort, s.proto, ip)
		}
		reqs[i] = portalloc.Request{Proto: s.proto, IP: ip, Port: s.hostPort, First: s.first, Last: s.last}
	}
	return reqs, nil
}

// allocatePorts holds the host ports of specs for c, all or nothing, with
// Docker's error texts.
func (m *Manager) allocatePorts(c *ContainerRecord, ep *EndpointRecord, specs []portSpec, reqs []portalloc.Request) ([]PortRecord, error) {
	keys, err := m.hostPorts.Allocate(c.ID, reqs)
	if err != nil {
		err = fmt.Errorf("driver failed programming external connectivity on endpoint %s (%s): %w", c.Name, ep.ID, err)
		if errors.Is(err, portalloc.ErrAllocated) || errors.Is(err, portalloc.ErrInUse) {
			return nil, errConflict("%s", err)
		}
		return nil, err
	}
	out := make([]PortRecord, len(keys))
	for i, k := range keys {
		out[i] = PortRecord{Proto: k.Proto, HostIP: k.IP, HostPort: k.Port, ContainerPort: specs[i].containerPort}
	}
	return out, nil
}

func portKeys(ports []PortRecord) []portalloc.Key {
	keys := make([]portalloc.Key, len(ports))
	for i, p := range ports {
		keys[i] = portalloc.Key{Proto: p.Proto, IP: p.HostIP, Port: p.HostPort}
	}
	return keys
}

func portMappings(ports []PortRecord) []dataplane.PortMapping {
	out := make([]dataplane.PortMapping, len(ports))
	for i, p := range ports {
		out[i] = dataplane.PortMapping{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort}
	}
	return out
}

// publishPorts makes the driver forward c's ports to its endpoint.
func (m *Manager) publishPorts(ctx context.Context, a attached, c *ContainerRecord) error {
	p, ok := a.drv.(dataplane.Publisher)
	if !ok {
		return errInvalid("cannot publish ports on network %s: driver %s does not publish ports", a.n.Name, a.n.Driver)
	}
	if err := p.PublishPorts(ctx, a.n, a.ep, portMappings(c.Ports)); err != nil {
		return fmt.Errorf("driver failed programming external connectivity on endpoint %s (%s): %w", c.Name, a.ep.ID, err)
	}
	return nil
}

// unpublishPorts removes c's ports from the driver and lets the host
// ports go. m.mu held.
func (m *Manager) unpublishPorts(ctx context.Context, c *ContainerRecord) error {
	if len(c.Ports) == 0 {
		return nil
	}
	n, ep, err := m.publishTarget(c, m.containerEndpoints(c.ID))
	if err == nil {
		var a attached
		if a, err = m.attachment(n, ep, c); err == nil {
			if p, ok := a.drv.(dataplane.Publisher); ok {
				err = p.UnpublishPorts(ctx, a.n, a.ep, portMappings(c.Ports))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("unpublish ports of container %s: %w", c.Name, err)
	}
	return nil
}

// dropPorts forgets c's published ports after the endpoint carrying them
// left (its driver removed the forwarding): the host ports are released
// and the record says so. m.mu held.
func (m *Manager) dropPorts(c *ContainerRecord) {
	if len(c.Ports) == 0 {
		return
	}
	next := *c
	next.Ports = nil
	if err := m.store.Update(func(tx *StoreTx) error { return tx.PutContainer(&next) }); err != nil {
		m.log.Warn("cannot store the unpublished ports", "container", c.Name, "err", err)
		return
	}
	m.hostPorts.Release(c.ID, portKeys(c.Ports))
	m.containers[c.ID] = &next
	m.log.Info("ports unpublished with the network that carried them", "container", c.Name)
}

// restorePorts holds again, after a restart, the host ports of every
// container and has the drivers adopt the mappings (idempotent: the
// kernel kept forwarding while the daemon was down). m.mu held.
func (m *Manager) restorePorts(ctx context.Context) error {
	var errs []error
	for _, c := range m.sortedContainers() {
		if len(c.Ports) == 0 {
			continue
		}
		reqs := make([]portalloc.Request, len(c.Ports))
		for i, p := range c.Ports {
			reqs[i] = portalloc.Request{Proto: p.Proto, IP: p.HostIP, Port: p.HostPort}
		}
		if _, err := m.hostPorts.Allocate(c.ID, reqs); err != nil {
			// Keep forwarding: the mapping is ours; a host program that
			// took the port meanwhile only shares it.
			errs = append(errs, fmt.Errorf("hold the published ports of container %s again: %w", c.Name, err))
		}
		n, ep, err := m.publishTarget(c, m.containerEndpoints(c.ID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a, err := m.attachment(n, ep, c)
		if err == nil {
			err = m.publishPorts(ctx, a, c)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore the published ports of container %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// portsView is Docker's NetworkSettings.Ports: every requested container
// port, with its host bindings where published.
func portsView(c *ContainerRecord) api.PortMap {
	out := api.PortMap{}
	for key := range c.PortBindings {
		out[canonicalPort(key)] = nil
	}
	for _, p := range c.Ports {
		k := fmt.Sprintf("%d/%s", p.ContainerPort, p.Proto)
		out[k] = append(out[k], api.PortBinding{HostIP: p.HostIP.String(), HostPort: strconv.Itoa(int(p.HostPort))})
	}
	return out
}

// canonicalPort writes "80" as "80/tcp".
func canonicalPort(key string) string {
	port, proto, _ := strings.Cut(key, "/")
	return port + "/" + strings.ToLower(cmp.Or(proto, "tcp"))
}

func clonePortMap(pm api.PortMap) api.PortMap {
	if pm == nil {
		return nil
	}
	out := make(api.PortMap, len(pm))
	for k, v := range pm {
		out[k] = slices.Clone(v)
	}
	return out
}
