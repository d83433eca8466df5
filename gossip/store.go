package gossip

import (
	"hash/fnv"
	"slices"
	"sort"
	"sync"
	"time"
)

// Entry is one row of a replicated table. Its identity is (Table, Owner,
// Key): only the owner writes or deletes it, so no node can tombstone
// another's entries (moby#47728), and two owners never race on one row.
type Entry struct {
	Table   string
	Owner   string
	Key     string
	Version uint64 // the owner's Lamport time of the write
	Value   []byte
	Deleted bool // a tombstone, kept TombstoneTTL so a late copy cannot resurrect it
}

// EntryState is what a node makes of an entry it holds.
type EntryState string

const (
	StateLive EntryState = "live"
	// StateWithdrawn: the owner is dead, has left, or is not known to be
	// alive. The entry is kept, not wiped (moby#53141), and comes back when
	// the owner does.
	StateWithdrawn EntryState = "withdrawn"
)

// Table options: a withdrawing table hides an entry while its owner is not
// alive (endpoints); the others keep showing it (networks, address blocks:
// the owner's absence does not free them).
type tableSpec struct{ withdraw bool }

// Tables netd replicates.
const (
	TableNetworks  = "networks"
	TableEndpoints = "endpoints"
	TableBlocks    = "blocks"
	TableRemovals  = "removals"
)

var tableSpecs = map[string]tableSpec{
	TableNetworks:  {withdraw: false},
	TableEndpoints: {withdraw: true},
	TableBlocks:    {withdraw: false},
	TableRemovals:  {withdraw: false},
}

type rowKey struct{ table, key string }

type ownerStatus uint8

const (
	ownerUnknown ownerStatus = iota // never seen alive by memberlist
	ownerAlive
	ownerDead
	ownerLeft
)

func (s ownerStatus) String() string {
	return [...]string{"unknown", "alive", "dead", "left"}[s]
}

type record struct {
	Entry
	tombAt time.Time // local time the tombstone was made or received
}

// owner is everything a node holds of one owner's entries.
type owner struct {
	rows   map[rowKey]*record
	max    uint64 // highest version seen of this owner
	floor  uint64 // highest version of a collected tombstone: older copies are stale
	hash   uint64 // xor of rowHash over live rows
	live   uint32
	status ownerStatus
	since  time.Time // status change
}

func rowHash(table, key string, version uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(table))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var v [8]byte
	for i := range v {
		v[i] = byte(version >> (8 * i))
	}
	h.Write(v[:])
	return h.Sum64()
}

// EventKind says what happened to an entry in a consumer's view.
type EventKind uint8

const (
	EventUpsert EventKind = iota + 1 // created, changed, or visible again
	EventDelete                      // deleted, or withdrawn
	// EventResync: events were dropped because the consumer fell behind;
	// it must read the tables again (List) to know the state.
	EventResync
)

// Reasons an event carries besides plain writes and deletes.
const (
	ReasonOwnerDead = "owner dead"
	ReasonOwnerLeft = "owner left"
	ReasonOwnerBack = "owner back"
	ReasonResync    = "full sync from the owner"
)

// Event is one change in the view of a table.
type Event struct {
	Kind   EventKind
	Entry  Entry
	Reason string // "" for a write or delete by the owner
}

// store holds the tables. It is independent of memberlist, so its merge
// rules are tested directly.
type store struct {
	mu     sync.Mutex
	self   string
	clock  *lamport
	owners map[string]*owner
	now    func() time.Time
	emit   func([]Event) // called with mu held; must not block
}

func newStore(self string, clock *lamport, now func() time.Time, emit func([]Event)) *store {
	s := &store{self: self, clock: clock, owners: map[string]*owner{}, now: now, emit: emit}
	s.ownerLocked(self).status = ownerAlive
	return s
}

func (s *store) ownerLocked(name string) *owner {
	o := s.owners[name]
	if o == nil {
		o = &owner{rows: map[rowKey]*record{}, since: s.now()}
		s.owners[name] = o
	}
	return o
}

