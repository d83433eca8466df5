//go:build linux

package fastpath

// Attachment of the programs: a pinned TCX link per interface, or a clsact
// filter where the kernel has no TCX; adopted across restarts. Call these in
// the network namespace of the interface (the host's).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	bridgefp "github.com/netd-dev/netd/dataplane/fastpath"
)

// Hooks reported by Attach, as the bridge's fast path names them.
const (
	HookTCXIngress = bridgefp.HookTCXIngress
	HookTCIngress  = bridgefp.HookTCIngress
)

// tcPriority of the clsact fallback filter; the device carries no other netd filter.
const tcPriority = 1

func (o *Overlay) linkPin(ifname string) string {
	return filepath.Join(o.pinDir, linksDir, ifname)
}

// AttachEndpoint runs overlay_from_container on ingress of a host-side veth
// of a local endpoint (PutEndpoint it first). Returns the hook used.
func (o *Overlay) AttachEndpoint(ifname string, ifindex int) (string, error) {
	return o.attach(ProgFromContainer, ifname, ifindex)
}

// AttachTunnel runs overlay_from_tunnel on ingress of the host's
// collect-metadata VXLAN device. Returns the hook used.
func (o *Overlay) AttachTunnel(ifname string, ifindex int) (string, error) {
	return o.attach(ProgFromTunnel, ifname, ifindex)
}

func (o *Overlay) attach(prog, ifname string, ifindex int) (string, error) {
	if ifindex <= 0 || ifname == "" || strings.ContainsRune(ifname, '/') {
		return "", fmt.Errorf("attach %s: interface %q (ifindex %d) is not valid", prog, ifname, ifindex)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.progs[prog]
	if p == nil {
		return "", fmt.Errorf("attach %s to %s: program not loaded", prog, ifname)
	}
	hook := HookTCXIngress
	if o.forceTC || o.tcxBroken {
		hook = HookTCIngress
	} else if err := o.attachTCX(prog, p, ifname, ifindex); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", err
		}
		o.logger.Warn("TCX not supported, falling back to clsact", "error", err)
		o.tcxBroken = true
		hook = HookTCIngress
	}
	if hook == HookTCIngress {
		if err := o.attachTC(prog, p, ifindex); err != nil {
			return "", err
		}
	}
	o.attached[ifname] = &attachState{ifindex: ifindex, prog: prog, hook: hook}
	return hook, nil
}

func (o *Overlay) attachTCX(prog string, p *ebpf.Program, ifname string, ifindex int) error {
	pin := o.linkPin(ifname)
	if l := o.links[ifname]; l != nil {
		if ok, err := o.adoptLink(prog, ifname, l, ifindex); ok || err != nil {
			return err
		}
	}
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if ok, err := o.adoptLink(prog, ifname, l, ifindex); ok || err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		o.logger.Warn("dropping unreadable pinned link", "pin", pin, "error", err)
		_ = os.Remove(pin)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: p, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach %s to tcx ingress of %s: %w", prog, ifname, err)
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Close()
		return fmt.Errorf("pin link of %s: %w", ifname, err)
	}
	o.links[ifname] = l
	return nil
}

// adoptLink keeps l if it is a TCX link on ifindex, moving it to prog when
// it runs something else (another build); else it unpins and closes l.
func (o *Overlay) adoptLink(prog, ifname string, l link.Link, ifindex int) (bool, error) {
	info, err := l.Info()
	if err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
		if id := o.progIDs[prog]; info.Program != id {
			if err := l.Update(o.progs[prog]); err != nil {
				return false, fmt.Errorf("update program on link of %s: %w", ifname, err)
			}
			o.logger.Info("moved attachment to the new program", "interface", ifname, "program", prog, "from", info.Program, "to", id)
		}
		o.links[ifname] = l
		return true, nil
	}
	// Stale: the interface was recreated (same name, new ifindex) or the link is defunct.
	_ = l.Unpin()
	_ = os.Remove(o.linkPin(ifname))
	_ = l.Close()
	delete(o.links, ifname)
	return false, nil
}

func (o *Overlay) attachTC(prog string, p *ebpf.Program, ifindex int) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("add clsact qdisc on ifindex %d: %w", ifindex, err)
	}
	info, err := p.Info()
	if err != nil {
		return fmt.Errorf("program info of %s: %w", prog, err)
	}
	id, _ := info.ID()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("get link %d: %w", ifindex, err)
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list tc filters on %s: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == tcPriority && ebpf.ProgramID(bf.Id) == id {
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
		Fd:           p.FD(),
		Name:         prog,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("add tc filter %s on %s: %w", prog, l.Attrs().Name, err)
	}
	return nil
}

// Detach takes the overlay program off ifname: its pinned TCX link and any
// clsact filter of ours. An interface already gone took both with it.
func (o *Overlay) Detach(ifname string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	ifindex := 0
	if st := o.attached[ifname]; st != nil {
		ifindex = st.ifindex
	} else if l, err := netlink.LinkByName(ifname); err == nil {
		ifindex = l.Attrs().Index
	}
	if ifindex > 0 {
		if err := detachTC(ifindex); err != nil {
			errs = append(errs, err)
		}
	}
	l := o.links[ifname]
	if l == nil {
		if pl, err := link.LoadPinnedLink(o.linkPin(ifname), nil); err == nil {
			l = pl
		}
	}
	if l != nil {
		// Unpin and close: the kernel detaches the link with its last reference.
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin link of %s: %w", ifname, err))
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", ifname, err))
		}
	}
	delete(o.links, ifname)
	delete(o.attached, ifname)
	return errors.Join(errs...)
}

func detachTC(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil // the interface is gone and took its filters with it
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list tc filters on %s: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == tcPriority &&
			(strings.HasPrefix(bf.Name, ProgFromContainer) || strings.HasPrefix(bf.Name, ProgFromTunnel)) {
			if err := netlink.FilterDel(bf); err != nil {
				return fmt.Errorf("delete tc filter on %s: %w", l.Attrs().Name, err)
			}
		}
	}
	return nil
}
