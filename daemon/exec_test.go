//go:build linux

package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/apitest"
)

// pathSandboxes are fakeSandboxes whose namespaces are mounted where the
// test says, so the handler opens real files.
type pathSandboxes struct {
	*fakeSandboxes
	paths map[string]string // netns name -> path
}

func (s pathSandboxes) Path(name string) string {
	if p, ok := s.paths[name]; ok {
		return p
	}
	return s.fakeSandboxes.Path(name)
}

// serveUnix serves h on a unix socket and returns a client of it.
func serveUnix(t *testing.T, h http.Handler) *api.Client {
	t.Helper()
	cl, err := api.NewClient(apitest.Serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestContainerNetnsPassesDescriptor(t *testing.T) {
	e := newTestEnv(t)
	sb := pathSandboxes{fakeSandboxes: e.sb, paths: map[string]string{}}
	e.m.sandboxes = sb
	e.createCtr(t, "box")
	e.createCtr(t, "plain")
	nsName := func(ctr string) string {
		c, err := e.m.InspectContainer(ctr)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Base(c.NetworkSettings.SandboxKey)
	}
	// box's namespace is this process's; plain's "mount" is an ordinary
	// file, as /run/netns/<name> looks where the bind mount is not visible.
	sb.paths[nsName("box")] = "/proc/self/ns/net"
	notNS := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notNS, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	sb.paths[nsName("plain")] = notNS

	h := NewHandler(e.m, nil)
	cl := serveUnix(t, h)
	ctx := context.Background()

	f, err := cl.ContainerNetns(ctx, "box")
	if err != nil {
		t.Fatalf("ContainerNetns(box): %v", err)
	}
	defer f.Close()
	var got, want syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &got); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/proc/self/ns/net", &want); err != nil {
		t.Fatal(err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		t.Errorf("passed descriptor is inode %d:%d, want box's netns %d:%d", got.Dev, got.Ino, want.Dev, want.Ino)
	}
	if typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWNET {
		t.Errorf("passed descriptor: namespace type %#x, %v; want CLONE_NEWNET", typ, err)
	}
	if flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("passed descriptor is not close-on-exec (flags %#x, %v): exec'd commands would inherit it", flags, err)
	}

	// The daemon's own failures are its errors, not "route missing".
	_, err = cl.ContainerNetns(ctx, "plain")
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError ||
		!strings.Contains(apiErr.Message, "is not a mounted network namespace") || errors.Is(err, api.ErrNetnsUnsupported) {
		t.Errorf("ContainerNetns(plain) = %v, want a 500 saying it is not a mounted network namespace", err)
	}
	_, err = cl.ContainerNetns(ctx, "ghost")
	if !api.IsNotFound(err) || errors.Is(err, api.ErrNetnsUnsupported) || !strings.Contains(err.Error(), "No such container: ghost") {
		t.Errorf("ContainerNetns(ghost) = %v, want the daemon's 404 No such container", err)
	}

	// A plain GET (no Upgrade) is told how to ask.
	wantStatus(t, h, "GET", "/v1/containers/box/netns", "", http.StatusBadRequest,
		"GET /v1/containers/box/netns passes a file descriptor: send 'Connection: Upgrade' and 'Upgrade: netd-netns-fd' over the unix socket (netd container exec does)")

	// A daemon without the route: callers fall back to the path.
	old := serveUnix(t, http.NewServeMux())
	if _, err := old.ContainerNetns(ctx, "box"); !errors.Is(err, api.ErrNetnsUnsupported) {
		t.Errorf("ContainerNetns from a daemon without the route = %v, want ErrNetnsUnsupported", err)
	}
}
