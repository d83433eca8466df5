//go:build linux

package fastpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Hook names reported in Attachment.
const (
	HookTCXIngress = "tcx-ingress"
	HookTCIngress  = "tc-ingress"
)

// ebpfProgName is the entry point in bpf/bridge.c; also the program's pin name.
const ebpfProgName = fastpathProgFromContainer

// ebpfTCPriority is the tc filter priority used by the clsact fallback.
const ebpfTCPriority = 1

// ErrEBPFUnsupported says the kernel lacks what the fast path needs.
var ErrEBPFUnsupported = errors.New("ebpf dataplane not supported by this kernel")

// EBPF is the eBPF fast path of the bridge driver: it owns the pinned maps,
// the from_container program and one attachment per host-side veth.
type EBPF struct {
	logger *slog.Logger
	pinDir string

	mu        sync.Mutex
	prog      *ebpf.Program
	progID    ebpf.ProgramID
	endpoints *ebpf.Map
	ifaces    *ebpf.Map
	networks  *ebpf.Map
	subnets   *ebpf.Map
	counters  *ebpf.Map
	forceTC   bool                   // tests: behave as if TCX were missing
	tcxBroken bool                   // TCX probed unsupported: use clsact
	netNames  map[uint32]string      // network index -> name, for Status
	eps       map[string]*ebpfEPInfo // host ifname -> endpoint
	links     map[string]link.Link   // host ifname -> pinned TCX link
}

type ebpfEPInfo struct {
	network   string
	container string
	ifname    string
	ifindex   int
	mac       net.HardwareAddr
	hook      string
}

// NewEBPF loads (or adopts) the fast path pinned under pinDir, which must be on bpffs.
func NewEBPF(pinDir string, logger *slog.Logger) (*EBPF, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(pinDir, "links"), 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(pinDir, &st); err != nil {
		return nil, fmt.Errorf("stat pin dir: %w", err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("pin dir %s is not on bpffs (mount -t bpf bpf /sys/fs/bpf): %w", pinDir, ErrEBPFUnsupported)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}

	spec, err := loadFastpath()
	if err != nil {
		return nil, fmt.Errorf("load fastpath spec: %w", err)
	}
	// .bss only carries a BTF anchor for bpf2go -type; the program never uses it.
	delete(spec.Maps, ".bss")
	delete(spec.Variables, fastpathVarUnusedDropReason)

	e := &EBPF{
		logger:   logger,
		pinDir:   pinDir,
		netNames: map[uint32]string{},
		eps:      map[string]*ebpfEPInfo{},
		links:    map[string]link.Link{},
	}
	migrated := false
	maps := map[string]**ebpf.Map{
		fastpathMapEndpoints: &e.endpoints,
		fastpathMapIfaces:    &e.ifaces,
		fastpathMapNetworks:  &e.networks,
		fastpathMapSubnets:   &e.subnets,
		fastpathMapCounters:  &e.counters,
	}
	for name, dst := range maps {
		ms := spec.Maps[name]
		ms.Pinning = ebpf.PinByName
		m, err := ebpf.NewMapWithOptions(ms, ebpf.MapOptions{PinPath: pinDir})
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			m, err = e.migrateMap(ms)
			migrated = true
		}
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("open map %s: %w", name, err)
		}
		*dst = m
	}

	if err := e.loadProgram(spec, migrated); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// migrateMap replaces a pinned map whose layout changed, copying what fits.
func (e *EBPF) migrateMap(ms *ebpf.MapSpec) (*ebpf.Map, error) {
	path := filepath.Join(e.pinDir, ms.Name)
	old, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return nil, fmt.Errorf("load pinned map: %w", err)
	}
	defer old.Close()
	oi, err := old.Info()
	if err != nil {
		return nil, fmt.Errorf("map info: %w", err)
	}
	ns := ms.Copy()
	ns.Pinning = ebpf.PinNone
	nm, err := ebpf.NewMapWithOptions(ns, ebpf.MapOptions{})
	if err != nil {
		return nil, fmt.Errorf("create migrated map: %w", err)
	}
	copied, skipped := 0, 0
	if oi.Type == ns.Type && oi.KeySize == ns.KeySize {
		copied, skipped = copyMapEntries(old, nm, oi, ns)
	}
	// Replace the pin: a new link or program never sees the old layout again.
	if err := os.Remove(path); err != nil {
		nm.Close()
		return nil, fmt.Errorf("unpin old map: %w", err)
	}
	if err := nm.Pin(path); err != nil {
		nm.Close()
		return nil, fmt.Errorf("pin migrated map: %w", err)
	}
	e.logger.Warn("migrated pinned eBPF map with a changed layout",
		"map", ms.Name,
		"old_key_size", oi.KeySize, "old_value_size", oi.ValueSize, "old_max_entries", oi.MaxEntries,
		"new_key_size", ns.KeySize, "new_value_size", ns.ValueSize, "new_max_entries", ns.MaxEntries,
		"copied", copied, "skipped", skipped)
	return nm, nil
}

