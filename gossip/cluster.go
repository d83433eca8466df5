package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Node states as `netd node ls` shows them.
const (
	NodeAlive   = "alive"
	NodeSuspect = "suspect"
	NodeDead    = "dead"
	NodeLeft    = "left"
)

// Node is a member as this node sees it.
type Node struct {
	Name    string
	Addr    netip.Addr
	Port    int
	State   string
	Self    bool
	Meta    []byte
	Since   time.Time // last state change seen here
	Entries map[string]int
}

// Stats are counters of this node's gossip.
type Stats struct {
	DecryptErrors   uint64 // datagrams or streams no installed key could decrypt
	DroppedMessages uint64 // malformed or foreign messages ignored
	QueueDropped    uint64 // broadcasts pruned from a full queue (push-pull repairs them)
	Pulls           uint64 // anti-entropy pulls sent
}

// Cluster is this node's membership and replicated tables.
type Cluster struct {
	cfg       Config
	log       *slog.Logger
	advertise netip.Addr
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring
	store     *store
	clock     *lamport
	transport memberlist.Transport
	own       *memberlist.TransmitLimitedQueue // this node's writes: sent first (moby#50193)
	relay     *memberlist.TransmitLimitedQueue // others' writes, passed on

	watchMu  sync.Mutex
	watchers map[*watcher]bool

	nodesMu sync.Mutex
	nodes   map[string]*Node // dead and left ones included, until OwnerTTL
	dialing map[string]bool  // reconnects in flight
	// peersDirty: membership changed since peers.json was last written
	// (written from the reconnect loop: event callbacks hold memberlist's lock).
	peersDirty atomic.Bool
	leaving    map[string]time.Time

	refused atomic.Pointer[string] // why a merge was refused, for Join's error

	// pending are this node's block claims still in their settle time
	// (key -> when it ends): WaitClaims does not hand them out before.
	pendingMu sync.Mutex
	pending   map[string]time.Time

	keyMu   sync.Mutex
	keyWait map[uint64]chan keyReply
	keyID   atomic.Uint64

	decryptErrors, dropped, queueDropped, pulls atomic.Uint64

	stop     chan struct{}
	wg       sync.WaitGroup
	shutdown sync.Once
}

// New starts listening and gossiping, alone until Join. Publish this
// node's entries before Join, so the first push-pull already carries them.
func New(cfg Config) (*Cluster, error) {
	cfg.setDefaults()
	if err := checkName(cfg.NodeName); err != nil {
		return nil, err
	}
	adv, err := AdvertiseFor(cfg.AdvertiseAddr, cfg.Join, cfg.Port)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger, advertise: adv,
		watchers: map[*watcher]bool{},
		nodes:    map[string]*Node{},
		dialing:  map[string]bool{},
		leaving:  map[string]time.Time{},
		keyWait:  map[uint64]chan keyReply{},
		stop:     make(chan struct{}),
	}
	clockPath := ""
	if cfg.StateDir != "" {
		clockPath = filepath.Join(cfg.StateDir, "clock")
	}
	if c.clock, err = openClock(clockPath); err != nil {
		return nil, err
	}
	c.store = newStore(cfg.NodeName, c.clock, time.Now, c.deliver)
	keys, err := c.loadKeys()
	if err != nil {
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.AdvertiseAddr = adv.String()
	mc.AdvertisePort = cfg.Port
	mc.BindAddr = cmpOr(cfg.BindAddr, adv.String())
	mc.BindPort = cfg.Port
	mc.Delegate = &delegate{c}
	mc.Events = &events{c}
	mc.Merge = &merger{c}
	mc.Conflict = &conflicts{c}
	// A host that comes back with another address (DHCP) may take its
	// name again once the old one has been dead this long.
	mc.DeadNodeReclaimTime = 30 * time.Second
	mc.Logger = log.New(&logBridge{c: c}, "", 0)
	// Push-pull carries a digest, not the tables, so it can run three
	// times as often as memberlist's LAN default: entries lost while a
	// cluster forms are repaired within 10 s at 32 members (memberlist
	// scales the interval up with the cluster: 30 s at 100, 60 s at 1,000).
	mc.PushPullInterval = 10 * time.Second
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
		mc.Keyring = kr
		c.keyring = kr
	}
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	if mc.Transport == nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("start gossip on %s:%d: %w (is another netd daemon or Docker swarm using the port? choose one with --gossip-port)", mc.BindAddr, mc.BindPort, err)
		}
		mc.Transport = nt
	}
	c.transport = mc.Transport
	c.own = &memberlist.TransmitLimitedQueue{NumNodes: c.numNodes, RetransmitMult: mc.RetransmitMult}
	c.relay = &memberlist.TransmitLimitedQueue{NumNodes: c.numNodes, RetransmitMult: mc.RetransmitMult}
	c.ml, err = memberlist.Create(mc)
	if err != nil {
		_ = mc.Transport.Shutdown()
		return nil, fmt.Errorf("start gossip on %s:%d: %w", mc.BindAddr, cfg.Port, err)
	}
	c.wg.Add(2)
	go c.reconnectLoop()
	go c.gcLoop()
	return c, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkName refuses names memberlist or the CLI would mangle.