// visible says whether a live row of o shows in the tables' view.
func visible(o *owner, table string) bool {
	return o.status == ownerAlive || !tableSpecs[table].withdraw
}

// put writes one of this node's own entries and returns it for broadcast.
func (s *store) put(table, key string, value []byte, deleted bool) (Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ownerLocked(s.self)
	cur := o.rows[rowKey{table, key}]
	if deleted && (cur == nil || cur.Deleted) {
		return Entry{}, false, nil // nothing to delete
	}
	if !deleted && cur != nil && !cur.Deleted && string(cur.Value) == string(value) {
		return Entry{}, false, nil // unchanged: no new version, no traffic
	}
	v, err := s.clock.Tick()
	if err != nil {
		return Entry{}, false, err
	}
	e := Entry{Table: table, Owner: s.self, Key: key, Version: v, Value: value, Deleted: deleted}
	if deleted {
		e.Value = nil
	}
	var evs []Event
	s.applyLocked(o, e, &evs, "")
	s.emit(evs)
	return e, true, nil
}

// applyLocked stores e if it is newer than what o holds, and appends the
// view's change to evs. It reports whether anything was stored.
func (s *store) applyLocked(o *owner, e Entry, evs *[]Event, reason string) bool {
	k := rowKey{e.Table, e.Key}
	cur := o.rows[k]
	if cur != nil && cur.Version >= e.Version {
		return false // duplicate or stale copy
	}
	if cur == nil && e.Version <= o.floor {
		return false // older than a tombstone already collected
	}
	if _, ok := tableSpecs[e.Table]; !ok {
		return false // a table this build does not know: ignore, do not relay
	}
	wasLive := cur != nil && !cur.Deleted
	if wasLive {
		o.hash ^= rowHash(e.Table, e.Key, cur.Version)
		o.live--
	}
	r := &record{Entry: e}
	if e.Deleted {
		r.tombAt = s.now()
	} else {
		o.hash ^= rowHash(e.Table, e.Key, e.Version)
		o.live++
	}
	o.rows[k] = r
	o.max = max(o.max, e.Version)
	if s.clock != nil {
		s.clock.Witness(e.Version)
	}
	if visible(o, e.Table) {
		switch {
		case !e.Deleted:
			*evs = append(*evs, Event{Kind: EventUpsert, Entry: clone(e), Reason: reason})
		case wasLive:
			*evs = append(*evs, Event{Kind: EventDelete, Entry: clone(cur.Entry), Reason: reason})
		}
	}
	return true
}

func clone(e Entry) Entry {
	e.Value = slices.Clone(e.Value)
	return e
}

// merge applies entries of other owners received from the cluster and
// returns those that were new, to be relayed. Entries of this node from
// elsewhere are never applied: this node is the authority on them.
func (s *store) merge(entries []Entry) (fresh []Entry, aboutSelf bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var evs []Event
	for _, e := range entries {
		if e.Owner == s.self {
			aboutSelf = true
			continue
		}
		if s.applyLocked(s.ownerLocked(e.Owner), e, &evs, "") {
			fresh = append(fresh, e)
		}
	}
	s.emit(evs)
	return fresh, aboutSelf
}