// copyMapEntries copies entries with equal key size, truncating or zero-extending values.
func copyMapEntries(from, to *ebpf.Map, oi *ebpf.MapInfo, ns *ebpf.MapSpec) (copied, skipped int) {
	fit := func(v []byte) []byte {
		out := make([]byte, ns.ValueSize)
		copy(out, v)
		return out
	}
	perCPU := oi.Type == ebpf.PerCPUHash || oi.Type == ebpf.PerCPUArray || oi.Type == ebpf.LRUCPUHash
	var key []byte
	it := from.Iterate()
	if perCPU {
		var vals [][]byte
		for it.Next(&key, &vals) {
			nv := make([][]byte, len(vals))
			for i, v := range vals {
				nv[i] = fit(v)
			}
			if err := to.Put(key, nv); err != nil {
				skipped++
				continue
			}
			copied++
		}
	} else {
		var val []byte
		for it.Next(&key, &val) {
			if err := to.Put(key, fit(val)); err != nil {
				skipped++
				continue
			}
			copied++
		}
	}
	return copied, skipped
}

// loadProgram adopts the pinned program when it is the one we carry and uses
// our maps; otherwise it loads the new one and moves every pinned link to it.
func (e *EBPF) loadProgram(spec *ebpf.CollectionSpec, forceReload bool) error {
	ps := spec.Programs[ebpfProgName]
	pinPath := filepath.Join(e.pinDir, ebpfProgName)
	if !forceReload {
		if p, err := ebpf.LoadPinnedProgram(pinPath, nil); err == nil {
			if e.sameProgram(ps, p) {
				return e.setProgram(p)
			}
			p.Close()
		}
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{
			fastpathMapEndpoints: e.endpoints,
			fastpathMapIfaces:    e.ifaces,
			fastpathMapNetworks:  e.networks,
			fastpathMapSubnets:   e.subnets,
			fastpathMapCounters:  e.counters,
		},
	})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load program %s: verifier: %+v", ebpfProgName, ve)
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("load program %s: %w: %w", ebpfProgName, ErrEBPFUnsupported, err)
		}
		return fmt.Errorf("load program %s: %w", ebpfProgName, err)
	}
	p := coll.DetachProgram(ebpfProgName)
	coll.Close()
	if err := os.Remove(pinPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.Close()
		return fmt.Errorf("unpin old program: %w", err)
	}
	if err := p.Pin(pinPath); err != nil {
		p.Close()
		return fmt.Errorf("pin program: %w", err)
	}
	if err := e.setProgram(p); err != nil {
		return err
	}
	e.logger.Info("loaded eBPF program", "program", ebpfProgName, "id", e.progID)
	return nil
}

func (e *EBPF) setProgram(p *ebpf.Program) error {
	info, err := p.Info()
	if err != nil {
		p.Close()
		return fmt.Errorf("program info: %w", err)
	}
	id, _ := info.ID()
	e.prog, e.progID = p, id
	return nil
}

// sameProgram: same bytecode (kernel tag) and bound to the maps we just opened.
func (e *EBPF) sameProgram(ps *ebpf.ProgramSpec, p *ebpf.Program) bool {
	info, err := p.Info()
	if err != nil || ps.Compatible(info) != nil {
		return false
	}
	ids, ok := info.MapIDs()
	if !ok {
		return false
	}
	have := map[ebpf.MapID]bool{}
	for _, id := range ids {
		have[id] = true
	}
	for _, m := range []*ebpf.Map{e.endpoints, e.ifaces, e.networks, e.subnets, e.counters} {
		mi, err := m.Info()
		if err != nil {
			return false
		}
		id, _ := mi.ID()
		if !have[id] {
			return false
		}
	}
	return true
}

