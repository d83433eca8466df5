//go:build linux

// Package nstest gives tests throwaway network namespaces, pin dirs and
// the checks that skip a test lacking root or a tool. Everything it makes
// is named "ndt-<random>" and removed at the test's cleanup.
package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane/bpffs"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// Prefix starts the name of everything a test makes.
const Prefix = "ndt-"

// RequireRoot skips t unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// RequireTools skips t unless every tool is on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// Name is a fresh name for a test object: Prefix plus n random hex digits.
func Name(n int) string { return Prefix + stringid.RandomHex(n) }

// Sandbox creates a throwaway named netns (/run/netns/ndt-...) with lo up,
// removed at cleanup.
func Sandbox(t testing.TB) (name, path string) {
	t.Helper()
	RequireRoot(t)
	name = Name(8)
	path, err := sandbox.Create(name)
	if err != nil {
		t.Fatalf("create sandbox %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := sandbox.Delete(name); err != nil {
			t.Errorf("delete sandbox %s: %v", name, err)
		}
	})
	return name, path
}

// NetNS is Sandbox with an open handle, closed at cleanup.
func NetNS(t testing.TB) (netns.NsHandle, string) {
	t.Helper()
	name, path := Sandbox(t)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns, name
}

// In runs fn on the test's own goroutine, its OS thread switched into ns,
// so fn may call t.Fatal. A thread that cannot be switched back stays
// locked and dies with the test goroutine.
func In(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot restore netns: " + err.Error())
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// PinDir mounts bpffs if needed and returns a fresh pin dir below it,
// removed at cleanup.
func PinDir(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	dir := filepath.Join(bpffs.Root, Name(8))
	if err := bpffs.Ensure(dir); err != nil {
		t.Skipf("no bpffs: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Run runs args with `ip netns exec ns` and returns the combined output,
// failing t when the command fails.
func Run(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}
