//go:build linux

package daemon

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/gossip"
)

// Cluster-wide networks (drivers of global scope): created on any host,
// published by their creator in the gossip networks table, adopted by
// every other host (a local record with Origin set, so that restarts and
// reconcile treat it like any other), removed from any host.

// GlobalPool is where cluster-wide networks get their subnets when none is
// given: Docker swarm's default address pool, 10.0.0.0/8 in /24s.
var GlobalPool = AddressPool{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 24}

// adoptGrace is how long after joining a host waits before dropping
// adopted networks that are not in the view: the first pulls may still be
// on their way.
const adoptGrace = 20 * time.Second

func (m *Manager) isGlobal(n *NetworkRecord) bool { return m.scopeOf(n) == dataplane.ScopeGlobal }

// globalSubnetCandidate picks the lowest /24 of GlobalPool that no network
// of the cluster uses or claims and that avoids this host's networks and
// routes. It claims nothing: claimGlobalSubnet does, once the network's
// options passed, so that a refused create holds nothing.
func (m *Manager) globalSubnetCandidate() (netip.Prefix, error) {
	s := m.cluster.Load()
	if s == nil {
		return netip.Prefix{}, errNoCluster
	}
	routes, err := m.hostRoutes()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list host routes: %w", err)
	}
	avoid := append(m.usedSubnets(""), routes...)
	for _, e := range s.c.List(gossip.TableNetworks, true) {
		var r gossip.NetworkRecord
		if gossip.Unmarshal(e.Value, &r) == nil && r.Subnet.IsValid() {
			avoid = append(avoid, r.Subnet)
		}
	}
	p, ok := s.c.FreeBlock(GlobalPool.Base, GlobalPool.Size, func(p netip.Prefix) bool {
		return slices.ContainsFunc(avoid, func(u netip.Prefix) bool { return SubnetsOverlap(p, u) })
	})
	if !ok {
		return netip.Prefix{}, errConflict("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
	}
	return p, nil
}

