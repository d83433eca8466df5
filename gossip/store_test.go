package gossip

import (
	"fmt"
	"testing"
	"time"
)

type fakeTime struct{ t time.Time }

func (f *fakeTime) now() time.Time { return f.t }

func newTestStore(t *testing.T, self string) (*store, *[]Event, *fakeTime) {
	t.Helper()
	clock, err := openClock("")
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeTime{t: time.Unix(1_000_000, 0)}
	var evs []Event
	s := newStore(self, clock, ft.now, func(e []Event) { evs = append(evs, e...) })
	return s, &evs, ft
}

func ep(owner, key string, v uint64, val string) Entry {
	return Entry{Table: TableEndpoints, Owner: owner, Key: key, Version: v, Value: []byte(val)}
}

func tomb(owner, key string, v uint64) Entry {
	return Entry{Table: TableEndpoints, Owner: owner, Key: key, Version: v, Deleted: true}
}

func liveKeys(s *store, table string) []string {
	var out []string
	for _, e := range s.list(table, false) {
		out = append(out, e.Owner+"/"+e.Key+"="+string(e.Value))
	}
	return out
}

func TestStoreNeverResurrects(t *testing.T) {
	s, evs, ft := newTestStore(t, "a")
	s.setStatus("b", ownerAlive)
	s.merge([]Entry{ep("b", "e1", 5, "x")})
	s.merge([]Entry{tomb("b", "e1", 6)})
	// Late and duplicate copies of the write, in any order.
	s.merge([]Entry{ep("b", "e1", 5, "x"), ep("b", "e1", 4, "old"), tomb("b", "e1", 6)})
	if got := liveKeys(s, TableEndpoints); len(got) != 0 {
		t.Fatalf("deleted entry came back: %v", got)
	}
	// After the tombstone is collected, the floor still refuses it.
	ft.t = ft.t.Add(31 * time.Minute)
	if tombs, _ := s.collect(30*time.Minute, 24*time.Hour); tombs != 1 {
		t.Fatalf("collected %d tombstones, want 1", tombs)
	}
	s.merge([]Entry{ep("b", "e1", 5, "x")})
	if got := liveKeys(s, TableEndpoints); len(got) != 0 {
		t.Fatalf("entry older than a collected tombstone came back: %v", got)
	}
	// A newer write by the owner is accepted.
	s.merge([]Entry{ep("b", "e1", 7, "y")})
	if got := liveKeys(s, TableEndpoints); len(got) != 1 || got[0] != "b/e1=y" {
		t.Fatalf("newer write: %v", got)
	}
	kinds := ""
	for _, e := range *evs {
		kinds += fmt.Sprint(e.Kind)
	}
	if kinds != "121" { // upsert, delete, upsert
		t.Fatalf("events %q, want upsert delete upsert", kinds)
	}
}

func TestStoreOwnerOnly(t *testing.T) {
	s, _, _ := newTestStore(t, "a")
	s.setStatus("b", ownerAlive)
	s.setStatus("c", ownerAlive)
	if _, _, err := s.put(TableEndpoints, "mine", []byte("1"), false); err != nil {
		t.Fatal(err)
	}
	s.merge([]Entry{ep("b", "e1", 3, "b's")})
	// c cannot delete b's entry or this node's: a tombstone only ever
	// names its own owner's row.
	s.merge([]Entry{tomb("c", "e1", 100), tomb("c", "mine", 100)})
	// Nobody else can write this node's rows either.
	if _, self := s.merge([]Entry{tomb("a", "mine", 100), ep("a", "forged", 100, "z")}); !self {
		t.Fatal("entries naming this node were not reported")
	}
	got := liveKeys(s, TableEndpoints)
	if len(got) != 2 || got[0] != "a/mine=1" || got[1] != "b/e1=b's" {
		t.Fatalf("view %v, want a/mine and b/e1 untouched", got)
	}
}

func TestStoreWithdrawAndRestore(t *testing.T) {
	s, evs, _ := newTestStore(t, "a")
	s.setStatus("b", ownerAlive)
	s.merge([]Entry{ep("b", "e1", 1, "x"), {Table: TableNetworks, Owner: "b", Key: "n1", Version: 2, Value: []byte("net")}})
	*evs = nil
	s.setStatus("b", ownerDead)
	if got := liveKeys(s, TableEndpoints); len(got) != 0 {
		t.Fatalf("dead owner's endpoints still visible: %v", got)
	}
	if got := liveKeys(s, TableNetworks); len(got) != 1 {
		t.Fatalf("networks of a dead owner must stay: %v", got)
	}
	if len(*evs) != 1 || (*evs)[0].Kind != EventDelete || (*evs)[0].Reason != ReasonOwnerDead {
		t.Fatalf("events on death: %+v", *evs)
	}
	if all := s.list(TableEndpoints, true); len(all) != 1 || all[0].State != StateWithdrawn {
		t.Fatalf("withdrawn entry not kept: %+v", all)
	}
	*evs = nil
	s.setStatus("b", ownerAlive)
	if got := liveKeys(s, TableEndpoints); len(got) != 1 {
		t.Fatalf("endpoint not restored: %v", got)
	}
	if len(*evs) != 1 || (*evs)[0].Kind != EventUpsert || (*evs)[0].Reason != ReasonOwnerBack {
		t.Fatalf("events on return: %+v", *evs)
	}
}