// ProgramID is the kernel ID of the from_container program in use.
func (e *EBPF) ProgramID() ebpf.ProgramID {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.progID
}

// PinDir is the bpffs directory holding the maps, program and links.
func (e *EBPF) PinDir() string { return e.pinDir }

// NetworkUp records the network's policy (ICC, internal) and its subnet
// (isolation between networks) for the data path.
func (e *EBPF) NetworkUp(n *Network) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ni fastpathNetworkInfo
	if n.ICC {
		ni.Flags |= netFlagICC
	}
	if n.Internal {
		ni.Flags |= netFlagInternal
	}
	if err := e.networks.Put(n.Index, &ni); err != nil {
		return fmt.Errorf("update network %s in eBPF map: %w", n.Name, err)
	}
	if k, v, ok := ebpfSubnetEntry(n); ok {
		if err := e.subnets.Put(&k, &v); err != nil {
			return fmt.Errorf("update subnet of network %s in eBPF map: %w", n.Name, err)
		}
	}
	e.netNames[n.Index] = n.Name
	return nil
}

// NetworkDown removes the network's policy and subnet; its endpoints then take the slow path.
func (e *EBPF) NetworkDown(n *Network) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if k, _, ok := ebpfSubnetEntry(n); ok {
		// Only our own entry: never take away a subnet another network now holds.
		var cur fastpathSubnetInfo
		err := e.subnets.Lookup(&k, &cur)
		if err == nil && cur.NetIndex == n.Index {
			err = e.subnets.Delete(&k)
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete subnet of network %s from eBPF map: %w", n.Name, err)
		}
	}
	if err := e.networks.Delete(n.Index); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete network %s from eBPF map: %w", n.Name, err)
	}
	delete(e.netNames, n.Index)
	return nil
}

// Flags of network_info, mirroring NET_F_* in bpf/netd_shared.h.
const (
	netFlagICC      = 1 << 0
	netFlagInternal = 1 << 1
)

// ebpfIPv4 keeps an address in network order in memory, as the BPF side
// compares it against the raw header word.
func ebpfIPv4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// ebpfSubnetEntry is the subnets map entry of n; ok is false without an IPv4 subnet.
func ebpfSubnetEntry(n *Network) (fastpathSubnetKey, fastpathSubnetInfo, bool) {
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
		return fastpathSubnetKey{}, fastpathSubnetInfo{}, false
	}
	p := n.Subnet.Masked()
	k := fastpathSubnetKey{Prefixlen: uint32(p.Bits()), Addr: ebpfIPv4(p.Addr())}
	v := fastpathSubnetInfo{NetIndex: n.Index}
	if n.Gateway.Is4() {
		v.Gateway = ebpfIPv4(n.Gateway)
	}
	return k, v, true
}

func ebpfEndpointEntries(n *Network, ep *Endpoint, ifindex int) (fastpathEndpointKey, fastpathEndpointInfo, fastpathIfaceInfo, error) {
	var (
		k  fastpathEndpointKey
		v  fastpathEndpointInfo
		ii fastpathIfaceInfo
	)
	if len(ep.MAC) != 6 {
		return k, v, ii, fmt.Errorf("endpoint %s: MAC %q is not Ethernet", ep.ID, ep.MAC)
	}
	if !ep.Addr.Addr().Is4() {
		return k, v, ii, fmt.Errorf("endpoint %s: address %s is not IPv4", ep.ID, ep.Addr)
	}
	ipv4 := ebpfIPv4(ep.Addr.Addr())
	k.NetIndex = n.Index
	copy(k.Mac[:], ep.MAC)
	v = fastpathEndpointInfo{Ifindex: uint32(ifindex), NetIndex: n.Index, Ipv4: ipv4}
	copy(v.Mac[:], ep.MAC)
	ii = fastpathIfaceInfo{NetIndex: n.Index, Ipv4: ipv4}
	copy(ii.Mac[:], ep.MAC)
	return k, v, ii, nil
}

