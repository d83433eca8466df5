//go:build linux

// Package sandbox owns network namespaces: the named ones of containers
// (bind-mounted under /run/netns, as `ip netns` does) and running code
// inside any namespace on a locked OS thread. The daemon, the CLI and the
// tests all switch namespaces through Do and DoPath.
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsRunDir is where named network namespaces are bind-mounted, as with `ip netns`.
const NetnsRunDir = "/run/netns"

// Path returns the bind-mount path of the named sandbox.
func Path(name string) string {
	return filepath.Join(NetnsRunDir, name)
}

func validSandboxName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("invalid sandbox name %q", name)
	}
	return nil
}

// ensureRunDir creates /run/netns as a shared mount point so that bind mounts
// made under it propagate to peer mount namespaces, the way iproute2 does.
func ensureRunDir() error {
	if err := os.MkdirAll(NetnsRunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", NetnsRunDir, err)
	}
	bound := false
	for {
		err := unix.Mount("", NetnsRunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s shared: %w", NetnsRunDir, err)
		}
		// Not a mount point yet: bind it onto itself, then retry once.
		if err := unix.Mount(NetnsRunDir, NetnsRunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", NetnsRunDir, err)
		}
		bound = true
	}
}

// createMountTarget makes the empty file a namespace is bind-mounted on.
func createMountTarget(name string) (string, error) {
	if err := validSandboxName(name); err != nil {
		return "", err
	}
	if err := ensureRunDir(); err != nil {
		return "", err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("sandbox %s already exists", name)
		}
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	f.Close()
	return path, nil
}

// OnLockedThread runs fn on a fresh goroutine locked to its OS thread. fn
// reports whether the thread is still clean; a dirty thread stays locked so
// the Go runtime destroys it instead of reusing it.
func OnLockedThread(fn func() (clean bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		clean, err := fn()
		if clean {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Create creates a new network namespace bind-mounted at
// /run/netns/<name> with lo up, and returns its path.
func Create(name string) (string, error) { return CreateMarked(name, "") }

// CreateMarked is Create that also sets the alias of the namespace's lo to
// mark, so the namespace can later be recognised as its owner's even when
// no record of it is left.
func CreateMarked(name, mark string) (string, error) {
	path, err := createMountTarget(name)
	if err != nil {
		return "", err
	}
	err = OnLockedThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, fmt.Errorf("get current netns: %w", err)
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return true, fmt.Errorf("unshare netns: %w", err)
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		mountErr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			return false, fmt.Errorf("restore netns: %w", err)
		}
		if mountErr != nil {
			return true, fmt.Errorf("bind-mount netns on %s: %w", path, mountErr)
		}
		return true, nil
	})
	if err != nil {
		os.Remove(path)
		return "", err
	}
	if err := setLoUp(path, mark); err != nil {
		Delete(name)
		return "", err
	}
	return path, nil
}

func setLoUp(path, mark string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", path, err)
	}
	if mark != "" {
		if err := h.LinkSetAlias(lo, mark); err != nil {
			return fmt.Errorf("mark lo in %s: %w", path, err)
		}
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", path, err)
	}
	return nil
}

// Marked reports whether the namespace at path is the calling thread's own
// (a host sandbox) or its lo carries mark.
func Marked(path, mark string) (bool, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return false, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	self, err := netns.Get()
	if err != nil {
		return false, fmt.Errorf("get current netns: %w", err)
	}
	defer self.Close()
	if ns.Equal(self) {
		return true, nil
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return false, fmt.Errorf("find lo in %s: %w", path, err)
	}
	return mark != "" && lo.Attrs().Alias == mark, nil
}

// CreateHost bind-mounts the calling thread's network namespace (the
// daemon's own) at /run/netns/<name>, for containers on the host network.
func CreateHost(name string) (string, error) {
	path, err := createMountTarget(name)
	if err != nil {
		return "", err
	}
	runtime.LockOSThread()
	src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	err = unix.Mount(src, path, "none", unix.MS_BIND, "")
	runtime.UnlockOSThread()
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("bind-mount netns on %s: %w", path, err)
	}
	return path, nil
}

// Delete unmounts and removes the named sandbox; a missing one is not an error.
func Delete(name string) error {
	if err := validSandboxName(name); err != nil {
		return err
	}
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// List returns the names under /run/netns that start with prefix, sorted.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(NetnsRunDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", NetnsRunDir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// DoPath runs fn on a locked OS thread switched into the network namespace
// at path, then switches back. Goroutines fn starts do not inherit the namespace.
func DoPath(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer target.Close()
	return Do(target, fn)
}

// ErrRestore wraps a failure to switch a thread back to its own namespace
// after fn ran: fn's effects (a started process, say) happened.
var ErrRestore = errors.New("restore network namespace")

// Do runs fn on a locked OS thread inside ns and restores the thread; a
// thread that cannot be restored is discarded, never reused.
func Do(ns netns.NsHandle, fn func() error) error {
	var fnErr error
	err := OnLockedThread(func() (bool, error) {
		orig, err := netns.Get()
		if err != nil {
			return true, fmt.Errorf("get current netns: %w", err)
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return true, fmt.Errorf("enter network namespace (are you root?): %w", err)
		}
		fnErr = fn()
		if err := netns.Set(orig); err != nil {
			return false, fmt.Errorf("%w: %w", ErrRestore, err)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return fnErr
}

// Namespaces are the named network namespaces under /run/netns, as the
// daemon's manager sees them. Mark tags the namespaces it creates
// (see CreateMarked); netd uses "netd:sandbox:<node>".
type Namespaces struct{ Mark string }

// Create makes a new empty netns and returns its path.
func (n Namespaces) Create(name string) (string, error) { return CreateMarked(name, n.Mark) }

// Owned reports whether the netns of name carries n's mark.
func (n Namespaces) Owned(name string) (bool, error) { return Marked(Path(name), n.Mark) }

// CreateHost makes name a bind mount of the calling thread's netns.
func (Namespaces) CreateHost(name string) (string, error) { return CreateHost(name) }

// Delete removes the netns; a missing one is not an error.
func (Namespaces) Delete(name string) error { return Delete(name) }

// Path is where the netns of name is (or would be) mounted.
func (Namespaces) Path(name string) string { return Path(name) }

// List returns the names of existing namespaces starting with prefix.
func (Namespaces) List(prefix string) ([]string, error) { return List(prefix) }
