//go:build linux

package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
)

// netnsSendTimeout bounds the write of the namespace to a client that does not read.
const netnsSendTimeout = 10 * time.Second

// containerNetns answers GET /v1/containers/{id}/netns by passing the open
// network namespace of the container over the unix socket (SCM_RIGHTS), as
// a 101 answer to Upgrade: api.NetnsUpgrade. The daemon opens it in its own
// mount namespace, so `netd container exec` works from any other one (under
// `ip netns exec`, the container's bind mount is visible only here).
func (s *server) containerNetns(w http.ResponseWriter, r *http.Request) {
	// On errors too: says the route exists, so a 404 is about the container.
	w.Header().Set("Upgrade", api.NetnsUpgrade)
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.NetnsUpgrade) {
		s.fail(w, r, errInvalid("%s %s passes a file descriptor: send 'Connection: Upgrade' and 'Upgrade: %s' over the unix socket (netd container exec does)",
			r.Method, r.URL.Path, api.NetnsUpgrade))
		return
	}
	c, err := s.m.InspectContainer(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, isUnix := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); !isUnix {
		s.fail(w, r, errInvalid("the network namespace of container %s can be passed only over a unix socket", c.Name))
		return
	}
	// What runs in the container finds its resolver answering.
	s.m.waitDNS(r.Context(), c)
	ns, err := openNetns(c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer ns.Close()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.fail(w, r, fmt.Errorf("pass network namespace of container %s: %w", c.Name, err))
		return
	}
	defer conn.Close()
	if rec, ok := w.(*statusRecorder); ok {
		rec.code = http.StatusSwitchingProtocols
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		s.log.Error("pass network namespace: connection is not a unix socket", "container", c.Name)
		return
	}
	answer := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + api.NetnsUpgrade + "\r\n\r\n"
	_ = uc.SetWriteDeadline(time.Now().Add(netnsSendTimeout))
	// One sendmsg: the descriptor rides on the answer's first byte.
	if _, _, err := uc.WriteMsgUnix([]byte(answer), unix.UnixRights(int(ns.Fd())), nil); err != nil {
		s.log.Warn("pass network namespace", "container", c.Name, "err", err)
		return
	}
	s.log.Debug("passed network namespace", "container", c.Name, "netns", c.NetworkSettings.SandboxKey)
}

// openNetns opens the container's network namespace and checks that it is
// one: a path whose bind mount is gone is an empty file.
func openNetns(c api.Container) (*os.File, error) {
	path := c.NetworkSettings.SandboxKey
	if path == "" {
		return nil, errConflict("container %s has no network namespace", c.Name)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace of container %s: %w", c.Name, err)
	}
	if t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		f.Close()
		return nil, fmt.Errorf("open network namespace of container %s: %s is not a mounted network namespace (remove and recreate the container)", c.Name, path)
	}
	return f, nil
}

// Unwrap lets http.ResponseController reach the connection behind the
// access log's recorder, so containerNetns can hijack it.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// checkMountNamespace warns when the daemon runs in a mount namespace of its
// own (as under `ip netns exec`): the bind mounts of its containers'
// namespaces under /run/netns then exist only inside it. It compares with
// init's, or with its parent's where init's cannot be read (in a sandbox).
func (d *daemon) checkMountNamespace(context.Context) error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		d.log.Debug("cannot read the daemon's mount namespace", "err", err)
		return nil
	}
	var ref, refErr string
	for _, who := range []string{"1", strconv.Itoa(os.Getppid())} {
		other, err := os.Readlink("/proc/" + who + "/ns/mnt")
		if err == nil {
			ref = who
			if other != self {
				d.log.Warn("the daemon runs in a private mount namespace (e.g. under `ip netns exec`): "+
					"its containers' namespaces are mounted under /run/netns only inside it, "+
					"so `ip netns exec <container>` from outside will not see them (`netd container exec` works from anywhere); "+
					"`ip netns exec` also remounts /sys, so a bpffs mounted there is the daemon's own and its eBPF pins end with it: "+
					"forwarding on ebpf networks then stops while the daemon is down. Start it with `nsenter --net=/run/netns/<ns>` to keep the machine's mounts",
					"mount_ns", self, "pid"+who+"_mount_ns", other)
			}
			break
		}
		refErr = err.Error()
	}
	if ref == "" {
		d.log.Debug("cannot compare mount namespaces", "err", refErr)
	}
	return nil
}
