//go:build linux

package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/daemon/portalloc"
	"github.com/netd-dev/netd/dataplane"
)

// Driver type names the manager knows of: the default driver, and the
// two whose networks are Docker's network modes (host, none) rather than
// networks a container can mix with others.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// Names of the built-in networks.
const (
	NetworkBridge = "bridge"
	NetworkHost   = "host"
	NetworkNone   = "none"
)

// Sandboxes creates and removes the named network namespaces of containers.
// The daemon uses the dataplane package; tests use a fake.
type Sandboxes interface {
	// Create makes a new empty netns and returns its path.
	Create(name string) (string, error)
	// CreateHost makes name a bind mount of the daemon's own netns.
	CreateHost(name string) (string, error)
	// Delete removes the netns; a missing one is not an error.
	Delete(name string) error
	// Path is where the netns of name is (or would be) mounted.
	Path(name string) string
	// List returns the names of existing namespaces starting with prefix.
	List(prefix string) ([]string, error)
	// Owned reports whether the netns of name carries this daemon's mark
	// (set by Create), so that it may be pruned without a record.
	Owned(name string) (bool, error)
}

// StatusProvider reports the eBPF dataplane's state for GET /v1/dataplane.
type StatusProvider interface {
	Status() (api.DataplaneStatus, error)
}

// ManagerConfig holds what a Manager needs; zero fields get defaults
// where one makes sense.
type ManagerConfig struct {
	Store *Store
	// Drivers in registration order: built-in networks are created in it.
	Drivers []dataplane.Driver
	// DefaultDriver is the driver of networks created without -d (bridge).
	DefaultDriver    string
	Sandboxes        Sandboxes
	NodeName         string
	DefaultDataplane string // reported by GET /v1/version; drivers apply it
	Pools            []AddressPool
	// HostRoutes lists the destinations routed in the daemon's netns;
	// automatic subnets avoid them.
	HostRoutes func() ([]netip.Prefix, error)
	Status     StatusProvider
	// HostPorts holds the host ports of published container ports (nil:
	// one reading the ephemeral range of the daemon's netns).
	HostPorts *portalloc.Allocator
	Logger    *slog.Logger
	Now       func() time.Time
}

// Manager owns the CNM objects: networks, endpoints and containers. One
// mutex serialises every operation, kernel work included, so the store and
// the kernel never see two changes interleaved.
type Manager struct {
	mu sync.Mutex

	store            *Store
	drivers          map[string]dataplane.Driver
	driverOrder      []string
	defaultDriver    string
	sandboxes        Sandboxes
	nodeName         string
	defaultDataplane string
	pools            []AddressPool
	hostRoutes       func() ([]netip.Prefix, error)
	status           StatusProvider
	log              *slog.Logger
	now              func() time.Time

	cluster atomic.Pointer[clusterService] // nil when the node is not in a cluster
	dns     atomic.Pointer[dnsService]     // nil until the embedded DNS runs

	networks     map[string]*NetworkRecord
	endpoints    map[string]*EndpointRecord
	containers   map[string]*ContainerRecord
	sandboxNames map[string]bool

	hostPorts *portalloc.Allocator // host ports of published container ports
}

