//go:build linux

// Package bpfattach runs netd's TC programs on ingress of interfaces: a TCX
// link pinned on bpffs, or a clsact filter where the kernel has no TCX, both
// adopted across daemon restarts. The bridge and overlay fast paths share it.
package bpfattach

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Hooks reported by Attach.
const (
	HookTCXIngress = "tcx-ingress"
	HookTCIngress  = "tc-ingress"
)

// tcPriority of the clsact fallback filter; a device carries no other netd filter.
const tcPriority = 1

// Program is a loaded program with its name (its tc filter carries it) and kernel ID.
type Program struct {
	Name string
	Prog *ebpf.Program
	ID   ebpf.ProgramID
}

// Attacher keeps the attachments of one fast path. Callers serialize its use.
type Attacher struct {
	Dir       string               // bpffs dir holding one link pin per interface
	Logger    *slog.Logger         // where the TCX fallback and link moves are told
	Links     map[string]link.Link // interface name -> its TCX link, pinned in Dir
	ForceTC   bool                 // tests: behave as if TCX were missing
	TCXBroken bool                 // TCX probed unsupported: clsact from now on
}

// New is an Attacher with its link pins in dir.
func New(dir string, logger *slog.Logger) Attacher {
	return Attacher{Dir: dir, Logger: logger, Links: map[string]link.Link{}}
}

// Pin is the path of the link pin of ifname.
func (a *Attacher) Pin(ifname string) string { return filepath.Join(a.Dir, ifname) }

// UseTC reports whether attachments are clsact filters rather than TCX links.
func (a *Attacher) UseTC() bool { return a.ForceTC || a.TCXBroken }

// Attach makes sure p runs on ingress of ifname (ifindex) and returns the
// hook used: a pinned TCX link, or a clsact filter once TCX proved missing.
func (a *Attacher) Attach(p Program, ifname string, ifindex int) (string, error) {
	if !a.UseTC() {
		err := a.attachTCX(p, ifname, ifindex)
		if err == nil {
			return HookTCXIngress, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return "", err
		}
		a.Logger.Warn("TCX not supported, falling back to clsact", "error", err)
		a.TCXBroken = true
	}
	if err := AttachTC(p, ifindex); err != nil {
		return "", err
	}
	return HookTCIngress, nil
}

func (a *Attacher) attachTCX(p Program, ifname string, ifindex int) error {
	pin := a.Pin(ifname)
	if l := a.Links[ifname]; l != nil {
		if ok, err := a.adoptLink(p, ifname, l, ifindex); ok || err != nil {
			return err
		}
	}
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if ok, err := a.adoptLink(p, ifname, l, ifindex); ok || err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		a.Logger.Warn("dropping unreadable pinned link", "pin", pin, "error", err)
		_ = os.Remove(pin)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: p.Prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach %s to tcx ingress of %s: %w", p.Name, ifname, err)
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Close()
		return fmt.Errorf("pin link of %s: %w", ifname, err)
	}
	a.Links[ifname] = l
	return nil
}

// adoptLink keeps l if it is a TCX link on ifindex, moving it to p when it
// runs another program (another build); else it unpins and closes l.
func (a *Attacher) adoptLink(p Program, ifname string, l link.Link, ifindex int) (bool, error) {
	info, err := l.Info()
	if err == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
		if info.Program != p.ID {
			if err := l.Update(p.Prog); err != nil {
				return false, fmt.Errorf("update program on link of %s: %w", ifname, err)
			}
			a.Logger.Info("moved attachment to the new program", "interface", ifname, "program", p.Name, "from", info.Program, "to", p.ID)
		}
		a.Links[ifname] = l
		return true, nil
	}
	// Stale: the interface was recreated (same name, new ifindex) or the link is defunct.
	_ = l.Unpin()
	_ = os.Remove(a.Pin(ifname))
	_ = l.Close()
	delete(a.Links, ifname)
	return false, nil
}

// DetachLink unpins and closes the TCX link of ifname (loaded from its pin
// when this process holds none): the kernel detaches it with its last reference.
func (a *Attacher) DetachLink(ifname string) []error {
	l := a.Links[ifname]
	if l == nil {
		if pl, err := link.LoadPinnedLink(a.Pin(ifname), nil); err == nil {
			l = pl
		}
	}
	var errs []error
	if l != nil {
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin link of %s: %w", ifname, err))
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", ifname, err))
		}
	}
	delete(a.Links, ifname)
	return errs
}

// CloseLinks releases the links' file descriptors and keeps their pins, so
// the programs go on running while the daemon is down.
func (a *Attacher) CloseLinks() []error {
	var errs []error
	for name, l := range a.Links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", name, err))
		}
	}
	a.Links = map[string]link.Link{}
	return errs
}

// AttachTC runs p on ingress of ifindex as a clsact filter, adopting one of
// ours that already runs it.
func AttachTC(p Program, ifindex int) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
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
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == tcPriority && ebpf.ProgramID(bf.Id) == p.ID {
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
		Fd:           p.Prog.FD(),
		Name:         p.Name,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("add tc filter %s on %s: %w", p.Name, l.Attrs().Name, err)
	}
	return nil
}

// DetachTC deletes our clsact filters on ingress of ifindex that run one of
// the programs named. An interface already gone took its filters with it.
func DetachTC(ifindex int, names ...string) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return fmt.Errorf("list tc filters on %s: %w", l.Attrs().Name, err)
	}
	for _, f := range filters {
		bf, ok := f.(*netlink.BpfFilter)
		if !ok || bf.Priority != tcPriority || !hasAnyPrefix(bf.Name, names) {
			continue
		}
		if err := netlink.FilterDel(bf); err != nil {
			return fmt.Errorf("delete tc filter on %s: %w", l.Attrs().Name, err)
		}
	}
	return nil
}

// hasAnyPrefix reports whether s starts with one of prefixes.
func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// HaveTCX says whether the kernel has TCX (Linux 6.6+): a query of the
// TCX ingress programs of the calling netns' loopback answers; older
// kernels refuse the attach type (EINVAL), and programs attach with TC
// clsact there (Attach falls back by itself).
func HaveTCX() bool {
	_, err := link.QueryPrograms(link.QueryOptions{Target: 1, Attach: ebpf.AttachTCXIngress})
	return err == nil
}