func checkName(name string) error {
	if name == "" {
		return errors.New("gossip: empty node name")
	}
	if len(name) > 128 || strings.ContainsAny(name, " \t\n/") {
		return fmt.Errorf("invalid node name %q: want at most 128 characters, no spaces or slashes", name)
	}
	return nil
}

func (c *Cluster) numNodes() int {
	if c.ml == nil {
		return 1
	}
	return c.ml.NumMembers()
}

// Name is this node's name; Advertise its address.
func (c *Cluster) Name() string { return c.cfg.NodeName }
func (c *Cluster) Advertise() netip.AddrPort {
	return netip.AddrPortFrom(c.advertise, uint16(c.cfg.Port))
}

// ErrRefused wraps a join the cluster refused (name taken, key mismatch):
// retrying does not help, the configuration must change.
var ErrRefused = errors.New("join refused")

// Join joins the configured peers and the ones saved from the last run.
// A refusal is returned as ErrRefused; unreachable peers are not an error
// (this may be the first host up): they are retried in the background.
func (c *Cluster) Join() error {
	peers := c.joinPeers()
	if len(peers) == 0 {
		return nil
	}
	n, err := c.join(peers)
	if n > 0 {
		return nil
	}
	if errors.Is(err, ErrRefused) {
		return err
	}
	c.log.Warn("gossip: no peer reachable yet; retrying in the background", "peers", peers, "err", err)
	return nil
}

