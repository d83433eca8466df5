package daemon

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netd-dev/netd/api"

	bolt "go.etcd.io/bbolt"
)

// Bucket names of the state database.
var (
	bucketNetworks   = []byte("networks")
	bucketEndpoints  = []byte("endpoints")
	bucketContainers = []byte("containers")
	// bucketSandboxes records every netns the daemon creates before it is
	// created, so reconcile removes only namespaces this daemon made.
	bucketSandboxes = []byte("sandboxes")
)

// NetworkRecord is a network as stored: enough to rebuild its
// dataplane.NetworkConfig and its api.Network.
type NetworkRecord struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"`
	Driver     string                `json:"driver"`
	Created    time.Time             `json:"created"`
	Builtin    bool                  `json:"builtin,omitempty"`
	Subnet     netip.Prefix          `json:"subnet,omitzero"`
	IPRange    netip.Prefix          `json:"ipRange,omitzero"`
	Gateway    netip.Addr            `json:"gateway,omitzero"`
	Aux        map[string]netip.Addr `json:"aux,omitempty"`
	UserSubnet bool                  `json:"userSubnet,omitempty"` // subnet given by the user: --ip allowed
	Options    map[string]string     `json:"options,omitempty"`
	Labels     map[string]string     `json:"labels,omitempty"`
	Internal   bool                  `json:"internal,omitempty"`
	Attachable bool                  `json:"attachable,omitempty"`
	Index      uint32                `json:"index"`
	// DriverState is the driver's own settings (ValidateNetwork's result),
	// opaque here.
	DriverState map[string]string `json:"driverState,omitempty"`
	// AutoGateway: netd picked the gateway of a user's subnet; inspect does not show it, as Docker.
	AutoGateway bool `json:"autoGateway,omitempty"`
	// Origin is the node that created a cluster-wide network this host
	// adopted from the gossip table; empty for networks created here.
	Origin string `json:"origin,omitempty"`
}

// EndpointRecord is one attachment of a container to a network.
type EndpointRecord struct {
	ID          string       `json:"id"`
	NetworkID   string       `json:"networkId"`
	ContainerID string       `json:"containerId"`
	IfName      string       `json:"ifName,omitempty"`
	HostIfName  string       `json:"hostIfName,omitempty"`
	MAC         string       `json:"mac,omitempty"`
	Addr        netip.Prefix `json:"addr,omitzero"`
	DefaultGW   bool         `json:"defaultGw,omitempty"`
	Aliases     []string     `json:"aliases,omitempty"`
	Created     time.Time    `json:"created"`
}

// ContainerRecord is a sandbox: a named network namespace.
type ContainerRecord struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Created     time.Time         `json:"created"`
	Labels      map[string]string `json:"labels,omitempty"`
	SandboxID   string            `json:"sandboxId"`
	Sandbox     string            `json:"sandbox"` // netns name, <node>-<name>
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	// PortBindings are the -p options as asked; Ports what they got.
	PortBindings api.PortMap  `json:"portBindings,omitempty"`
	Ports        []PortRecord `json:"ports,omitempty"`
}

