package gossip

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// One small adapter per memberlist delegate, each pointing back at the
// Cluster (serf's layout).

type delegate struct{ c *Cluster }

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.c.cfg.Meta) > limit {
		return nil
	}
	return d.c.cfg.Meta
}

// NotifyMsg handles a user message, gossiped or sent reliably. memberlist
// reuses buf, so anything kept is decoded (copied) first.
func (d *delegate) NotifyMsg(buf []byte) {
	if len(buf) == 0 {
		return
	}
	c := d.c
	t, body := msgType(buf[0]), buf[1:]
	var err error
	switch t {
	case msgEntry:
		var we wireEntry
		if err = decode(t, body, &we); err == nil {
			err = c.onEntry(fromWire(we))
		}
	case msgPull:
		var p pullRequest
		if err = decode(t, body, &p); err == nil {
			go c.answerPull(p)
		}
	case msgSnapshot:
		var sn snapshot
		if err = decode(t, body, &sn); err == nil {
			// What a pull brought is new to others too (an entry written
			// before its owner joined reached only the join peer): relayed
			// like gossiped entries, behind this node's own writes.
			for _, e := range c.store.applySnapshot(sn) {
				if berr := c.broadcast(c.relay, e); berr != nil {
					err = berr
				}
			}
		}
	case msgLeave:
		var li leaveIntent
		if err = decode(t, body, &li); err == nil {
			c.onLeaveIntent(li.From)
		}
	case msgKeyOp:
		var op keyOp
		if err = decode(t, body, &op); err == nil {
			go c.answerKeyOp(op)
		}
	case msgKeyReply:
		var r keyReply
		if err = decode(t, body, &r); err == nil {
			c.keyMu.Lock()
			ch := c.keyWait[r.ID]
			c.keyMu.Unlock()
			if ch != nil {
				select {
				case ch <- r:
				default:
				}
			}
		}
	default:
		err = fmt.Errorf("unknown gossip message type %d", t)
	}
	if err != nil {
		c.dropped.Add(1)
		c.log.Debug("gossip: dropped message", "err", err)
	}
}

func (c *Cluster) onEntry(e Entry) error {
	if len(e.Value) > MaxValueSize || e.Owner == "" {
		return fmt.Errorf("malformed entry %s/%s from %q", e.Table, e.Key, e.Owner)
	}
	fresh, _ := c.store.merge([]Entry{e})
	for _, f := range fresh {
		// Epidemic spread: what was new here is passed on, behind this
		// node's own writes.
		if err := c.broadcast(c.relay, f); err != nil {
			return err
		}
	}
	return nil
}

// GetBroadcasts fills a datagram: this node's own writes first, then
// relayed ones, so a busy relay queue cannot starve local updates.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	msgs := d.c.own.GetBroadcasts(overhead, limit)
	used := 0
	for _, m := range msgs {
		used += overhead + len(m)
	}
	if rest := limit - used; rest > overhead {
		msgs = append(msgs, d.c.relay.GetBroadcasts(overhead, rest)...)
	}
	return msgs
}

// LocalState is the push-pull payload: a digest, not the entries.
func (d *delegate) LocalState(join bool) []byte {
	dg := d.c.store.digest()
	dg.Addr = d.c.Advertise().String()
	b, err := encode(msgDigest, dg)
	if err != nil {
		d.c.log.Warn("gossip: encode digest", "err", err)
		return nil
	}
	return b
}

// MergeRemoteState compares a peer's digest with this node's tables and
// pulls what is missing, outside memberlist's push-pull handler.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	c := d.c
	if len(buf) == 0 || msgType(buf[0]) != msgDigest {
		c.dropped.Add(1)
		return
	}
	var dg digest
	if err := decode(msgDigest, buf[1:], &dg); err != nil {
		c.dropped.Add(1)
		c.log.Debug("gossip: dropped digest", "err", err)
		return
	}
	if dg.From == c.cfg.NodeName {
		return
	}
	pull, selfDiffers, behind := c.store.compare(dg)
	go c.sync(peerRef{dg.From, dg.Addr}, pull, selfDiffers, behind)
}

func (c *Cluster) sync(peer peerRef, pull []pullItem, selfDiffers bool, behind uint64) {
	if behind > 0 {
		// The cluster holds versions of this node newer than its clock
		// (the clock file was lost): write everything again past them.
		c.clock.Witness(behind)
		rewritten, err := c.store.rewriteOwn()
		if err != nil {
			c.log.Warn("gossip: rewrite own entries", "err", err)
		}
		for _, e := range rewritten {
			_ = c.broadcast(c.own, e)
		}
	}
	if len(pull) > 0 {
		c.pulls.Add(1)
		if msg, err := encode(msgPull, pullRequest{From: c.cfg.NodeName, Addr: c.Advertise().String(), Items: pull}); err == nil {
			c.sendTo(peer, msg)
		}
	}
	if selfDiffers {
		// This node is the authority on its own rows: send the peer the
		// whole set, which also drops rows the peer should not have.
		if sn, ok := c.store.snapshotFor(c.cfg.NodeName, 0); ok {
			if msg, err := encode(msgSnapshot, sn); err == nil {
				c.sendTo(peer, msg)
			}
		}
	}
}

