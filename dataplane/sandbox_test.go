//go:build linux

package dataplane

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestSandboxLifecycle(t *testing.T) {
	requireRoot(t)
	requireTools(t, "ip")
	prefix := "ndt-" + randHex(6) + "-"
	name := prefix + "web"
	path, err := CreateSandbox(name)
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	t.Cleanup(func() { DeleteSandbox(name) })
	if path != SandboxPath(name) || path != "/run/netns/"+name {
		t.Errorf("path = %q, want /run/netns/%s", path, name)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}

	// A real, separate netns with lo up and nothing else.
	out := nsRun(t, name, "ip", "-o", "link", "show")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "lo:") ||
		!strings.Contains(lines[0], "UP") {
		t.Errorf("links in sandbox:\n%s", out)
	}
	self, _ := netns.Get()
	defer self.Close()
	sb, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if sb.Equal(self) {
		t.Error("sandbox is the test's own netns")
	}

	if _, err := CreateSandbox(name); err == nil || err.Error() != "sandbox "+name+" already exists" {
		t.Errorf("duplicate CreateSandbox error = %v", err)
	}

	other := prefix + "db"
	if _, err := CreateSandbox(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteSandbox(other) })
	names, err := ListSandboxes(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{other, name}; !slices.Equal(names, want) {
		t.Errorf("ListSandboxes = %v, want %v", names, want)
	}

	if err := DeleteSandbox(name); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after delete: %v", path, err)
	}
	if err := DeleteSandbox(name); err != nil {
		t.Errorf("second DeleteSandbox: %v", err)
	}
	names, _ = ListSandboxes(prefix)
	if !slices.Equal(names, []string{other}) {
		t.Errorf("ListSandboxes after delete = %v", names)
	}
	if _, err := CreateSandbox("a/b"); err == nil {
		t.Error("CreateSandbox accepted a name with a slash")
	}
}

func TestHostSandbox(t *testing.T) {
	requireRoot(t)
	_, labPath := testSandbox(t)
	name := "ndt-" + randHex(8)
	var path string
	// The lab plays the daemon's netns: the host sandbox must be that one.
	if err := InSandbox(labPath, func() (err error) {
		path, err = CreateHostSandbox(name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteSandbox(name) })
	var a, b unix.Stat_t
	if err := unix.Stat(labPath, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(path, &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		t.Errorf("host sandbox %s is not the caller's netns %s", path, labPath)
	}
	if _, err := CreateHostSandbox(name); err == nil {
		t.Error("duplicate CreateHostSandbox succeeded")
	}
}

func TestInSandbox(t *testing.T) {
	requireRoot(t)
	_, path := testSandbox(t)
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	var links []netlink.Link
	err = InSandbox(path, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			return err
		}
		defer target.Close()
		if !cur.Equal(target) {
			t.Error("fn does not run in the sandbox")
		}
		links, err = netlink.LinkList()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("links seen inside = %d, want only lo", len(links))
	}
	after, _ := netns.Get()
	defer after.Close()
	if !after.Equal(before) {
		t.Error("InSandbox changed the caller's netns")
	}
}
