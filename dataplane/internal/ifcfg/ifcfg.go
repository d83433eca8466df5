//go:build linux

// Package ifcfg configures the container side of an endpoint inside its
// sandbox (MAC, MTU, address, up, default route, IPv6 off), the same way for
// every driver that puts an interface there.
package ifcfg

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// Config is what the container side of an endpoint is given; zero fields are left alone.
type Config struct {
	SandboxPath  string           // the sandbox's netns, for its sysctls
	DisableIPv6  bool             // an IPv4-only network, as Docker
	MAC          net.HardwareAddr // set when not already the link's
	MTU          int              // set when not already the link's
	Addr         netip.Prefix     // added unless present
	DefaultRoute bool             // a default route via Gateway
	Gateway      netip.Addr
}

// Apply configures l, reached through sh (a handle in the sandbox), and sets it up.
func Apply(sh *netlink.Handle, l netlink.Link, c Config) error {
	// Before up, so the interface never sends DAD or MLD nor takes a link-local address.
	if c.DisableIPv6 {
		if err := DisableIPv6(c.SandboxPath, l.Attrs().Name); err != nil {
			return err
		}
	}
	if len(c.MAC) > 0 && !bytes.Equal(l.Attrs().HardwareAddr, c.MAC) {
		if err := sh.LinkSetDown(l); err != nil {
			return fmt.Errorf("set down: %w", err)
		}
		if err := sh.LinkSetHardwareAddr(l, c.MAC); err != nil {
			return fmt.Errorf("set MAC %s: %w", c.MAC, err)
		}
	}
	if c.MTU > 0 && l.Attrs().MTU != c.MTU {
		if err := sh.LinkSetMTU(l, c.MTU); err != nil {
			return fmt.Errorf("set MTU %d: %w", c.MTU, err)
		}
	}
	if c.Addr.IsValid() {
		if err := EnsureAddr(sh, l, c.Addr); err != nil {
			return err
		}
	}
	if err := sh.LinkSetUp(l); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if c.DefaultRoute && c.Gateway.IsValid() {
		dst := nlutil.PrefixToIPNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		if c.Gateway.Is6() {
			dst = nlutil.PrefixToIPNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: c.Gateway.AsSlice()}
		if err := sh.RouteReplace(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", c.Gateway, err)
		}
	}
	return nil
}

// EnsureAddr adds p to link unless it is there already.
func EnsureAddr(h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	// No listing first: a dump of every address costs O(networks) per call.
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: nlutil.PrefixToIPNet(p)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %s to %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

// DisableIPv6 turns IPv6 off on ifname in the netns at nsPath, as Docker does
// on IPv4-only networks; a kernel without IPv6 has nothing to turn off.
func DisableIPv6(nsPath, ifname string) error {
	path := "/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6"
	return sandbox.DoPath(nsPath, func() error {
		cur, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if bytes.Equal(bytes.TrimSpace(cur), []byte("1")) {
			return nil
		}
		if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("disable IPv6 on %s: %w", ifname, err)
		}
		return nil
	})
}
