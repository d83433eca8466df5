//go:build linux

package macvlan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane/nlutil"
)

// A VLAN sub-interface IFACE.VLAN is an 802.1q link when the kernel has
// them (CONFIG_VLAN_8021Q). Without it (the development VM's kernel), netd
// makes the same thing out of parts every kernel with eBPF has: a veth
// pair whose visible end is IFACE.VLAN and whose hidden end, with two TC
// programs, tags what the macvlans send (push VLAN, redirect out of IFACE)
// and untags what IFACE receives for that VLAN (pop, redirect into the
// hidden end, so it arrives on IFACE.VLAN). Legacy TC filters hold their
// programs in the kernel, so tagging goes on while the daemon is down.
const (
	// VLANAlias marks a sub-interface netd created (either kind).
	VLANAlias = "netd:macvlan-vlan"
	// vlanPeerAliasPrefix marks the hidden end of an emulated one.
	vlanPeerAliasPrefix = "netd:macvlan-vlan-peer:"
	// vlanFilterPrio is the TC priority of the untagging filter of VLAN
	// id on the base interface: one per VLAN, so several coexist.
	vlanFilterPrioBase = 0x8000
	vlanFilterPrefix   = "netd_vlan"
)

// ErrNo8021Q says the kernel has no 802.1q links.
var ErrNo8021Q = errors.New("this kernel has no 802.1q VLAN links (CONFIG_VLAN_8021Q)")

// vlanPeerName is the hidden end of the emulated sub-interface name.
func vlanPeerName(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("nvp%08x", h.Sum32())
}

// EnsureVLAN finds or creates the sub-interface name (VLAN vid on base) in
// h's netns, marked as netd's, and brings it up. A link of that name that
// netd did not make is used as it is. created says netd made it now.
func EnsureVLAN(h *netlink.Handle, base string, vid int, name string) (created bool, err error) {
	bl, err := nlutil.LinkByNameOpt(h, base)
	if err != nil {
		return false, err
	}
	if bl == nil {
		return false, fmt.Errorf("create VLAN sub-interface %s: -o parent interface was not found on the host: %s", name, base)
	}
	l, err := nlutil.LinkByNameOpt(h, name)
	if err != nil {
		return false, err
	}
	if l == nil {
		err := h.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: bl.Attrs().Index}, VlanId: vid})
		switch {
		case errors.Is(err, unix.EOPNOTSUPP):
			if err := addEmulatedVLAN(h, bl, name); err != nil {
				return false, err
			}
		case err != nil && !errors.Is(err, unix.EEXIST):
			return false, fmt.Errorf("create VLAN sub-interface %s: %w", name, err)
		}
		if l, err = h.LinkByName(name); err != nil {
			return false, fmt.Errorf("get VLAN sub-interface %s: %w", name, err)
		}
		if err := h.LinkSetAlias(l, VLANAlias); err != nil {
			return false, fmt.Errorf("mark VLAN sub-interface %s: %w", name, err)
		}
		created = true
	}
	if l.Attrs().Alias == VLANAlias || created {
		if _, ok := l.(*netlink.Veth); ok {
			if err := attachVLANPrograms(h, bl, l, vid); err != nil {
				return created, err
			}
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return created, fmt.Errorf("set VLAN sub-interface %s up: %w", name, err)
	}
	return created, nil
}

// addEmulatedVLAN makes the veth pair of an emulated sub-interface.
func addEmulatedVLAN(h *netlink.Handle, base netlink.Link, name string) error {
	peer := vlanPeerName(name)
	if old, err := nlutil.LinkByNameOpt(h, peer); err == nil && old != nil && strings.HasPrefix(old.Attrs().Alias, vlanPeerAliasPrefix) {
		h.LinkDel(old) // the hidden end of an earlier attempt
	}
	mtu := base.Attrs().MTU
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, PeerName: peer, PeerMTU: uint32(mtu)}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create VLAN sub-interface %s (%v; emulated with a veth pair): %w", name, ErrNo8021Q, err)
	}
	p, err := h.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("get %s, hidden end of %s: %w", peer, name, err)
	}
	if err := h.LinkSetAlias(p, vlanPeerAliasPrefix+name); err != nil {
		return fmt.Errorf("mark %s: %w", peer, err)
	}
	return nil
}