func (c *Cluster) joinPeers() []string {
	var out []string
	for _, p := range c.cfg.Join {
		out = append(out, joinAddr(p, c.cfg.Port))
	}
	for _, p := range c.savedPeers() {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	self := c.Advertise().String()
	return slices.DeleteFunc(out, func(p string) bool { return p == self })
}

func (c *Cluster) join(peers []string) (int, error) {
	c.refused.Store(nil)
	n, err := c.ml.Join(peers)
	if n > 0 {
		return n, nil
	}
	if why := c.refused.Load(); why != nil {
		return 0, fmt.Errorf("%w: %s", ErrRefused, *why)
	}
	if err != nil && isStateExchangeFailure(err) {
		return 0, fmt.Errorf("%w: join %s: the peer ended the state exchange (%v): most likely a gossip key mismatch: this node %s; every node needs the cluster's key in --gossip-key-file", ErrRefused, strings.Join(peers, ","), err, c.keyDescription())
	}
	return 0, err
}

// isStateExchangeFailure tells a peer that was reached but closed the
// exchange (what a peer with another key or no key does) from one that was
// not reached at all.
func isStateExchangeFailure(err error) bool {
	s := err.Error()
	for _, unreachable := range []string{"connection refused", "no route to host", "i/o timeout", "network is unreachable", "host is down", "no such host"} {
		if strings.Contains(s, unreachable) {
			return false
		}
	}
	for _, closed := range []string{"EOF", "connection reset", "broken pipe", "decrypt", "encrypt", "Reading remote state", "unknown"} {
		if strings.Contains(s, closed) {
			return true
		}
	}
	return false
}

func (c *Cluster) keyDescription() string {
	if c.keyring == nil {
		return "has no key"
	}
	return "has a key (primary " + fingerprint(c.keyring.GetPrimaryKey()) + ")"
}

// Leave tells the cluster this node is going (others withdraw its
// endpoints at once instead of after the failure detector's timeout) and
// stops. Safe to call more than once.
func (c *Cluster) Leave(timeout time.Duration) error {
	var err error
	c.shutdown.Do(func() {
		close(c.stop)
		c.announceLeave()
		if lerr := c.ml.Leave(timeout); lerr != nil {
			err = fmt.Errorf("leave the cluster: %w", lerr)
		}
		c.savePeers()
		if serr := c.ml.Shutdown(); serr != nil && err == nil {
			err = serr
		}
		c.wg.Wait()
		c.closeWatchers()
	})
	return err
}

// announceLeave tells every member directly (one datagram each) that the
// dead message about to follow is a leave, not a failure.
func (c *Cluster) announceLeave() {
	msg, err := encode(msgLeave, leaveIntent{From: c.cfg.NodeName})
	if err != nil {
		return
	}
	for _, m := range c.ml.Members() {
		if m.Name != c.cfg.NodeName {
			_ = c.ml.SendBestEffort(m, msg)
		}
	}
}

func (c *Cluster) onLeaveIntent(name string) {
	if name == c.cfg.NodeName {
		return
	}
	c.nodesMu.Lock()
	c.leaving[name] = time.Now()
	n := c.nodes[name]
	upgrade := n != nil && n.State == NodeDead && time.Since(n.Since) < 10*time.Second
	if upgrade {
		n.State = NodeLeft
	}
	c.nodesMu.Unlock()
	if upgrade { // the intent came after the dead message
		c.store.setStatus(name, ownerLeft)
	}
}

func (c *Cluster) intendsToLeave(name string) bool {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	t, ok := c.leaving[name]
	delete(c.leaving, name)
	return ok && time.Since(t) < 30*time.Second
}

// Shutdown stops without telling anyone (as a crash would).
func (c *Cluster) Shutdown() error {
	var err error
	c.shutdown.Do(func() {
		close(c.stop)
		err = c.ml.Shutdown()
		c.wg.Wait()
		c.closeWatchers()
	})
	return err
}

// Put writes one of this node's entries and gossips it.
func (c *Cluster) Put(table, key string, value []byte) error {
	return c.write(table, key, value, false)
}

// Delete deletes one of this node's entries (a tombstone) and gossips it.
func (c *Cluster) Delete(table, key string) error {
	return c.write(table, key, nil, true)
}

func (c *Cluster) write(table, key string, value []byte, deleted bool) error {
	if _, ok := tableSpecs[table]; !ok {
		return fmt.Errorf("gossip: unknown table %q", table)
	}
	if len(value) > MaxValueSize || len(key) > 256 {
		return fmt.Errorf("gossip: entry %s/%s too large (%d bytes, at most %d)", table, key, len(value), MaxValueSize)
	}
	e, changed, err := c.store.put(table, key, value, deleted)
	if err != nil || !changed {
		return err
	}
	return c.broadcast(c.own, e)
}

func (c *Cluster) broadcast(q *memberlist.TransmitLimitedQueue, e Entry) error {
	msg, err := encode(msgEntry, toWire(e))
	if err != nil {
		return err
	}
	q.QueueBroadcast(&entryBroadcast{name: e.Table + "\x00" + e.Owner + "\x00" + e.Key, msg: msg})
	if n := q.NumQueued(); n > c.cfg.QueueLimit {
		q.Prune(c.cfg.QueueLimit)
		c.queueDropped.Add(uint64(n - c.cfg.QueueLimit))
	}
	return nil
}

// Own returns this node's live entries of a table, by key.
func (c *Cluster) Own(table string) map[string][]byte { return c.store.ownRows(table) }

// List returns a table's live, visible entries; withdrawn ones too when
// asked, with their state.
func (c *Cluster) List(table string, withdrawn bool) []ViewEntry {
	return c.store.list(table, withdrawn)
}

// Stats returns the counters.
func (c *Cluster) Stats() Stats {
	return Stats{
		DecryptErrors:   c.decryptErrors.Load(),
		DroppedMessages: c.dropped.Load(),
		QueueDropped:    c.queueDropped.Load(),
		Pulls:           c.pulls.Load(),
	}
}

// Nodes lists the members, dead and left ones included, with the number
// of live entries each owns per table.
func (c *Cluster) Nodes() []Node {
	counts := map[string]map[string]int{}
	for t := range tableSpecs {
		for owner, n := range c.store.counts(t) {
			if counts[owner] == nil {
				counts[owner] = map[string]int{}
			}
			counts[owner][t] = n
		}
	}
	c.nodesMu.Lock()
	byName := map[string]Node{}
	for name, n := range c.nodes {
		byName[name] = *n
	}
	c.nodesMu.Unlock()
	for _, m := range c.ml.Members() { // alive and suspect, with the current state
		n := byName[m.Name]
		n.Name, n.Port, n.Meta = m.Name, int(m.Port), slices.Clone(m.Meta)
		n.Addr, _ = netip.AddrFromSlice(m.Addr)
		n.Addr = n.Addr.Unmap()
		n.State = NodeAlive
		if m.State == memberlist.StateSuspect {
			n.State = NodeSuspect
		}
		byName[m.Name] = n
	}
	out := make([]Node, 0, len(byName))
	for name, n := range byName {
		n.Self = name == c.cfg.NodeName
		if n.Self {
			n.State = NodeAlive
		}
		n.Entries = counts[name]
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Cluster) setNode(n *memberlist.Node, state string) {
	c.peersDirty.Store(true)
	addr, _ := netip.AddrFromSlice(n.Addr)
	c.nodesMu.Lock()
	c.nodes[n.Name] = &Node{Name: n.Name, Addr: addr.Unmap(), Port: int(n.Port), State: state, Meta: slices.Clone(n.Meta), Since: time.Now()}
	c.nodesMu.Unlock()
}

// reconnectLoop retries the join peers while alone and dead members until
// they answer: memberlist forgets dead nodes after GossipToTheDeadTime, so
// without this a healed partition would stay split.
func (c *Cluster) reconnectLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if c.peersDirty.Swap(false) {
			// A host killed and restarted must find its peers again even
			// without --join (the first host): they are saved at once.
			c.savePeers()
		}
		var targets []string
		if c.ml.NumMembers() <= 1 {
			targets = c.joinPeers()
		}
		// Each live member tries a dead one with probability 3/N, so the
		// cluster as a whole tries about three times a second, whatever its
		// size (a slow member declared dead is not swamped with joins);
		// after five minutes, a tenth as often.
		alive := max(1, c.ml.NumMembers())
		p := min(1, 3/float64(alive))
		c.nodesMu.Lock()
		for name, n := range c.nodes {
			if n.State != NodeDead || time.Since(n.Since) >= c.cfg.OwnerTTL || name == c.cfg.NodeName {
				continue
			}
			q := p
			if time.Since(n.Since) > 5*time.Minute {
				q /= 10
			}
			if rand.Float64() < q {
				targets = append(targets, netip.AddrPortFrom(n.Addr, uint16(n.Port)).String())
			}
		}
		c.nodesMu.Unlock()
		// At most a few at a time, in random order, so a large dead set
		// does not turn into a connection storm.
		rand.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
		for _, addr := range targets[:min(len(targets), 4)] {
			c.tryReconnect(addr)
		}
	}
}