// PortRecord is one published port as allocated.
type PortRecord struct {
	Proto         string     `json:"proto"`
	HostIP        netip.Addr `json:"hostIp"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
}

// State is the whole content of the store, read once at start-up.
type State struct {
	Networks   []*NetworkRecord
	Endpoints  []*EndpointRecord
	Containers []*ContainerRecord
	Sandboxes  []string
	// Legacy holds, by network ID, records an older netd wrote with driver
	// settings as fields of their own (no DriverState): for the driver's
	// LegacyStateDecoder.
	Legacy map[string][]byte
	// Bad lists the records that do not decode: left out of the others,
	// kept untouched in the file.
	Bad []BadRecord
}

// BadRecord is a stored record that does not decode. What could be read
// of it identifies the kernel objects that may be its own.
type BadRecord struct {
	Bucket, Key string
	Err         error
	// Salvaged from the raw bytes when they are at least JSON; "" if not.
	Name, Sandbox, NetworkID, ContainerID, Addr, MAC string
}

func (b BadRecord) String() string {
	s := b.Bucket + "/" + b.Key
	if b.Name != "" {
		s += fmt.Sprintf(" (name %q)", b.Name)
	}
	return s
}

// Store is the bbolt state database; every mutation is one transaction.
type Store struct {
	db    *bolt.DB
	path  string
	log   *slog.Logger
	check time.Duration
	// bad holds bucket/key of the records that did not decode at open:
	// writes to them are refused so that none is lost silently.
	bad     map[string]bool
	badList []BadRecord
	held    []*EndpointRecord // see heldEndpoints
	// clean: checked and fully decoded at open, so Close may refresh the
	// last good copy.
	clean bool

	// committed is called after every successful Update (the cluster
	// publisher's kick); it must not block.
	committed atomic.Pointer[func()]
	// hooks are more such functions (the embedded DNS's kick).
	hooksMu sync.Mutex
	hooks   atomic.Pointer[[]*func()]

	mu       sync.Mutex
	txid     uint64 // last id written to the txid file
	txidFile *os.File
	closed   bool
}

// StoreOptions tune OpenStoreWith; the zero value is what OpenStore uses.
type StoreOptions struct {
	Logger       *slog.Logger
	CheckTimeout time.Duration // 0: DefaultCheckTimeout
}

// OpenStore opens (creating if needed) the database file at path.
func OpenStore(path string) (*Store, error) { return OpenStoreWith(path, StoreOptions{}) }

// OpenStoreWith opens the database at path after checking it: a damaged
// file, or one older than the last transaction netd recorded, is refused
// with a *DamagedError naming the recovery command, never a panic. A
// healthy file is copied to <path>.last-good.
func OpenStoreWith(path string, opts StoreOptions) (*Store, error) {
	s := &Store{path: path, log: opts.Logger, check: cmp.Or(opts.CheckTimeout, DefaultCheckTimeout), bad: map[string]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.verify(); err != nil {
		return nil, err
	}
	var created uint64
	err := guarded(path, s.check, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("open state database %s: %w", path, err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			created = uint64(tx.ID())
			for _, b := range [][]byte{bucketNetworks, bucketEndpoints, bucketContainers, bucketSandboxes} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return fmt.Errorf("create bucket %s in %s: %w", b, path, err)
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return err
		}
		s.db = db
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.recordTxID(created, true)
	st, err := s.Load()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.badList = st.Bad
	s.held = heldEndpoints(st)
	for _, b := range st.Bad {
		s.bad[b.Bucket+"/"+b.Key] = true
	}
	if len(st.Bad) > 0 {
		s.log.Warn("state database has records that do not decode: the last good copy is not refreshed",
			"db", path, "last_good", path+lastGoodSuffix, "records", len(st.Bad))
		return s, nil
	}
	s.clean = true
	if err := s.saveLastGood(false); err != nil {
		s.log.Warn("cannot save the last good copy of the state database", "err", err)
	}
	return s, nil
}

// verify checks the file before bbolt opens it for writing, and compares
// its transaction id with the one recorded beside it.
func (s *Store) verify() error {
	recorded, err := readTxID(s.path + txidSuffix)
	if err != nil {
		s.log.Warn("ignoring unreadable transaction record", "file", s.path+txidSuffix, "err", err)
	}
	fi, err := os.Stat(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat state database %s: %w", s.path, err)
	}
	if err != nil || fi.Size() == 0 {
		if recorded > 0 {
			return &DamagedError{Path: s.path, RolledBack: true, Reason: fmt.Sprintf(
				"the file is missing or empty, but netd had committed transaction %d to it (recorded in %s)", recorded, s.path+txidSuffix)}
		}
		return nil
	}
	h, err := readHeader(s.path)
	if err != nil {
		return err
	}
	txid, err := checkFile(s.path, s.check, !h.oneValid)
	if err != nil {
		return err
	}
	if txid < recorded {
		return &DamagedError{Path: s.path, RolledBack: true, Reason: fmt.Sprintf(
			"it holds transaction %d, but netd had committed transaction %d (recorded in %s): "+
				"a damaged header page makes bbolt fall back to an older one without a word, and "+
				"starting on it could delete what the lost transactions created as stale", txid, recorded, s.path+txidSuffix)}
	}
	if h.oneValid {
		if err := checkRepairedCopy(s.path, s.check); err != nil {
			return err
		}
		// A crash during a commit leaves this too; nothing committed is
		// lost when the record agrees, and the next commit rewrites it.
		s.log.Warn("one of the two header pages of the state database is invalid; using the other",
			"db", s.path, "txid", txid, "recorded_txid", recorded)
	}
	return nil
}

// Undecodable lists the records that did not decode at open.
func (s *Store) Undecodable() []BadRecord { return slices.Clone(s.badList) }

// Close records the last transaction id, refreshes the last good copy
// when the database was healthy, and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.clean {
		if err := s.saveLastGood(true); err != nil {
			s.log.Warn("cannot refresh the last good copy of the state database at stop", "err", err)
		}
	}
	var txid uint64
	if err := s.db.View(func(tx *bolt.Tx) error { txid = uint64(tx.ID()); return nil }); err == nil {
		s.recordTxID(txid, true)
	}
	if s.txidFile != nil {
		s.txidFile.Close()
	}
	return s.db.Close()
}

// Load reads every record. A record that does not decode is listed in
// State.Bad; only an unreadable bucket is an error.
func (s *Store) Load() (*State, error) {
	st := &State{}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNetworks, bucketEndpoints, bucketContainers, bucketSandboxes} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bucket %s is missing", b)
			}
		}
		if err := loadBucket(tx, bucketNetworks, &st.Networks, &st.Bad); err != nil {
			return err
		}
		if err := loadLegacy(tx, st); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketEndpoints, &st.Endpoints, &st.Bad); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketContainers, &st.Containers, &st.Bad); err != nil {
			return err
		}
		return tx.Bucket(bucketSandboxes).ForEach(func(k, _ []byte) error {
			st.Sandboxes = append(st.Sandboxes, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state from %s: %w", s.path, err)
	}
	return st, nil
}

func loadBucket[T any](tx *bolt.Tx, name []byte, out *[]*T, bad *[]BadRecord) error {
	return tx.Bucket(name).ForEach(func(k, v []byte) error {
		rec := new(T)
		if err := json.Unmarshal(v, rec); err != nil {
			*bad = append(*bad, salvage(string(name), string(k), v, err))
			return nil
		}
		*out = append(*out, rec)
		return nil
	})
}

// salvage reads what it can of an undecodable record: the string fields
// that name it and its kernel objects.
func salvage(bucket, key string, v []byte, err error) BadRecord {
	b := BadRecord{Bucket: bucket, Key: key, Err: err}
	var fields map[string]json.RawMessage
	if json.Unmarshal(v, &fields) != nil {
		return b
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(fields[k], &s)
		return s
	}
	b.Name, b.Sandbox, b.NetworkID, b.ContainerID = str("name"), str("sandbox"), str("networkId"), str("containerId")
	b.Addr, b.MAC = str("addr"), str("mac")
	return b
}

// ownedByUndecodable says whether ep's network or container record is one
// that did not decode.
func ownedByUndecodable(st *State, ep *EndpointRecord) bool {
	for _, b := range st.Bad {
		if (b.Bucket == string(bucketNetworks) && b.Key == ep.NetworkID) ||
			(b.Bucket == string(bucketContainers) && b.Key == ep.ContainerID) {
			return true
		}
	}
	return false
}

// heldEndpoints lists the endpoints whose interfaces and addresses may
// still be in use by an undecodable record: those of its network or
// container, and the undecodable endpoint records themselves, as far as
// they could be read.
func heldEndpoints(st *State) []*EndpointRecord {
	var out []*EndpointRecord
	for _, ep := range st.Endpoints {
		if ownedByUndecodable(st, ep) {
			out = append(out, ep)
		}
	}
	for _, b := range st.Bad {
		if b.Bucket != string(bucketEndpoints) {
			continue
		}
		ep := &EndpointRecord{ID: b.Key, NetworkID: b.NetworkID, ContainerID: b.ContainerID, MAC: b.MAC}
		ep.Addr, _ = netip.ParsePrefix(b.Addr)
		if len(b.Key) >= 12 {
			ep.HostIfName = "nd" + b.Key[:12] // planEndpoint's naming
		}
		out = append(out, ep)
	}
	return out
}

// loadLegacy finds network records without DriverState that carry fields
// NetworkRecord no longer has.
func loadLegacy(tx *bolt.Tx, st *State) error {
	b := tx.Bucket(bucketNetworks)
	for _, n := range st.Networks {
		if n.DriverState != nil {
			continue
		}
		raw := b.Get([]byte(n.ID))
		var have, known map[string]json.RawMessage
		if err := json.Unmarshal(raw, &have); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucketNetworks, n.ID, err)
		}
		again, err := json.Marshal(n)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(again, &known); err != nil {
			return err
		}
		for k := range have {
			if _, ok := known[k]; !ok {
				if st.Legacy == nil {
					st.Legacy = map[string][]byte{}
				}
				st.Legacy[n.ID] = bytes.Clone(raw) // raw is only valid in the transaction
				break
			}
		}
	}
	return nil
}

// Update runs fn in one read-write transaction: all its changes are
// committed together or not at all.
func (s *Store) Update(fn func(tx *StoreTx) error) error {
	var txid uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		txid = uint64(tx.ID())
		return fn(&StoreTx{tx: tx, bad: s.bad})
	})
	if err == nil {
		// After the commit is on disk: the record is never ahead of the file.
		s.recordTxID(txid, false)
		if f := s.committed.Load(); f != nil {
			(*f)()
		}
		if hs := s.hooks.Load(); hs != nil {
			for _, f := range *hs {
				(*f)()
			}
		}
	}
	return err
}

// OnCommit sets the function called after each committed Update.
func (s *Store) OnCommit(f func()) { s.committed.Store(&f) }

// AddCommitHook adds f to the functions called after each committed Update
// (beside OnCommit's); f must not block. The returned function removes it.
func (s *Store) AddCommitHook(f func()) (remove func()) {
	p := &f
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	var hs []*func()
	if old := s.hooks.Load(); old != nil {
		hs = slices.Clone(*old)
	}
	hs = append(hs, p)
	s.hooks.Store(&hs)
	return func() {
		s.hooksMu.Lock()
		defer s.hooksMu.Unlock()
		hs := slices.DeleteFunc(slices.Clone(*s.hooks.Load()), func(q *func()) bool { return q == p })
		s.hooks.Store(&hs)
	}
}

// StoreTx is a write transaction of the Store.
type StoreTx struct {
	tx  *bolt.Tx
	bad map[string]bool
}

// guard refuses to replace or delete a record that did not decode.
func (t *StoreTx) guard(bucket []byte, key string) error {
	if t.bad[string(bucket)+"/"+key] {
		return errConflict("record %s/%s of the state database did not decode at start-up: netd keeps it untouched until it is repaired or restored", bucket, key)
	}
	return nil
}

func (t *StoreTx) put(bucket []byte, key string, v any) error {
	if err := t.guard(bucket, key); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	if err := t.tx.Bucket(bucket).Put([]byte(key), data); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t *StoreTx) del(bucket []byte, key string) error {
	if err := t.guard(bucket, key); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucket).Delete([]byte(key)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutNetwork writes a network record.
func (t *StoreTx) PutNetwork(n *NetworkRecord) error {
	if n.ID == "" {
		return errors.New("put network: empty ID")
	}
	return t.put(bucketNetworks, n.ID, n)
}

// DeleteNetwork removes a network record.
func (t *StoreTx) DeleteNetwork(id string) error { return t.del(bucketNetworks, id) }

// PutEndpoint writes an endpoint record.
func (t *StoreTx) PutEndpoint(ep *EndpointRecord) error {
	if ep.ID == "" {
		return errors.New("put endpoint: empty ID")
	}
	return t.put(bucketEndpoints, ep.ID, ep)
}

// DeleteEndpoint removes an endpoint record.
func (t *StoreTx) DeleteEndpoint(id string) error { return t.del(bucketEndpoints, id) }

// PutContainer writes a container record.
func (t *StoreTx) PutContainer(c *ContainerRecord) error {
	if c.ID == "" {
		return errors.New("put container: empty ID")
	}
	return t.put(bucketContainers, c.ID, c)
}

// DeleteContainer removes a container record.
func (t *StoreTx) DeleteContainer(id string) error { return t.del(bucketContainers, id) }

// PutSandbox records a netns name the daemon owns.
func (t *StoreTx) PutSandbox(name string) error {
	if err := t.tx.Bucket(bucketSandboxes).Put([]byte(name), []byte{1}); err != nil {
		return fmt.Errorf("put sandbox %s: %w", name, err)
	}
	return nil
}

// DeleteSandbox forgets a netns name.
func (t *StoreTx) DeleteSandbox(name string) error { return t.del(bucketSandboxes, name) }
