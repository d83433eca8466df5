package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

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
}

// Store is the bbolt state database; every mutation is one transaction.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (creating if needed) the database file at path.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketNetworks, bucketEndpoints, bucketContainers, bucketSandboxes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database file.
func (s *Store) Close() error {
	return s.db.Close()
}

// Load reads every record.
func (s *Store) Load() (*State, error) {
	st := &State{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := loadBucket(tx, bucketNetworks, &st.Networks); err != nil {
			return err
		}
		if err := loadLegacy(tx, st); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketEndpoints, &st.Endpoints); err != nil {
			return err
		}
		if err := loadBucket(tx, bucketContainers, &st.Containers); err != nil {
			return err
		}
		return tx.Bucket(bucketSandboxes).ForEach(func(k, _ []byte) error {
			st.Sandboxes = append(st.Sandboxes, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return st, nil
}

func loadBucket[T any](tx *bolt.Tx, name []byte, out *[]*T) error {
	return tx.Bucket(name).ForEach(func(k, v []byte) error {
		rec := new(T)
		if err := json.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("decode %s/%s: %w", name, k, err)
		}
		*out = append(*out, rec)
		return nil
	})
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
	return s.db.Update(func(tx *bolt.Tx) error {
		return fn(&StoreTx{tx: tx})
	})
}

// StoreTx is a write transaction of the Store.
type StoreTx struct {
	tx *bolt.Tx
}

func (t *StoreTx) put(bucket []byte, key string, v any) error {
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
