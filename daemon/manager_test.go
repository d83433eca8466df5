//go:build linux

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/bridge"
)

// fakeDriver keeps the "kernel" state a real driver would build and
// records every call, so tests can check both what was done and what is left.
type fakeDriver struct {
	typ string
	dp  string // default dataplane, for the bridge's own option parsing

	mu     sync.Mutex
	calls  []string
	nets   map[string]*fakeNet
	eps    map[string]*dataplane.EndpointConfig // created
	joined map[string]*dataplane.EndpointConfig
	fail   map[string]error // method -> error to return
	recNet []*dataplane.NetworkConfig
	recEP  []*dataplane.EndpointConfig
	// published are the port mappings by endpoint ID (PublishPorts).
	published map[string][]dataplane.PortMapping
}

func newFakeDriver(typ string) *fakeDriver {
	return &fakeDriver{
		typ:    typ,
		nets:   map[string]*fakeNet{},
		eps:    map[string]*dataplane.EndpointConfig{},
		joined: map[string]*dataplane.EndpointConfig{},
		fail:   map[string]error{},

		published: map[string][]dataplane.PortMapping{},
	}
}

func (d *fakeDriver) record(method, what string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, method+" "+what)
	return d.fail[method]
}

// fakeNet is a network as the fake holds it: the config with the bridge
// driver's State decoded (zero for other drivers), as the real driver sees it.
type fakeNet struct {
	*dataplane.NetworkConfig
	bridge.State
}

func (d *fakeDriver) Type() string { return d.typ }

// Capabilities are those of the real driver of that type.
func (d *fakeDriver) Capabilities() dataplane.Capabilities {
	if d.typ == "bridge" {
		return dataplane.Capabilities{Scope: dataplane.ScopeLocal, IPAM: true}
	}
	return dataplane.Capabilities{Scope: dataplane.ScopeLocal, Singleton: true}
}

// ValidateNetwork parses options with the real bridge driver's code.
func (d *fakeDriver) ValidateNetwork(n *dataplane.NetworkConfig, others []*dataplane.NetworkConfig) (map[string]string, error) {
	if d.typ != "bridge" {
		return nil, nil
	}
	st, err := bridge.Validate(d.dp, n, others)
	if err != nil {
		return nil, err
	}
	return st.Map(), nil
}

func (d *fakeDriver) BuiltinNetwork() dataplane.BuiltinNetwork {
	switch d.typ {
	case "bridge":
		return bridge.Builtin(d.dp)
	case "null":
		return dataplane.BuiltinNetwork{Name: "none"}
	}
	return dataplane.BuiltinNetwork{Name: d.typ}
}

func (d *fakeDriver) CreateNetwork(_ context.Context, n *dataplane.NetworkConfig) error {
	if err := d.record("CreateNetwork", n.Name); err != nil {
		return err
	}
	fn := &fakeNet{NetworkConfig: n}
	if d.typ == "bridge" {
		st, err := bridge.StateOf(n)
		if err != nil {
			return err
		}
		fn.State = st
	}
	d.nets[n.ID] = fn
	return nil
}

func (d *fakeDriver) DeleteNetwork(_ context.Context, n *dataplane.NetworkConfig) error {
	if err := d.record("DeleteNetwork", n.Name); err != nil {
		return err
	}
	delete(d.nets, n.ID)
	return nil
}

func (d *fakeDriver) CreateEndpoint(_ context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if err := d.record("CreateEndpoint", n.Name+" "+ep.IfName); err != nil {
		return err
	}
	if d.nets[n.ID] == nil {
		return fmt.Errorf("network %s does not exist", n.Name)
	}
	d.eps[ep.ID] = ep
	return nil
}

func (d *fakeDriver) Join(_ context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if err := d.record("Join", n.Name+" "+ep.IfName); err != nil {
		return err
	}
	d.joined[ep.ID] = ep
	return nil
}

func (d *fakeDriver) Leave(_ context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if err := d.record("Leave", n.Name+" "+ep.IfName); err != nil {
		return err
	}
	delete(d.joined, ep.ID)
	return nil
}

