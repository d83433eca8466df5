//go:build linux

package daemon

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane"
)

// Check compares the store with the kernel, read-only: every container's
// namespace, every driver's objects (drivers that are dataplane.Checkers),
// and the orphans a prune would find. No drift means consistent.
func (m *Manager) Check(ctx context.Context) (api.SystemCheck, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	report := api.SystemCheck{Drifts: []api.Drift{}}
	add := func(object, problem string) {
		report.Drifts = append(report.Drifts, api.Drift{Object: object, Problem: problem})
	}

	for _, b := range m.Undecodable() {
		add("state record "+b.String(), fmt.Sprintf("does not decode (%v): its objects are left alone; restore the state database", b.Err))
	}
	existing, err := m.sandboxes.List(m.sandboxPrefix())
	if err != nil {
		return report, fmt.Errorf("list sandboxes: %w", err)
	}
	live := map[string]bool{}
	for _, s := range existing {
		live[s] = true
	}
	wanted := map[string]bool{}
	nets := map[string][]*dataplane.NetworkConfig{}
	eps := map[string][]*dataplane.EndpointConfig{}
	for _, n := range m.sortedNetworks() {
		if _, ok := m.drivers[n.Driver]; !ok {
			add("network "+n.Name, fmt.Sprintf("driver %q is not loaded", n.Driver))
			continue
		}
		nets[n.Driver] = append(nets[n.Driver], networkConfig(n))
	}
	for _, c := range m.sortedContainers() {
		wanted[c.Sandbox] = true
		if !live[c.Sandbox] {
			add("container "+c.Name, "network namespace "+c.Sandbox+" missing")
		}
		for _, ep := range m.containerEndpoints(c.ID) {
			n := m.networks[ep.NetworkID]
			eps[n.Driver] = append(eps[n.Driver], m.endpointConfig(n, ep, c))
		}
	}
	for _, s := range existing {
		if wanted[s] {
			continue
		}
		if m.sandboxNames[s] {
			add("netns "+s, "recorded but no container has it (removed at the next start)")
			continue
		}
		add("netns "+s, "orphan: no record of it")
	}
	for _, err := range m.addLayered(nets, eps) {
		add("network", err.Error())
	}
	for _, typ := range slices.Sorted(maps.Keys(m.drivers)) {
		c, ok := m.drivers[typ].(dataplane.Checker)
		if !ok {
			continue
		}
		drifts, err := c.Check(ctx, nets[typ], eps[typ])
		if err != nil {
			return report, fmt.Errorf("check %s driver: %w", typ, err)
		}
		for _, d := range drifts {
			add(d.Object, d.Problem)
		}
	}
	return report, nil
}

// PruneOrphans removes the kernel objects of this node that have no record
// (see Reconcile), and brings up what they were in the way of.
func (m *Manager) PruneOrphans(ctx context.Context) (api.SystemPruneReport, error) {
	orphans, err := m.Reconcile(ctx, true)
	report := api.SystemPruneReport{Removed: []string{}, Kept: []string{}}
	for _, o := range orphans {
		if o.Unproven {
			report.Kept = append(report.Kept, o.String())
			continue
		}
		report.Removed = append(report.Removed, o.String())
	}
	return report, err
}
