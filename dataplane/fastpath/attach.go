//go:build linux

package fastpath

// Attachment of from_container to host-side veths: a pinned TCX link, or a
// clsact filter where the kernel has no TCX; adopted across restarts.

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tcPriority is the tc filter priority used by the clsact fallback.
const tcPriority = 1

func (e *EBPF) linkPin(ifname string) string {
	return filepath.Join(e.pinDir, linksDir, ifname)
}

// attach makes sure from_container runs on ingress of ifindex; returns the hook used.
func (e *EBPF) attach(ifname string, ifindex int) (string, error) {
	if !e.forceTC && !e.tcxBroken {
		err := e.attachTCX(ifname, ifindex)
		if err == nil {
			return HookTCXIngress, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", err
		}
		e.logger.Warn("TCX not supported, falling back to clsact", "error", err)
		e.tcxBroken = true
	}
	if err := e.attachTC(ifindex); err != nil {
		return "", err
	}
	return HookTCIngress, nil
}

func (e *EBPF) attachTCX(ifname string, ifindex int) error {
	pin := e.linkPin(ifname)
	if l := e.links[ifname]; l != nil {
		if ok, err := e.adoptLink(ifname, l, ifindex); ok || err != nil {
			return err
		}
	}
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if ok, err := e.adoptLink(ifname, l, ifindex); ok || err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		e.logger.Warn("dropping unreadable pinned link", "pin", pin, "error", err)
		_ = os.Remove(pin)
	}
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   e.prog,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		return fmt.Errorf("attach tcx ingress to %s: %w", ifname, err)
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Close()
		return fmt.Errorf("pin link of %s: %w", ifname, err)
	}
	e.links[ifname] = l
	return nil
}

// adoptLink keeps l if it is attached to ifindex (updating its program when
// it changed); otherwise it unpins and closes l and reports false.
func (e *EBPF) adoptLink(ifname string, l link.Link, ifindex int) (bool, error) {
	info, err := l.Info()
	if err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
		if info.Program != e.progID {
			if err := l.Update(e.prog); err != nil {
				return false, fmt.Errorf("update program on link of %s: %w", ifname, err)
			}
			e.logger.Info("moved attachment to the new program", "interface", ifname, "from", info.Program, "to", e.progID)
		}
		e.links[ifname] = l
		return true, nil
	}
	// Stale: the veth was recreated (same name, new ifindex) or the link is defunct.
	_ = l.Unpin()
	_ = os.Remove(e.linkPin(ifname))
	_ = l.Close()
	delete(e.links, ifname)
	return false, nil
}

func (e *EBPF) attachTC(ifindex int) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("add clsact qdisc on ifindex %d: %w", ifindex, err)
	}
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("get link %d: %w", ifindex, err)
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list tc filters on %s: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == tcPriority && ebpf.ProgramID(bf.Id) == e.progID {
			return nil // already ours: adopt
		}
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    netlink.MakeHandle(0, 1),
			Protocol:  unix.ETH_P_ALL,
			Priority:  tcPriority,
		},
		Fd:           e.prog.FD(),
		Name:         progName,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("add tc filter on %s: %w", l.Attrs().Name, err)
	}
	return nil
}

func (e *EBPF) detachTC(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil // the veth is gone and took its filters with it
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list tc filters on %s: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == tcPriority && strings.HasPrefix(bf.Name, progName) {
			if err := netlink.FilterDel(bf); err != nil {
				return fmt.Errorf("delete tc filter on %s: %w", l.Attrs().Name, err)
			}
		}
	}
	return nil
}

// downIfindex finds the ifindex of a host-side veth being taken down: what
// EndpointUp recorded, else the interface, else its TCX link, which it loads
// from the pin for detach when this process never attached it.
func (e *EBPF) downIfindex(ifname string) int {
	ifindex := -1
	if info := e.eps[ifname]; info != nil {
		ifindex = info.ifindex
	} else if l, err := net.InterfaceByName(ifname); err == nil {
		ifindex = l.Index
	}
	if l := e.links[ifname]; l != nil {
		if info, err := l.Info(); err == nil && info.TCX() != nil && ifindex < 0 {
			ifindex = int(info.TCX().Ifindex)
		}
	} else if l, err := link.LoadPinnedLink(e.linkPin(ifname), nil); err == nil {
		e.links[ifname] = l
	}
	return ifindex
}

// detach takes from_container off ifname: the clsact filter, and the pinned link.
func (e *EBPF) detach(ifname string, ifindex int) []error {
	var errs []error
	if ifindex > 0 && (e.forceTC || e.tcxBroken) {
		if err := e.detachTC(ifindex); err != nil {
			errs = append(errs, err)
		}
	}
	if l := e.links[ifname]; l != nil {
		// Unpin and close: the kernel detaches the link with its last reference.
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin link of %s: %w", ifname, err))
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", ifname, err))
		}
		delete(e.links, ifname)
	}
	return errs
}