func (c *Cluster) tryReconnect(addr string) {
	c.nodesMu.Lock()
	if c.dialing[addr] {
		c.nodesMu.Unlock()
		return
	}
	c.dialing[addr] = true
	c.nodesMu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.nodesMu.Lock()
			delete(c.dialing, addr)
			c.nodesMu.Unlock()
		}()
		// A quick dial first: memberlist's join waits the whole TCP
		// timeout on a silent path, which would delay noticing the heal.
		conn, err := c.transport.DialTimeout(addr, 500*time.Millisecond)
		if err != nil {
			return
		}
		conn.Close()
		if _, err := c.join([]string{addr}); err != nil {
			c.log.Debug("gossip: reconnect failed", "peer", addr, "err", err)
		}
	}()
}

func (c *Cluster) gcLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		tombs, rows := c.store.collect(c.cfg.TombstoneTTL, c.cfg.OwnerTTL)
		if tombs+rows > 0 {
			c.log.Debug("gossip: collected", "tombstones", tombs, "rows of gone nodes", rows)
		}
		c.nodesMu.Lock()
		for name, n := range c.nodes {
			if n.State != NodeAlive && time.Since(n.Since) > c.cfg.OwnerTTL {
				delete(c.nodes, name)
			}
		}
		c.nodesMu.Unlock()
		c.savePeers()
	}
}

