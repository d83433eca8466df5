//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsEtcDir holds per-namespace files shown over /etc, as for `ip netns exec`.
const netnsEtcDir = "/etc/netns"

// withNetnsEtc makes enter also give fn a private mount namespace in which
// every file of /etc/netns/<netns> is bind-mounted over its namesake in
// /etc, what `ip netns exec` does: the container's resolv.conf (its
// embedded DNS server) replaces the host's for the command only. Without
// such files enter is returned unchanged.
func withNetnsEtc(enter func(func() error) error, netnsName string, warn io.Writer) func(func() error) error {
	dir := filepath.Join(netnsEtcDir, netnsName)
	entries, err := os.ReadDir(dir)
	if netnsName == "" || err != nil || len(entries) == 0 {
		return enter
	}
	return func(fn func() error) error {
		return enter(func() error {
			// Never unlocked: the thread's mount namespace is no longer the
			// process's, so the runtime must end the thread with its goroutine.
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace for %s: %w", dir, err)
			}
			// Nothing mounted here reaches the host's mount namespace.
			if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("make / a slave mount: %w", err)
			}
			for _, e := range entries {
				src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
				if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
					// As ip netns exec: say so, run the command anyway.
					fmt.Fprintf(warn, "Bind %s -> %s failed: %v\n", src, dst, err)
				}
			}
			return fn()
		})
	}
}