// emulatedPeer is the hidden end of the emulated sub-interface l, or nil.
func emulatedPeer(h *netlink.Handle, l netlink.Link) (netlink.Link, error) {
	if _, ok := l.(*netlink.Veth); !ok {
		return nil, nil
	}
	p, err := nlutil.LinkByNameOpt(h, vlanPeerName(l.Attrs().Name))
	if err != nil || p == nil || p.Attrs().Alias != vlanPeerAliasPrefix+l.Attrs().Name {
		return nil, err
	}
	return p, nil
}

// attachVLANPrograms (re)attaches the tagging program to the hidden end's
// ingress and the untagging one to base's ingress. Replacing them each
// time keeps the ifindexes compiled into them current.
func attachVLANPrograms(h *netlink.Handle, base, sub netlink.Link, vid int) error {
	peer, err := emulatedPeer(h, sub)
	if err != nil {
		return err
	}
	if peer == nil {
		return fmt.Errorf("VLAN sub-interface %s: its hidden end %s is missing: delete %s and create the network again", sub.Attrs().Name, vlanPeerName(sub.Attrs().Name), sub.Attrs().Name)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set %s, hidden end of %s, up: %w", peer.Attrs().Name, sub.Attrs().Name, err)
	}
	name := vlanFilterName(vid)
	if err := attachIngress(h, peer, tagProgram(vid, base.Attrs().Index), name, 1); err != nil {
		return fmt.Errorf("attach VLAN %d tagging to %s: %w", vid, peer.Attrs().Name, err)
	}
	if err := attachIngress(h, base, untagProgram(vid, peer.Attrs().Index), name, vlanFilterPrioBase+uint16(vid)); err != nil {
		return fmt.Errorf("attach VLAN %d untagging to %s: %w", vid, base.Attrs().Name, err)
	}
	return nil
}

// attachIngress loads insns and puts them on l's ingress as a
// direct-action cls_bpf filter at prio; the filter holds the program.
func attachIngress(h *netlink.Handle, l netlink.Link, insns asm.Instructions, name string, prio uint16) error {
	q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SchedCLS, Instructions: insns, License: "GPL"})
	if err != nil {
		return fmt.Errorf("load program: %w", err)
	}
	defer prog.Close()
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: 1, Priority: prio, Protocol: unix.ETH_P_ALL,
		},
		Fd: prog.FD(), Name: name, DirectAction: true,
	}
	if err := h.FilterReplace(f); err != nil {
		return fmt.Errorf("add filter: %w", err)
	}
	return nil
}

// vlanFilterName names the programs and filters of VLAN vid.
func vlanFilterName(vid int) string { return fmt.Sprintf("%s%d", vlanFilterPrefix, vid) }

// vlanFilters lists the untagging filters of vid on l's ingress.
func vlanFilters(h *netlink.Handle, l netlink.Link, vid int) ([]*netlink.BpfFilter, error) {
	fs, err := nlutil.RetryDump(func() ([]netlink.Filter, error) { return h.FilterList(l, netlink.HANDLE_MIN_INGRESS) })
	if err != nil {
		return nil, fmt.Errorf("list filters of %s: %w", l.Attrs().Name, err)
	}
	var out []*netlink.BpfFilter
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == vlanFilterName(vid) {
			out = append(out, bf)
		}
	}
	return out, nil
}

