//go:build linux

package lab

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/netd-dev/netd/dataplane/macvlan"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// The external network's addresses: an untagged LAN and VLAN ExtVLAN on
// one switch, a host on both, a router between them and a far network.
const (
	ExtLAN         = "10.50.0.0/24"
	ExtRouter      = "10.50.0.1"   // the LAN's gateway
	ExtHost        = "10.50.0.100" // a machine on the LAN
	ExtVLAN        = 10
	ExtVLANNet     = "10.60.0.0/24"
	ExtVLANRouter  = "10.60.0.1"
	ExtVLANHost    = "10.60.0.100"
	ExtFar         = "192.0.2.10" // beyond the router
	extRouterFar   = "192.0.2.1"
	externalPrefix = "x"
)

// External is a network outside the lab hosts, the physical LAN a macvlan
// network sits on: a switch (a Linux bridge in its own netns, no VLAN
// filtering, so tagged frames pass as they are), a host and a router
// plugged into it, each with an untagged address and one on VLAN ExtVLAN,
// and a far host the router routes to. Lab hosts are plugged in with Plug.
type External struct {
	Switch, Host, Router, Far *Host
	l                         *Lab
}

// External builds the external network in namespaces of the lab
// (<prefix>-xsw, -xhost, -xrtr, -xfar), removed with it.
func (l *Lab) External() (*External, error) {
	x := &External{l: l}
	for _, p := range []struct {
		h    **Host
		name string
	}{{&x.Switch, "sw"}, {&x.Host, "host"}, {&x.Router, "rtr"}, {&x.Far, "far"}} {
		h, err := l.Host(externalPrefix + p.name)
		if err != nil {
			return nil, err
		}
		*p.h = h
	}
	steps := [][]string{
		{"ip", "-n", x.Switch.Node, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", x.Switch.Node, "link", "set", "br0", "up"},
		{"ip", "netns", "exec", x.Router.Node, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	for _, s := range steps {
		if _, err := l.run(s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("external network: %w", err)
		}
	}
	for _, m := range []struct {
		h          *Host
		lan, vlan  string
		defaultVia string
	}{{x.Host, ExtHost, ExtVLANHost, ExtRouter}, {x.Router, ExtRouter, ExtVLANRouter, ""}} {
		if err := x.Plug(m.h, "eth0"); err != nil {
			return nil, err
		}
		if err := x.addVLAN(m.h, "eth0"); err != nil {
			return nil, err
		}
		steps := [][]string{
			{"ip", "-n", m.h.Node, "addr", "add", m.lan + "/24", "dev", "eth0"},
			{"ip", "-n", m.h.Node, "addr", "add", m.vlan + "/24", "dev", fmt.Sprintf("eth0.%d", ExtVLAN)},
		}
		if m.defaultVia != "" {
			steps = append(steps, []string{"ip", "-n", m.h.Node, "route", "add", "default", "via", m.defaultVia})
		}
		for _, s := range steps {
			if _, err := l.run(s[0], s[1:]...); err != nil {
				return nil, fmt.Errorf("external network: %w", err)
			}
		}
	}
	if err := l.Wire(x.Router, x.Far, "far0", extRouterFar+"/24", ExtFar+"/24"); err != nil {
		return nil, err
	}
	if _, err := l.run("ip", "-n", x.Far.Node, "route", "add", "default", "via", extRouterFar); err != nil {
		return nil, fmt.Errorf("external network: %w", err)
	}
	return x, nil
}

// portName is h's port on the switch.
func portName(h *Host, ifName string) string {
	n := fmt.Sprintf("p%d%s", len(h.Name), h.Name+ifName)
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// Plug wires h into the switch: h gets ifName (up, no address), the switch
// a port for it.
func (x *External) Plug(h *Host, ifName string) error {
	port := portName(h, ifName)
	steps := [][]string{
		{"ip", "-n", x.Switch.Node, "link", "add", port, "type", "veth", "peer", "name", ifName, "netns", h.Node},
		{"ip", "-n", x.Switch.Node, "link", "set", port, "master", "br0"},
		{"ip", "-n", x.Switch.Node, "link", "set", port, "up"},
		{"ip", "-n", h.Node, "link", "set", ifName, "up"},
	}
	for _, s := range steps {
		if _, err := x.l.run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("plug %s %s into the external switch: %w", h.Node, ifName, err)
		}
	}
	return nil
}

// Hairpin turns hairpin mode of h's switch port on or off: with it the
// switch sends a frame back out of the port it came in on, which VEPA
// needs for two containers of one host to talk.
func (x *External) Hairpin(h *Host, ifName string, on bool) error {
	v := "off"
	if on {
		v = "on"
	}
	if _, err := x.l.run("ip", "-n", x.Switch.Node, "link", "set", "dev", portName(h, ifName), "type", "bridge_slave", "hairpin", v); err != nil {
		return fmt.Errorf("hairpin %s on the port of %s: %w", v, h.Node, err)
	}
	return nil
}

// addVLAN gives h the sub-interface <ifName>.ExtVLAN, the way netd makes
// one (an 802.1q link, or its emulation where the kernel has none).
func (x *External) addVLAN(h *Host, ifName string) error {
	return sandbox.DoPath(h.NSPath(), func() error {
		nl, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer nl.Close()
		_, err = macvlan.EnsureVLAN(nl, ifName, ExtVLAN, fmt.Sprintf("%s.%d", ifName, ExtVLAN))
		return err
	})
}