// Saved peers let a restarted node rejoin even when it was the first
// host and has no --join.
func (c *Cluster) peersPath() string {
	if c.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(c.cfg.StateDir, "peers.json")
}

func (c *Cluster) savePeers() {
	p := c.peersPath()
	if p == "" {
		return
	}
	var peers []string
	for _, n := range c.Nodes() {
		if !n.Self && (n.State == NodeAlive || n.State == NodeSuspect || n.State == NodeDead) {
			peers = append(peers, netip.AddrPortFrom(n.Addr, uint16(n.Port)).String())
		}
	}
	b, _ := json.Marshal(peers)
	if err := writeFileAtomic(p, b); err != nil {
		c.log.Warn("gossip: save peers", "err", err)
	}
}

func (c *Cluster) savedPeers() []string {
	p := c.peersPath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var peers []string
	if err := json.Unmarshal(b, &peers); err != nil {
		c.log.Warn("gossip: ignoring damaged saved peers", "file", p, "err", err)
		return nil
	}
	return peers
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// nodeByName finds a live member to send to.
func (c *Cluster) nodeByName(name string) *memberlist.Node {
	for _, m := range c.ml.Members() {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// peerRef names a peer and where it listens.
type peerRef struct{ name, addr string }

// sendTo sends reliably (TCP) to a peer, at the address it gave: during a
// join the answer must not wait until memberlist lists the peer as alive.
func (c *Cluster) sendTo(p peerRef, msg []byte) {
	n := c.nodeByName(p.name)
	if ap, err := netip.ParseAddrPort(p.addr); err == nil {
		n = &memberlist.Node{Name: p.name, Addr: ap.Addr().AsSlice(), Port: ap.Port()}
	}
	if n == nil {
		return
	}
	if err := c.ml.SendReliable(n, msg); err != nil {
		c.log.Debug("gossip: send", "to", p.name, "err", err)
	}
}

// logBridge turns memberlist's log lines into slog records, and counts
// the decrypt failures that a key rotation must not cause.
type logBridge struct{ c *Cluster }

func (b *logBridge) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[INFO]"):
		level = slog.LevelInfo
	}
	if strings.Contains(line, "decrypt") || strings.Contains(line, "not encrypted") || strings.Contains(line, "encryption is not configured") {
		b.c.decryptErrors.Add(1)
	}
	for _, pre := range []string{"[ERR] ", "[WARN] ", "[INFO] ", "[DEBUG] ", "memberlist: "} {
		line = strings.TrimPrefix(line, pre)
	}
	b.c.log.Log(context.Background(), level, "gossip: "+line)
	return len(p), nil
}

// fingerprint names a key without showing it.
func fingerprint(k []byte) string {
	if len(k) == 0 {
		return "none"
	}
	var h uint32 = 2166136261
	for _, x := range k {
		h = (h ^ uint32(x)) * 16777619
	}
	return strconv.FormatUint(uint64(h), 16)
}

// entryBroadcast is one queued entry; a newer write of the same row
// replaces it in the queue (moby networkdb's invalidation).
type entryBroadcast struct {
	name string
	msg  []byte
}

func (b *entryBroadcast) Name() string    { return b.name }
func (b *entryBroadcast) Message() []byte { return b.msg }
func (b *entryBroadcast) Finished()       {}
func (b *entryBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*entryBroadcast)
	return ok && o.name == b.name
}

var _ memberlist.NamedBroadcast = (*entryBroadcast)(nil)

// sameAddr reports whether a memberlist node is at this address and port.
func sameAddr(n *memberlist.Node, a netip.AddrPort) bool {
	addr, _ := netip.AddrFromSlice(n.Addr)
	return addr.Unmap() == a.Addr() && n.Port == a.Port()
}

var _ = bytes.Equal