// DeleteVLAN deletes the sub-interface name if netd made it (its mark),
// with the untagging filter an emulated one put on base. It reports
// whether it deleted anything; a link netd did not make stays.
func DeleteVLAN(h *netlink.Handle, base string, vid int, name string) (bool, error) {
	l, err := nlutil.LinkByNameOpt(h, name)
	if err != nil || l == nil || l.Attrs().Alias != VLANAlias {
		return false, err
	}
	if _, emulated := l.(*netlink.Veth); emulated {
		if bl, err := nlutil.LinkByNameOpt(h, base); err == nil && bl != nil {
			fs, err := vlanFilters(h, bl, vid)
			if err != nil {
				return false, err
			}
			for _, f := range fs {
				if err := h.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
					return false, fmt.Errorf("remove VLAN %d untagging from %s: %w", vid, base, err)
				}
			}
		}
	}
	if err := h.LinkDel(l); err != nil && !nlutil.IsNotFound(err) {
		return false, fmt.Errorf("delete VLAN sub-interface %s: %w", name, err)
	}
	return true, nil
}

// checkVLAN lists what is wrong with a sub-interface netd made.
func checkVLAN(h *netlink.Handle, base netlink.Link, l netlink.Link, vid int) []string {
	switch v := l.(type) {
	case *netlink.Vlan:
		if v.VlanId != vid || (base != nil && v.ParentIndex != base.Attrs().Index) {
			return []string{fmt.Sprintf("is VLAN %d on ifindex %d, want VLAN %d on %s", v.VlanId, v.ParentIndex, vid, base.Attrs().Name)}
		}
		return nil
	case *netlink.Veth:
		peer, err := emulatedPeer(h, l)
		if err != nil {
			return []string{err.Error()}
		}
		if peer == nil {
			return []string{"hidden end " + vlanPeerName(l.Attrs().Name) + " of the emulated sub-interface missing"}
		}
		var ps []string
		if fs, err := vlanFilters(h, peer, vid); err != nil || len(fs) == 0 {
			ps = append(ps, fmt.Sprintf("VLAN %d tagging program missing on %s", vid, peer.Attrs().Name))
		}
		if base != nil {
			if fs, err := vlanFilters(h, base, vid); err != nil || len(fs) == 0 {
				ps = append(ps, fmt.Sprintf("VLAN %d untagging program missing on %s", vid, base.Attrs().Name))
			}
		}
		return ps
	}
	return []string{"is a " + l.Type() + ", neither a VLAN link nor netd's emulated one"}
}

// Offsets in struct __sk_buff (include/uapi/linux/bpf.h).
const (
	skbVLANPresent = 20
	skbVLANTCI     = 24
	skbVLANProto   = 28
)

// TC verdicts.
const (
	tcActUnspec = -1 // try the next filter
	tcActShot   = 2
)

// htons8021Q is ETH_P_8021Q as the kernel stores it (network byte order).
func htons8021Q() int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], unix.ETH_P_8021Q)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// tagProgram pushes an 802.1q tag of vid and sends the frame out of ifindex.
func tagProgram(vid, ifindex int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R2, htons8021Q()),
		asm.Mov.Imm(asm.R3, int32(vid)),
		asm.FnSkbVlanPush.Call(), // r1 is still the context
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R1, int32(ifindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("drop"),
		asm.Return(),
	}
}

// untagProgram takes frames tagged vid (802.1q), pops the tag and sends
// them out of ifindex (the hidden end, so they arrive on the
// sub-interface); anything else goes on to the next filter.
func untagProgram(vid, ifindex int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, skbVLANPresent, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R1, skbVLANProto, asm.Word),
		asm.JNE.Imm(asm.R2, htons8021Q(), "pass"),
		asm.LoadMem(asm.R2, asm.R1, skbVLANTCI, asm.Word),
		asm.And.Imm(asm.R2, 0x0fff),
		asm.JNE.Imm(asm.R2, int32(vid), "pass"),
		asm.FnSkbVlanPop.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.Mov.Imm(asm.R1, int32(ifindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActUnspec).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("drop"),
		asm.Return(),
	}
}