// applySnapshot merges a snapshot; a full one also drops rows of the owner
// that the sender no longer has.
func (s *store) applySnapshot(sn snapshot) (fresh []Entry) {
	if sn.Owner == s.self {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ownerLocked(sn.Owner)
	var evs []Event
	reason := ""
	if sn.Full {
		reason = ReasonResync
	}
	// Only the owner knows which of its rows exist: another node's full
	// copy may lack rows it missed, so it is merged, never used to remove
	// (and its floor is not taken over, which would refuse those rows).
	authoritative := sn.Full && sn.From == sn.Owner
	in := make(map[rowKey]bool, len(sn.Entries))
	for _, we := range sn.Entries {
		e := fromWire(we)
		if e.Owner != sn.Owner {
			continue // a snapshot speaks for one owner only
		}
		in[rowKey{e.Table, e.Key}] = true
		if s.applyLocked(o, e, &evs, reason) {
			fresh = append(fresh, e)
		}
	}
	if authoritative {
		for k, r := range o.rows {
			if in[k] || r.Version > sn.Max {
				continue
			}
			// The owner's copy no longer has it: a tombstone at its own
			// version keeps a late copy of that version from coming back.
			s.tombstoneLocked(o, k, r, &evs, reason)
		}
		o.floor = max(o.floor, sn.Floor)
		o.max = max(o.max, sn.Max)
	}
	s.emit(evs)
	return fresh
}

// tombstoneLocked turns a live row into a tombstone at its own version (the
// owner's delete was collected before this node saw it).
func (s *store) tombstoneLocked(o *owner, k rowKey, r *record, evs *[]Event, reason string) {
	if r.Deleted {
		return
	}
	o.hash ^= rowHash(r.Table, r.Key, r.Version)
	o.live--
	if visible(o, r.Table) {
		*evs = append(*evs, Event{Kind: EventDelete, Entry: clone(r.Entry), Reason: reason})
	}
	o.rows[k] = &record{Entry: Entry{Table: r.Table, Owner: r.Owner, Key: r.Key, Version: r.Version, Deleted: true}, tombAt: s.now()}
}

// setStatus records what memberlist says of an owner; entries of
// withdrawing tables leave or rejoin the view with it.
func (s *store) setStatus(name string, st ownerStatus) {
	if name == s.self {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ownerLocked(name)
	if o.status == st {
		return
	}
	wasAlive := o.status == ownerAlive
	o.status, o.since = st, s.now()
	if wasAlive == (st == ownerAlive) {
		return
	}
	var evs []Event
	for _, r := range o.rows {
		if r.Deleted || !tableSpecs[r.Table].withdraw {
			continue
		}
		if st == ownerAlive {
			evs = append(evs, Event{Kind: EventUpsert, Entry: clone(r.Entry), Reason: ReasonOwnerBack})
		} else {
			reason := ReasonOwnerDead
			if st == ownerLeft {
				reason = ReasonOwnerLeft
			}
			evs = append(evs, Event{Kind: EventDelete, Entry: clone(r.Entry), Reason: reason})
		}
	}
	sortEvents(evs)
	s.emit(evs)
}

func sortEvents(evs []Event) {
	sort.Slice(evs, func(i, j int) bool {
		a, b := evs[i].Entry, evs[j].Entry
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Key < b.Key
	})
}

// digest summarises the store for push-pull.
func (s *store) digest() digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := digest{From: s.self, Owners: make([]ownerDigest, 0, len(s.owners))}
	for name, o := range s.owners {
		d.Owners = append(d.Owners, ownerDigest{Owner: name, Max: max(o.max, o.floor), Hash: o.hash, Live: o.live})
	}
	sort.Slice(d.Owners, func(i, j int) bool { return d.Owners[i].Owner < d.Owners[j].Owner })
	return d
}

// compare reads a peer's digest: what to pull from it, and whether its
// copy of this node's own entries differs from the original (then this
// node sends it a full snapshot of itself).
func (s *store) compare(d digest) (pull []pullItem, selfDiffers bool, selfBehind uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, od := range d.Owners {
		if od.Owner == s.self {
			me := s.owners[s.self]
			if od.Max != me.max || od.Hash != me.hash || od.Live != me.live {
				selfDiffers = true
			}
			if od.Max > me.max {
				selfBehind = od.Max // this node's clock was lost: it must write past it
			}
			continue
		}
		o := s.owners[od.Owner]
		have := uint64(0)
		if o != nil {
			have = max(o.max, o.floor)
		}
		switch {
		case od.Max > have:
			pull = append(pull, pullItem{Owner: od.Owner, Since: have})
		case o != nil && od.Max == have && (od.Hash != o.hash || od.Live != o.live):
			// Same newest version, other rows: one side missed an entry
			// below it (lost while the cluster formed). Both sides pull
			// the other's whole copy and keep what is newer.
			pull = append(pull, pullItem{Owner: od.Owner, Since: 0})
		}
	}
	return pull, selfDiffers, selfBehind
}

// snapshotFor answers a pull: entries of the owner newer than since, or
// all of them when tombstones the puller may have missed were collected.
func (s *store) snapshotFor(ownerName string, since uint64) (snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.owners[ownerName]
	if o == nil {
		return snapshot{}, false
	}
	sn := snapshot{From: s.self, Owner: ownerName, Max: max(o.max, o.floor), Floor: o.floor}
	sn.Full = since < o.floor || since == 0
	for _, r := range o.rows {
		if sn.Full || r.Version > since {
			sn.Entries = append(sn.Entries, toWire(r.Entry))
		}
	}
	sort.Slice(sn.Entries, func(i, j int) bool { return sn.Entries[i].Version < sn.Entries[j].Version })
	return sn, true
}

// collect removes tombstones older than ttl, and the rows of owners gone
// longer than ownerTTL from withdrawing tables.
func (s *store) collect(ttl, ownerTTL time.Duration) (tombs, rows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for name, o := range s.owners {
		gone := name != s.self && o.status != ownerAlive && now.Sub(o.since) > ownerTTL
		for k, r := range o.rows {
			switch {
			case r.Deleted && now.Sub(r.tombAt) > ttl:
				o.floor = max(o.floor, r.Version)
				delete(o.rows, k)
				tombs++
			case gone && tableSpecs[r.Table].withdraw:
				if !r.Deleted {
					o.hash ^= rowHash(r.Table, r.Key, r.Version)
					o.live--
				}
				o.floor = max(o.floor, r.Version)
				delete(o.rows, k)
				rows++
			}
		}
	}
	return tombs, rows
}

// list returns a table's entries in the view: live rows, with their state.
func (s *store) list(table string, withdrawn bool) []ViewEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ViewEntry
	for _, o := range s.owners {
		for _, r := range o.rows {
			if r.Table != table || r.Deleted {
				continue
			}
			st := StateLive
			if !visible(o, table) {
				if !withdrawn {
					continue
				}
				st = StateWithdrawn
			}
			out = append(out, ViewEntry{Entry: clone(r.Entry), State: st})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Owner != out[j].Owner {
			return out[i].Owner < out[j].Owner
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// ViewEntry is an entry with what this node makes of it.
type ViewEntry struct {
	Entry
	State EntryState
}

// counts returns the number of visible rows per owner in a table
// (withdrawn ones are not counted).
func (s *store) counts(table string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for name, o := range s.owners {
		if !visible(o, table) {
			continue
		}
		for _, r := range o.rows {
			if r.Table == table && !r.Deleted {
				out[name]++
			}
		}
	}
	return out
}

// ownRows returns this node's live entries of a table, by key.
func (s *store) ownRows(table string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for _, r := range s.owners[s.self].rows {
		if r.Table == table && !r.Deleted {
			out[r.Key] = slices.Clone(r.Value)
		}
	}
	return out
}

// rewriteOwn gives every own row a new version: after this node's clock
// was found behind what the cluster holds of it.
func (s *store) rewriteOwn() ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.owners[s.self]
	var out []Entry
	var evs []Event
	for _, r := range o.rows {
		v, err := s.clock.Tick()
		if err != nil {
			return out, err
		}
		e := r.Entry
		e.Version = v
		s.applyLocked(o, e, &evs, "")
		out = append(out, e)
	}
	return out, nil
}

func toWire(e Entry) wireEntry {
	return wireEntry{Table: e.Table, Owner: e.Owner, Key: e.Key, Version: e.Version, Deleted: e.Deleted, Value: e.Value}
}

func fromWire(w wireEntry) Entry {
	return Entry{Table: w.Table, Owner: w.Owner, Key: w.Key, Version: w.Version, Deleted: w.Deleted, Value: w.Value}
}
