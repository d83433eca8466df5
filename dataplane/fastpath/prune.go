//go:build linux

package fastpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Prune forgets everything pinned that this process has not brought up
// since it started: map entries of veths and networks that are gone, and
// link pins of interfaces that no longer carry an endpoint. The daemon calls
// it once, after start-up reconcile re-programmed every live endpoint, so a
// stale entry can never redirect to an ifindex the kernel hands out again.
// keep names the host-side interfaces (name -> ifindex) of endpoints that
// still exist but have no record (orphans, kept until pruned): their
// entries, attachments and networks stay, so they keep their anti-spoofing.
func (e *EBPF) Prune(keep map[string]int) error {
	e.mu.Lock()
	defer e.mu.Unlock()

	liveIf := make(map[uint32]bool, len(e.eps)+len(keep))
	for _, ep := range e.eps {
		liveIf[uint32(ep.ifindex)] = true
	}
	for _, ifindex := range keep {
		liveIf[uint32(ifindex)] = true
	}
	var errs []error
	// Links first: once detached, the veth passes nothing unchecked because
	// the interface itself is gone or about to be.
	entries, err := os.ReadDir(filepath.Join(e.pinDir, linksDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list link pins: %w", err))
	}
	for _, ent := range entries {
		if _, live := e.eps[ent.Name()]; live {
			continue
		}
		if _, kept := keep[ent.Name()]; kept {
			continue
		}
		pin := e.att.Pin(ent.Name())
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("load stale link pin %s: %w", pin, err))
			continue
		}
		e.logger.Info("prune: detaching stale link", "interface", ent.Name())
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin stale link %s: %w", pin, err))
		}
		l.Close()
	}

	for _, m := range []*ebpf.Map{e.maps.NetdIfaces, e.maps.NetdCounters} {
		_, ers := pruneKeys(m, liveIf)
		errs = append(errs, ers...)
	}

	var (
		ek     fastpathEndpointKey
		ev     fastpathEndpointInfo
		staleE []fastpathEndpointKey
	)
	liveNet := map[uint32]bool{}
	for idx := range e.netNames {
		liveNet[idx] = true
	}
	it := e.maps.NetdEndpoints.Iterate()
	for it.Next(&ek, &ev) {
		if !liveIf[ev.Ifindex] {
			staleE = append(staleE, ek)
		} else {
			liveNet[ev.NetIndex] = true // a kept orphan keeps its network's policy
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("iterate endpoints: %w", err))
	}
	errs = append(errs, deleteKeys(e.maps.NetdEndpoints, staleE)...)

	staleN, ers := pruneKeys(e.maps.NetdNetworks, liveNet)
	errs = append(errs, ers...)

	var (
		sk     fastpathSubnetKey
		sv     fastpathSubnetInfo
		staleS []fastpathSubnetKey
	)
	it = e.maps.NetdSubnets.Iterate()
	for it.Next(&sk, &sv) {
		if !liveNet[sv.NetIndex] {
			staleS = append(staleS, sk)
		}
	}
	if err := it.Err(); err != nil {
		errs = append(errs, fmt.Errorf("iterate subnets: %w", err))
	}
	errs = append(errs, deleteKeys(e.maps.NetdSubnets, staleS)...)

	if n := len(staleE) + len(staleN) + len(staleS); n > 0 {
		e.logger.Info("prune: removed stale eBPF map entries", "endpoints", len(staleE), "networks", len(staleN), "subnets", len(staleS))
	}
	return errors.Join(errs...)
}

// pruneKeys deletes the keys of a map keyed by uint32 that live does not
// hold, and returns them.
func pruneKeys(m *ebpf.Map, live map[uint32]bool) ([]uint32, []error) {
	keys, err := mapKeys[uint32](m)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var stale []uint32
	for _, k := range keys {
		if !live[k] {
			stale = append(stale, k)
		}
	}
	return stale, append(errs, deleteKeys(m, stale)...)
}

// mapKeys lists a map's keys; it walks with NextKey because iterating
// without a value buffer is not supported, and per-CPU values are not needed.
func mapKeys[K comparable](m *ebpf.Map) ([]K, error) {
	var (
		keys []K
		cur  K
		next K
	)
	for i := 0; i <= int(m.MaxEntries()); i++ { // bounded: a map holds at most MaxEntries keys
		var err error
		if i == 0 {
			err = m.NextKey(nil, &next)
		} else {
			err = m.NextKey(&cur, &next)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, nil
		}
		if err != nil {
			return keys, fmt.Errorf("list keys of %s: %w", m, err)
		}
		keys = append(keys, next)
		cur = next
	}
	return keys, fmt.Errorf("list keys of %s: more keys than max entries (map changed while walking)", m)
}

// deleteKeys deletes keys collected during an iteration (deleting while
// iterating a hash map can restart or skip the walk).
func deleteKeys[K any](m *ebpf.Map, keys []K) []error {
	var errs []error
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete stale entry from %s: %w", m, err))
		}
	}
	return errs
}
