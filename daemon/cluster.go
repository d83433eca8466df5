//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/buildinfo"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/gossip"
	"github.com/netd-dev/netd/overlay"
)

// ClusterConfig is the gossip part of Config. The cluster is on when
// AdvertiseAddr or Join is set.
type ClusterConfig struct {
	AdvertiseAddr string
	Join          []string
	Port          int    // 0: gossip.DefaultPort
	KeyFile       string // base64 key; "" = no encryption
	VXLANPort     int    // UDP port of overlay networks; 0: 4789
	// LeaveTimeout bounds the graceful leave at stop.
	LeaveTimeout time.Duration
}

// Enabled says whether this daemon joins a cluster.
func (c ClusterConfig) Enabled() bool { return c.AdvertiseAddr != "" || len(c.Join) > 0 }

// errNoCluster answers node commands on a daemon started without gossip.
var errNoCluster = errUnavailable("this node is not in a cluster: start `netd daemon` with --advertise-addr (the first host) or --join HOST")

// resyncInterval is how often the published entries are compared with the
// manager's state even without a change (a lost kick, a failed write).
const resyncInterval = 30 * time.Second

// clusterService publishes this node's networks and endpoints into the
// gossip tables. It reads the manager level-triggered (a kick after every
// commit, a full compare every resyncInterval), so remote traffic never
// waits on the manager's lock and the manager never waits on gossip.
type clusterService struct {
	c    *gossip.Cluster
	m    *Manager
	log  *slog.Logger
	vtep netip.Addr

	work   *resyncLoop
	joined time.Time
	cancel func() // stops watching the tables

	delMu    sync.Mutex
	deleted  map[string]bool // networks whose creator deleted them (events since the last adopt pass)
	claiming map[string]bool // address pools with a block claim in flight
}

func (d *daemon) startCluster(context.Context) error {
	cc := d.cfg.Cluster
	if !cc.Enabled() {
		if cc.KeyFile != "" {
			return errors.New("--gossip-key-file needs --advertise-addr or --join: without them this node is not in a cluster")
		}
		return nil
	}
	var keys [][]byte
	if cc.KeyFile != "" {
		k, err := gossip.ReadKeyFile(cc.KeyFile)
		if err != nil {
			return err
		}
		keys = [][]byte{k}
	}
	meta, _ := json.Marshal(nodeMeta{Version: buildinfo.Version})
	c, err := gossip.New(gossip.Config{
		NodeName:      d.cfg.NodeName,
		AdvertiseAddr: cc.AdvertiseAddr,
		Port:          cc.Port,
		Join:          cc.Join,
		Keys:          keys,
		StateDir:      filepath.Join(d.cfg.StateDir, "gossip"),
		Meta:          meta,
		Logger:        d.log,
	})
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	s := &clusterService{
		c: c, m: d.m, log: d.log, vtep: c.Advertise().Addr(), work: newResyncLoop(),
	}
	// Own entries first, so the join's push-pull already carries them.
	s.sync()
	if err := c.Join(); err != nil {
		_ = c.Shutdown()
		return fmt.Errorf("join the cluster: %w", err)
	}
	s.joined = time.Now()
	d.store.OnCommit(s.work.poke)
	d.m.setCluster(s)
	// Another host's network, or a removal asked for: adopt or drop it.
	s.cancel = c.Watch(func(ev gossip.Event) {
		if ev.Kind == gossip.EventDelete && ev.Entry.Table == gossip.TableNetworks && ev.Reason == "" {
			s.delMu.Lock()
			if s.deleted == nil {
				s.deleted = map[string]bool{}
			}
			s.deleted[ev.Entry.Key] = true
			s.delMu.Unlock()
		}
		if ev.Kind == gossip.EventResync || ev.Entry.Table == gossip.TableNetworks || ev.Entry.Table == gossip.TableRemovals {
			s.work.poke()
		}
	})
	for _, drv := range d.drivers {
		if u, ok := drv.(clusterUser); ok {
			u.SetCluster(c)
		}
	}
	go s.work.run(resyncInterval, s.expireRemovals, s.pass)
	d.cluster = s
	d.log.Info("joined the cluster", "node", d.cfg.NodeName, "advertise", c.Advertise(), "members", len(c.Nodes()))
	return nil
}

// closeCluster leaves gracefully: the others withdraw this node's
// endpoints at once rather than after the failure detector's timeout.
func (d *daemon) closeCluster() error {
	s := d.cluster
	if s == nil {
		return nil
	}
	d.store.OnCommit(func() {})
	for _, drv := range d.drivers {
		if u, ok := drv.(clusterUser); ok {
			u.SetCluster(nil)
		}
	}
	s.cancel()
	d.m.setCluster(nil)
	s.work.halt()
	return s.c.Leave(cmpDuration(d.cfg.Cluster.LeaveTimeout, 2*time.Second))
}

