package daemon

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
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
