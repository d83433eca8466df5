//go:build linux

package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
)

func TestStoreRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netd.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	n := &NetworkRecord{
		ID: "n1", Name: "front", Driver: "bridge", Created: created,
		Subnet:     netip.MustParsePrefix("10.1.0.0/16"),
		IPRange:    netip.MustParsePrefix("10.1.2.0/24"),
		Gateway:    netip.MustParseAddr("10.1.0.1"),
		Aux:        map[string]netip.Addr{"router": netip.MustParseAddr("10.1.0.254")},
		UserSubnet: true,
		Options:    map[string]string{"com.docker.network.bridge.name": "brf"},
		Labels:     map[string]string{"team": "a"},
		Internal:   true, Attachable: true, Index: 7,
		DriverState: map[string]string{"bridge": "brf", "mtu": "1400", "icc": "true"},
	}
	bare := &NetworkRecord{ID: "n2", Name: "none", Driver: "null", Created: created, Builtin: true, Index: 2}
	ep := &EndpointRecord{
		ID: "e1", NetworkID: "n1", ContainerID: "c1", IfName: "eth0", HostIfName: "nde1",
		MAC: "02:42:0a:01:02:00", Addr: netip.MustParsePrefix("10.1.2.0/16"), DefaultGW: true,
		Aliases: []string{"web"}, Created: created,
	}
	c := &ContainerRecord{ID: "c1", Name: "web", Created: created, Labels: map[string]string{"x": "y"},
		SandboxID: "s1", Sandbox: "node1-web"}
	err = s.Update(func(tx *StoreTx) error {
		return errors.Join(tx.PutNetwork(n), tx.PutNetwork(bare), tx.PutEndpoint(ep), tx.PutContainer(c), tx.PutSandbox("node1-web"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := &State{
		Networks:   []*NetworkRecord{n, bare},
		Endpoints:  []*EndpointRecord{ep},
		Containers: []*ContainerRecord{c},
		Sandboxes:  []string{"node1-web"},
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", st, want)
	}

	// A failing transaction leaves nothing behind.
	boom := errors.New("boom")
	err = s.Update(func(tx *StoreTx) error {
		if err := tx.DeleteNetwork("n1"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	st, _ = s.Load()
	if len(st.Networks) != 2 {
		t.Fatalf("rolled-back delete removed a network: %d left", len(st.Networks))
	}

	err = s.Update(func(tx *StoreTx) error {
		return errors.Join(tx.DeleteNetwork("n1"), tx.DeleteEndpoint("e1"), tx.DeleteContainer("c1"), tx.DeleteSandbox("node1-web"))
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = s.Load()
	if len(st.Networks) != 1 || len(st.Endpoints)+len(st.Containers)+len(st.Sandboxes) != 0 {
		t.Fatalf("after delete: %+v", st)
	}
}

func TestStoreRejectsEmptyID(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), "netd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *StoreTx) error { return tx.PutNetwork(&NetworkRecord{Name: "x"}) }); err == nil {
		t.Fatal("PutNetwork with empty ID succeeded")
	}
}

// sampleDB writes a database with enough records for branch and several
// leaf pages, closes it and returns its path and what Load gave.
func sampleDB(t *testing.T) (string, *State) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netd.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 40 {
		err := s.Update(func(tx *StoreTx) error {
			id := fmt.Sprintf("%064x", i+1)
			return errors.Join(
				tx.PutNetwork(&NetworkRecord{ID: "n" + id, Name: fmt.Sprintf("net%d", i), Driver: "bridge", Created: created,
					Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", i)), Index: uint32(i + 1),
					Labels: map[string]string{"padding": strings.Repeat("x", 100)}, DriverState: map[string]string{"bridge": "br" + id[:8]}}),
				tx.PutContainer(&ContainerRecord{ID: "c" + id, Name: fmt.Sprintf("ctr%d", i), Created: created, Sandbox: fmt.Sprintf("node1-ctr%d", i)}),
				tx.PutEndpoint(&EndpointRecord{ID: "e" + id, NetworkID: "n" + id, ContainerID: "c" + id, HostIfName: "nd" + id[:12], Created: created}),
				tx.PutSandbox(fmt.Sprintf("node1-ctr%d", i)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, st
}

// damagedCopy puts a copy of the database at path (and its txid record),
// changed by mutate, in a new directory.
func damagedCopy(t *testing.T, path string, mutate func([]byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "netd.db")
	if err := os.WriteFile(dst, mutate(b), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{txidSuffix, lastGoodSuffix} {
		if rec, err := os.ReadFile(path + suffix); err == nil {
			if err := os.WriteFile(dst+suffix, rec, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// wantDamaged fails unless err is a DamagedError whose text names the file
// and the restore command.
func wantDamaged(t *testing.T, what string, path string, err error, rolledBack bool) {
	t.Helper()
	var de *DamagedError
	if !errors.As(err, &de) {
		t.Errorf("%s: error %v (%T), want a DamagedError", what, err, err)
		return
	}
	if de.RolledBack != rolledBack {
		t.Errorf("%s: RolledBack = %v, want %v: %v", what, de.RolledBack, rolledBack, err)
	}
	for _, want := range []string{path, "restore-state --state-dir " + filepath.Dir(path)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error does not name %q:\n%v", what, want, err)
		}
	}
}

// sameRecords compares what two loads hold.
func sameRecords(a, b *State) bool {
	return reflect.DeepEqual(a.Networks, b.Networks) && reflect.DeepEqual(a.Endpoints, b.Endpoints) &&
		reflect.DeepEqual(a.Containers, b.Containers) && reflect.DeepEqual(a.Sandboxes, b.Sandboxes) && len(b.Bad) == 0
}

// loadRecords opens the database at path and returns what it holds; what
// names it when it cannot.
func loadRecords(t *testing.T, what, path string) *State {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatalf("%s: load: %v", what, err)
	}
	return st
}

// TestStoreDamagedFile: truncated, overwritten and zeroed files are refused
// with a DamagedError or, where the damage hit no page in use, load in full;
// never a panic or a fault (which would kill this test binary).
func TestStoreDamagedFile(t *testing.T) {
	path, want := sampleDB(t)
	orig, _ := os.ReadFile(path)
	const pg = 4096
	pages := len(orig) / pg
	if pages < 8 {
		t.Fatalf("sample database has only %d pages", pages)
	}
	h, err := readHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	used := int(h.meta.pgid)

	try := func(what string, mutate func([]byte) []byte) (loaded bool) {
		t.Helper()
		p := damagedCopy(t, path, mutate)
		s, err := OpenStore(p)
		if err != nil {
			wantDamaged(t, what, p, err, false)
			return false
		}
		defer s.Close()
		st, err := s.Load()
		if err != nil || !sameRecords(want, st) {
			t.Errorf("%s: opened but lost records (err %v)", what, err)
		}
		return true
	}

	for _, size := range []int{0, 100, pg, 2 * pg, 3 * pg, used*pg/2 + 100, (used - 1) * pg} {
		if size == 0 {
			continue // an empty file is a new database; see TestStoreMissingDatabase
		}
		if try(fmt.Sprintf("truncated to %d bytes", size), func(b []byte) []byte { return b[:size] }) {
			t.Errorf("truncated to %d of %d bytes: opened", size, len(orig))
		}
	}
	// Growing the file (truncate -s to more) loses nothing.
	if !try("extended", func(b []byte) []byte { return append(b, make([]byte, 4*pg)...) }) {
		t.Error("a file extended with zeros was refused")
	}
	refused := 0
	for p := 2; p < used; p++ {
		for _, kind := range []string{"zeroed", "overwritten"} {
			if !try(fmt.Sprintf("page %d %s", p, kind), func(b []byte) []byte {
				for i := p * pg; i < (p+1)*pg; i++ {
					if kind == "zeroed" {
						b[i] = 0
					} else {
						b[i] = byte(i*131 + 7)
					}
				}
				return b
			}) {
				refused++
			}
		}
	}
	t.Logf("%d pages in use: %d of %d page damages refused, the rest loaded in full", used, refused, 2*(used-2))
	if refused == 0 {
		t.Error("no damaged page was detected")
	}
	if try("both header pages zeroed", func(b []byte) []byte { clear(b[:2*pg]); return b }) {
		t.Error("a file without header pages opened")
	}
	if try("all junk", func(b []byte) []byte {
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		return b
	}) {
		t.Error("a junk file opened")
	}
}

// newestMeta is the page (0 or 1) of the header with the higher txid.
func newestMeta(t *testing.T, b []byte) int {
	t.Helper()
	m0, m1 := parseMeta(b[:4096]), parseMeta(b[4096:8192])
	if !m0.valid || !m1.valid {
		t.Fatal("sample has an invalid header page")
	}
	if m1.txid > m0.txid {
		return 1
	}
	return 0
}

// TestStoreRolledBack: zeroing the newest header page makes bbolt fall back
// to the previous transaction without a word; the recorded txid catches it.
func TestStoreRolledBack(t *testing.T) {
	path, want := sampleDB(t)
	orig, _ := os.ReadFile(path)
	newest := newestMeta(t, orig)
	zeroMeta := func(page int) func([]byte) []byte {
		return func(b []byte) []byte { clear(b[page*4096 : (page+1)*4096]); return b }
	}
	p := damagedCopy(t, path, zeroMeta(newest))
	_, err := OpenStore(p)
	wantDamaged(t, "newest header zeroed", p, err, true)
	if err != nil && !strings.Contains(err.Error(), p+txidSuffix) {
		t.Errorf("rollback error does not say which record to delete for a deliberate replacement:\n%v", err)
	}
	// The older header zeroed: bbolt uses the newest, nothing is lost.
	p = damagedCopy(t, path, zeroMeta(1-newest))
	if !sameRecords(want, loadRecords(t, "older header zeroed", p)) {
		t.Error("older header zeroed: records lost")
	}
	// Without a record (a netd that never wrote one) the rollback cannot be
	// told from a crash during a commit: it opens on the older transaction.
	p = damagedCopy(t, path, zeroMeta(newest))
	os.Remove(p + txidSuffix)
	s, err := OpenStore(p)
	if err != nil {
		t.Fatalf("no txid record: %v", err)
	}
	s.Close()
}

// TestStoreMissingDatabase: a database that vanished while netd had
// recorded transactions is refused; a first start is not.
func TestStoreMissingDatabase(t *testing.T) {
	path, _ := sampleDB(t)
	for _, empty := range []bool{false, true} {
		p := damagedCopy(t, path, func(b []byte) []byte { return b })
		os.Remove(p)
		if empty {
			os.WriteFile(p, nil, 0o600)
		}
		_, err := OpenStore(p)
		wantDamaged(t, fmt.Sprintf("database removed (empty %v)", empty), p, err, true)
	}
	s, err := OpenStore(filepath.Join(t.TempDir(), "netd.db"))
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	s.Close()
}

// TestStoreTxIDRecord: every commit is recorded beside the file, never
// ahead of it.
func TestStoreTxIDRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netd.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if err := s.Update(func(tx *StoreTx) error { return tx.PutSandbox(fmt.Sprint("ns", i)) }); err != nil {
			t.Fatal(err)
		}
		rec, err := readTxID(path + txidSuffix)
		var cur int
		s.db.View(func(tx *bolt.Tx) error { cur = tx.ID(); return nil })
		if err != nil || rec != uint64(cur) {
			t.Fatalf("after commit %d: recorded %d (%v), database at %d", i, rec, err, cur)
		}
	}
	// A failed transaction commits nothing and records nothing.
	before, _ := readTxID(path + txidSuffix)
	s.Update(func(tx *StoreTx) error { return errors.New("boom") })
	if after, _ := readTxID(path + txidSuffix); after != before {
		t.Errorf("failed transaction moved the record from %d to %d", before, after)
	}
}

// TestStoreLastGoodAndRestore: a clean stop leaves a last good copy that
// RestoreState puts back, moving the damaged file aside.
func TestStoreLastGoodAndRestore(t *testing.T) {
	path, want := sampleDB(t)
	dir := filepath.Dir(path)
	good, err := os.ReadFile(path + lastGoodSuffix)
	if err != nil {
		t.Fatalf("no last good copy after a clean stop: %v", err)
	}
	if _, err := checkFile(path+lastGoodSuffix, time.Second, true); err != nil {
		t.Fatalf("last good copy does not check out: %v", err)
	}
	orig, _ := os.ReadFile(path)
	damagedBytes := orig[:3*4096]
	if err := os.WriteFile(path, damagedBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(path)
	wantDamaged(t, "truncated", path, err, false)

	// Not while a daemon holds the state dir.
	unlock, err := lockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreState(dir, time.Now()); err == nil || !strings.Contains(err.Error(), "another netd daemon") {
		t.Errorf("restore with the state dir locked: %v", err)
	}
	unlock()

	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	r, err := RestoreState(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.Damaged != path+".damaged-20250304T050607Z" || r.Problem == "" || r.Networks != 40 || r.Containers != 40 {
		t.Errorf("restore result %+v", r)
	}
	if b, err := os.ReadFile(r.Damaged); err != nil || !bytes.Equal(b, damagedBytes) {
		t.Errorf("damaged file not kept as it was: %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
		t.Error("restored database is not the last good copy")
	}
	if !sameRecords(want, loadRecords(t, "open restored database", path)) {
		t.Error("restored database lost records")
	}

	// A second restore in the same second keeps both moved files.
	r2, err := RestoreState(dir, now)
	if err != nil || r2.Damaged == r.Damaged || r2.Problem != "" {
		t.Errorf("second restore: %+v %v", r2, err)
	}

	// A damaged last good copy changes nothing.
	os.WriteFile(path+lastGoodSuffix, good[:2*4096], 0o600)
	before, _ := os.ReadFile(path)
	if _, err := RestoreState(dir, now); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("restore from a damaged copy: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("failed restore changed the database")
	}
	os.Remove(path + lastGoodSuffix)
	if _, err := RestoreState(dir, now); err == nil || !strings.Contains(err.Error(), "no last good copy") {
		t.Errorf("restore without a copy: %v", err)
	}
}

// putRaw writes raw bytes as a record, as a damaged or foreign writer would.
func putRaw(t *testing.T, path, bucket, key, raw string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put([]byte(key), []byte(raw)) }); err != nil {
		t.Fatal(err)
	}
}

// TestStoreBadRecord: one record that does not decode is listed, the rest
// loads, the record cannot be overwritten or deleted, and the last good
// copy is not replaced by a file holding it.
func TestStoreBadRecord(t *testing.T) {
	path, want := sampleDB(t)
	good, _ := os.ReadFile(path + lastGoodSuffix)
	id := "n" + fmt.Sprintf("%064x", 3)
	putRaw(t, path, "networks", id, `{"id":"`+id+`","name":"net2","subnet":12}`)
	putRaw(t, path, "containers", "cbroken", `{"id":"cbroken","name":"x`)
	s, err := OpenStore(path)
	if err != nil {
		t.Fatalf("one bad record kept the store closed: %v", err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != len(want.Networks)-1 || len(st.Containers) != len(want.Containers) || len(st.Endpoints) != len(want.Endpoints) {
		t.Errorf("loaded %d networks, %d containers, %d endpoints", len(st.Networks), len(st.Containers), len(st.Endpoints))
	}
	bad := s.Undecodable()
	if len(bad) != 2 || bad[0].Key != id || bad[0].Name != "net2" || bad[0].Err == nil || bad[1].Key != "cbroken" || bad[1].Name != "" {
		t.Fatalf("undecodable = %+v", bad)
	}
	if err := s.Update(func(tx *StoreTx) error { return tx.PutNetwork(&NetworkRecord{ID: id, Name: "over"}) }); !IsConflict(err) {
		t.Errorf("overwriting a bad record: %v", err)
	}
	if err := s.Update(func(tx *StoreTx) error { return tx.DeleteContainer("cbroken") }); !IsConflict(err) {
		t.Errorf("deleting a bad record: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + lastGoodSuffix); !bytes.Equal(b, good) {
		t.Error("the last good copy was replaced by a database with bad records")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("containers")).Get([]byte("cbroken")); string(v) != `{"id":"cbroken","name":"x` {
			t.Errorf("bad record changed: %q", v)
		}
		return nil
	})
}

// TestUndecodableContainerKeepsNetns: reconcile neither removes nor forgets
// a recorded netns that may be an undecodable container's, nor does a new
// container of that name take it over; everything else reconciles.
func TestUndecodableContainerKeepsNetns(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createCtr(t, "web")
	bad := e.createCtr(t, "db")
	e.store.Close()
	putRaw(t, e.path, "containers", bad, `{"id":"`+bad+`","name":"db","created":"yesterday"}`)
	e.open(t)
	if _, err := e.m.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.sb.ns["node1-db"]; !ok {
		t.Error("netns of the undecodable container was removed")
	}
	if e.sb.ns["node1-web"] == "" {
		t.Error("netns of web is gone")
	}
	if st := e.stored(t); !slices.Contains(st.Sandboxes, "node1-db") {
		t.Errorf("netns record of the undecodable container forgotten: %v", st.Sandboxes)
	}
	if _, err := e.m.CreateContainer(ctx, api.ContainerCreateRequest{Name: "db"}); !IsConflict(err) {
		t.Errorf("new container db over the undecodable one's netns: %v", err)
	}
	if _, ok := e.sb.ns["node1-db"]; !ok {
		t.Error("create db removed the undecodable container's netns")
	}
	if len(e.m.Undecodable()) != 1 {
		t.Errorf("undecodable = %v", e.m.Undecodable())
	}
	// Its address stays taken for allocation.
	br, _ := e.m.InspectNetwork("bridge")
	if held := e.m.HeldEndpoints(br.ID); len(held) != 1 || held[0].ContainerID != bad || !held[0].Addr.IsValid() {
		t.Errorf("held endpoints on bridge = %+v", held)
	}
	// The rest serves.
	e.createCtr(t, "app")
}

// TestGuarded: a memory fault, a panic and a hang in the guarded function
// all come back as a DamagedError instead of killing the process.
func TestGuarded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var sink byte
	cases := map[string]func() error{
		"fault": func() error { sink = mem[4096]; return nil }, // SIGBUS: past the end of the file
		"panic": func() error { panic("assertion failed") },
		"hang":  func() error { time.Sleep(time.Hour); return nil },
	}
	for name, fn := range cases {
		var de *DamagedError
		if err := guarded(path, 200*time.Millisecond, fn); !errors.As(err, &de) {
			t.Errorf("%s: %v, want a DamagedError", name, err)
		}
	}
	_ = sink
}