// claimGlobalSubnet claims rec's automatic subnet in the cluster; another
// host that claimed the same one at the same moment keeps it.
func (m *Manager) claimGlobalSubnet(rec *NetworkRecord) error {
	s := m.cluster.Load()
	if s == nil {
		return errNoCluster
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	won, err := s.c.ClaimBlockExact(ctx, GlobalPool.Base, rec.Subnet, 0)
	if err != nil {
		return fmt.Errorf("claim subnet %s: %w", rec.Subnet, err)
	}
	if !won {
		return errConflict("subnet %s was just taken by a network another host created at the same moment: create the network again", rec.Subnet)
	}
	return nil
}

// clusterInUse adds the addresses and MACs that other hosts' endpoints
// hold on network id.
func (m *Manager) clusterInUse(id string, addrs map[netip.Addr]bool, macs map[string]bool) {
	s := m.cluster.Load()
	if s == nil {
		return
	}
	for _, e := range s.c.List(gossip.TableEndpoints, true) {
		var r gossip.EndpointRecord
		if gossip.Unmarshal(e.Value, &r) != nil || r.NetworkID != id {
			continue
		}
		addrs[r.IPv4] = true
		macs[r.MAC] = true
	}
}

// blockBits is the size of the address blocks hosts claim in a pool: 16
// addresses in a /24, 64 in larger ones, so that many hosts fit.
func blockBits(pool netip.Prefix) int { return min(32, max(pool.Bits()+4, 26)) }

// allocateGlobalAddr picks a free address of n from this host's blocks of
// it, claiming another block when they are full: hosts creating
// containers at the same time never hand out one address twice.
func (m *Manager) allocateGlobalAddr(n *NetworkRecord, spec PoolSpec, inUse map[netip.Addr]bool) (netip.Addr, error) {
	s := m.cluster.Load()
	if s == nil {
		return netip.Addr{}, errNoCluster
	}
	pool := spec.IPRange
	if !pool.IsValid() {
		pool = spec.Subnet
	}
	// A block still settling (the pre-claim of a network just seen) could
	// go to another host that hands out the same addresses.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	held, _ := s.c.WaitClaims(wctx, pool)
	wcancel()
	sort.Slice(held, func(i, j int) bool { return held[i].Addr().Less(held[j].Addr()) })
	for try := 0; try < 4; try++ {
		for _, b := range held {
			sub := spec
			sub.IPRange = b
			if a, err := AllocateAddr(sub, inUse); err == nil {
				return a, nil
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := s.c.ClaimBlock(ctx, pool, blockBits(pool), 0)
		cancel()
		if err != nil {
			return netip.Addr{}, errConflict("%v: %s (%s)", ErrNoAvailableIPs, n.Name, n.ID)
		}
		held = append(held, b)
	}
	return netip.Addr{}, errConflict("%v: %s (%s)", ErrNoAvailableIPs, n.Name, n.ID)
}

// clusterEndpointHosts names the other hosts with live endpoints on id.
func (m *Manager) clusterEndpointHosts(id string) []string {
	s := m.cluster.Load()
	if s == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range s.c.List(gossip.TableEndpoints, false) {
		var r gossip.EndpointRecord
		if e.Owner != m.nodeName && gossip.Unmarshal(e.Value, &r) == nil && r.NetworkID == id {
			seen[e.Owner] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// checkGlobalRemove refuses to remove a cluster-wide network that another
// host has endpoints on, naming the hosts.
func (m *Manager) checkGlobalRemove(n *NetworkRecord) error {
	if hosts := m.clusterEndpointHosts(n.ID); len(hosts) > 0 {
		return errForbidden("error while removing network: network %s id %s has active endpoints on host(s) %s", n.Name, n.ID, strings.Join(hosts, ", "))
	}
	return nil
}

// publishRemoval asks the creator of an adopted network to remove it.
func (m *Manager) publishRemoval(n *NetworkRecord) error {
	s := m.cluster.Load()
	if s == nil {
		return errNoCluster
	}
	b, err := gossip.Marshal(gossip.RemovalRecord{Name: n.Name, At: m.now().UnixNano()})
	if err != nil {
		return err
	}
	return s.c.Put(gossip.TableRemovals, n.ID, b)
}

// Peers are the hosts with endpoints on a cluster-wide network, with
// their VTEP (Docker's network inspect Peers).
func (m *Manager) peers(n *NetworkRecord) ([]peerInfo, []clusterEndpoint) {
	s := m.cluster.Load()
	if s == nil {
		return nil, nil
	}
	byHost := map[string]string{}
	var eps []clusterEndpoint
	for _, e := range s.c.List(gossip.TableEndpoints, true) {
		var r gossip.EndpointRecord
		if gossip.Unmarshal(e.Value, &r) != nil || r.NetworkID != n.ID {
			continue
		}
		if e.State == gossip.StateLive {
			byHost[e.Owner] = r.VTEP.String()
		}
		ce := clusterEndpoint{Name: r.Container, EndpointID: e.Key, Host: e.Owner, VTEP: r.VTEP.String(), MAC: r.MAC, State: string(e.State)}
		if r.IPv4.IsValid() {
			ce.IPv4 = netip.PrefixFrom(r.IPv4, n.Subnet.Bits()).String()
		}
		eps = append(eps, ce)
	}
	var ps []peerInfo
	for _, h := range slices.Sorted(maps.Keys(byHost)) {
		ps = append(ps, peerInfo{Name: h, IP: byHost[h]})
	}
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].Host != eps[j].Host {
			return eps[i].Host < eps[j].Host
		}
		return eps[i].Name < eps[j].Name
	})
	return ps, eps
}

type peerInfo struct{ Name, IP string }

type clusterEndpoint struct {
	Name, EndpointID, Host, VTEP, MAC, IPv4, State string
}

// adoptNetworks makes the adopted networks match the gossip view: adopt
// what others created, drop what is gone or removed. It runs outside the
// manager's lock until it changes something.
func (s *clusterService) adoptNetworks(ctx context.Context) {
	removed := map[string]bool{}
	for _, e := range s.c.List(gossip.TableRemovals, true) {
		removed[e.Key] = true
	}
	want := map[string]gossip.NetworkRecord{}
	origin := map[string]string{}
	for _, e := range s.c.List(gossip.TableNetworks, true) {
		if e.Owner == s.c.Name() || removed[e.Key] {
			continue
		}
		var r gossip.NetworkRecord
		if gossip.Unmarshal(e.Value, &r) != nil || r.ID != e.Key {
			continue
		}
		want[r.ID], origin[r.ID] = r, e.Owner
	}
	for id := range removed {
		// A removal of one of this host's own networks: do it.
		s.m.removeRequested(ctx, id)
	}
	for id, r := range want {
		if err := s.m.adopt(ctx, r, origin[id]); err != nil {
			s.log.Warn("cluster: adopt network", "network", r.Name, "from", origin[id], "err", err)
		}
	}
	s.delMu.Lock()
	deleted := s.deleted
	s.deleted = nil
	s.delMu.Unlock()
	settled := time.Since(s.joined) >= adoptGrace
	for _, id := range s.m.adoptedIDs() {
		// Removed or deleted: at once. Just missing: only once the first
		// pulls after joining have had time to arrive.
		if _, ok := want[id]; !ok && (removed[id] || deleted[id] || settled) {
			s.m.dropAdopted(ctx, id)
		}
	}
}

func (m *Manager) adoptedIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, n := range m.networks {
		if n.Origin != "" {
			out = append(out, id)
		}
	}
	return out
}

// adopt creates the local record and kernel objects of another host's
// network.
func (m *Manager) adopt(ctx context.Context, r gossip.NetworkRecord, origin string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.networks[r.ID]; ok {
		return nil
	}
	if other := m.networkByName(r.Name); other != nil {
		return fmt.Errorf("a network named %s (%s) already exists on this host: the cluster-wide one (%s) is not shown here until it is renamed or removed", r.Name, stringid.ShortID(other.ID), stringid.ShortID(r.ID))
	}
	d, err := m.driver(r.Driver)
	if err != nil {
		return err
	}
	if d.Capabilities().Scope != dataplane.ScopeGlobal {
		return fmt.Errorf("driver %s of network %s is not cluster-wide on this host", r.Driver, r.Name)
	}
	rec := &NetworkRecord{
		ID: r.ID, Name: r.Name, Driver: r.Driver, Created: time.Unix(0, r.Created),
		Subnet: r.Subnet, Gateway: r.Gateway, IPRange: r.IPRange, UserSubnet: true,
		Options: maps.Clone(r.Options), Labels: maps.Clone(r.Labels),
		Internal: r.Internal, Attachable: r.Attachable, Index: m.nextIndex(),
		DriverState: maps.Clone(r.DriverState), Origin: origin,
	}
	if err := m.validateNetwork(d, rec); err != nil {
		return err
	}
	if err := m.createNetwork(ctx, rec); err != nil {
		return err
	}
	m.log.Info("adopted cluster-wide network", "name", rec.Name, "id", stringid.ShortID(rec.ID), "origin", origin)
	return nil
}

// dropAdopted removes an adopted network that its creator removed. One
// with endpoints here stays until they are gone.
func (m *Manager) dropAdopted(ctx context.Context, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.networks[id]
	if n == nil || n.Origin == "" {
		return
	}
	if eps := m.networkEndpoints(id); len(eps) > 0 {
		m.log.Warn("cluster-wide network was removed by its creator but has endpoints here; kept until they are disconnected", "network", n.Name, "endpoints", len(eps))
		return
	}
	if err := m.removeNetwork(ctx, n); err != nil {
		m.log.Warn("drop adopted network", "network", n.Name, "err", err)
		return
	}
	m.log.Info("removed cluster-wide network (removed in the cluster)", "name", n.Name, "origin", n.Origin)
}

// removeRequested removes this host's own network when another host asked.
func (m *Manager) removeRequested(ctx context.Context, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.networks[id]
	if n == nil || n.Origin != "" {
		return
	}
	if len(m.networkEndpoints(id)) > 0 {
		m.log.Warn("another host asked to remove this network, but it has endpoints here: kept", "network", n.Name)
		return
	}
	if err := m.removeNetwork(ctx, n); err != nil {
		m.log.Warn("remove network asked for by another host", "network", n.Name, "err", err)
	}
}

// expireRemovals deletes this host's removal entries once the network is
// gone from the view and tombstones of it cannot come back.
func (s *clusterService) expireRemovals() {
	live := map[string]bool{}
	for _, e := range s.c.List(gossip.TableNetworks, true) {
		live[e.Key] = true
	}
	for id, v := range s.c.Own(gossip.TableRemovals) {
		var r gossip.RemovalRecord
		if gossip.Unmarshal(v, &r) != nil {
			continue
		}
		if !live[id] && time.Since(time.Unix(0, r.At)) > 40*time.Minute {
			_ = s.c.Delete(gossip.TableRemovals, id)
		}
	}
}

// globalView adds Peers and, verbose, Services to a cluster-wide
// network's inspect.
func (m *Manager) globalView(n *NetworkRecord, v *api.Network, verbose bool) {
	peers, eps := m.peers(n)
	v.Peers = []api.PeerInfo{}
	for _, p := range peers {
		v.Peers = append(v.Peers, api.PeerInfo{Name: p.Name, IP: p.IP})
	}
	if !verbose {
		return
	}
	svc := api.ServiceInfo{Ports: []string{}, Tasks: []api.Task{}}
	for _, e := range eps {
		svc.Tasks = append(svc.Tasks, api.Task{Name: e.Name, EndpointID: e.EndpointID, EndpointIP: e.IPv4,
			Info: map[string]string{"Host IP": e.VTEP, "Host": e.Host, "MAC": e.MAC, "State": e.State}})
	}
	v.Services = map[string]api.ServiceInfo{"": svc}
}

// preclaim claims, in the background, a first address block of every
// cluster-wide network on this host that has none, so that the first
// container does not wait for the claim's settle time.
func (s *clusterService) preclaim() {
	for _, pool := range s.m.globalPools() {
		if held, _ := s.c.Claims(pool); len(held) > 0 {
			continue
		}
		s.delMu.Lock()
		if s.claiming == nil {
			s.claiming = map[string]bool{}
		}
		busy := s.claiming[pool.String()]
		s.claiming[pool.String()] = true
		s.delMu.Unlock()
		if busy {
			continue
		}
		go func() {
			defer func() {
				s.delMu.Lock()
				delete(s.claiming, pool.String())
				s.delMu.Unlock()
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := s.c.ClaimBlock(ctx, pool, blockBits(pool), 0); err != nil {
				s.log.Debug("cluster: pre-claim an address block", "pool", pool, "err", err)
			}
		}()
	}
}

// globalPools are the address pools (ip-range or subnet) of the
// cluster-wide networks on this host.
func (m *Manager) globalPools() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []netip.Prefix
	for _, n := range m.networks {
		if !m.isGlobal(n) || !n.Subnet.IsValid() {
			continue
		}
		if n.IPRange.IsValid() {
			out = append(out, n.IPRange)
		} else {
			out = append(out, n.Subnet)
		}
	}
	return out
}

// releaseBlocks gives back this host's address blocks of a removed
// cluster-wide network.
func (m *Manager) releaseBlocks(n *NetworkRecord) {
	s := m.cluster.Load()
	if s == nil || !n.Subnet.IsValid() {
		return
	}
	pool := n.Subnet
	if n.IPRange.IsValid() {
		pool = n.IPRange
	}
	held, lost := s.c.Claims(pool)
	for _, b := range append(held, lost...) {
		_ = s.c.ReleaseBlock(pool, b)
	}
	if n.Origin == "" {
		_ = s.c.ReleaseBlock(GlobalPool.Base, n.Subnet) // the subnet's own claim
	}
}

// undoValidate gives back what a global driver's ValidateNetwork claimed
// (an overlay's VNI) for a network that is not created after all.
func (m *Manager) undoValidate(ctx context.Context, d dataplane.Driver, rec *NetworkRecord) {
	if r, ok := d.(dataplane.Releaser); ok {
		r.Release(networkConfig(rec))
	}
}
