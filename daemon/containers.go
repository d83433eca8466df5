//go:build linux

package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
)

// validContainerName is Docker's rule for container names.
var validContainerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Docker's texts for the host and none network rules.
const (
	errTextHostNetwork = "container cannot be disconnected from host network or connected to host network"
	errTextNoneNetwork = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
	errTextMixedModes  = "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
)

func (m *Manager) sandboxPrefix() string { return m.nodeName + "-" }

func (m *Manager) sortedContainers() []*ContainerRecord {
	out := slices.Collect(maps.Values(m.containers))
	slices.SortFunc(out, func(a, b *ContainerRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// containerEndpoints lists a container's endpoints in interface order.
func (m *Manager) containerEndpoints(id string) []*EndpointRecord {
	var eps []*EndpointRecord
	for _, ep := range m.endpoints {
		if ep.ContainerID == id {
			eps = append(eps, ep)
		}
	}
	slices.SortFunc(eps, func(a, b *EndpointRecord) int {
		return cmp.Or(cmp.Compare(ifIndex(a.IfName), ifIndex(b.IfName)), a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return eps
}

// findContainer resolves full ID, name (with or without Docker's leading
// slash), then a unique ID prefix.
func (m *Manager) findContainer(ref string) (*ContainerRecord, error) {
	if ref == "" {
		return nil, errInvalid("container name or ID must not be empty")
	}
	if c, ok := m.containers[ref]; ok {
		return c, nil
	}
	name := strings.TrimPrefix(ref, "/")
	for _, c := range m.containers {
		if c.Name == name {
			return c, nil
		}
	}
	found := withIDPrefix(m.containers, ref)
	switch len(found) {
	case 0:
		return nil, errNotFound("No such container: %s", ref)
	case 1:
		return found[0], nil
	default:
		return nil, errInvalid("multiple IDs found with provided prefix: %s", ref)
	}
}

// createSandbox records the netns name, then creates it, so a crash in
// between still leaves the name known to reconcile.
func (m *Manager) createSandbox(c *ContainerRecord) (string, error) {
	if !m.sandboxNames[c.Sandbox] {
		if err := m.store.Update(func(tx *StoreTx) error { return tx.PutSandbox(c.Sandbox) }); err != nil {
			return "", fmt.Errorf("record sandbox %s: %w", c.Sandbox, err)
		}
		m.sandboxNames[c.Sandbox] = true
	}
	if c.HostNetwork {
		return m.sandboxes.CreateHost(c.Sandbox)
	}
	return m.sandboxes.Create(c.Sandbox)
}

func (m *Manager) deleteSandbox(name string) error {
	if err := m.sandboxes.Delete(name); err != nil {
		return err
	}
	m.forgetSandbox(name)
	return nil
}

// generateMAC derives Docker's 02:42:a:b:c:d from an IPv4 address.
func generateMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}

func parseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, errInvalid("invalid MAC address: %s", s)
	}
	if hw[0]&1 == 1 {
		return nil, errInvalid("invalid MAC address: %s: multicast address", s)
	}
	return hw, nil
}

// planEndpoint builds the record of a new endpoint of container c on
// network n: interface name, address, MAC. taken holds the interface
// names the container already uses.
func (m *Manager) planEndpoint(n *NetworkRecord, c *ContainerRecord, s api.EndpointSettings, taken map[string]bool) (*EndpointRecord, error) {
	ep := &EndpointRecord{
		ID:          stringid.NewID(),
		NetworkID:   n.ID,
		ContainerID: c.ID,
		Aliases:     slices.Clone(s.Aliases),
		Created:     m.now(),
	}
	var req netip.Addr
	if s.IPAMConfig != nil && s.IPAMConfig.IPv4Address != "" {
		a, err := netip.ParseAddr(s.IPAMConfig.IPv4Address)
		if err != nil || !a.Is4() {
			return nil, errInvalid("invalid IPv4 address: %s", s.IPAMConfig.IPv4Address)
		}
		req = a
	}
	if !n.Subnet.IsValid() {
		// host and none: no interface of their own.
		if req.IsValid() || s.MacAddress != "" {
			return nil, errInvalid("network %s does not support addresses or MAC addresses", n.Name)
		}
		return ep, nil
	}
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !taken[name] {
			ep.IfName = name
			break
		}
	}
	ep.HostIfName = "nd" + ep.ID[:12]

	inUse := map[netip.Addr]bool{}
	macs := map[string]bool{}
	for _, o := range m.networkEndpoints(n.ID) {
		inUse[o.Addr.Addr()] = true
		macs[o.MAC] = true
	}
	// Endpoints of undecodable records may still be on the wire.
	for _, o := range m.HeldEndpoints(n.ID) {
		inUse[o.Addr.Addr()] = true
		macs[o.MAC] = true
	}
	global := m.isGlobal(n)
	if global {
		// Other hosts' endpoints on a cluster-wide network.
		m.clusterInUse(n.ID, inUse, macs)
	}
	spec := PoolSpec{Subnet: n.Subnet, IPRange: n.IPRange, Gateway: n.Gateway, Aux: n.Aux}
	var addr netip.Addr
	if req.IsValid() {
		if !n.UserSubnet {
			return nil, errInvalid("user specified IP address is supported only when connecting to networks with user configured subnets")
		}
		if err := CheckRequestedAddr(spec, req, inUse); err != nil {
			return nil, err
		}
		addr = req
	} else {
		alloc := AllocateAddr
		if global {
			alloc = func(spec PoolSpec, inUse map[netip.Addr]bool) (netip.Addr, error) {
				return m.allocateGlobalAddr(n, spec, inUse)
			}
		}
		a, err := alloc(spec, inUse)
		if errors.Is(err, ErrNoAvailableIPs) {
			// Docker names the full network; the caller's state, not a daemon fault.
			return nil, errConflict("%w: %s (%s)", err, n.Name, n.ID)
		}
		if err != nil {
			return nil, err
		}
		addr = a
	}
	ep.Addr = netip.PrefixFrom(addr, n.Subnet.Bits())

	if s.MacAddress != "" {
		mac, err := parseMAC(s.MacAddress)
		if err != nil {
			return nil, err
		}
		if macs[mac.String()] {
			return nil, errConflict("MAC address %s is already in use on network %s", mac, n.Name)
		}
		ep.MAC = mac.String()
		return ep, nil
	}
	mac := generateMAC(addr)
	if macs[mac.String()] {
		// A user's --mac-address took the MAC this address derives: the
		// address stays usable with a random MAC instead.
		var err error
		if mac, err = randomMAC(macs); err != nil {
			return nil, fmt.Errorf("pick a MAC address for %s on network %s: %w", addr, n.Name, err)
		}
	}
	ep.MAC = mac.String()
	return ep, nil
}

// randomMAC returns a random locally administered unicast MAC that is not
// in inUse and is outside Docker's derived 02:42:... space, so it cannot
// take the MAC of an address allocated later either.
func randomMAC(inUse map[string]bool) (net.HardwareAddr, error) {
	hw := make(net.HardwareAddr, 6)
	// Each try collides with probability len(inUse)/2^46: a few tries suffice.
	for range 16 {
		if _, err := rand.Read(hw); err != nil {
			return nil, err
		}
		hw[0] = hw[0]&^0x01 | 0x02
		if (hw[0] != 0x02 || hw[1] != 0x42) && !inUse[hw.String()] {
			return hw, nil
		}
	}
	return nil, errors.New("no free random MAC address found")
}

// attached is one endpoint whose kernel side is (being) built.
type attached struct {
	n   *dataplane.NetworkConfig
	ep  *dataplane.EndpointConfig
	drv dataplane.Driver
}

// attachment gathers what the driver of n needs for ep; the error says
// the driver is not loaded.
func (m *Manager) attachment(n *NetworkRecord, ep *EndpointRecord, c *ContainerRecord) (attached, error) {
	d, err := m.driver(n.Driver)
	return attached{n: networkConfig(n), ep: m.endpointConfig(n, ep, c), drv: d}, err
}

// plug creates the endpoint's link and joins it to the sandbox; on error
// it removes what it made.
func (m *Manager) plug(ctx context.Context, n *NetworkRecord, ep *EndpointRecord, c *ContainerRecord) (attached, error) {
	a, err := m.attachment(n, ep, c)
	if err != nil {
		return a, err
	}
	if err := a.drv.CreateEndpoint(ctx, a.n, a.ep); err != nil {
		m.undo("delete endpoint", a.drv.DeleteEndpoint(ctx, a.n, a.ep))
		return a, fmt.Errorf("create endpoint on %s: %w", n.Name, err)
	}
	if err := a.drv.Join(ctx, a.n, a.ep); err != nil {
		m.undo("leave", a.drv.Leave(ctx, a.n, a.ep))
		m.undo("delete endpoint", a.drv.DeleteEndpoint(ctx, a.n, a.ep))
		return a, fmt.Errorf("join %s to %s: %w", c.Name, n.Name, err)
	}
	return a, nil
}

// unplug is the reverse of plug.
func (m *Manager) unplug(ctx context.Context, a attached) error {
	if err := a.drv.Leave(ctx, a.n, a.ep); err != nil {
		return fmt.Errorf("leave network %s: %w", a.n.Name, err)
	}
	if err := a.drv.DeleteEndpoint(ctx, a.n, a.ep); err != nil {
		return fmt.Errorf("delete endpoint on %s: %w", a.n.Name, err)
	}
	return nil
}

// detach unplugs ep of c from n.
func (m *Manager) detach(ctx context.Context, n *NetworkRecord, ep *EndpointRecord, c *ContainerRecord) error {
	a, err := m.attachment(n, ep, c)
	if err != nil {
		return err
	}
	return m.unplug(ctx, a)
}

func (m *Manager) containerNetworks(id string) []*NetworkRecord {
	var out []*NetworkRecord
	for _, ep := range m.containerEndpoints(id) {
		out = append(out, m.networks[ep.NetworkID])
	}
	return out
}

// wantsDefaultRoute says whether n may carry a container's default route.
func wantsDefaultRoute(n *NetworkRecord) bool {
	return n.Gateway.IsValid() && !n.Internal
}

// CreateContainer makes the netns and attaches the networks in order.
func (m *Manager) CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.ContainerCreateResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	name := strings.TrimPrefix(req.Name, "/")
	if !validContainerName.MatchString(name) {
		return api.ContainerCreateResponse{}, errInvalid("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name)
	}
	// The netns is a file /run/netns/<node>-<name>: a file name has 255 bytes at most.
	if max := 255 - len(m.sandboxPrefix()); len(name) > max {
		return api.ContainerCreateResponse{}, errInvalid("invalid container name: %d characters, at most %d on node %s", len(name), max, m.nodeName)
	}
	if b, held := m.heldName(bucketContainers, name); held {
		return api.ContainerCreateResponse{}, errConflict("container name %q is held by the undecodable state record %s: restore the state database first", name, b)
	}
	if b, held := m.heldName(bucketContainers, name); held {
		return api.ContainerCreateResponse{}, errConflict("container name %q is held by the undecodable state record %s: restore the state database first", name, b)
	}
	for _, c := range m.containers {
		if c.Name == name {
			return api.ContainerCreateResponse{}, errConflict(
				"Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.",
				name, c.ID)
		}
	}
	reqs := req.Networks
	if len(reqs) == 0 {
		reqs = []api.ContainerNetworkRequest{{Network: NetworkBridge}}
	}
	nets := make([]*NetworkRecord, len(reqs))
	seen := map[string]bool{}
	special := false
	for i, r := range reqs {
		n, err := m.findNetwork(r.Network)
		if err != nil {
			return api.ContainerCreateResponse{}, err
		}
		if seen[n.ID] {
			return api.ContainerCreateResponse{}, errInvalid("container cannot be connected to network %s more than once", n.Name)
		}
		seen[n.ID] = true
		special = special || n.Driver == DriverHost || n.Driver == DriverNull
		nets[i] = n
	}
	if special && len(nets) > 1 {
		return api.ContainerCreateResponse{}, errInvalid(errTextMixedModes)
	}

	id := stringid.NewID()
	c := &ContainerRecord{
		ID:          id,
		Name:        name,
		Created:     m.now(),
		Labels:      maps.Clone(req.Labels),
		SandboxID:   stringid.NewID(),
		Sandbox:     m.sandboxPrefix() + name,
		HostNetwork: nets[0].Driver == DriverHost,
	}

	taken := map[string]bool{}
	var eps []*EndpointRecord
	gwSet := false
	for i, n := range nets {
		ep, err := m.planEndpoint(n, c, reqs[i].Settings, taken)
		if err != nil {
			return api.ContainerCreateResponse{}, err
		}
		taken[ep.IfName] = true
		if !gwSet && wantsDefaultRoute(n) {
			ep.DefaultGW, gwSet = true, true
		}
		// Two endpoints planned in this request on one network cannot
		// collide: duplicates were refused above.
		eps = append(eps, ep)
	}

	// Published ports: validated and their host ports held before any
	// kernel object is made, so a conflict changes nothing.
	var warnings []string
	specs, err := parsePortBindings(req.PortBindings)
	if err != nil {
		return api.ContainerCreateResponse{}, err
	}
	var pubEP *EndpointRecord
	switch {
	case len(specs) == 0:
	case c.HostNetwork:
		warnings = append(warnings, warnHostPorts)
	default:
		var pubNet *NetworkRecord
		if pubNet, pubEP, err = m.publishTarget(c, eps); err != nil {
			return api.ContainerCreateResponse{}, err
		}
		reqs, err := m.planPorts(pubNet, specs)
		if err != nil {
			return api.ContainerCreateResponse{}, err
		}
		if c.Ports, err = m.allocatePorts(c, pubEP, specs, reqs); err != nil {
			return api.ContainerCreateResponse{}, err
		}
		c.PortBindings = clonePortMap(req.PortBindings)
	}
	releasePorts := func() { m.hostPorts.Release(c.ID, portKeys(c.Ports)) }

	if existing, err := m.sandboxes.List(c.Sandbox); err == nil && slices.Contains(existing, c.Sandbox) {
		// A netns we recorded that no container owns (names are unique) is
		// left over from a failed removal: take it away; anyone else's stays.
		if !m.sandboxNames[c.Sandbox] || m.deleteSandbox(c.Sandbox) != nil {
			releasePorts()
			return api.ContainerCreateResponse{}, errConflict("network namespace %s already exists: remove it or pick another container name", c.Sandbox)
		}
	}
	if _, err := m.createSandbox(c); err != nil {
		// The netns may be someone else's (name taken): forget, never delete.
		m.forgetSandbox(c.Sandbox)
		releasePorts()
		return api.ContainerCreateResponse{}, fmt.Errorf("create sandbox %s: %w", c.Sandbox, err)
	}
	intents := make([]*pendingRecord, len(eps))
	for i, ep := range eps {
		intents[i] = &pendingRecord{Endpoint: ep, Sandbox: c.Sandbox}
	}
	if err := m.putPending(intents...); err != nil {
		m.undo("delete sandbox", m.deleteSandbox(c.Sandbox))
		releasePorts()
		return api.ContainerCreateResponse{}, fmt.Errorf("record endpoints of %s: %w", name, err)
	}
	var done []attached
	rollback := func() {
		for _, a := range slices.Backward(done) {
			m.undo("unplug", m.unplug(ctx, a))
		}
		m.undo("delete sandbox", m.deleteSandbox(c.Sandbox))
		m.dropPending(intents...)
		releasePorts()
	}
	for i, ep := range eps {
		a, err := m.plug(ctx, nets[i], ep, c)
		if err != nil {
			rollback()
			return api.ContainerCreateResponse{}, err
		}
		done = append(done, a)
		if ep == pubEP {
			if err := m.publishPorts(ctx, a, c); err != nil {
				rollback()
				return api.ContainerCreateResponse{}, err
			}
		}
	}
	err = m.store.Update(func(tx *StoreTx) error {
		if err := tx.PutContainer(c); err != nil {
			return err
		}
		for i, ep := range eps {
			if err := tx.PutEndpoint(ep); err != nil {
				return err
			}
			if err := tx.DeletePending(intents[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		rollback()
		return api.ContainerCreateResponse{}, fmt.Errorf("store container %s: %w", name, err)
	}
	m.containers[id] = c
	for _, ep := range eps {
		m.endpoints[ep.ID] = ep
	}
	m.log.Info("container created", "name", name, "id", stringid.ShortID(id), "netns", c.Sandbox, "published", len(c.Ports))
	return api.ContainerCreateResponse{ID: id, Warnings: warnings}, nil
}

// findConnection finds the network and the container a connect or a
// disconnect names; m.mu must be held.
func (m *Manager) findConnection(netRef, ctrRef string) (*NetworkRecord, *ContainerRecord, error) {
	n, err := m.findNetwork(netRef)
	if err != nil {
		return nil, nil, err
	}
	c, err := m.findContainer(ctrRef)
	if err != nil {
		return nil, nil, err
	}
	return n, c, nil
}

// Connect attaches a container to one more network.
func (m *Manager) Connect(ctx context.Context, netRef string, req api.NetworkConnectRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, c, err := m.findConnection(netRef, req.Container)
	if err != nil {
		return err
	}
	current := m.containerEndpoints(c.ID)
	taken := map[string]bool{}
	hasGW := false
	for _, ep := range current {
		if ep.NetworkID == n.ID {
			return errForbidden("endpoint with name %s already exists in network %s", c.Name, n.Name)
		}
		taken[ep.IfName] = true
		hasGW = hasGW || ep.DefaultGW
	}
	if n.Driver == DriverHost || c.HostNetwork {
		return errInvalid(errTextHostNetwork)
	}
	if n.Driver == DriverNull && len(current) > 0 {
		return errInvalid(errTextNoneNetwork)
	}
	for _, o := range m.containerNetworks(c.ID) {
		if o.Driver == DriverNull {
			return errInvalid(errTextNoneNetwork)
		}
	}
	var s api.EndpointSettings
	if req.EndpointConfig != nil {
		s = *req.EndpointConfig
	}
	ep, err := m.planEndpoint(n, c, s, taken)
	if err != nil {
		return err
	}
	ep.DefaultGW = !hasGW && wantsDefaultRoute(n)
	intent := &pendingRecord{Endpoint: ep, Sandbox: c.Sandbox}
	if err := m.putPending(intent); err != nil {
		return fmt.Errorf("record endpoint: %w", err)
	}
	a, err := m.plug(ctx, n, ep, c)
	if err != nil {
		m.dropPending(intent)
		return err
	}
	err = m.store.Update(func(tx *StoreTx) error {
		if err := tx.PutEndpoint(ep); err != nil {
			return err
		}
		return tx.DeletePending(intent)
	})
	if err != nil {
		m.undo("unplug", m.unplug(ctx, a))
		m.dropPending(intent)
		return fmt.Errorf("store endpoint: %w", err)
	}
	m.endpoints[ep.ID] = ep
	m.log.Info("container connected", "container", c.Name, "network", n.Name, "interface", ep.IfName, "address", ep.Addr)
	return nil
}

// Disconnect detaches a container from a network. With force, a failing
// driver does not keep the endpoint in the store.
func (m *Manager) Disconnect(ctx context.Context, netRef string, req api.NetworkDisconnectRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, c, err := m.findConnection(netRef, req.Container)
	if err != nil {
		return err
	}
	if n.Driver == DriverHost || c.HostNetwork {
		return errInvalid(errTextHostNetwork)
	}
	var ep *EndpointRecord
	for _, e := range m.containerEndpoints(c.ID) {
		if e.NetworkID == n.ID {
			ep = e
		}
	}
	if ep == nil {
		return errConflict("container %s is not connected to network %s", c.ID, n.Name)
	}
	if err := m.detach(ctx, n, ep, c); err != nil {
		if !req.Force {
			return err
		}
		m.log.Warn("forced disconnect despite driver error", "container", c.Name, "network", n.Name, "err", err)
	}
	if err := m.store.Update(func(tx *StoreTx) error { return tx.DeleteEndpoint(ep.ID) }); err != nil {
		if _, perr := m.plug(ctx, n, ep, c); perr != nil {
			m.log.Warn("cannot restore endpoint after store failure", "err", perr)
		}
		return fmt.Errorf("remove endpoint from store: %w", err)
	}
	delete(m.endpoints, ep.ID)
	if ep.DefaultGW {
		// The driver removed the forwarding with the endpoint.
		m.dropPorts(c)
		m.moveDefaultRoute(ctx, c)
	}
	m.log.Info("container disconnected", "container", c.Name, "network", n.Name)
	return nil
}

// moveDefaultRoute gives the default route to the next network in order
// after the one carrying it went away, as Docker re-picks the gateway.
func (m *Manager) moveDefaultRoute(ctx context.Context, c *ContainerRecord) {
	for _, ep := range m.containerEndpoints(c.ID) {
		n := m.networks[ep.NetworkID]
		if !wantsDefaultRoute(n) {
			continue
		}
		next := *ep
		next.DefaultGW = true
		a, err := m.attachment(n, &next, c)
		if err == nil {
			err = a.drv.Join(ctx, a.n, a.ep)
		}
		if err != nil {
			m.log.Warn("cannot move default route", "container", c.Name, "network", n.Name, "err", err)
			return
		}
		if err := m.store.Update(func(tx *StoreTx) error { return tx.PutEndpoint(&next) }); err != nil {
			m.log.Warn("cannot store default route move", "container", c.Name, "err", err)
			return
		}
		m.endpoints[next.ID] = &next
		return
	}
}

// RemoveContainer detaches every network and deletes the netns. Without
// force the first driver error stops it, keeping in the store exactly the
// endpoints that are still plugged.
func (m *Manager) RemoveContainer(ctx context.Context, ref string, force bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.findContainer(ref)
	if err != nil {
		return err
	}
	if err := m.unpublishPorts(ctx, c); err != nil {
		if !force {
			return fmt.Errorf("remove container %s: %w", c.Name, err)
		}
		m.log.Warn("forced removal despite unpublish error", "container", c.Name, "err", err)
	}
	for _, ep := range slices.Backward(m.containerEndpoints(c.ID)) {
		n := m.networks[ep.NetworkID]
		err := m.detach(ctx, n, ep, c)
		if err != nil && !force {
			return fmt.Errorf("remove container %s: %w", c.Name, err)
		}
		if err != nil {
			m.log.Warn("forced removal despite driver error", "container", c.Name, "network", n.Name, "err", err)
		}
		if err := m.store.Update(func(tx *StoreTx) error { return tx.DeleteEndpoint(ep.ID) }); err != nil {
			return fmt.Errorf("remove endpoint from store: %w", err)
		}
		delete(m.endpoints, ep.ID)
	}
	sbErr := m.sandboxes.Delete(c.Sandbox)
	if sbErr != nil && !force {
		return fmt.Errorf("remove sandbox %s: %w", c.Sandbox, sbErr)
	}
	if sbErr != nil {
		// The name stays recorded so reconcile or the next create removes the netns.
		m.log.Warn("forced removal left the netns behind", "container", c.Name, "netns", c.Sandbox, "err", sbErr)
	}
	err = m.store.Update(func(tx *StoreTx) error {
		if err := tx.DeleteContainer(c.ID); err != nil {
			return err
		}
		if sbErr != nil {
			return nil
		}
		return tx.DeleteSandbox(c.Sandbox)
	})
	if err != nil {
		return fmt.Errorf("remove container %s from store: %w", c.Name, err)
	}
	delete(m.containers, c.ID)
	m.hostPorts.Release(c.ID, portKeys(c.Ports))
	if sbErr == nil {
		delete(m.sandboxNames, c.Sandbox)
	}
	m.log.Info("container removed", "name", c.Name, "id", stringid.ShortID(c.ID))
	return nil
}

// ListContainers returns every container sorted by name.
func (m *Manager) ListContainers() []api.Container {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []api.Container{}
	for _, c := range m.sortedContainers() {
		out = append(out, m.containerView(c))
	}
	return out
}

// InspectContainer returns one container.
func (m *Manager) InspectContainer(ref string) (api.Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.findContainer(ref)
	if err != nil {
		return api.Container{}, err
	}
	return m.containerView(c), nil
}

func (m *Manager) containerView(c *ContainerRecord) api.Container {
	v := api.Container{
		ID:      c.ID,
		Name:    c.Name,
		Created: c.Created,
		Labels:  cloneLabels(c.Labels),
		NetworkSettings: api.NetworkSettings{
			SandboxID:  c.SandboxID,
			SandboxKey: m.sandboxes.Path(c.Sandbox),
			Networks:   map[string]api.ContainerEndpoint{},
			Ports:      portsView(c),
		},
		HostConfig: api.HostConfig{PortBindings: clonePortMap(c.PortBindings)},
	}
	for _, ep := range m.containerEndpoints(c.ID) {
		n := m.networks[ep.NetworkID]
		e := api.ContainerEndpoint{
			NetworkID:  n.ID,
			EndpointID: ep.ID,
			Interface:  ep.IfName,
			HostIfName: ep.HostIfName,
			MacAddress: ep.MAC,
			Aliases:    slices.Clone(ep.Aliases),
		}
		if ep.Addr.IsValid() {
			e.IPAddress = ep.Addr.Addr().String()
			e.IPPrefixLen = ep.Addr.Bits()
		}
		if n.Gateway.IsValid() {
			e.Gateway = n.Gateway.String()
		}
		v.NetworkSettings.Networks[n.Name] = e
	}
	v.DNS = m.containerDNS(c.ID)
	return v
}
