//go:build linux

package daemon

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
)

// A create interrupted by a crash (kill -9) after its kernel objects were
// made but before its record landed leaves its intent: the next start
// undoes exactly that through the driver, and forgets the intent.
func TestReconcileUndoesInterruptedCreates(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createNet(t, api.NetworkCreateRequest{Name: "keep"})
	net := &NetworkRecord{ID: stringid.NewID(), Name: "half", Driver: "bridge", Index: 9,
		Subnet: netip.MustParsePrefix("10.77.0.0/24"), DriverState: map[string]string{"bridge": "br-half", "icc": "true", "masquerade": "true", "mtu": "0", "dataplane": "kernel"}}
	keep, err := e.m.InspectNetwork("keep")
	if err != nil {
		t.Fatal(err)
	}
	ep := &EndpointRecord{ID: stringid.NewID(), NetworkID: keep.ID, ContainerID: stringid.NewID(), IfName: "eth0",
		HostIfName: "ndhalf", MAC: "02:42:0a:00:00:09", Addr: netip.MustParsePrefix("172.18.0.9/16")}
	err = e.store.Update(func(tx *StoreTx) error {
		if err := tx.PutPending(&pendingRecord{Network: net}); err != nil {
			return err
		}
		return tx.PutPending(&pendingRecord{Endpoint: ep, Sandbox: "node1-gone"})
	})
	if err != nil {
		t.Fatal(err)
	}
	e.store.Close()
	e.open(t)
	if _, err := e.m.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	calls := e.bridge.calls
	for _, want := range []string{"Leave keep eth0", "DeleteEndpoint keep eth0", "DeleteNetwork half"} {
		if !slices.Contains(calls, want) {
			t.Errorf("reconcile did not undo %q; calls %q", want, calls)
		}
	}
	if slices.Index(calls, "DeleteEndpoint keep eth0") > slices.Index(calls, "DeleteNetwork half") {
		t.Errorf("network undone before the endpoint: %q", calls)
	}
	if ps, err := e.store.Pending(); err != nil || len(ps) != 0 {
		t.Errorf("pending after reconcile = %v, %v", ps, err)
	}
	// Completed operations leave no intent behind.
	e.createCtr(t, "web", "keep")
	if ps, _ := e.store.Pending(); len(ps) != 0 {
		t.Errorf("pending after a completed create: %d", len(ps))
	}
}
