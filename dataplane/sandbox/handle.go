//go:build linux

package sandbox

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// OpenHandle opens the netns at path and a netlink handle in it; the caller closes both.
func OpenHandle(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return ns, nil, fmt.Errorf("open sandbox %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return ns, nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return ns, h, nil
}

// OpenHostHandle opens the calling thread's netns (a driver's host) and a
// netlink handle in it; the caller closes both.
func OpenHostHandle() (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.Get()
	if err != nil {
		return ns, nil, fmt.Errorf("open host netns: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return ns, nil, fmt.Errorf("open netlink handle: %w", err)
	}
	return ns, h, nil
}