func (d *fakeDriver) DeleteEndpoint(_ context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error {
	if err := d.record("DeleteEndpoint", n.Name+" "+ep.IfName); err != nil {
		return err
	}
	delete(d.eps, ep.ID)
	delete(d.published, ep.ID) // as the bridge driver: ports go with the endpoint
	return nil
}

func (d *fakeDriver) PublishPorts(_ context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	if err := d.record("PublishPorts", fmt.Sprintf("%s %s %v", n.Name, ep.IfName, ports)); err != nil {
		return err
	}
	for _, p := range ports {
		if !slices.Contains(d.published[ep.ID], p) {
			d.published[ep.ID] = append(d.published[ep.ID], p)
		}
	}
	return nil
}

func (d *fakeDriver) UnpublishPorts(_ context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig, ports []dataplane.PortMapping) error {
	if err := d.record("UnpublishPorts", fmt.Sprintf("%s %s %v", n.Name, ep.IfName, ports)); err != nil {
		return err
	}
	d.published[ep.ID] = slices.DeleteFunc(d.published[ep.ID], func(p dataplane.PortMapping) bool { return slices.Contains(ports, p) })
	if len(d.published[ep.ID]) == 0 {
		delete(d.published, ep.ID)
	}
	return nil
}

// DefaultHostIP is the real bridge driver's: host_binding_ipv4 or 0.0.0.0.
func (d *fakeDriver) DefaultHostIP(n *dataplane.NetworkConfig) (netip.Addr, error) {
	st, err := bridge.StateOf(n)
	return st.HostIPv4, err
}

func (d *fakeDriver) Reconcile(_ context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig, prune bool) ([]dataplane.Orphan, error) {
	d.recNet, d.recEP = nets, eps
	return nil, d.record("Reconcile", fmt.Sprintf("%d %d", len(nets), len(eps)))
}

// fakeSandboxes is /run/netns as a set of names.
type fakeSandboxes struct {
	ns         map[string]string // name -> "netns" | "host"
	marked     map[string]bool   // carries this daemon's mark (Owned)
	fail       error             // of Create
	deleteFail error
	listFail   error
}

func (s *fakeSandboxes) Create(name string) (string, error) {
	if s.fail != nil {
		return "", s.fail
	}
	if s.ns[name] != "" {
		return "", fmt.Errorf("netns %s exists", name)
	}
	s.ns[name] = "netns"
	return s.Path(name), nil
}

func (s *fakeSandboxes) CreateHost(name string) (string, error) {
	if s.ns[name] != "" {
		return "", fmt.Errorf("netns %s exists", name)
	}
	s.ns[name] = "host"
	return s.Path(name), nil
}

func (s *fakeSandboxes) Delete(name string) error {
	if s.deleteFail != nil {
		return s.deleteFail
	}
	delete(s.ns, name)
	return nil
}

func (s *fakeSandboxes) Path(name string) string { return "/run/netns/" + name }

func (s *fakeSandboxes) Owned(name string) (bool, error) { return s.marked[name], nil }

func (s *fakeSandboxes) List(prefix string) ([]string, error) {
	if s.listFail != nil {
		return nil, s.listFail
	}
	var out []string
	for n := range s.ns {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

type testEnv struct {
	m      *Manager
	store  *Store
	path   string
	bridge *fakeDriver
	host   *fakeDriver
	null   *fakeDriver
	sb     *fakeSandboxes
	routes []netip.Prefix
}

// newTestEnv starts a manager on a fresh store with fake kernel objects and
// the built-in networks created.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{path: filepath.Join(t.TempDir(), "netd.db"), sb: &fakeSandboxes{ns: map[string]string{}}}
	e.open(t)
	if err := e.m.EnsureBuiltins(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// open (re)starts the manager on e's store file with fresh fake drivers.
func (e *testEnv) open(t *testing.T) {
	t.Helper()
	s, err := OpenStore(e.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.store = s
	e.bridge, e.host, e.null = newFakeDriver("bridge"), newFakeDriver("host"), newFakeDriver("null")
	e.bridge.dp = api.DataplaneKernel
	e.m, err = NewManager(ManagerConfig{
		Store:            s,
		Drivers:          []dataplane.Driver{e.bridge, e.host, e.null},
		Sandboxes:        e.sb,
		NodeName:         "node1",
		DefaultDataplane: api.DataplaneKernel,
		HostRoutes:       func() ([]netip.Prefix, error) { return e.routes, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stored reads the store from disk.
func (e *testEnv) stored(t *testing.T) *State {
	t.Helper()
	st, err := e.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *testEnv) createNet(t *testing.T, req api.NetworkCreateRequest) string {
	t.Helper()
	resp, err := e.m.CreateNetwork(context.Background(), req)
	if err != nil {
		t.Fatalf("create network %s: %v", req.Name, err)
	}
	return resp.ID
}

func (e *testEnv) createCtr(t *testing.T, name string, nets ...string) string {
	t.Helper()
	req := api.ContainerCreateRequest{Name: name}
	for _, n := range nets {
		req.Networks = append(req.Networks, api.ContainerNetworkRequest{Network: n})
	}
	resp, err := e.m.CreateContainer(context.Background(), req)
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	return resp.ID
}

func wantErr(t *testing.T, err error, is func(error) bool, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", text)
	}
	if !is(err) {
		t.Errorf("error %q (%T) has the wrong kind", err, err)
	}
	if err.Error() != text {
		t.Errorf("error text:\n got %q\nwant %q", err.Error(), text)
	}
}

func subnetOf(t *testing.T, m *Manager, ref string) string {
	t.Helper()
	n, err := m.InspectNetwork(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.IPAM.Config) != 1 {
		return ""
	}
	return n.IPAM.Config[0].Subnet
}

func TestBuiltins(t *testing.T) {
	e := newTestEnv(t)
	nets, err := e.m.ListNetworks(Filters{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nets {
		names = append(names, n.Name+"/"+n.Driver)
	}
	if got, want := strings.Join(names, " "), "bridge/bridge host/host none/null"; got != want {
		t.Fatalf("built-ins = %q, want %q", got, want)
	}
	br := nets[0]
	if br.IPAM.Config[0].Subnet != "172.17.0.0/16" || br.IPAM.Config[0].Gateway != "172.17.0.1" {
		t.Errorf("bridge IPAM = %+v", br.IPAM.Config)
	}
	if br.Options[api.OptBridgeName] != "netd0" || br.Options["com.docker.network.bridge.default_bridge"] != "true" {
		t.Errorf("bridge options = %v", br.Options)
	}
	if cfg := e.bridge.nets[br.ID]; cfg == nil || cfg.BridgeName != "netd0" || !cfg.ICC || !cfg.Masquerade {
		t.Errorf("bridge driver got %+v", cfg)
	}
	if len(e.host.nets) != 1 || len(e.null.nets) != 1 {
		t.Errorf("host/null drivers got %d/%d networks", len(e.host.nets), len(e.null.nets))
	}
	// A second start creates nothing more.
	if err := e.m.EnsureBuiltins(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.stored(t); len(st.Networks) != 3 {
		t.Fatalf("%d networks stored after second EnsureBuiltins", len(st.Networks))
	}
	for _, name := range []string{"bridge", "host", "none"} {
		err := e.m.RemoveNetwork(context.Background(), name)
		wantErr(t, err, IsForbidden, name+" is a pre-defined network and cannot be removed")
	}
	wantErr(t, e.m.RemoveNetwork(context.Background(), "nope"), IsNotFound, "network nope not found")
}

func TestCreateNetwork(t *testing.T) {
	e := newTestEnv(t)
	// A host route over the next pool subnet pushes allocation past it.
	e.routes = []netip.Prefix{netip.MustParsePrefix("172.18.5.0/24"), netip.MustParsePrefix("0.0.0.0/0")}
	id := e.createNet(t, api.NetworkCreateRequest{Name: "front", Labels: map[string]string{"a": "b"}})
	if got := subnetOf(t, e.m, "front"); got != "172.19.0.0/16" {
		t.Errorf("auto subnet = %s, want 172.19.0.0/16", got)
	}
	cfg := e.bridge.nets[id]
	if cfg == nil {
		t.Fatal("driver did not get the network")
	}
	if cfg.BridgeName != "br-"+id[:12] || cfg.Dataplane != api.DataplaneKernel || cfg.Gateway.String() != "172.19.0.1" || !cfg.ICC {
		t.Errorf("network config = %+v", cfg)
	}
	if cfg.Index == 0 {
		t.Error("index 0")
	}

	id2 := e.createNet(t, api.NetworkCreateRequest{
		Name: "back", Internal: true,
		IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.20.0.0/24", IPRange: "10.20.0.128/25", Gateway: "10.20.0.254"}}},
		Options: map[string]string{
			api.OptBridgeName: "brback", api.OptEnableICC: "false", api.OptMTU: "1400", api.OptDataplane: "ebpf",
		},
	})
	cfg2 := e.bridge.nets[id2]
	if cfg2.BridgeName != "brback" || cfg2.ICC || cfg2.MTU != 1400 || cfg2.Dataplane != "ebpf" || !cfg2.Internal ||
		cfg2.Gateway.String() != "10.20.0.254" || cfg2.Index == cfg.Index {
		t.Errorf("explicit network config = %+v", cfg2)
	}
	n, _ := e.m.InspectNetwork(id2[:5])
	if n.Name != "back" || n.IPAM.Config[0].IPRange != "10.20.0.128/25" || n.Options[api.OptMTU] != "1400" {
		t.Errorf("inspect by prefix = %+v", n)
	}

	before := e.stored(t)
	calls := len(e.bridge.calls)

	_, err := e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front"})
	wantErr(t, err, IsConflict, "network with name front already exists")

	_, err = e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "x",
		IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.20.0.0/16"}}}})
	wantErr(t, err, IsForbidden, "invalid pool request: Pool overlaps with other one on this address space")
	if !errors.Is(err, ErrPoolOverlap) {
		t.Errorf("overlap error does not wrap ErrPoolOverlap")
	}

	_, err = e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "x", Driver: "overlay"})
	wantErr(t, err, IsNotFound, `plugin "overlay" not found`)

	_, err = e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "x", Driver: "host"})
	wantErr(t, err, IsForbidden, `only one instance of "host" network is allowed`)

	_, err = e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "x",
		IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.30.0.0/16", Gateway: "10.31.0.1"}}}})
	if !IsInvalidParameter(err) {
		t.Errorf("gateway outside subnet: %v", err)
	}

	_, err = e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "x",
		Options: map[string]string{api.OptBridgeName: "brback"}})
	if !IsForbidden(err) || !strings.Contains(err.Error(), "networks have same bridge name") {
		t.Errorf("same bridge name: %v", err)
	}

	if got := e.stored(t); len(got.Networks) != len(before.Networks) {
		t.Errorf("failed creates changed the store: %d networks, want %d", len(got.Networks), len(before.Networks))
	}
	if len(e.bridge.calls) != calls {
		t.Errorf("failed validations called the driver: %v", e.bridge.calls[calls:])
	}
}

func TestCreateNetworkDriverFailureChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	before := e.stored(t)
	e.bridge.fail["CreateNetwork"] = errors.New("no bridge for you")
	_, err := e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front"})
	if err == nil || !strings.Contains(err.Error(), "no bridge for you") {
		t.Fatalf("err = %v", err)
	}
	if got := e.stored(t); len(got.Networks) != len(before.Networks) {
		t.Errorf("store has %d networks, want %d", len(got.Networks), len(before.Networks))
	}
	if len(e.bridge.nets) != 1 {
		t.Errorf("driver holds %d networks, want only the default bridge", len(e.bridge.nets))
	}
	if last := e.bridge.calls[len(e.bridge.calls)-1]; last != "DeleteNetwork front" {
		t.Errorf("no cleanup after the failure; last call %q", last)
	}
	if _, err := e.m.InspectNetwork("front"); !IsNotFound(err) {
		t.Errorf("failed network is visible: %v", err)
	}

	// A store that cannot be written makes the driver undo its work.
	delete(e.bridge.fail, "CreateNetwork")
	e.store.Close()
	if _, err := e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "front"}); err == nil {
		t.Fatal("create with a closed store succeeded")
	}
	if len(e.bridge.nets) != 1 {
		t.Errorf("driver holds %d networks after a store failure", len(e.bridge.nets))
	}
}

func TestRemoveNetworkWithEndpoints(t *testing.T) {
	e := newTestEnv(t)
	id := e.createNet(t, api.NetworkCreateRequest{Name: "front"})
	e.createCtr(t, "web", "front")
	err := e.m.RemoveNetwork(context.Background(), "front")
	wantErr(t, err, IsForbidden, "error while removing network: network front id "+id+" has active endpoints")
	if e.bridge.nets[id] == nil {
		t.Fatal("refused removal deleted the bridge")
	}
	if err := e.m.RemoveContainer(context.Background(), "web", false); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RemoveNetwork(context.Background(), id[:6]); err != nil {
		t.Fatal(err)
	}
	if e.bridge.nets[id] != nil {
		t.Error("driver still has the network")
	}
	if st := e.stored(t); len(st.Networks) != 3 || len(st.Endpoints) != 0 || len(st.Containers) != 0 {
		t.Errorf("store after removals: %d networks %d endpoints %d containers", len(st.Networks), len(st.Endpoints), len(st.Containers))
	}
	if _, err := e.m.InspectNetwork(id); !IsNotFound(err) {
		t.Errorf("removed network still found: %v", err)
	}
}

func TestPruneNetworks(t *testing.T) {
	e := newTestEnv(t)
	e.createNet(t, api.NetworkCreateRequest{Name: "a", Labels: map[string]string{"env": "test"}})
	e.createNet(t, api.NetworkCreateRequest{Name: "b"})
	e.createNet(t, api.NetworkCreateRequest{Name: "used", Labels: map[string]string{"env": "test"}})
	e.createCtr(t, "web", "used")

	rep, err := e.m.PruneNetworks(context.Background(), Filters{"label": {"env=test"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.NetworksDeleted, ","); got != "a" {
		t.Errorf("prune label=env=test deleted %q, want a", got)
	}
	rep, err = e.m.PruneNetworks(context.Background(), Filters{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.NetworksDeleted, ","); got != "b" {
		t.Errorf("prune deleted %q, want b", got)
	}
	if _, err := e.m.PruneNetworks(context.Background(), Filters{"driver": {"bridge"}}); !IsInvalidParameter(err) {
		t.Errorf("bad prune filter: %v", err)
	}
	nets, _ := e.m.ListNetworks(Filters{})
	if len(nets) != 4 {
		t.Errorf("%d networks left, want 4 (built-ins and used)", len(nets))
	}
	dangling, err := e.m.ListNetworks(Filters{"dangling": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(dangling) != 0 {
		t.Errorf("dangling networks: %v", dangling)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	id := e.createCtr(t, "web")
	c, err := e.m.InspectContainer("web")
	if err != nil {
		t.Fatal(err)
	}
	br := c.NetworkSettings.Networks["bridge"]
	if c.ID != id || c.NetworkSettings.SandboxKey != "/run/netns/node1-web" || br.Interface != "eth0" ||
		br.IPAddress != "172.17.0.2" || br.IPPrefixLen != 16 || br.Gateway != "172.17.0.1" ||
		br.MacAddress != "02:42:ac:11:00:02" || br.HostIfName != "nd"+br.EndpointID[:12] {
		t.Errorf("container = %+v", c)
	}
	if e.sb.ns["node1-web"] != "netns" {
		t.Errorf("sandbox not created: %v", e.sb.ns)
	}
	ep := e.bridge.joined[br.EndpointID]
	if ep == nil || !ep.DefaultGW || ep.SandboxPath != "/run/netns/node1-web" || ep.MAC.String() != br.MacAddress {
		t.Errorf("joined endpoint = %+v", ep)
	}

	_, err = e.m.CreateContainer(ctx, api.ContainerCreateRequest{Name: "web"})
	wantErr(t, err, IsConflict, `Conflict. The container name "/web" is already in use by container "`+id+
		`". You have to remove (or rename) that container to be able to reuse that name.`)
	_, err = e.m.CreateContainer(ctx, api.ContainerCreateRequest{Name: "bad name"})
	if !IsInvalidParameter(err) {
		t.Errorf("bad name: %v", err)
	}

	// Second container gets the next address; a fixed IP and MAC are honoured.
	e.createNet(t, api.NetworkCreateRequest{Name: "back", IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.9.0.0/24"}}}})
	_, err = e.m.CreateContainer(ctx, api.ContainerCreateRequest{Name: "db", Networks: []api.ContainerNetworkRequest{
		{Network: "back", Settings: api.EndpointSettings{IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: "10.9.0.50"}, MacAddress: "02:00:00:00:00:99"}},
		{Network: "bridge"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	db, _ := e.m.InspectContainer("db")
	if b := db.NetworkSettings.Networks["back"]; b.IPAddress != "10.9.0.50" || b.MacAddress != "02:00:00:00:00:99" || b.Interface != "eth0" {
		t.Errorf("db on back = %+v", b)
	}
	if b := db.NetworkSettings.Networks["bridge"]; b.IPAddress != "172.17.0.3" || b.Interface != "eth1" {
		t.Errorf("db on bridge = %+v", b)
	}
	if e.bridge.joined[db.NetworkSettings.Networks["bridge"].EndpointID].DefaultGW {
		t.Error("second network got the default route")
	}

	n, _ := e.m.InspectNetwork("bridge")
	if r := n.Containers[id]; r.Name != "web" || r.IPv4Address != "172.17.0.2/16" {
		t.Errorf("bridge containers = %+v", n.Containers)
	}

	list := e.m.ListContainers()
	if len(list) != 2 || list[0].Name != "db" || list[1].Name != "web" {
		t.Errorf("list = %+v", list)
	}

	if err := e.m.RemoveContainer(ctx, id[:8], false); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sb.ns["node1-web"]; ok {
		t.Error("sandbox left after rm")
	}
	if len(e.bridge.eps) != 2 || len(e.bridge.joined) != 2 {
		t.Errorf("driver endpoints after rm web: %d created %d joined, want 2", len(e.bridge.eps), len(e.bridge.joined))
	}
	wantErr(t, e.m.RemoveContainer(ctx, "web", false), IsNotFound, "No such container: web")
	st := e.stored(t)
	if len(st.Containers) != 1 || len(st.Endpoints) != 2 || !slices.Equal(st.Sandboxes, []string{"node1-db"}) {
		t.Errorf("store after rm: %+v", st)
	}
}

func TestContainerHostAndNone(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createCtr(t, "hn", "host")
	if e.sb.ns["node1-hn"] != "host" {
		t.Errorf("host container sandbox = %q", e.sb.ns["node1-hn"])
	}
	e.createCtr(t, "lo", "none")
	c, _ := e.m.InspectContainer("lo")
	if ep, ok := c.NetworkSettings.Networks["none"]; !ok || ep.IPAddress != "" || ep.Interface != "" {
		t.Errorf("none container = %+v", c.NetworkSettings)
	}
	_, err := e.m.CreateContainer(ctx, api.ContainerCreateRequest{Name: "mix", Networks: []api.ContainerNetworkRequest{{Network: "host"}, {Network: "bridge"}}})
	wantErr(t, err, IsInvalidParameter, errTextMixedModes)

	err = e.m.Connect(ctx, "bridge", api.NetworkConnectRequest{Container: "hn"})
	wantErr(t, err, IsInvalidParameter, errTextHostNetwork)
	err = e.m.Connect(ctx, "bridge", api.NetworkConnectRequest{Container: "lo"})
	wantErr(t, err, IsInvalidParameter, errTextNoneNetwork)
	err = e.m.Disconnect(ctx, "host", api.NetworkDisconnectRequest{Container: "hn"})
	wantErr(t, err, IsInvalidParameter, errTextHostNetwork)

	e.createCtr(t, "web")
	err = e.m.Connect(ctx, "host", api.NetworkConnectRequest{Container: "web"})
	wantErr(t, err, IsInvalidParameter, errTextHostNetwork)
}

func TestConnectDisconnect(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	wid := e.createCtr(t, "web")
	e.createNet(t, api.NetworkCreateRequest{Name: "back", IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.9.0.0/24"}}}})
	e.createNet(t, api.NetworkCreateRequest{Name: "auto"})

	conn := func(net, ctr, ip string) error {
		req := api.NetworkConnectRequest{Container: ctr}
		if ip != "" {
			req.EndpointConfig = &api.EndpointSettings{IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: ip}, Aliases: []string{"w"}}
		}
		return e.m.Connect(ctx, net, req)
	}
	if err := conn("back", "web", "10.9.0.7"); err != nil {
		t.Fatal(err)
	}
	c, _ := e.m.InspectContainer("web")
	b := c.NetworkSettings.Networks["back"]
	if b.Interface != "eth1" || b.IPAddress != "10.9.0.7" || !slices.Equal(b.Aliases, []string{"w"}) {
		t.Errorf("connected endpoint = %+v", b)
	}
	if e.bridge.joined[b.EndpointID].DefaultGW {
		t.Error("connect moved the default route")
	}

	before := e.stored(t)
	calls := len(e.bridge.calls)
	wantErr(t, conn("back", "web", ""), IsForbidden, "endpoint with name web already exists in network back")
	e.createCtr(t, "db")
	calls = len(e.bridge.calls)
	before = e.stored(t)
	wantErr(t, conn("back", "db", "10.9.0.7"), IsConflict, "Address already in use")
	wantErr(t, conn("back", "db", "10.9.0.1"), IsConflict, "Address already in use")
	if err := conn("back", "db", "10.8.0.7"); !IsInvalidParameter(err) {
		t.Errorf("IP outside subnet: %v", err)
	}
	wantErr(t, conn("auto", "db", "172.18.0.9"), IsInvalidParameter,
		"user specified IP address is supported only when connecting to networks with user configured subnets")
	wantErr(t, conn("nope", "db", ""), IsNotFound, "network nope not found")
	wantErr(t, conn("back", "nope", ""), IsNotFound, "No such container: nope")
	if len(e.bridge.calls) != calls {
		t.Errorf("refused connects called the driver: %v", e.bridge.calls[calls:])
	}
	if st := e.stored(t); len(st.Endpoints) != len(before.Endpoints) {
		t.Errorf("refused connects changed the store")
	}

	// A failing Join undoes the endpoint and stores nothing.
	e.bridge.fail["Join"] = errors.New("join failed")
	if err := conn("back", "db", ""); err == nil || !strings.Contains(err.Error(), "join failed") {
		t.Fatalf("connect with failing join: %v", err)
	}
	delete(e.bridge.fail, "Join")
	if len(e.bridge.eps) != 3 {
		t.Errorf("driver has %d endpoints, want 3", len(e.bridge.eps))
	}
	if st := e.stored(t); len(st.Endpoints) != len(before.Endpoints) {
		t.Errorf("failed connect changed the store")
	}

	err := e.m.Disconnect(ctx, "back", api.NetworkDisconnectRequest{Container: "db"})
	wantErr(t, err, IsConflict, "container "+e.m.containerID(t, "db")+" is not connected to network back")

	// Disconnecting the default-route network hands the route to the next one.
	if err := e.m.Disconnect(ctx, "bridge", api.NetworkDisconnectRequest{Container: wid}); err != nil {
		t.Fatal(err)
	}
	c, _ = e.m.InspectContainer("web")
	if _, ok := c.NetworkSettings.Networks["bridge"]; ok || len(c.NetworkSettings.Networks) != 1 {
		t.Errorf("networks after disconnect: %v", c.NetworkSettings.Networks)
	}
	if ep := e.bridge.joined[c.NetworkSettings.Networks["back"].EndpointID]; ep == nil || !ep.DefaultGW {
		t.Errorf("default route not moved: %+v", ep)
	}
	for _, ep := range e.stored(t).Endpoints {
		if ep.ContainerID == wid && !ep.DefaultGW {
			t.Errorf("stored endpoint %s lost the default route", ep.IfName)
		}
	}

	// Reconnecting reuses the free eth0.
	if err := conn("bridge", "web", ""); err != nil {
		t.Fatal(err)
	}
	c, _ = e.m.InspectContainer("web")
	if got := c.NetworkSettings.Networks["bridge"].Interface; got != "eth0" {
		t.Errorf("reconnect got %s, want eth0", got)
	}

	// Leave failing: refused without force, done with force.
	e.bridge.fail["Leave"] = errors.New("leave failed")
	if err := e.m.Disconnect(ctx, "back", api.NetworkDisconnectRequest{Container: "web"}); err == nil {
		t.Fatal("disconnect with failing Leave succeeded")
	}
	if c, _ := e.m.InspectContainer("web"); len(c.NetworkSettings.Networks) != 2 {
		t.Error("failed disconnect removed the endpoint")
	}
	if err := e.m.Disconnect(ctx, "back", api.NetworkDisconnectRequest{Container: "web", Force: true}); err != nil {
		t.Fatalf("forced disconnect: %v", err)
	}
	if c, _ := e.m.InspectContainer("web"); len(c.NetworkSettings.Networks) != 1 {
		t.Error("forced disconnect kept the endpoint")
	}
}

// containerID is a test helper resolving a name.
func (m *Manager) containerID(t *testing.T, name string) string {
	t.Helper()
	c, err := m.InspectContainer(name)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestCreateContainerFailureChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.createNet(t, api.NetworkCreateRequest{Name: "back"})
	before := e.stored(t)
	e.bridge.fail["Join"] = errors.New("join failed")
	_, err := e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: "web",
		Networks: []api.ContainerNetworkRequest{{Network: "bridge"}, {Network: "back"}}})
	if err == nil {
		t.Fatal("create with failing join succeeded")
	}
	delete(e.bridge.fail, "Join")
	if len(e.sb.ns) != 0 || len(e.bridge.eps) != 0 || len(e.bridge.joined) != 0 {
		t.Errorf("left behind: sandboxes %v, endpoints %d, joined %d", e.sb.ns, len(e.bridge.eps), len(e.bridge.joined))
	}
	st := e.stored(t)
	if len(st.Containers) != len(before.Containers) || len(st.Endpoints) != 0 || len(st.Sandboxes) != 0 {
		t.Errorf("store changed: %+v", st)
	}
	// The name is free again.
	e.createCtr(t, "web", "bridge", "back")

	e.sb.ns["node1-taken"] = "netns"
	_, err = e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: "taken"})
	wantErr(t, err, IsConflict, "network namespace node1-taken already exists: remove it or pick another container name")
	if e.sb.ns["node1-taken"] == "" {
		t.Error("refused create removed a namespace it did not make")
	}
	e.sb.fail = errors.New("no netns")
	if _, err = e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: "nons"}); err == nil {
		t.Error("create with failing netns succeeded")
	}
	e.sb.fail = nil
	if st := e.stored(t); slices.Contains(st.Sandboxes, "node1-nons") {
		t.Error("failed sandbox still recorded")
	}

	_, err = e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: "xx",
		Networks: []api.ContainerNetworkRequest{{Network: "back"}, {Network: "nope"}}})
	wantErr(t, err, IsNotFound, "network nope not found")
	if _, ok := e.sb.ns["node1-xx"]; ok {
		t.Error("refused create made a sandbox")
	}
}

func TestLookupAmbiguousPrefix(t *testing.T) {
	e := newTestEnv(t)
	// Force two networks with a shared prefix.
	for _, id := range []string{"abc1" + strings.Repeat("0", 60), "abc2" + strings.Repeat("0", 60)} {
		rec := &NetworkRecord{ID: id, Name: "n" + id[:4], Driver: "null", Index: e.m.nextIndex()}
		if err := e.m.createNetwork(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.InspectNetwork("abc"); !IsInvalidParameter(err) || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if n, err := e.m.InspectNetwork("abc2"); err != nil || n.Name != "nabc2" {
		t.Errorf("unique prefix: %v %v", n.Name, err)
	}
	// An exact name wins over an ID prefix.
	if n, err := e.m.InspectNetwork("nabc1"); err != nil || n.ID[:4] != "abc1" {
		t.Errorf("by name: %v %v", n.ID, err)
	}
}

func TestReconcileAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	nid := e.createNet(t, api.NetworkCreateRequest{Name: "back"})
	e.createCtr(t, "web", "bridge", "back")
	e.createCtr(t, "gone")
	if err := e.m.RemoveContainer(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}

	// "Reboot": namespaces vanish; a stale one of ours and one we never
	// made (another node's, same prefix) appear.
	e.sb.ns = map[string]string{"node1-other": "netns"}
	if err := e.store.Update(func(tx *StoreTx) error { return tx.PutSandbox("node1-stale") }); err != nil {
		t.Fatal(err)
	}
	e.sb.ns["node1-stale"] = "netns"
	e.store.Close()
	e.open(t)

	if _, err := e.m.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	if e.sb.ns["node1-web"] != "netns" {
		t.Error("sandbox of web not recreated")
	}
	if _, ok := e.sb.ns["node1-stale"]; ok {
		t.Error("stale recorded sandbox kept")
	}
	if _, ok := e.sb.ns["node1-other"]; !ok {
		t.Error("a sandbox this daemon never made was removed")
	}
	if e.bridge.nets[nid] == nil || len(e.bridge.nets) != 2 {
		t.Errorf("networks not recreated: %d", len(e.bridge.nets))
	}
	if len(e.bridge.joined) != 2 || len(e.bridge.recEP) != 2 || len(e.bridge.recNet) != 2 {
		t.Errorf("endpoints joined %d, reconcile got %d nets %d eps", len(e.bridge.joined), len(e.bridge.recNet), len(e.bridge.recEP))
	}
	for _, ep := range e.bridge.joined {
		if ep.IfName == "eth0" && !ep.DefaultGW {
			t.Error("eth0 lost its default route across the restart")
		}
	}
	if st := e.stored(t); !slices.Equal(st.Sandboxes, []string{"node1-web"}) {
		t.Errorf("recorded sandboxes = %v", st.Sandboxes)
	}
	// Addresses survive: the next container gets the next free one.
	e.createCtr(t, "db")
	c, _ := e.m.InspectContainer("db")
	if ip := c.NetworkSettings.Networks["bridge"].IPAddress; ip != "172.17.0.3" {
		t.Errorf("after restart db got %s, want 172.17.0.3", ip)
	}
}

// A forced removal whose netns cannot be deleted must keep the netns name
// recorded: otherwise nothing ever removes that namespace again.
func TestForcedRemoveKeepsUndeletedSandboxRecorded(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createCtr(t, "web")
	e.sb.deleteFail = errors.New("device busy")
	if err := e.m.RemoveContainer(ctx, "web", false); err == nil {
		t.Fatal("remove without force ignored the netns error")
	}
	if err := e.m.RemoveContainer(ctx, "web", true); err != nil {
		t.Fatalf("forced remove: %v", err)
	}
	e.sb.deleteFail = nil
	st := e.stored(t)
	if len(st.Containers) != 0 || !slices.Equal(st.Sandboxes, []string{"node1-web"}) {
		t.Fatalf("after forced remove: containers %d, sandboxes %v", len(st.Containers), st.Sandboxes)
	}
	// The name is usable again: the leftover netns is ours and goes first.
	e.createCtr(t, "web")
	if e.sb.ns["node1-web"] != "netns" {
		t.Errorf("sandbox of the new web: %v", e.sb.ns)
	}

	// Or, after a restart, reconcile sweeps it.
	e.sb.deleteFail = errors.New("device busy")
	if err := e.m.RemoveContainer(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	e.sb.deleteFail = nil
	e.store.Close()
	e.open(t)
	if _, err := e.m.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sb.ns["node1-web"]; ok {
		t.Error("reconcile kept the leftover netns")
	}
	if st := e.stored(t); len(st.Sandboxes) != 0 {
		t.Errorf("recorded sandboxes = %v", st.Sandboxes)
	}
}

// A failed netns listing at start-up must not make reconcile forget the
// namespaces it owns: the next start would never sweep them.
func TestReconcileListFailureForgetsNothing(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if err := e.store.Update(func(tx *StoreTx) error { return tx.PutSandbox("node1-stale") }); err != nil {
		t.Fatal(err)
	}
	e.sb.ns["node1-stale"] = "netns"
	e.store.Close()
	e.open(t)
	e.sb.listFail = errors.New("no /run/netns")
	if _, err := e.m.Reconcile(ctx, false); err == nil || !strings.Contains(err.Error(), "list sandboxes") {
		t.Fatalf("reconcile = %v, want the list error", err)
	}
	if st := e.stored(t); !slices.Equal(st.Sandboxes, []string{"node1-stale"}) {
		t.Fatalf("recorded sandboxes after a failed list = %v", st.Sandboxes)
	}
	e.sb.listFail = nil
	if _, err := e.m.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sb.ns["node1-stale"]; ok {
		t.Error("stale netns kept once listing works")
	}
}

// A full network is the caller's state: 409 with Docker's text naming the network.
func TestExhaustedNetwork(t *testing.T) {
	e := newTestEnv(t)
	id := e.createNet(t, api.NetworkCreateRequest{Name: "tiny", IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.9.0.0/30"}}}})
	e.createCtr(t, "c1", "tiny")
	before := e.stored(t)
	_, err := e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: "c2",
		Networks: []api.ContainerNetworkRequest{{Network: "tiny"}}})
	wantErr(t, err, IsConflict, "no available IPv4 addresses on this network's address pools: tiny ("+id+")")
	if !errors.Is(err, ErrNoAvailableIPs) {
		t.Error("error does not wrap ErrNoAvailableIPs")
	}
	if st := e.stored(t); len(st.Containers) != len(before.Containers) || len(st.Sandboxes) != len(before.Sandboxes) {
		t.Errorf("failed create changed the store: %+v", st)
	}
}

// Networks named . or .. could never be addressed by name over HTTP.
func TestCreateNetworkDotNames(t *testing.T) {
	e := newTestEnv(t)
	for _, name := range []string{".", ".."} {
		_, err := e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: name})
		wantErr(t, err, IsInvalidParameter, fmt.Sprintf("invalid network name %q", name))
	}
}

// Forced disconnect works even when the network's driver is not loaded,
// and moving the default route never calls a missing driver.
func TestForcedDisconnectWithoutDriver(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createNet(t, api.NetworkCreateRequest{Name: "back"})
	e.createCtr(t, "web", "bridge", "back")
	delete(e.m.drivers, DriverBridge)
	err := e.m.Disconnect(ctx, "bridge", api.NetworkDisconnectRequest{Container: "web"})
	wantErr(t, err, IsNotFound, `plugin "bridge" not found`)
	if err := e.m.Disconnect(ctx, "bridge", api.NetworkDisconnectRequest{Container: "web", Force: true}); err != nil {
		t.Fatalf("forced disconnect: %v", err)
	}
	c, err := e.m.InspectContainer("web")
	if err != nil || len(c.NetworkSettings.Networks) != 1 {
		t.Fatalf("web after forced disconnect: %+v, %v", c.NetworkSettings.Networks, err)
	}
}

// Namespaces with our prefix but no record are never removed on their own
// (the record may be in another state dir); prune removes only those that
// carry this daemon's mark.
func TestReconcileKeepsOrphans(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.sb.ns["node1-lost"] = "netns"
	e.sb.ns["node1-foreign"] = "netns"
	e.sb.marked = map[string]bool{"node1-lost": true}
	orphans, err := e.m.Reconcile(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if e.sb.ns["node1-lost"] == "" || e.sb.ns["node1-foreign"] == "" {
		t.Fatalf("reconcile without prune removed an unrecorded netns: %v", e.sb.ns)
	}
	var got []string
	for _, o := range orphans {
		got = append(got, o.Kind+" "+o.Name)
	}
	slices.Sort(got)
	if want := []string{"netns node1-foreign", "netns node1-lost"}; !slices.Equal(got, want) {
		t.Fatalf("orphans = %q, want %q", got, want)
	}
	if _, err := e.m.Reconcile(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sb.ns["node1-lost"]; ok {
		t.Error("prune kept the marked orphan")
	}
	if e.sb.ns["node1-foreign"] == "" {
		t.Error("prune removed a netns without this node's mark")
	}
}