// NewManager loads the store into memory. It touches no kernel object.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Store == nil || cfg.Sandboxes == nil {
		return nil, errors.New("new manager: store and sandboxes are required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("new manager: empty node name")
	}
	m := &Manager{
		store:            cfg.Store,
		drivers:          map[string]dataplane.Driver{},
		defaultDriver:    cmp.Or(cfg.DefaultDriver, DriverBridge),
		sandboxes:        cfg.Sandboxes,
		nodeName:         cfg.NodeName,
		defaultDataplane: cmp.Or(cfg.DefaultDataplane, api.DataplaneEBPF),
		pools:            cfg.Pools,
		hostRoutes:       cfg.HostRoutes,
		status:           cfg.Status,
		log:              cfg.Logger,
		now:              cfg.Now,
		networks:         map[string]*NetworkRecord{},
		endpoints:        map[string]*EndpointRecord{},
		containers:       map[string]*ContainerRecord{},
		hostPorts:        cfg.HostPorts,
		sandboxNames:     map[string]bool{},
	}
	if m.hostPorts == nil {
		m.hostPorts = portalloc.New("")
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if len(m.pools) == 0 {
		m.pools = DefaultAddressPools()
	}
	if m.hostRoutes == nil {
		m.hostRoutes = func() ([]netip.Prefix, error) { return nil, nil }
	}
	for _, d := range cfg.Drivers {
		if _, dup := m.drivers[d.Type()]; dup {
			return nil, fmt.Errorf("new manager: driver %q registered twice", d.Type())
		}
		m.drivers[d.Type()] = d
		m.driverOrder = append(m.driverOrder, d.Type())
	}
	st, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	for _, n := range st.Networks {
		m.networks[n.ID] = n
		if raw, ok := st.Legacy[n.ID]; ok {
			m.upgradeRecord(n, raw)
		}
	}
	for _, c := range st.Containers {
		m.containers[c.ID] = c
	}
	for _, ep := range st.Endpoints {
		if m.networks[ep.NetworkID] == nil || m.containers[ep.ContainerID] == nil {
			if !ownedByUndecodable(st, ep) { // holdUndecodable reports those
				m.log.Warn("ignoring endpoint of a missing network or container", "endpoint", ep.ID)
			}
			continue
		}
		m.endpoints[ep.ID] = ep
	}
	for _, s := range st.Sandboxes {
		m.sandboxNames[s] = true
	}
	m.holdUndecodable(st)
	return m, nil
}

// NodeName is the node this manager runs on.
func (m *Manager) NodeName() string { return m.nodeName }

// DefaultDataplane is the dataplane new networks get without netd.dataplane.
func (m *Manager) DefaultDataplane() string { return m.defaultDataplane }

// DataplaneStatus asks the status provider; ok is false when there is none.
func (m *Manager) DataplaneStatus() (st api.DataplaneStatus, ok bool, err error) {
	if m.status == nil {
		return api.DataplaneStatus{}, false, nil
	}
	st, err = m.status.Status()
	return st, true, err
}

// upgradeRecord gives a network stored by an older netd, which kept the
// driver's settings as record fields, its DriverState.
func (m *Manager) upgradeRecord(n *NetworkRecord, raw []byte) {
	dec, ok := m.drivers[n.Driver].(dataplane.LegacyStateDecoder)
	if !ok {
		return
	}
	state, err := dec.DecodeLegacyState(raw)
	if err != nil {
		m.log.Warn("cannot upgrade network record", "network", n.Name, "err", err)
		return
	}
	n.DriverState = state
	if err := m.store.Update(func(tx *StoreTx) error { return tx.PutNetwork(n) }); err != nil {
		m.log.Warn("cannot store upgraded network record", "network", n.Name, "err", err)
		return
	}
	m.log.Info("upgraded network record to driver state", "network", n.Name, "driver", n.Driver)
}

func (m *Manager) driver(name string) (dataplane.Driver, error) {
	d, ok := m.drivers[name]
	if !ok {
		return nil, errNotFound("plugin %q not found", name)
	}
	return d, nil
}

// networkConfig rebuilds what a driver needs from a record.
func networkConfig(n *NetworkRecord) *dataplane.NetworkConfig {
	return &dataplane.NetworkConfig{
		ID:          n.ID,
		Name:        n.Name,
		Driver:      n.Driver,
		Index:       n.Index,
		Subnet:      n.Subnet,
		Gateway:     n.Gateway,
		IPRange:     n.IPRange,
		Aux:         maps.Clone(n.Aux),
		Internal:    n.Internal,
		Options:     maps.Clone(n.Options),
		DriverState: maps.Clone(n.DriverState),
	}
}

