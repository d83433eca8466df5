//go:build linux

// Package nlutil holds the netlink helpers every kernel-facing package
// shares: dumps retried when the kernel interrupts them, and "not found"
// told apart from real failures.
package nlutil

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds how often a dump interrupted by concurrent changes is redone.
const dumpRetries = 10

// RetryDump redoes a netlink dump while the kernel reports it was interrupted.
func RetryDump[T any](dump func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range dumpRetries {
		v, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, fmt.Errorf("dump still interrupted after %d tries: %w", dumpRetries, err)
}

// LinkList lists the links of h's netns.
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	return RetryDump(h.LinkList)
}

// AddrList lists the IPv4 addresses of link.
func AddrList(h *netlink.Handle, link netlink.Link) ([]netlink.Addr, error) {
	return RetryDump(func() ([]netlink.Addr, error) { return h.AddrList(link, unix.AF_INET) })
}

// RoutePrefixes lists the IPv4 destinations routed in h's netns (the
// default route as 0.0.0.0/0 is left out: it has no Dst).
func RoutePrefixes(h *netlink.Handle) ([]netip.Prefix, error) {
	routes, err := RetryDump(func() ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if ones == 0 {
			continue // a default route (netlink reports it as 0.0.0.0/0) occupies no subnet
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out, nil
}

// IsNotFound reports whether err means the link does not exist.
func IsNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// LinkByNameOpt returns the link or nil if it does not exist.
func LinkByNameOpt(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get link %s: %w", name, err)
	}
	return l, nil
}

// PrefixToIPNet converts for the netlink API.
func PrefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
