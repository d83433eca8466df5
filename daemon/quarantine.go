//go:build linux

package daemon

import (
	"path/filepath"
	"strings"

	"github.com/netd-dev/netd/api/stringid"
)

// holdUndecodable keeps the kernel objects of records that do not decode
// away from reconcile's sweep, and says so at start-up. Such a record's
// objects are unknown: its network's bridge and veths have no record the
// drivers see (orphans, kept unless pruned), and its container's netns
// must not be taken for a stale one of ours.
func (m *Manager) holdUndecodable(st *State) {
	if len(st.Bad) == 0 {
		return
	}
	holdAll := false
	held := map[string]bool{}
	for _, b := range st.Bad {
		m.log.Warn("state record does not decode: netd leaves it and its kernel objects untouched",
			"record", b.String(), "err", b.Err)
		if b.Bucket == string(bucketContainers) {
			if b.Sandbox != "" {
				held[b.Sandbox] = true
			} else {
				holdAll = true // any recorded netns no container claims may be its own
			}
		}
	}
	claimed := map[string]bool{}
	for _, c := range m.containers {
		claimed[c.Sandbox] = true
	}
	for s := range m.sandboxNames {
		if !claimed[s] && (holdAll || held[s]) {
			// Out of sandboxNames, reconcile neither removes nor forgets it.
			delete(m.sandboxNames, s)
			m.log.Warn("network namespace may belong to an undecodable container record: left alone", "netns", s)
		}
	}
	for _, ep := range st.Endpoints {
		if ownedByUndecodable(st, ep) {
			m.log.Warn("endpoint belongs to an undecodable record: its interface is left alone",
				"endpoint", stringid.ShortID(ep.ID), "interface", ep.HostIfName)
		}
	}
	dir := filepath.Dir(m.store.path)
	keys := make([]string, 0, len(st.Bad))
	for _, b := range st.Bad {
		keys = append(keys, b.String())
	}
	m.log.Warn("state database has undecodable records; the rest is served. "+
		"The last good copy is kept as it was; `"+RestoreCommand(dir)+"` (with the daemon stopped) goes back to it, "+
		"losing the changes made since it was saved. Do not prune orphans until then: they include these records' objects.",
		"db", m.store.path, "records", strings.Join(keys, ", "))
}

// Undecodable lists the state records that did not decode at start-up.
func (m *Manager) Undecodable() []BadRecord { return m.store.Undecodable() }

// HeldEndpoints lists, for network id, the endpoints that may belong to
// undecodable records: their addresses and MACs may still be on the wire,
// so address allocation must count them as in use.
func (m *Manager) HeldEndpoints(networkID string) []*EndpointRecord {
	var out []*EndpointRecord
	for _, ep := range m.store.held {
		if ep.NetworkID == networkID {
			out = append(out, ep)
		}
	}
	return out
}

// heldName reports whether an undecodable record of bucket is named name.
func (m *Manager) heldName(bucket []byte, name string) (BadRecord, bool) {
	for _, b := range m.Undecodable() {
		if b.Bucket == string(bucket) && b.Name == name {
			return b, true
		}
	}
	return BadRecord{}, false
}