func TestStoreDigestPullAndFullSnapshot(t *testing.T) {
	a, _, ft := newTestStore(t, "a")
	b, _, _ := newTestStore(t, "b")
	for _, s := range []*store{a, b} {
		s.setStatus("c", ownerAlive)
	}
	a.merge([]Entry{ep("c", "e1", 1, "x"), ep("c", "e2", 2, "y")})
	b.merge([]Entry{ep("c", "e1", 1, "x"), ep("c", "e2", 2, "y")})
	// c deletes e2; a hears it, b is partitioned away. a collects the
	// tombstone before b comes back.
	a.merge([]Entry{tomb("c", "e2", 3), ep("c", "e3", 4, "z")})
	ft.t = ft.t.Add(time.Hour)
	a.collect(30*time.Minute, 24*time.Hour)

	pull, _, _ := b.compare(a.digest())
	if len(pull) != 1 || pull[0].Owner != "c" || pull[0].Since != 2 {
		t.Fatalf("pull %+v, want c since 2", pull)
	}
	sn, ok := a.snapshotFor("c", pull[0].Since)
	if !ok || !sn.Full {
		t.Fatalf("snapshot %+v: want a full one (a tombstone b missed was collected)", sn)
	}
	b.applySnapshot(sn)
	// a is not c: its copy may lack rows it missed, so b merges it (gets
	// e3) but removes nothing on its word.
	if got := liveKeys(b, TableEndpoints); len(got) != 3 || got[2] != "c/e3=z" {
		t.Fatalf("after a's full snapshot b has %v, want c/e1, c/e2 and c/e3", got)
	}
	// The owner's own full copy removes what it no longer has.
	c, _, _ := newTestStore(t, "c")
	c.put(TableEndpoints, "e1", []byte("x"), false)
	c.put(TableEndpoints, "e3", []byte("z"), false)
	own, _ := c.snapshotFor("c", 0)
	b.applySnapshot(own)
	if got := liveKeys(b, TableEndpoints); len(got) != 2 || got[0] != "c/e1=x" || got[1] != "c/e3=z" {
		t.Fatalf("after c's own snapshot b has %v, want c/e1 and c/e3", got)
	}
}

// Same newest version, another row set: each side pulls the other's copy.
func TestStoreEqualMaxDifferentRows(t *testing.T) {
	a, _, _ := newTestStore(t, "a")
	b, _, _ := newTestStore(t, "b")
	b.setStatus("c", ownerAlive)
	a.merge([]Entry{ep("c", "e1", 1, "x"), ep("c", "e2", 2, "y")})
	b.merge([]Entry{ep("c", "e2", 2, "y")}) // missed e1 while the cluster formed
	pull, _, _ := b.compare(a.digest())
	if len(pull) != 1 || pull[0].Since != 0 {
		t.Fatalf("pull %+v, want c since 0", pull)
	}
	sn, _ := a.snapshotFor("c", 0)
	b.applySnapshot(sn)
	if got := liveKeys(b, TableEndpoints); len(got) != 2 {
		t.Fatalf("b has %v, want both rows", got)
	}
	if pull, _, _ := b.compare(a.digest()); len(pull) != 0 {
		t.Fatalf("still pulling after sync: %+v", pull)
	}
}

func TestStoreSelfAuthority(t *testing.T) {
	a, _, _ := newTestStore(t, "a")
	b, _, _ := newTestStore(t, "b")
	b.setStatus("a", ownerAlive)
	e, _, _ := a.put(TableEndpoints, "e1", []byte("1"), false)
	b.merge([]Entry{e, ep("a", "stale", e.Version-0, "left over")})
	// b's copy of a differs (it has a row a does not): a must push itself.
	if _, differs, _ := a.compare(b.digest()); !differs {
		t.Fatal("a did not notice that b's copy of a differs")
	}
	sn, _ := a.snapshotFor("a", 0)
	b.applySnapshot(sn)
	if got := liveKeys(b, TableEndpoints); len(got) != 1 || got[0] != "a/e1=1" {
		t.Fatalf("b has %v, want only a/e1", got)
	}
}

// At 1,000 hosts × 100 endpoints, the push-pull payload (a digest) is
// far below memberlist's 20 MB limit.
func TestDigestSizeAtScale(t *testing.T) {
	s, _, _ := newTestStore(t, "h0000")
	val, err := Marshal(EndpointRecord{NetworkID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NetworkName: "overlay-net", Container: "container-00000", ContainerID: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", MAC: "02:42:0a:00:00:01", Host: "h0000"})
	if err != nil {
		t.Fatal(err)
	}
	var all []Entry
	for h := range 1000 {
		owner := fmt.Sprintf("h%04d", h)
		for e := range 100 {
			all = append(all, Entry{Table: TableEndpoints, Owner: owner, Key: fmt.Sprintf("%064x", h*1000+e), Version: uint64(e + 1), Value: val})
		}
	}
	s.merge(all)
	b, err := encode(msgDigest, s.digest())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 200<<10 {
		t.Fatalf("push-pull state at 1,000 × 100 is %d bytes, want under 200 KB", len(b))
	}
	sn, _ := s.snapshotFor("h0001", 0)
	sb, _ := encode(msgSnapshot, sn)
	t.Logf("digest %d bytes for %d entries; one host's snapshot %d bytes", len(b), len(all), len(sb))
}

func TestRecordsRoundTrip(t *testing.T) {
	in := EndpointRecord{NetworkID: "n", Container: "c1", MAC: "02:00:00:00:00:01", Aliases: []string{"web"}}
	in.IPv4 = mustAddr(t, "10.0.0.2")
	in.VTEP = mustAddr(t, "192.168.1.1")
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out EndpointRecord
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.IPv4 != in.IPv4 || out.VTEP != in.VTEP || out.Container != "c1" || len(out.Aliases) != 1 {
		t.Fatalf("round trip: %+v", out)
	}
	if len(b) > MaxValueSize {
		t.Fatalf("endpoint record is %d bytes", len(b))
	}
}
