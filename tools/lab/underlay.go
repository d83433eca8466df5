package lab

import (
	"fmt"
	"net/netip"
	"sync"
)

// UnderlayNet is the underlay's subnet: lab host i (from 1) gets .i.
const UnderlayNet = "10.99.0.0/24"

// Underlay is the network between lab hosts, as the LAN between real
// machines: a switch (a Linux bridge in the lab namespace <prefix>-ul) and
// one veth per host, "ul0" inside the host. Cut, Restore and Impair act on
// the switch's port of a host, like pulling its cable or a bad link.
type Underlay struct {
	Switch *Host
	l      *Lab

	mu    sync.Mutex
	next  int
	addrs map[*Host]netip.Addr
	ports map[*Host]string
	imp   *impairments // relayed ports, made by the first Impair (impair.go)
}

// Underlay creates the switch; it is removed with the lab.
func (l *Lab) Underlay() (*Underlay, error) {
	sw, err := l.Host("ul")
	if err != nil {
		return nil, err
	}
	for _, s := range [][]string{
		{"ip", "-n", sw.Node, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw.Node, "link", "set", "br0", "up"},
	} {
		if _, err := l.run(s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("underlay switch: %w", err)
		}
	}
	return &Underlay{Switch: sw, l: l, addrs: map[*Host]netip.Addr{}, ports: map[*Host]string{}}, nil
}

// Attach plugs h into the switch and returns its underlay address.
func (u *Underlay) Attach(h *Host) (netip.Addr, error) {
	u.mu.Lock()
	u.next++
	n := u.next
	u.mu.Unlock()
	pfx := netip.MustParsePrefix(UnderlayNet)
	addr := pfx.Addr().As4()
	addr[3] = byte(n)
	a := netip.AddrFrom4(addr)
	port := fmt.Sprintf("p%d", n)
	// Made inside h, the peer moved straight to the switch: the root
	// namespace never holds either end.
	for _, s := range [][]string{
		{"ip", "-n", h.Node, "link", "add", "ul0", "type", "veth", "peer", "name", port, "netns", u.Switch.Node},
		{"ip", "-n", h.Node, "addr", "add", netip.PrefixFrom(a, pfx.Bits()).String(), "dev", "ul0"},
		{"ip", "-n", h.Node, "link", "set", "ul0", "up"},
		{"ip", "-n", u.Switch.Node, "link", "set", port, "master", "br0"},
		{"ip", "-n", u.Switch.Node, "link", "set", port, "up"},
	} {
		if _, err := u.l.run(s[0], s[1:]...); err != nil {
			return netip.Addr{}, fmt.Errorf("underlay port for %s: %w", h.Node, err)
		}
	}
	u.mu.Lock()
	u.addrs[h], u.ports[h] = a, port
	u.mu.Unlock()
	return a, nil
}

// Addr is h's underlay address.
func (u *Underlay) Addr(h *Host) netip.Addr {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.addrs[h]
}

func (u *Underlay) port(h *Host) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, ok := u.ports[h]
	if !ok {
		return "", fmt.Errorf("%s is not attached to the underlay", h.Node)
	}
	return p, nil
}

// Cut takes h's switch port down: h is partitioned from every other host
// (its own link stays up, as when a switch port or uplink fails).
func (u *Underlay) Cut(h *Host) error { return u.setPort(h, "down") }

// Restore brings h's switch port back.
func (u *Underlay) Restore(h *Host) error { return u.setPort(h, "up") }

func (u *Underlay) setPort(h *Host, state string) error {
	p, err := u.port(h)
	if err != nil {
		return err
	}
	_, err = u.l.run("ip", "-n", u.Switch.Node, "link", "set", p, state)
	return err
}
