//go:build linux

package sandbox_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
	"github.com/netd-dev/netd/dataplane/sandbox"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestSandboxLifecycle(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "ip")
	prefix := "ndt-" + stringid.RandomHex(6) + "-"
	name := prefix + "web"
	path, err := sandbox.Create(name)
	if err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	t.Cleanup(func() { sandbox.Delete(name) })
	if path != sandbox.Path(name) || path != "/run/netns/"+name {
		t.Errorf("path = %q, want /run/netns/%s", path, name)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}

	// A real, separate netns with lo up and nothing else.
	out := nstest.Run(t, name, "ip", "-o", "link", "show")
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

	if _, err := sandbox.Create(name); err == nil || err.Error() != "sandbox "+name+" already exists" {
		t.Errorf("duplicate CreateSandbox error = %v", err)
	}

	other := prefix + "db"
	if _, err := sandbox.Create(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.Delete(other) })
	names, err := sandbox.List(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{other, name}; !slices.Equal(names, want) {
		t.Errorf("ListSandboxes = %v, want %v", names, want)
	}

	if err := sandbox.Delete(name); err != nil {
		t.Fatalf("DeleteSandbox: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after delete: %v", path, err)
	}
	if err := sandbox.Delete(name); err != nil {
		t.Errorf("second DeleteSandbox: %v", err)
	}
	names, _ = sandbox.List(prefix)
	if !slices.Equal(names, []string{other}) {
		t.Errorf("ListSandboxes after delete = %v", names)
	}
	if _, err := sandbox.Create("a/b"); err == nil {
		t.Error("CreateSandbox accepted a name with a slash")
	}
}

func TestHostSandbox(t *testing.T) {
	nstest.RequireRoot(t)
	_, labPath := nstest.Sandbox(t)
	name := "ndt-" + stringid.RandomHex(8)
	var path string
	// The lab plays the daemon's netns: the host sandbox must be that one.
	if err := sandbox.DoPath(labPath, func() (err error) {
		path, err = sandbox.CreateHost(name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sandbox.Delete(name) })
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
	if _, err := sandbox.CreateHost(name); err == nil {
		t.Error("duplicate CreateHostSandbox succeeded")
	}
}

func TestDoPath(t *testing.T) {
	nstest.RequireRoot(t)
	_, path := nstest.Sandbox(t)
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	var links []netlink.Link
	err = sandbox.DoPath(path, func() error {
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
