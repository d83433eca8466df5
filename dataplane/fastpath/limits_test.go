//go:build linux

package fastpath

import (
	"testing"

	"github.com/netd-dev/netd/api/errdefs"
)

// Past the networks map's size a network is refused with a readable error
// that points at the kernel dataplane, not a raw E2BIG.
func TestEBPFNetworkLimit(t *testing.T) {
	e := newTestEBPF(t)
	max := e.maps.NetdNetworks.MaxEntries()
	for i := uint32(1); i <= max; i++ {
		if err := e.NetworkUp(&Network{Index: i, Name: "n"}); err != nil {
			t.Fatalf("network %d of %d: %v", i, max, err)
		}
	}
	err := e.NetworkUp(&Network{Index: max + 1, Name: "one-too-many"})
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("NetworkUp past the map size = %v, want an Unavailable error", err)
	}
	want := "network one-too-many: the eBPF dataplane holds at most 1024 networks on a host: create it with -o netd.dataplane=kernel"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
