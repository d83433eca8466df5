//go:build linux

package fastpath

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

func TestEBPFPinAdopt(t *testing.T) {
	if !bpfattach.HaveTCX() {
		t.Skip("kernel without TCX (6.6+): bpf_link pins and TCX queries do not exist; TestEBPFTCFallback covers TC clsact")
	}
	dir, hostNS := attachHost(t)
	n := &Network{Name: "adopt", Index: 7, ICC: true}
	x := hostEndpoint(t, hostNS, n, "ndtest0", fxMAC1, fxIP1)
	ep, ifindex := x.ep, x.ifindex

	var first, second attachIDs
	nstest.In(t, hostNS, func() {
		e := loadEBPF(t, dir)
		if err := e.NetworkUp(n); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(n, ep, ifindex); err != nil {
			t.Fatalf("EndpointUp: %+v", err)
		}
		if err := e.EndpointUp(n, ep, ifindex); err != nil { // idempotent
			t.Fatalf("EndpointUp again: %+v", err)
		}
		first = attachmentIDs(t, e, "ndtest0")
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join(dir, linksDir, "ndtest0")); err != nil {
		t.Fatalf("link pin gone after Close: %v", err)
	}
	nstest.In(t, hostNS, func() {
		e := loadEBPF(t, dir)
		t.Cleanup(func() { _ = e.Forget() })
		if got := e.ProgramID(); uint32(got) != first.program {
			t.Errorf("program reloaded on restart: id %d, was %d", got, first.program)
		}
		if err := e.EndpointUp(n, ep, ifindex); err != nil {
			t.Fatalf("EndpointUp after restart: %+v", err)
		}
		second = attachmentIDs(t, e, "ndtest0")
		// The endpoint table survived too.
		var info fastpathIfaceInfo
		if err := e.maps.NetdIfaces.Lookup(uint32(ifindex), &info); err != nil || !bytes.Equal(info.Mac[:], fxMAC1) {
			t.Errorf("iface entry after restart: %v %v", info, err)
		}
		if err := e.EndpointDown(n, ep); err != nil {
			t.Fatalf("EndpointDown: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, linksDir, "ndtest0")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("link pin still there after EndpointDown: %v", err)
		}
		st, err := e.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Programs) != 0 || len(st.Endpoints) != 0 {
			t.Errorf("status after EndpointDown: %+v", st)
		}
	})
	if first != second {
		t.Fatalf("attachment not adopted: before %+v, after %+v", first, second)
	}
	if first.link == 0 || first.program == 0 {
		t.Fatalf("missing IDs: %+v", first)
	}
}

// attachIDs are the kernel IDs Status reports for one interface.
type attachIDs struct{ program, link uint32 }

func attachmentIDs(t testing.TB, e *EBPF, ifname string) attachIDs {
	t.Helper()
	st, err := e.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Programs {
		if p.Interface == ifname {
			if p.Hook != HookTCXIngress || p.Program != "from_container" || p.Pinned == "" {
				t.Errorf("attachment %+v", p)
			}
			return attachIDs{p.ProgramID, p.LinkID}
		}
	}
	t.Fatalf("%s not in status %+v", ifname, st.Programs)
	return attachIDs{}
}

// The clsact fallback attaches a direct-action filter, adopts it, and removes it.
func TestEBPFTCFallback(t *testing.T) {
	dir, hostNS := attachHost(t)
	n := &Network{Name: "tc", Index: 8, ICC: true}
	x := hostEndpoint(t, hostNS, n, "ndtest1", fxMAC1, fxIP1)
	ep, ifindex := x.ep, x.ifindex
	nstest.In(t, hostNS, func() {
		e := loadEBPF(t, dir)
		defer e.Forget()
		e.att.ForceTC = true
		for range 2 {
			if err := e.EndpointUp(n, ep, ifindex); err != nil {
				t.Fatalf("EndpointUp: %+v", err)
			}
		}
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			t.Fatal(err)
		}
		filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			t.Fatal(err)
		}
		if len(filters) != 1 {
			t.Fatalf("want one filter, got %d", len(filters))
		}
		bf, ok := filters[0].(*netlink.BpfFilter)
		if !ok || !bf.DirectAction || ebpf.ProgramID(bf.Id) != e.ProgramID() {
			t.Fatalf("filter %+v", filters[0])
		}
		st, err := e.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Programs) != 1 || st.Programs[0].Hook != HookTCIngress {
			t.Fatalf("status %+v", st.Programs)
		}
		if err := e.EndpointDown(n, ep); err != nil {
			t.Fatal(err)
		}
		filters, err = netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			t.Fatal(err)
		}
		if len(filters) != 0 {
			t.Fatalf("filters left after EndpointDown: %d", len(filters))
		}
	})
}

