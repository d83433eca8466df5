//go:build linux

package fastpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// attachVeth is a host namespace with one veth (its peer in a container
// namespace) and an overlay loaded on a fresh pin dir.
func attachVeth(t *testing.T) (*tns, string, int) {
	t.Helper()
	requireRoot(t)
	host, ctr := newNS(t, "h"), newNS(t, "c")
	l := host.vethTo(t, "hovt0", ctr, "eth0", tMTU)
	return host, "hovt0", l.Attrs().Index
}

func TestAttachClsactFallback(t *testing.T) {
	requireTools(t, "tc")
	host, ifname, ifindex := attachVeth(t)
	o := newTestOverlay(t)
	o.att.ForceTC = true
	in := func(fn func() error) {
		t.Helper()
		if err := sandbox.DoPath(host.path, fn); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // the second attach adopts the filter
		in(func() error {
			hook, err := o.AttachEndpoint(ifname, ifindex)
			if err == nil && hook != HookTCIngress {
				t.Errorf("hook %s, want %s", hook, HookTCIngress)
			}
			return err
		})
	}
	out := host.must(t, "tc", "filter", "show", "dev", ifname, "ingress")
	if n := strings.Count(out, "overlay_from_container"); n != 1 {
		t.Errorf("tc filters on %s:\n%s\nwant overlay_from_container once", ifname, out)
	}
	in(func() error { return o.Detach(ifname) })
	if out := host.must(t, "tc", "filter", "show", "dev", ifname, "ingress"); strings.Contains(out, "overlay_from") {
		t.Errorf("filter left after Detach:\n%s", out)
	}
}

func TestAttachTCXDetach(t *testing.T) {
	if !bpfattach.HaveTCX() {
		t.Skip("kernel without TCX (6.6+): bpf_link pins and TCX queries do not exist; the TC clsact fallback is tested apart")
	}
	host, ifname, ifindex := attachVeth(t)
	o := newTestOverlay(t)
	err := sandbox.DoPath(host.path, func() error {
		hook, err := o.AttachTunnel(ifname, ifindex)
		if err == nil && hook != HookTCXIngress {
			t.Errorf("hook %s, want %s", hook, HookTCXIngress)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pin := o.att.Pin(ifname)
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("link not pinned: %v", err)
	}
	if err := sandbox.DoPath(host.path, func() error { return o.Detach(ifname) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("link pin %s left after Detach: %v", pin, err)
	}
}

// A pinned program of another build is replaced, and its attachment moves
// to the new program in place (same link: no gap in forwarding).
func TestReloadMovesAttachments(t *testing.T) {
	if !bpfattach.HaveTCX() {
		t.Skip("kernel without TCX (6.6+): bpf_link pins and TCX queries do not exist; the TC clsact fallback is tested apart")
	}
	host, ifname, ifindex := attachVeth(t)
	dir := testPinDir(t)
	o := loadOverlayAt(t, dir)
	attach := func(o *Overlay) {
		t.Helper()
		if err := sandbox.DoPath(host.path, func() error { _, err := o.AttachEndpoint(ifname, ifindex); return err }); err != nil {
			t.Fatal(err)
		}
	}
	attach(o)
	info, err := o.att.Links[ifname].Info()
	if err != nil {
		t.Fatal(err)
	}
	oldLink, oldProg := info.ID, o.ProgramID(ProgFromContainer)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// "Another build": a different program pinned under from_container's name.
	pin := filepath.Join(dir, pinPrefix+ProgFromContainer)
	other, err := ebpf.LoadPinnedProgram(filepath.Join(dir, pinPrefix+ProgFromTunnel), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(pin); err != nil {
		t.Fatal(err)
	}
	other.Close()

	o = loadOverlayAt(t, dir)
	t.Cleanup(func() { _ = o.Forget() })
	if o.ProgramID(ProgFromContainer) == oldProg {
		t.Fatalf("the foreign pinned program was adopted")
	}
	attach(o)
	info, err = o.att.Links[ifname].Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != oldLink || info.Program != o.ProgramID(ProgFromContainer) {
		t.Errorf("link %d runs %d; want link %d kept, running the new program %d", info.ID, info.Program, oldLink, o.ProgramID(ProgFromContainer))
	}
}
