//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketPending holds write-ahead intents: a network or endpoint is
// recorded here before its kernel objects are made and leaves it in the
// transaction that stores its record. What a crash (kill -9) leaves behind
// is therefore recorded and removed at the next start, while kernel
// objects with no record at all are never removed without --prune-orphans.
var bucketPending = []byte("pending")

// pendingRecord is one intent: a network, or an endpoint with the
// namespace of its container.
type pendingRecord struct {
	Network  *NetworkRecord  `json:"network,omitempty"`
	Endpoint *EndpointRecord `json:"endpoint,omitempty"`
	Sandbox  string          `json:"sandbox,omitempty"`
}

func (p *pendingRecord) key() string {
	if p.Network != nil {
		return "network/" + p.Network.ID
	}
	return "endpoint/" + p.Endpoint.ID
}

func (t *StoreTx) pendingBucket() (*bolt.Bucket, error) {
	b, err := t.tx.CreateBucketIfNotExists(bucketPending)
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bucketPending, err)
	}
	return b, nil
}

// PutPending records an intent.
func (t *StoreTx) PutPending(p *pendingRecord) error {
	b, err := t.pendingBucket()
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode pending %s: %w", p.key(), err)
	}
	if err := b.Put([]byte(p.key()), data); err != nil {
		return fmt.Errorf("put pending %s: %w", p.key(), err)
	}
	return nil
}

// DeletePending drops an intent (done or undone).
func (t *StoreTx) DeletePending(p *pendingRecord) error {
	b, err := t.pendingBucket()
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(p.key())); err != nil {
		return fmt.Errorf("delete pending %s: %w", p.key(), err)
	}
	return nil
}

// Pending lists the intents left by operations that did not finish.
func (s *Store) Pending() ([]*pendingRecord, error) {
	var out []*pendingRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			p := new(pendingRecord)
			if err := json.Unmarshal(v, p); err != nil || (p.Network == nil) == (p.Endpoint == nil) {
				return fmt.Errorf("decode pending %s: bad record", k)
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// putPending records intents in one transaction.
func (m *Manager) putPending(ps ...*pendingRecord) error {
	return m.store.Update(func(tx *StoreTx) error {
		for _, p := range ps {
			if err := tx.PutPending(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// dropPending forgets intents whose operation was undone; a failure only
// leaves the undo to the next start.
func (m *Manager) dropPending(ps ...*pendingRecord) {
	err := m.store.Update(func(tx *StoreTx) error {
		for _, p := range ps {
			if err := tx.DeletePending(p); err != nil {
				return err
			}
		}
		return nil
	})
	m.undo("forget pending", err)
}

// resolvePending undoes, at start-up, what operations interrupted by a
// crash made in the kernel: their records never landed, their intents did.
func (m *Manager) resolvePending(ctx context.Context) error {
	ps, err := m.store.Pending()
	if err != nil {
		return fmt.Errorf("read pending operations: %w", err)
	}
	pendingNets := map[string]*NetworkRecord{}
	for _, p := range ps {
		if p.Network != nil {
			pendingNets[p.Network.ID] = p.Network
		}
	}
	var errs []error
	// Endpoints first: a network goes only once its ports are gone.
	for _, pass := range []bool{false, true} {
		for _, p := range ps {
			if (p.Network != nil) != pass {
				continue
			}
			if err := m.undoPending(ctx, p, pendingNets); err != nil {
				errs = append(errs, err)
				continue
			}
			m.dropPending(p)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("undo interrupted operations: %v", errs)
	}
	return nil
}

func (m *Manager) undoPending(ctx context.Context, p *pendingRecord, pendingNets map[string]*NetworkRecord) error {
	if n := p.Network; n != nil {
		if m.networks[n.ID] != nil {
			return nil // its record landed after all
		}
		d, err := m.driver(n.Driver)
		if err != nil {
			return err
		}
		m.log.Info("undoing interrupted network create", "network", n.Name)
		return d.DeleteNetwork(ctx, networkConfig(n))
	}
	ep := p.Endpoint
	if m.endpoints[ep.ID] != nil {
		return nil
	}
	n := m.networks[ep.NetworkID]
	if n == nil {
		n = pendingNets[ep.NetworkID]
	}
	if n == nil {
		return nil // its network is gone and took the endpoint's links along
	}
	a, err := m.attachment(n, ep, &ContainerRecord{ID: ep.ContainerID, Sandbox: p.Sandbox})
	if err != nil {
		return err
	}
	m.log.Info("undoing interrupted endpoint create", "endpoint", ep.HostIfName, "network", n.Name)
	return m.unplug(ctx, a)
}