// Two peers on a Linux bridge with the fast path attached: ping works and
// goes through bpf_redirect_peer; with ICC off it is dropped in eBPF.
func TestEBPFEndToEnd(t *testing.T) {
	dir, hostNS := attachHost(t)
	nsA, nameA := nstest.NetNS(t)
	nsB, _ := nstest.NetNS(t)

	h, err := netlink.NewHandleAt(hostNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ndtbr0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	brAddr, _ := netlink.ParseAddr("10.99.0.1/24")
	if err := h.AddrAdd(br, brAddr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	ifA := addVeth(t, hostNS, nsA, "ndtA", "eth0", fxMAC1, "10.99.0.2/24")
	ifB := addVeth(t, hostNS, nsB, "ndtB", "eth0", fxMAC2, "10.99.0.3/24")
	for _, name := range []string{"ndtA", "ndtB"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			t.Fatal(err)
		}
	}

	n := &Network{Name: "e2e", Index: 3, ICC: true}
	epA := &Endpoint{ID: "a", ContainerID: "ca", HostIfName: "ndtA", MAC: fxMAC1, Addr: netip.MustParsePrefix("10.99.0.2/24")}
	epB := &Endpoint{ID: "b", ContainerID: "cb", HostIfName: "ndtB", MAC: fxMAC2, Addr: netip.MustParsePrefix("10.99.0.3/24")}
	var e *EBPF
	nstest.In(t, hostNS, func() {
		e = loadEBPF(t, dir)
		if err := e.NetworkUp(n); err != nil {
			t.Fatal(err)
		}
		if err := e.EndpointUp(n, epA, ifA); err != nil {
			t.Fatalf("EndpointUp A: %+v", err)
		}
		if err := e.EndpointUp(n, epB, ifB); err != nil {
			t.Fatalf("EndpointUp B: %+v", err)
		}
	})
	t.Cleanup(func() { _ = e.Forget() })

	ping := func(count string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nameA, "ping", "-c", count, "-i", "0.2", "-W", "1", "10.99.0.3").CombinedOutput()
		if err != nil {
			return errors.New(err.Error() + ": " + string(out))
		}
		return nil
	}
	if err := ping("5"); err != nil {
		t.Fatalf("ping A->B: %v", err)
	}
	// Gateway (the bridge address) goes the slow path and works too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nameA, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.99.0.1").CombinedOutput(); err != nil {
		t.Fatalf("ping A->gateway: %v %s", err, out)
	}

	st, err := e.Status()
	if err != nil {
		t.Fatal(err)
	}
	byIf := map[string]int{}
	for i, c := range st.Endpoints {
		byIf[c.Interface] = i
	}
	a, b := st.Endpoints[byIf["ndtA"]], st.Endpoints[byIf["ndtB"]]
	if a.FastPackets < 5 || b.FastPackets < 5 || a.FastBytes == 0 {
		t.Errorf("fast path counters did not move: A %+v B %+v", a, b)
	}
	if a.SlowPackets == 0 {
		t.Errorf("slow path counter of A did not move (gateway traffic): %+v", a)
	}
	if a.Network != "e2e" || a.Container != "ca" || a.MacAddress != fxMAC1.String() {
		t.Errorf("endpoint counters labels: %+v", a)
	}

	off := *n
	off.ICC = false
	if err := e.NetworkUp(&off); err != nil {
		t.Fatal(err)
	}
	if err := ping("2"); err == nil {
		t.Fatal("ping A->B succeeded with ICC off")
	}
	st, err = e.Status()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Endpoints[byIf["ndtA"]].Drops["ICC_DENIED"]; got == 0 {
		t.Errorf("no ICC_DENIED drops: %+v", st.Endpoints[byIf["ndtA"]])
	}
}