// EndpointUp programs the endpoint table and attaches from_container to the
// host-side veth, adopting a pinned attachment when it is already right.
func (e *EBPF) EndpointUp(n *Network, ep *Endpoint, hostIfindex int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.programEndpoint(n, ep, hostIfindex); err != nil {
		return err
	}
	hook, err := e.attach(ep.HostIfName, hostIfindex)
	if err != nil {
		return err
	}
	e.eps[ep.HostIfName] = &ebpfEPInfo{
		network:   n.Name,
		container: ep.ContainerID,
		ifname:    ep.HostIfName,
		ifindex:   hostIfindex,
		mac:       ep.MAC,
		hook:      hook,
	}
	if _, ok := e.netNames[n.Index]; !ok {
		e.netNames[n.Index] = n.Name
	}
	return nil
}

// programEndpoint writes the endpoint's counters, iface and endpoint entries.
func (e *EBPF) programEndpoint(n *Network, ep *Endpoint, hostIfindex int) error {
	k, v, ii, err := ebpfEndpointEntries(n, ep, hostIfindex)
	if err != nil {
		return err
	}
	idx := uint32(hostIfindex)
	// Counters first so the very first frame is counted; keep existing ones on adoption.
	zero := make([]fastpathEpCounters, ebpf.MustPossibleCPU())
	if err := e.counters.Update(idx, zero, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("create counters for %s: %w", ep.HostIfName, err)
	}
	if err := e.ifaces.Put(idx, &ii); err != nil {
		return fmt.Errorf("update iface %s in eBPF map: %w", ep.HostIfName, err)
	}
	if err := e.endpoints.Put(&k, &v); err != nil {
		return fmt.Errorf("update endpoint %s in eBPF map: %w", ep.HostIfName, err)
	}
	return nil
}

func (e *EBPF) linkPin(ifname string) string {
	return filepath.Join(e.pinDir, "links", ifname)
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
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == ebpfTCPriority && ebpf.ProgramID(bf.Id) == e.progID {
			return nil // already ours: adopt
		}
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    netlink.MakeHandle(0, 1),
			Protocol:  unix.ETH_P_ALL,
			Priority:  ebpfTCPriority,
		},
		Fd:           e.prog.FD(),
		Name:         ebpfProgName,
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
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == ebpfTCPriority && strings.HasPrefix(bf.Name, ebpfProgName) {
			if err := netlink.FilterDel(bf); err != nil {
				return fmt.Errorf("delete tc filter on %s: %w", l.Attrs().Name, err)
			}
		}
	}
	return nil
}

// EndpointDown removes the endpoint's entries and detaches the program.
func (e *EBPF) EndpointDown(n *Network, ep *Endpoint) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if len(ep.MAC) == 6 {
		k := fastpathEndpointKey{NetIndex: n.Index}
		copy(k.Mac[:], ep.MAC)
		if err := e.endpoints.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete endpoint %s from eBPF map: %w", ep.HostIfName, err))
		}
	}
	ifindex := -1
	if info := e.eps[ep.HostIfName]; info != nil {
		ifindex = info.ifindex
	} else if l, err := net.InterfaceByName(ep.HostIfName); err == nil {
		ifindex = l.Index
	}
	if l := e.links[ep.HostIfName]; l != nil {
		if info, err := l.Info(); err == nil && info.TCX() != nil && ifindex < 0 {
			ifindex = int(info.TCX().Ifindex)
		}
	} else if l, err := link.LoadPinnedLink(e.linkPin(ep.HostIfName), nil); err == nil {
		e.links[ep.HostIfName] = l
	}
	if ifindex > 0 {
		idx := uint32(ifindex)
		for _, m := range []*ebpf.Map{e.ifaces, e.counters} {
			if err := m.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("delete %s from eBPF map: %w", ep.HostIfName, err))
			}
		}
		if e.forceTC || e.tcxBroken {
			if err := e.detachTC(ifindex); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if l := e.links[ep.HostIfName]; l != nil {
		// Unpin and close: the kernel detaches the link with its last reference.
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin link of %s: %w", ep.HostIfName, err))
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", ep.HostIfName, err))
		}
		delete(e.links, ep.HostIfName)
	}
	delete(e.eps, ep.HostIfName)
	return errors.Join(errs...)
}