func (c *Cluster) answerPull(p pullRequest) {
	for _, it := range p.Items {
		sn, ok := c.store.snapshotFor(it.Owner, it.Since)
		if !ok {
			continue
		}
		msg, err := encode(msgSnapshot, sn)
		if err != nil {
			c.log.Warn("gossip: encode snapshot", "owner", it.Owner, "err", err)
			continue
		}
		c.sendTo(peerRef{p.From, p.Addr}, msg)
	}
}

type events struct{ c *Cluster }

func (e *events) NotifyJoin(n *memberlist.Node) {
	e.c.setNode(n, NodeAlive)
	e.c.store.setStatus(n.Name, ownerAlive)
	e.c.log.Info("gossip: node joined", "node", n.Name, "addr", n.Address())
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	state, st := NodeDead, ownerDead
	if e.c.intendsToLeave(n.Name) {
		state, st = NodeLeft, ownerLeft
	}
	e.c.setNode(n, state)
	e.c.store.setStatus(n.Name, st)
	e.c.log.Info("gossip: node "+state, "node", n.Name, "addr", n.Address())
}

func (e *events) NotifyUpdate(n *memberlist.Node) { e.c.setNode(n, NodeAlive) }

// merger refuses a merge that would put two live nodes under one name:
// memberlist alone would keep the first and silently ignore the second.
type merger struct{ c *Cluster }

func (m *merger) NotifyMerge(peers []*memberlist.Node) error {
	self := m.c.Advertise()
	for _, p := range peers {
		if p.Name != m.c.cfg.NodeName || sameAddr(p, self) || p.State == memberlist.StateDead || p.State == memberlist.StateLeft {
			continue
		}
		why := fmt.Sprintf("node name %q is already used by the member at %s:%d: give this node another --node-name (namespaces share a hostname, so lab hosts need one each)", p.Name, p.Addr, p.Port)
		if mine := slices.IndexFunc(peers, func(q *memberlist.Node) bool { return sameAddr(q, self) }); mine < 0 {
			// We are the one joining: our Join fails with this reason.
			m.c.refused.Store(&why)
		}
		m.c.log.Warn("gossip: refused a merge", "reason", why)
		return fmt.Errorf("%s", why)
	}
	return nil
}

type conflicts struct{ c *Cluster }

func (x *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name == x.c.cfg.NodeName && sameAddr(existing, x.c.Advertise()) {
		// Joined at the same moment as a namesake, before either merge
		// could refuse the other: say so loudly, the operator must rename.
		x.c.log.Error("gossip: another node uses this node's name; give one of them another --node-name", "node", existing.Name, "other", other.Address())
		return
	}
	x.c.log.Warn("gossip: two nodes claim one name; the second is ignored", "node", existing.Name, "existing", existing.Address(), "other", other.Address())
}

// watcher delivers events to one consumer through a bounded queue, from a
// goroutine of its own: a slow consumer never blocks gossip, and one that
// falls behind gets EventResync instead of an unbounded backlog.
type watcher struct {
	fn       func(Event)
	ch       chan Event
	overflow bool // guarded by Cluster.watchMu
	done     chan struct{}
}

// WatchQueue is how many events a consumer may be behind before it is
// told to resync.
const WatchQueue = 4096

// Watch calls fn for every change of the tables' view, in order, from one
// goroutine. The returned function stops it.
func (c *Cluster) Watch(fn func(Event)) (cancel func()) {
	w := &watcher{fn: fn, ch: make(chan Event, WatchQueue), done: make(chan struct{})}
	c.watchMu.Lock()
	c.watchers[w] = true
	c.watchMu.Unlock()
	go func() {
		defer close(w.done)
		for ev := range w.ch {
			w.fn(ev)
		}
	}()
	return func() {
		c.watchMu.Lock()
		if c.watchers[w] {
			delete(c.watchers, w)
			close(w.ch)
		}
		c.watchMu.Unlock()
		<-w.done
	}
}

// deliver is the store's emit: it runs under the store's lock, so it only
// queues.
func (c *Cluster) deliver(evs []Event) {
	if len(evs) == 0 {
		return
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	for w := range c.watchers {
		for _, ev := range evs {
			if w.overflow {
				select {
				case w.ch <- Event{Kind: EventResync}:
					w.overflow = false
				default:
					continue
				}
			}
			select {
			case w.ch <- ev:
			default:
				w.overflow = true
			}
		}
	}
}

func (c *Cluster) closeWatchers() {
	c.watchMu.Lock()
	for w := range c.watchers {
		delete(c.watchers, w)
		close(w.ch)
	}
	c.watchMu.Unlock()
}

var _ = time.Second