func cmpDuration(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

// clusterUser is a driver that reads the gossip tables (overlay).
type clusterUser interface {
	SetCluster(overlay.Cluster)
}

type nodeMeta struct {
	Version string `json:"v"`
}

// pass publishes, adopts remote networks and claims address blocks ahead.
func (s *clusterService) pass() {
	s.sync()
	s.adoptNetworks(context.Background())
	s.preclaim()
}

// sync makes the published entries match the manager.
func (s *clusterService) sync() {
	nets, eps := s.m.clusterRecords(s.vtep)
	s.syncTable(gossip.TableNetworks, nets)
	s.syncTable(gossip.TableEndpoints, eps)
}

func (s *clusterService) syncTable(table string, want map[string]any) {
	have := s.c.Own(table)
	for key, rec := range want {
		b, err := gossip.Marshal(rec)
		if err != nil {
			s.log.Warn("cluster: encode", "table", table, "key", key, "err", err)
			continue
		}
		if string(have[key]) == string(b) {
			continue
		}
		if err := s.c.Put(table, key, b); err != nil {
			s.log.Warn("cluster: publish", "table", table, "key", key, "err", err)
		}
	}
	for key := range have {
		if _, ok := want[key]; !ok {
			if err := s.c.Delete(table, key); err != nil {
				s.log.Warn("cluster: withdraw", "table", table, "key", key, "err", err)
			}
		}
	}
}

// clusterRecords is what this node publishes: every endpoint (so `node
// ls` counts a host's containers; consumers route only global-scope ones)
// and the networks whose driver is global in scope.
func (m *Manager) clusterRecords(vtep netip.Addr) (nets, eps map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nets, eps = map[string]any{}, map[string]any{}
	for _, n := range m.networks {
		if m.scopeOf(n) != dataplane.ScopeGlobal {
			continue
		}
		if n.Origin != "" {
			continue // another host's network: its creator publishes it
		}
		nets[n.ID] = gossip.NetworkRecord{
			ID: n.ID, Name: n.Name, Driver: n.Driver, Options: n.Options, DriverState: n.DriverState,
			Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange, Internal: n.Internal, Attachable: n.Attachable,
			Labels: n.Labels, Created: n.Created.UnixNano(),
		}
	}
	for _, ep := range m.endpoints {
		n, c := m.networks[ep.NetworkID], m.containers[ep.ContainerID]
		if n == nil || c == nil {
			continue
		}
		eps[ep.ID] = gossip.EndpointRecord{
			NetworkID: n.ID, NetworkName: n.Name, Scope: m.scopeOf(n),
			Container: c.Name, ContainerID: c.ID,
			IPv4: ep.Addr.Addr(), MAC: ep.MAC,
			Host: m.nodeName, VTEP: vtep, Aliases: ep.Aliases,
		}
	}
	return nets, eps
}

// Nodes lists the cluster's members.
func (s *clusterService) Nodes() []api.Node {
	var out []api.Node
	for _, n := range s.c.Nodes() {
		out = append(out, nodeView(n))
	}
	return out
}

func nodeView(n gossip.Node) api.Node {
	var meta nodeMeta
	_ = json.Unmarshal(n.Meta, &meta)
	v := api.Node{
		Name: n.Name, Addr: n.Addr.String(), Port: n.Port, State: n.State, Self: n.Self,
		Version: meta.Version, Endpoints: n.Entries[gossip.TableEndpoints], Networks: n.Entries[gossip.TableNetworks],
	}
	if !n.Since.IsZero() {
		v.StateChanged = n.Since.UTC()
	}
	return v
}

// Node inspects one member, with the endpoints this node holds of it.
func (s *clusterService) Node(name string) (api.Node, error) {
	for _, n := range s.c.Nodes() {
		if n.Name != name {
			continue
		}
		v := nodeView(n)
		v.EndpointList = []api.NodeEndpoint{}
		for _, e := range s.c.List(gossip.TableEndpoints, true) {
			if e.Owner != name {
				continue
			}
			var r gossip.EndpointRecord
			if gossip.Unmarshal(e.Value, &r) != nil {
				continue
			}
			ne := api.NodeEndpoint{ID: e.Key, Network: r.NetworkName, NetworkID: r.NetworkID, Scope: r.Scope, Container: r.Container, MAC: r.MAC, VTEP: r.VTEP.String(), State: string(e.State)}
			if r.IPv4.IsValid() {
				ne.IPv4 = r.IPv4.String()
			}
			v.EndpointList = append(v.EndpointList, ne)
		}
		sort.Slice(v.EndpointList, func(i, j int) bool { return v.EndpointList[i].Container < v.EndpointList[j].Container })
		if n.Self {
			st := s.c.Stats()
			v.Gossip = &api.GossipStats{DecryptErrors: st.DecryptErrors, DroppedMessages: st.DroppedMessages, QueueDropped: st.QueueDropped, Pulls: st.Pulls}
		}
		return v, nil
	}
	return api.Node{}, errNotFound("node %s not found: `netd node ls` lists the members", name)
}

// Key runs a keyring operation across the cluster.
func (s *clusterService) Key(ctx context.Context, op, key string) (api.NodeKeyResponse, error) {
	var k []byte
	if op != gossip.KeyList {
		var err error
		if k, err = gossip.ParseKey(key); err != nil {
			return api.NodeKeyResponse{}, errInvalid("invalid gossip key: %v", err)
		}
	}
	res, err := s.c.KeyOp(ctx, op, k)
	out := api.NodeKeyResponse{Op: op, Members: res.Members, Keys: res.Keys, Primary: res.Primary}
	for _, r := range res.Replies {
		out.Nodes = append(out.Nodes, api.NodeKeyReply{Node: r.Node, Error: r.Err, Keys: r.Keys})
	}
	if err != nil {
		return out, errConflict("%v", err)
	}
	return out, nil
}

// setCluster lets the API reach the cluster; nil when the node is alone.
func (m *Manager) setCluster(s *clusterService) { m.cluster.Store(s) }

// Cluster returns the cluster service, or errNoCluster.
func (m *Manager) Cluster() (*clusterService, error) {
	if s := m.cluster.Load(); s != nil {
		return s, nil
	}
	return nil, errNoCluster
}