// endpointConfig rebuilds what a driver needs for one endpoint.
func (m *Manager) endpointConfig(n *NetworkRecord, ep *EndpointRecord, c *ContainerRecord) *dataplane.EndpointConfig {
	cfg := &dataplane.EndpointConfig{
		ID:          ep.ID,
		NetworkID:   ep.NetworkID,
		ContainerID: ep.ContainerID,
		HostIfName:  ep.HostIfName,
		IfName:      ep.IfName,
		Addr:        ep.Addr,
		Gateway:     n.Gateway,
		DefaultGW:   ep.DefaultGW,
		SandboxPath: m.sandboxes.Path(c.Sandbox),
	}
	if ep.MAC != "" {
		// Stored MACs were validated on the way in.
		cfg.MAC, _ = parseMAC(ep.MAC)
	}
	return cfg
}

// findNetwork resolves a reference the way Docker does: full ID, exact
// name, then a unique ID prefix.
func (m *Manager) findNetwork(ref string) (*NetworkRecord, error) {
	if ref == "" {
		return nil, errInvalid("network name or ID must not be empty")
	}
	if n, ok := m.networks[ref]; ok {
		return n, nil
	}
	if n := m.networkByName(ref); n != nil {
		return n, nil
	}
	found := withIDPrefix(m.networks, ref)
	switch len(found) {
	case 0:
		return nil, errNotFound("network %s not found", ref)
	case 1:
		return found[0], nil
	default:
		return nil, errInvalid("network %s is ambiguous (%d matches found based on ID prefix)", ref, len(found))
	}
}

// withIDPrefix lists the objects (keyed by full ID) whose ID starts with ref.
func withIDPrefix[T any](byID map[string]*T, ref string) []*T {
	var found []*T
	for id, o := range byID {
		if strings.HasPrefix(id, ref) {
			found = append(found, o)
		}
	}
	return found
}