// DropReasonNames maps the drop reason numbers of bpf/netd_shared.h to names.
var DropReasonNames = [...]string{
	fastpathDropReasonDROP_SPOOF_MAC:  "SPOOF_MAC",
	fastpathDropReasonDROP_SPOOF_IP:   "SPOOF_IP",
	fastpathDropReasonDROP_SPOOF_ARP:  "SPOOF_ARP",
	fastpathDropReasonDROP_ICC_DENIED: "ICC_DENIED",
	fastpathDropReasonDROP_MALFORMED:  "MALFORMED",
	fastpathDropReasonDROP_ISOLATED:   "ISOLATED",
	fastpathDropReasonDROP_INTERNAL:   "INTERNAL",
}

// Compile-time check that every reason of the C enum has a Go name.
var _ = [1]struct{}{}[len(DropReasonNames)-int(fastpathDropReasonDROP_REASON_MAX)]

// readCounters sums the per-CPU counters of one host ifindex.
func (e *EBPF) readCounters(ifindex uint32) (fastpathEpCounters, error) {
	var sum fastpathEpCounters
	var per []fastpathEpCounters
	if err := e.counters.Lookup(ifindex, &per); err != nil {
		return sum, err
	}
	for _, c := range per {
		sum.FastPkts += c.FastPkts
		sum.FastBytes += c.FastBytes
		sum.SlowPkts += c.SlowPkts
		for i := range sum.Drops {
			sum.Drops[i] += c.Drops[i]
		}
	}
	return sum, nil
}

// Status lists the attachments and the per-endpoint counters summed over CPUs.
func (e *EBPF) Status() (Status, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{
		PinDir:    e.pinDir,
		Programs:  []Attachment{},
		Endpoints: []EndpointCounters{},
	}
	names := make([]string, 0, len(e.eps))
	for name := range e.eps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ep := e.eps[name]
		pa := Attachment{
			Interface: ep.ifname,
			Ifindex:   ep.ifindex,
			Hook:      ep.hook,
			Program:   ebpfProgName,
			ProgramID: uint32(e.progID),
		}
		if l := e.links[name]; l != nil {
			info, err := l.Info()
			if err != nil {
				return st, fmt.Errorf("link info of %s: %w", name, err)
			}
			pa.LinkID = uint32(info.ID)
			pa.ProgramID = uint32(info.Program)
			pa.Pinned = e.linkPin(name)
		}
		st.Programs = append(st.Programs, pa)

		c, err := e.readCounters(uint32(ep.ifindex))
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return st, fmt.Errorf("read counters of %s: %w", name, err)
		}
		ec := EndpointCounters{
			Network:     ep.network,
			Container:   ep.container,
			Interface:   ep.ifname,
			MacAddress:  ep.mac.String(),
			FastPackets: c.FastPkts,
			FastBytes:   c.FastBytes,
			SlowPackets: c.SlowPkts,
			Drops:       map[string]uint64{},
		}
		for i, n := range c.Drops {
			ec.Drops[DropReasonNames[i]] = n
		}
		st.Endpoints = append(st.Endpoints, ec)
	}
	return st, nil
}

// Close releases file descriptors but leaves every pin: forwarding goes on
// while the daemon is down, and the next NewEBPF adopts it.
func (e *EBPF) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for name, l := range e.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", name, err))
		}
	}
	e.links = map[string]link.Link{}
	if e.prog != nil {
		if err := e.prog.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close program: %w", err))
		}
	}
	for _, m := range []*ebpf.Map{e.endpoints, e.ifaces, e.networks, e.subnets, e.counters} {
		if m == nil {
			continue
		}
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close map: %w", err))
		}
	}
	e.prog, e.endpoints, e.ifaces, e.networks, e.subnets, e.counters = nil, nil, nil, nil, nil, nil
	return errors.Join(errs...)
}

// Forget closes everything and removes the pin dir: pinned links go with it,
// so every attachment is detached. For tests and `network rm` of the last network.
func (e *EBPF) Forget() error {
	err := e.Close()
	return errors.Join(err, RemovePinDir(e.pinDir))
}

// RemovePinDir removes a pin dir (maps, program and link pins) left on bpffs.
func RemovePinDir(pinDir string) error {
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("remove pin dir: %w", err)
	}
	return nil
}