func (m *Manager) networkByName(name string) *NetworkRecord {
	for _, n := range m.networks {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// networkEndpoints lists the endpoints attached to network id.
func (m *Manager) networkEndpoints(id string) []*EndpointRecord {
	var eps []*EndpointRecord
	for _, ep := range m.endpoints {
		if ep.NetworkID == id {
			eps = append(eps, ep)
		}
	}
	slices.SortFunc(eps, func(a, b *EndpointRecord) int { return strings.Compare(a.ID, b.ID) })
	return eps
}

// nextIndex is the smallest index no network uses yet, starting at 1.
func (m *Manager) nextIndex() uint32 {
	used := map[uint32]bool{}
	for _, n := range m.networks {
		used[n.Index] = true
	}
	for i := uint32(1); ; i++ {
		if !used[i] {
			return i
		}
	}
}

// usedSubnets lists the subnets of every network but skip.
func (m *Manager) usedSubnets(skip string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range m.networks {
		if n.ID != skip && n.Subnet.IsValid() {
			out = append(out, n.Subnet)
		}
	}
	return out
}

// allocateSubnet picks the next free pool subnet avoiding networks and
// the host's routes.
func (m *Manager) allocateSubnet() (netip.Prefix, error) {
	routes, err := m.hostRoutes()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list host routes: %w", err)
	}
	p, err := NextFreeSubnet(m.pools, m.usedSubnets(""), routes)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// CreateNetwork creates a network: kernel objects first, then the record.
// On any failure nothing is left behind.
func (m *Manager) CreateNetwork(ctx context.Context, req api.NetworkCreateRequest) (api.NetworkCreateResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	if strings.TrimSpace(req.Name) == "" {
		return api.NetworkCreateResponse{}, errInvalid("network name must not be empty")
	}
	if err := checkNetworkName(req.Name); err != nil {
		return api.NetworkCreateResponse{}, err
	}
	if isPredefinedName(req.Name) {
		// Docker's text, trailing space included.
		return api.NetworkCreateResponse{}, errForbidden("operation is not permitted on predefined %s network ", req.Name)
	}
	if m.networkByName(req.Name) != nil {
		return api.NetworkCreateResponse{}, errConflict("network with name %s already exists", req.Name)
	}
	if b, held := m.heldName(bucketNetworks, req.Name); held {
		return api.NetworkCreateResponse{}, errConflict("network name %s is held by the undecodable state record %s: restore the state database first", req.Name, b)
	}
	driverName := cmp.Or(req.Driver, m.defaultDriver)
	d, err := m.driver(driverName)
	if err != nil {
		return api.NetworkCreateResponse{}, err
	}
	if d.Capabilities().Singleton {
		// Docker allows a single instance of these, the built-in one.
		return api.NetworkCreateResponse{}, errForbidden("only one instance of %q network is allowed", driverName)
	}
	if req.IPAM != nil && req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
		return api.NetworkCreateResponse{}, errNotFound("plugin %q not found", req.IPAM.Driver)
	}

	id := stringid.NewID()
	rec := &NetworkRecord{
		ID:         id,
		Name:       req.Name,
		Driver:     driverName,
		Created:    m.now(),
		Options:    maps.Clone(req.Options),
		Labels:     maps.Clone(req.Labels),
		Internal:   req.Internal,
		Attachable: req.Attachable,
		Index:      m.nextIndex(),
	}

	if err := m.assignIPAM(rec, req.IPAM); err != nil {
		return api.NetworkCreateResponse{}, err
	}
	if err := m.validateNetwork(d, rec); err != nil {
		return api.NetworkCreateResponse{}, err
	}
	if m.isGlobal(rec) && !rec.UserSubnet && rec.Subnet.IsValid() {
		if err := m.claimGlobalSubnet(rec); err != nil {
			m.undoValidate(ctx, d, rec)
			return api.NetworkCreateResponse{}, err
		}
	}
	if err := m.createNetwork(ctx, rec); err != nil {
		if m.isGlobal(rec) {
			m.releaseBlocks(rec)
			m.undoValidate(ctx, d, rec)
		}
		return api.NetworkCreateResponse{}, err
	}
	m.log.Info("network created", "name", rec.Name, "id", stringid.ShortID(id), "driver", rec.Driver, "subnet", rec.Subnet)
	return api.NetworkCreateResponse{ID: id}, nil
}

// validateNetwork has the driver check rec's options against its other
// networks and keeps the state it returns in rec.
func (m *Manager) validateNetwork(d dataplane.Driver, rec *NetworkRecord) error {
	var others []*dataplane.NetworkConfig
	for _, o := range m.networks { // no order needed: names a driver checks are unique
		if o.Driver == rec.Driver {
			others = append(others, networkConfig(o))
		}
	}
	state, err := d.ValidateNetwork(networkConfig(rec), others)
	if err != nil {
		return err
	}
	rec.DriverState = state
	return nil
}

// assignIPAM fills the address fields of rec from the request or the pools.
func (m *Manager) assignIPAM(rec *NetworkRecord, ipam *api.IPAM) error {
	if d, err := m.driver(rec.Driver); err != nil || !d.Capabilities().IPAM {
		if ipam != nil && len(ipam.Config) > 0 {
			return errInvalid("%s network does not support IPAM configuration", rec.Driver)
		}
		return nil
	}
	if ipam != nil && len(ipam.Config) > 1 {
		return errInvalid("netd supports a single IPv4 IPAM config per network, got %d", len(ipam.Config))
	}
	var spec PoolSpec
	if ipam != nil && len(ipam.Config) == 1 {
		var err error
		if spec, err = ParsePoolSpec(ipam.Config[0]); err != nil {
			return err
		}
	}
	if spec.Subnet.IsValid() {
		for _, used := range m.usedSubnets(rec.ID) {
			if SubnetsOverlap(spec.Subnet, used) {
				// Forbidden like Docker's ipamapi.ErrPoolOverlap (403).
				return errForbidden("invalid pool request: %w", ErrPoolOverlap)
			}
		}
		rec.Subnet, rec.IPRange, rec.Gateway, rec.Aux = spec.Subnet, spec.IPRange, spec.Gateway, spec.Aux
		rec.UserSubnet = true
		// ParsePoolSpec fills the default gateway; Docker does not show it.
		rec.AutoGateway = ipam.Config[0].Gateway == ""
	} else {
		allocate := m.allocateSubnet
		if m.isGlobal(rec) {
			// Unique in the cluster, not just on this host.
			allocate = m.globalSubnetCandidate
		}
		subnet, err := allocate()
		if err != nil {
			return err
		}
		rec.Subnet = subnet
	}
	if !rec.Gateway.IsValid() {
		rec.Gateway = DefaultGateway(rec.Subnet)
	}
	return nil
}

// isPredefinedName says whether name is one Docker reserves for its
// network modes: the built-in networks and "default".
func isPredefinedName(name string) bool {
	switch name {
	case NetworkBridge, NetworkHost, NetworkNone, "default":
		return true
	}
	return false
}

// createNetwork builds the kernel side and then persists rec.
func (m *Manager) createNetwork(ctx context.Context, rec *NetworkRecord) error {
	d, err := m.driver(rec.Driver)
	if err != nil {
		return err
	}
	cfg := networkConfig(rec)
	intent := &pendingRecord{Network: rec}
	if err := m.putPending(intent); err != nil {
		return fmt.Errorf("record network %s: %w", rec.Name, err)
	}
	if err := d.CreateNetwork(ctx, cfg); err != nil {
		m.undo("delete network", d.DeleteNetwork(ctx, cfg))
		m.dropPending(intent)
		return fmt.Errorf("create network %s: %w", rec.Name, err)
	}
	err = m.store.Update(func(tx *StoreTx) error {
		if err := tx.PutNetwork(rec); err != nil {
			return err
		}
		return tx.DeletePending(intent)
	})
	if err != nil {
		m.undo("delete network", d.DeleteNetwork(ctx, cfg))
		m.dropPending(intent)
		return fmt.Errorf("store network %s: %w", rec.Name, err)
	}
	m.networks[rec.ID] = rec
	return nil
}

// addLayered adds a layered driver's networks and endpoints to its base
// driver's (an overlay network is a bridge network too), in the form the
// base sees them, so that the base's Reconcile and Check know them.
func (m *Manager) addLayered(nets map[string][]*dataplane.NetworkConfig, eps map[string][]*dataplane.EndpointConfig) []error {
	var errs []error
	for _, typ := range slices.Sorted(maps.Keys(m.drivers)) {
		l, ok := m.drivers[typ].(dataplane.Layered)
		if !ok {
			continue
		}
		for _, n := range nets[typ] {
			bn, err := l.BaseNetwork(n)
			if err != nil {
				errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
				continue
			}
			nets[l.Base()] = append(nets[l.Base()], bn)
		}
		eps[l.Base()] = append(eps[l.Base()], eps[typ]...)
	}
	return errs
}

// undo logs a failed rollback step: the original error is what the caller
// returns.
func (m *Manager) undo(what string, err error) {
	if err != nil {
		m.log.Warn("rollback step failed", "step", what, "err", err)
	}
}

// RemoveNetwork deletes a custom network without endpoints.
func (m *Manager) RemoveNetwork(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findNetwork(ref)
	if err != nil {
		return err
	}
	return m.removeNetwork(ctx, n)
}

func (m *Manager) removeNetwork(ctx context.Context, n *NetworkRecord) error {
	if n.Builtin {
		return errForbidden("%s is a pre-defined network and cannot be removed", n.Name)
	}
	if len(m.networkEndpoints(n.ID)) > 0 {
		return errForbidden("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
	}
	if m.isGlobal(n) {
		if err := m.checkGlobalRemove(n); err != nil {
			return err
		}
		if n.Origin != "" && m.cluster.Load() != nil {
			// Only its creator deletes the network's entry: ask it to.
			if err := m.publishRemoval(n); err != nil {
				return fmt.Errorf("remove network %s: %w", n.Name, err)
			}
		}
	}
	d, err := m.driver(n.Driver)
	if err != nil {
		return err
	}
	cfg := networkConfig(n)
	if err := d.DeleteNetwork(ctx, cfg); err != nil {
		return fmt.Errorf("delete network %s: %w", n.Name, err)
	}
	if err := m.store.Update(func(tx *StoreTx) error { return tx.DeleteNetwork(n.ID) }); err != nil {
		m.undo("recreate network", d.CreateNetwork(ctx, cfg))
		return fmt.Errorf("remove network %s from store: %w", n.Name, err)
	}
	delete(m.networks, n.ID)
	if m.isGlobal(n) {
		m.releaseBlocks(n)
	}
	m.log.Info("network removed", "name", n.Name, "id", stringid.ShortID(n.ID))
	return nil
}

// PruneNetworks removes every custom network without endpoints that
// matches the filters (until, label).
func (m *Manager) PruneNetworks(ctx context.Context, f Filters) (api.NetworksPruneReport, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	report := api.NetworksPruneReport{NetworksDeleted: []string{}}
	if err := f.Validate(networkPruneFilters...); err != nil {
		return report, err
	}
	now := m.now()
	for _, n := range m.sortedNetworks() {
		if n.Builtin || len(m.networkEndpoints(n.ID)) > 0 {
			continue
		}
		ok, err := MatchPrune(f, m.networkView(n, false), now)
		if err != nil {
			return report, err
		}
		if !ok {
			continue
		}
		if err := m.removeNetwork(ctx, n); err != nil {
			m.log.Warn("prune: cannot remove network", "name", n.Name, "err", err)
			continue
		}
		report.NetworksDeleted = append(report.NetworksDeleted, n.Name)
	}
	return report, nil
}

func (m *Manager) sortedNetworks() []*NetworkRecord {
	out := slices.Collect(maps.Values(m.networks))
	slices.SortFunc(out, func(a, b *NetworkRecord) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	return out
}

// ListNetworks returns the networks matching f, sorted by name.
func (m *Manager) ListNetworks(f Filters) ([]api.Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.Validate(networkListFilters...); err != nil {
		return nil, err
	}
	out := []api.Network{}
	for _, n := range m.sortedNetworks() {
		view := m.networkView(n, false)
		ok, err := MatchNetwork(f, NetworkFacts{
			Network:  view,
			Builtin:  n.Builtin,
			Dangling: len(view.Containers) == 0,
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, view)
		}
	}
	return out, nil
}

// InspectNetwork returns one network in Docker's shape.
func (m *Manager) InspectNetwork(ref string) (api.Network, error) {
	return m.InspectNetworkVerbose(ref, false)
}

// InspectNetworkVerbose is InspectNetwork; verbose adds, for a
// cluster-wide network, every endpoint of every host (Services).
func (m *Manager) InspectNetworkVerbose(ref string, verbose bool) (api.Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.findNetwork(ref)
	if err != nil {
		return api.Network{}, err
	}
	return m.networkView(n, verbose), nil
}

// networkView renders a record as Docker's network resource.
func (m *Manager) networkView(n *NetworkRecord, verbose bool) api.Network {
	v := api.Network{
		Name:       n.Name,
		ID:         n.ID,
		Created:    n.Created,
		Scope:      m.scopeOf(n),
		Driver:     n.Driver,
		EnableIPv4: true,
		IPAM:       api.IPAM{Driver: "default", Options: map[string]string{}, Config: []api.IPAMConfig{}},
		Internal:   n.Internal,
		Attachable: n.Attachable,
		Containers: map[string]api.EndpointResource{},
		Options:    cloneLabels(n.Options),
		Labels:     cloneLabels(n.Labels),
	}
	if n.Builtin {
		v.IPAM.Options = nil // Docker shows null for the built-in networks
	}
	if n.Subnet.IsValid() {
		c := api.IPAMConfig{Subnet: n.Subnet.String()}
		if n.IPRange.IsValid() {
			c.IPRange = n.IPRange.String()
		}
		if n.Gateway.IsValid() && !n.AutoGateway {
			c.Gateway = n.Gateway.String()
		}
		if len(n.Aux) > 0 {
			c.AuxiliaryAddresses = map[string]string{}
			for k, a := range n.Aux {
				c.AuxiliaryAddresses[k] = a.String()
			}
		}
		v.IPAM.Config = append(v.IPAM.Config, c)
	}
	for _, ep := range m.networkEndpoints(n.ID) {
		c := m.containers[ep.ContainerID]
		r := api.EndpointResource{Name: c.Name, EndpointID: ep.ID, MacAddress: ep.MAC}
		if ep.Addr.IsValid() {
			r.IPv4Address = ep.Addr.String()
		}
		v.Containers[c.ID] = r
	}
	if r, ok := m.drivers[n.Driver].(dataplane.OptionReporter); ok {
		for k, val := range r.ReportedOptions(networkConfig(n)) {
			if v.Options == nil {
				v.Options = map[string]string{}
			}
			v.Options[k] = val
		}
	}
	if m.isGlobal(n) {
		m.globalView(n, &v, verbose)
	}
	return v
}

// scopeOf is the Scope its driver declares for n (local without a driver).
func (m *Manager) scopeOf(n *NetworkRecord) string {
	if d, ok := m.drivers[n.Driver]; ok && d.Capabilities().Scope != "" {
		return d.Capabilities().Scope
	}
	return dataplane.ScopeLocal
}

// EnsureBuiltins creates the built-in network of every driver that has one
// (bridge, host, none) when missing, in registration order, like dockerd
// at its first start.
func (m *Manager) EnsureBuiltins(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, typ := range m.driverOrder {
		d := m.drivers[typ]
		b, ok := d.(dataplane.Builtiner)
		if !ok {
			continue
		}
		spec := b.BuiltinNetwork()
		if m.networkByName(spec.Name) != nil {
			continue
		}
		rec := &NetworkRecord{
			ID:      stringid.NewID(),
			Name:    spec.Name,
			Driver:  typ,
			Created: m.now(),
			Builtin: true,
			Options: maps.Clone(spec.Options),
			Index:   m.nextIndex(),
		}
		if err := m.assignIPAM(rec, nil); err != nil {
			return fmt.Errorf("pick subnet of the built-in %s network: %w", spec.Name, err)
		}
		if err := m.validateNetwork(d, rec); err != nil {
			return fmt.Errorf("built-in %s network: %w", spec.Name, err)
		}
		if err := m.createNetwork(ctx, rec); err != nil {
			return err
		}
		m.log.Info("created built-in network", "name", rec.Name, "driver", typ, "subnet", rec.Subnet)
	}
	return nil
}

// Reconcile brings the kernel in line with the store, at start-up and for
// `netd system prune`: every network and endpoint is (re)created, then
// drivers and the netns directory report the objects this daemon owns that
// have no record (orphans). Only with prune are orphans deleted, and then
// what failed to come up because an orphan held its name is brought up in
// a second pass. It goes on past per-object failures so one broken object
// cannot keep the others down; the joined error lists them.
func (m *Manager) Reconcile(ctx context.Context, prune bool) ([]dataplane.Orphan, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var refused error
	if bad := m.Undecodable(); prune && len(bad) > 0 {
		// The orphans include those records' objects: pruning would delete them.
		refused = errConflict("cannot prune orphans while %d state record(s) do not decode (first %s): restore the state database (%s) first",
			len(bad), bad[0], RestoreCommand(filepath.Dir(m.store.path)))
		prune = false
	}
	orphans, failed, err := m.reconcile(ctx, prune)
	if prune && failed > 0 && len(orphans) > 0 {
		m.log.Info("reconcile: second pass after pruning orphans", "failed", failed)
		_, _, err = m.reconcile(ctx, false)
	}
	return orphans, errors.Join(refused, err, m.restorePorts(ctx))
}

// reconcile is one pass of Reconcile; failed counts the networks and
// endpoints that could not be brought up.
func (m *Manager) reconcile(ctx context.Context, prune bool) (orphans []dataplane.Orphan, failed int, _ error) {
	var errs []error
	if err := m.resolvePending(ctx); err != nil {
		errs = append(errs, err)
	}
	fail := func(err error) {
		errs = append(errs, err)
		failed++
	}

	byDriver := map[string][]*dataplane.NetworkConfig{}
	epsByDriver := map[string][]*dataplane.EndpointConfig{}
	okNets := map[string]*dataplane.NetworkConfig{}
	for _, n := range m.sortedNetworks() {
		d, err := m.driver(n.Driver)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
			continue
		}
		cfg := networkConfig(n)
		byDriver[n.Driver] = append(byDriver[n.Driver], cfg)
		if err := d.CreateNetwork(ctx, cfg); err != nil {
			fail(fmt.Errorf("recreate network %s: %w", n.Name, err))
			continue
		}
		okNets[n.ID] = cfg
	}

	existing, listErr := m.sandboxes.List(m.sandboxPrefix())
	if listErr != nil {
		errs = append(errs, fmt.Errorf("list sandboxes: %w", listErr))
	}
	live := map[string]bool{}
	for _, s := range existing {
		live[s] = true
	}
	wanted := map[string]bool{}
	for _, c := range m.sortedContainers() {
		wanted[c.Sandbox] = true
		if listErr == nil && !live[c.Sandbox] {
			if _, cerr := m.createSandbox(c); cerr != nil {
				fail(fmt.Errorf("recreate sandbox of %s: %w", c.Name, cerr))
				continue
			}
		}
		for _, ep := range m.containerEndpoints(c.ID) {
			n := m.networks[ep.NetworkID]
			epCfg := m.endpointConfig(n, ep, c)
			epsByDriver[n.Driver] = append(epsByDriver[n.Driver], epCfg)
			netCfg, ok := okNets[n.ID]
			if !ok {
				continue
			}
			d := m.drivers[n.Driver]
			if err := d.CreateEndpoint(ctx, netCfg, epCfg); err != nil {
				fail(fmt.Errorf("recreate endpoint %s of %s on %s: %w", stringid.ShortID(ep.ID), c.Name, n.Name, err))
				continue
			}
			if err := d.Join(ctx, netCfg, epCfg); err != nil {
				fail(fmt.Errorf("rejoin %s to %s: %w", c.Name, n.Name, err))
			}
		}
	}

	errs = append(errs, m.addLayered(byDriver, epsByDriver)...)
	for _, typ := range slices.Sorted(maps.Keys(m.drivers)) {
		o, err := m.drivers[typ].Reconcile(ctx, byDriver[typ], epsByDriver[typ], prune)
		orphans = append(orphans, o...)
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s driver: %w", typ, err))
		}
	}

	// A namespace with our prefix that no container wants: removed when we
	// recorded it; otherwise an orphan, removed by prune only when it
	// carries this node's mark (node "a" and node "a-b" share a prefix).
	for _, s := range existing {
		if wanted[s] {
			continue
		}
		if m.sandboxNames[s] {
			m.log.Info("removing stale sandbox", "netns", s)
			if err := m.sandboxes.Delete(s); err != nil {
				errs = append(errs, fmt.Errorf("remove stale sandbox %s: %w", s, err))
				continue
			}
			m.forgetSandbox(s)
			continue
		}
		owned, err := m.sandboxes.Owned(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("inspect sandbox %s: %w", s, err))
			continue
		}
		o := dataplane.Orphan{Kind: "netns", Name: s, Owner: "node " + m.nodeName, Unproven: !owned}
		orphans = append(orphans, o)
		if prune && owned {
			m.log.Info("prune: removing orphaned sandbox", "netns", s)
			if err := m.sandboxes.Delete(s); err != nil {
				errs = append(errs, fmt.Errorf("remove orphaned sandbox %s: %w", s, err))
			}
		}
	}
	// Without a listing, live is empty: forgetting now would leak netns.
	if listErr == nil {
		for s := range m.sandboxNames {
			if !wanted[s] && !live[s] {
				m.forgetSandbox(s)
			}
		}
	}
	return orphans, failed, errors.Join(errs...)
}

func (m *Manager) forgetSandbox(name string) {
	if err := m.store.Update(func(tx *StoreTx) error { return tx.DeleteSandbox(name) }); err != nil {
		m.log.Warn("cannot forget sandbox", "netns", name, "err", err)
		return
	}
	delete(m.sandboxNames, name)
}

// ifIndex is N of ethN, or a large number for anything else.
func ifIndex(name string) int {
	if n, err := strconv.Atoi(strings.TrimPrefix(name, "eth")); err == nil && strings.HasPrefix(name, "eth") {
		return n
	}
	return 1 << 30
}

// cloneLabels copies m, giving an empty map for nil so JSON shows {}.
func cloneLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}
