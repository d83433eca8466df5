//go:build linux

// Package publish is port publishing (Docker's -p) on the eBPF dataplane:
// from_uplink (bpf/publish.c) on TC ingress of the host's uplinks translates
// packets to a published host port into the container's address and port and
// delivers them straight into the container; from_container (bpf/bridge.c)
// translates the replies back from the same flow table; cgroup socket hooks
// send the host's own connections to the container at connect time. No proxy
// process, and the container sees its clients' real addresses.
//
// Everything is pinned in the bridge fast path's pin dir (the flow table is
// shared with from_container), so published ports keep forwarding while the
// daemon is down and a restarted daemon adopts them.
package publish

// bpf/publish.c compiled for little-endian BPF; generated files are committed.
//go:generate go tool bpf2go -tags linux -target bpfel -type pub_key -type pub_target -type nat_key -type nat_entry -type frag_key -type sock_rev_key -type sock_rev_val -type pub_config -type pub_counters publish ../../bpf/publish.c -- -I../../bpf -I../../bpf/lib -I../../bpf/include

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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/bpffs"
)

const (
	pinPrefix  = "netd_"
	uplinksDir = pinPrefix + "uplinks" // one TCX link pin per uplink
	cgroupPin  = pinPrefix + "cg_"     // + hook: the cgroup socket hook links
	progUplink = publishProgFromUplink

	// soNetnsCookie is SO_NETNS_COOKIE (Linux 5.14), missing from x/sys.
	soNetnsCookie = 71
)

// Flow timeouts of the GC, as Linux conntrack's defaults for UDP streams
// (≥ 90 s idle, the floor) and closed TCP.
const (
	UDPTimeout        = 180 * time.Second
	TCPTimeout        = 2 * time.Hour
	TCPClosingTimeout = 10 * time.Second
	gcInterval        = 10 * time.Second
	syncInterval      = 2 * time.Second
)

// Config says where the publisher works.
type Config struct {
	PinDir string // the bridge fast path's pin dir (shared flow table)
	// Ifaces are the uplinks to translate on; empty: every interface that
	// is up with an IPv4 address and is neither loopback, a bridge, a
	// bridge port, nor a tunnel (detected again as interfaces come and go).
	Ifaces []string
	// XDP also runs xdp_uplink on the uplinks (native mode), which
	// translates established flows before the kernel builds an skb.
	XDP bool
	// Cgroup is the cgroup v2 directory the host socket hooks attach to
	// ("": the root of the cgroup2 mount; "none" leaves host sockets
	// untranslated).
	Cgroup string
	Logger *slog.Logger
}

// Publisher owns the publishing programs and the published-port map.
type Publisher struct {
	cfg  Config
	log  *slog.Logger
	maps publishMaps
	ups  bpfattach.Program
	xdp  *ebpf.Program
	sock map[ebpf.AttachType]*ebpf.Program

	mu       sync.Mutex
	att      bpfattach.Attacher
	uplinks  map[string]int       // ifname -> ifindex, attached
	xdpLinks map[string]link.Link // ifname -> XDP link
	cgLinks  []link.Link
	locals   map[netip.Addr]bool

	stop chan struct{}
	done chan struct{}
}

var sockHooks = []struct {
	name   string
	attach ebpf.AttachType
}{
	{publishProgSockConnect4, ebpf.AttachCGroupInet4Connect},
	{publishProgSockSendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
	{publishProgSockRecvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
	{publishProgSockGetpeername4, ebpf.AttachCgroupInet4GetPeername},
}

// New loads the programs into the pin dir's maps, attaches them (uplinks,
// cgroup hooks) and starts keeping the uplinks and host addresses current.
// It works in the network namespace of the calling thread.
func New(cfg Config) (*Publisher, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Cgroup == "" {
		cg, err := cgroup2Mount("/proc/self/mounts")
		if err != nil {
			return nil, err
		}
		cfg.Cgroup = cg
	}
	p := &Publisher{
		cfg:      cfg,
		log:      cfg.Logger,
		sock:     map[ebpf.AttachType]*ebpf.Program{},
		att:      bpfattach.New(filepath.Join(cfg.PinDir, uplinksDir), cfg.Logger),
		uplinks:  map[string]int{},
		xdpLinks: map[string]link.Link{},
		locals:   map[netip.Addr]bool{},
	}
	if err := p.load(); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.attachSockets(); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.sync(); err != nil {
		p.Close()
		return nil, err
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.loop()
	return p, nil
}

func (p *Publisher) load() error {
	if err := bpffs.PrepareDir(p.cfg.PinDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(p.cfg.PinDir, uplinksDir), 0o700); err != nil {
		return fmt.Errorf("create uplink pin dir: %w", err)
	}
	spec, err := loadPublish()
	if err != nil {
		return fmt.Errorf("load publish spec: %w", err)
	}
	delete(spec.Maps, ".bss")
	for name := range spec.Variables {
		if strings.HasPrefix(name, "unused_") {
			delete(spec.Variables, name)
		}
	}
	all := bpffs.MapsOf(&p.maps)
	if _, err := bpffs.OpenMaps(spec, p.cfg.PinDir, all, func(ms *ebpf.MapSpec) (*ebpf.Map, error) {
		return nil, fmt.Errorf("map %s pinned in %s has another layout (an older netd): remove the pin and restart the daemon; published ports are re-programmed from the store", ms.Name, p.cfg.PinDir)
	}); err != nil {
		return err
	}
	coll, err := bpffs.LoadCollection(spec, all, "port publishing programs")
	if err != nil {
		return err
	}
	defer coll.Close()
	prog := coll.DetachProgram(progUplink)
	id, err := bpffs.PinProgram(prog, progUplink, filepath.Join(p.cfg.PinDir, pinPrefix+progUplink))
	if err != nil {
		return err
	}
	p.ups = bpfattach.Program{Name: progUplink, Prog: prog, ID: id}
	p.xdp = coll.DetachProgram(publishProgXdpUplink)
	for _, h := range sockHooks {
		p.sock[h.attach] = coll.DetachProgram(h.name)
	}
	cookie, err := netnsCookie()
	if err != nil {
		return err
	}
	return p.maps.NetdPubconf.Put(uint32(0), publishPubConfig{NetnsCookie: cookie})
}

// cgroup2Mount finds where cgroup v2 is mounted (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host) in a mounts file.
func cgroup2Mount(mounts string) (string, error) {
	b, err := os.ReadFile(mounts)
	if err != nil {
		return "", fmt.Errorf("find the cgroup2 mount: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			return f[1], nil
		}
	}
	return "", errors.New("find the cgroup2 mount: cgroup v2 is not mounted (mount -t cgroup2 none /sys/fs/cgroup/unified, or start with --publish-cgroup none: host sockets then do not reach published ports of ebpf networks)")
}

// netnsCookie is the cookie of the calling thread's network namespace.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: socket: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetnsCookie)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: SO_NETNS_COOKIE (Linux 5.14+): %w", err)
	}
	return c, nil
}

// attachSockets attaches the host socket hooks to the cgroup, moving pinned
// links of a previous daemon to this build's programs.
func (p *Publisher) attachSockets() error {
	if p.cfg.Cgroup == "none" {
		return nil
	}
	for _, h := range sockHooks {
		pin := filepath.Join(p.cfg.PinDir, cgroupPin+h.name)
		prog := p.sock[h.attach]
		if l, err := link.LoadPinnedLink(pin, nil); err == nil {
			if err := l.Update(prog); err == nil {
				p.cgLinks = append(p.cgLinks, l)
				continue
			}
			_ = l.Unpin()
			_ = l.Close()
		} else if !errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(pin)
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: p.cfg.Cgroup, Attach: h.attach, Program: prog})
		if err != nil {
			return fmt.Errorf("attach %s to cgroup %s (host sockets to published ports; --publish-cgroup none goes without): %w", h.name, p.cfg.Cgroup, err)
		}
		if err := l.Pin(pin); err != nil {
			_ = l.Close()
			return fmt.Errorf("pin cgroup link %s: %w", h.name, err)
		}
		p.cgLinks = append(p.cgLinks, l)
	}
	return nil
}

func (p *Publisher) loop() {
	defer close(p.done)
	sync := time.NewTicker(syncInterval)
	gc := time.NewTicker(gcInterval)
	defer sync.Stop()
	defer gc.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-sync.C:
			if err := p.sync(); err != nil {
				p.log.Warn("port publishing: keeping uplinks and host addresses", "error", err)
			}
		case <-gc.C:
			if n, err := p.GC(monotonicNow()); err != nil {
				p.log.Warn("port publishing: flow table GC", "error", err)
			} else if n > 0 {
				p.log.Debug("port publishing: expired flows", "entries", n)
			}
		}
	}
}

// sync attaches to new uplinks, lets go of vanished ones, and refreshes the
// host's address set the wildcard bindings match.
func (p *Publisher) sync() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	hasV4 := map[int]bool{}
	locals := map[netip.Addr]bool{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok || ip.IsLoopback() {
			continue
		}
		locals[ip] = true
		hasV4[a.LinkIndex] = true
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for ip := range locals {
		if !p.locals[ip] {
			if err := p.maps.NetdLocaladdr.Put(be32(ip), uint32(1)); err != nil {
				errs = append(errs, fmt.Errorf("add host address %s: %w", ip, err))
				continue
			}
			p.locals[ip] = true
		}
	}
	for ip := range p.locals {
		if !locals[ip] {
			_ = p.maps.NetdLocaladdr.Delete(be32(ip))
			delete(p.locals, ip)
		}
	}

	want := map[string]int{}
	for _, l := range links {
		a := l.Attrs()
		if p.isUplink(l, hasV4[a.Index]) {
			want[a.Name] = a.Index
		}
	}
	for name, idx := range want {
		if p.uplinks[name] == idx {
			continue
		}
		hook, err := p.att.Attach(p.ups, name, idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("attach port publishing to uplink %s: %w", name, err))
			continue
		}
		if p.cfg.XDP {
			if err := p.attachXDP(name, idx); err != nil {
				errs = append(errs, err)
			}
		}
		p.uplinks[name] = idx
		p.log.Info("port publishing on uplink", "interface", name, "hook", hook, "xdp", p.cfg.XDP)
	}
	for name, idx := range p.uplinks {
		if want[name] == idx {
			continue
		}
		p.detachLocked(name, idx)
	}
	return errors.Join(errs...)
}

func (p *Publisher) isUplink(l netlink.Link, hasV4 bool) bool {
	a := l.Attrs()
	if len(p.cfg.Ifaces) > 0 {
		return slices.Contains(p.cfg.Ifaces, a.Name)
	}
	if a.Flags&net.FlagLoopback != 0 || a.Flags&net.FlagUp == 0 || a.MasterIndex != 0 || !hasV4 {
		return false
	}
	switch l.Type() {
	case "bridge", "vxlan", "geneve", "netkit", "ipip", "gre", "tun":
		return false
	}
	return true
}

func (p *Publisher) attachXDP(name string, idx int) error {
	pin := filepath.Join(p.cfg.PinDir, uplinksDir, "xdp-"+name)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if info, err := l.Info(); err == nil && info.XDP() != nil && int(info.XDP().Ifindex) == idx && l.Update(p.xdp) == nil {
			p.xdpLinks[name] = l
			return nil
		}
		_ = l.Unpin()
		_ = l.Close()
	}
	if l, err := netlink.LinkByIndex(idx); err == nil && l.Type() == "veth" {
		p.log.Warn("XDP on a veth uplink sees the checksums its peer leaves to offload as partial ones and cannot fix them: turn TX checksumming off on the peer (ethtool -K PEER tx off), as a physical NIC delivers whole checksums", "interface", name)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p.xdp, Interface: idx, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("attach xdp_uplink to %s in native mode (--xdp-publish needs a driver with native XDP): %w", name, err)
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Close()
		return fmt.Errorf("pin XDP link of %s: %w", name, err)
	}
	p.xdpLinks[name] = l
	return nil
}

func (p *Publisher) detachLocked(name string, idx int) {
	if p.att.UseTC() {
		_ = bpfattach.DetachTC(idx, progUplink)
	} else {
		_ = p.att.DetachLink(name)
	}
	if l := p.xdpLinks[name]; l != nil {
		_ = l.Unpin()
		_ = l.Close()
		delete(p.xdpLinks, name)
	}
	delete(p.uplinks, name)
}

// Uplinks lists the interfaces the publisher translates on.
func (p *Publisher) Uplinks() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.uplinks))
	for n := range p.uplinks {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Publish makes traffic to each mapping's host port reach t. Idempotent.
func (p *Publisher) Publish(t Target, ports []dataplane.PortMapping) error {
	val, err := targetValue(t)
	if err != nil {
		return err
	}
	keys := make([]publishPubKey, 0, len(ports))
	vals := make([]publishPubTarget, 0, len(ports))
	for _, m := range ports {
		k, err := pubKey(m)
		if err != nil {
			return err
		}
		v := val
		v.Port = be16(m.ContainerPort)
		keys, vals = append(keys, k), append(vals, v)
	}
	if len(keys) == 0 {
		return nil
	}
	if p.cfg.XDP {
		if err := enableGRO(t.SandboxPath, t.IfName); err != nil {
			return fmt.Errorf("publish on endpoint %.12s: turn GRO on in the container, which --xdp-publish delivers through: %w", t.EndpointID, err)
		}
	}
	if _, err := p.maps.NetdPublish.BatchUpdate(keys, vals, nil); err != nil {
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("publish %d ports of endpoint %.12s: %w", len(keys), t.EndpointID, err)
		}
		for i := range keys {
			if err := p.maps.NetdPublish.Put(keys[i], vals[i]); err != nil {
				return fmt.Errorf("publish %s on endpoint %.12s: %w", describe(ports[i]), t.EndpointID, err)
			}
		}
	}
	return nil
}

// Unpublish removes the mappings and the flows going through them. Idempotent.
func (p *Publisher) Unpublish(t Target, ports []dataplane.PortMapping) error {
	var errs []error
	cports := map[[2]uint16]bool{}
	for _, m := range ports {
		k, err := pubKey(m)
		if err != nil {
			return err
		}
		if err := p.maps.NetdPublish.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("unpublish %s of endpoint %.12s: %w", describe(m), t.EndpointID, err))
		}
		cports[[2]uint16{uint16(protoNum(m.Proto)), be16(m.ContainerPort)}] = true
	}
	if t.Addr.Is4() {
		errs = append(errs, p.flushFlows(be32(t.Addr), cports))
	}
	return errors.Join(errs...)
}

// flushFlows deletes the flows to or from addr on one of ports.
func (p *Publisher) flushFlows(addr uint32, ports map[[2]uint16]bool) error {
	var (
		k    publishNatKey
		v    publishNatEntry
		dead []publishNatKey
	)
	it := p.maps.NetdNat.Iterate()
	for it.Next(&k, &v) {
		if (v.Daddr == addr && ports[[2]uint16{uint16(k.Proto), v.Dport}]) ||
			(k.Saddr == addr && k.Zone == natZoneContainer && ports[[2]uint16{uint16(k.Proto), k.Sport}]) {
			dead = append(dead, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("walk the flow table: %w", err)
	}
	for _, k := range dead {
		_ = p.maps.NetdNat.Delete(k)
	}
	return nil
}

const (
	natZoneUplink    = 1
	natZoneContainer = 2
	natFPeer         = 1 << 0
	natFReply        = 1 << 1
	natFClosing      = 1 << 3
)

// GC deletes the flows idle past their timeout at monotonic time now (ns),
// both directions together; it returns how many entries went.
func (p *Publisher) GC(now uint64) (int, error) {
	var (
		k    publishNatKey
		v    publishNatEntry
		ents = map[publishNatKey]publishNatEntry{}
	)
	it := p.maps.NetdNat.Iterate()
	for it.Next(&k, &v) {
		ents[k] = v
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("walk the flow table: %w", err)
	}
	expired := func(k publishNatKey, last uint64, flags uint32) bool {
		timeout := UDPTimeout
		if k.Proto == unix.IPPROTO_TCP {
			timeout = TCPTimeout
			if flags&natFClosing != 0 {
				timeout = TCPClosingTimeout
			}
		}
		return now > last && time.Duration(now-last) > timeout
	}
	var dead []publishNatKey
	for k, v := range ents {
		if v.Flags&natFReply != 0 {
			continue
		}
		rk := publishNatKey{Saddr: v.Daddr, Daddr: v.Saddr, Sport: v.Dport, Dport: v.Sport, Proto: k.Proto, Zone: natZoneContainer}
		rv, ok := ents[rk]
		last, flags := v.LastSeen, v.Flags
		if ok {
			last = max(last, rv.LastSeen)
			flags |= rv.Flags
		}
		if expired(k, last, flags) {
			dead = append(dead, k)
			if ok {
				dead = append(dead, rk)
			}
		}
		delete(ents, rk)
	}
	for k, v := range ents { // replies whose forward entry is gone
		if v.Flags&natFReply != 0 && expired(k, v.LastSeen, v.Flags) {
			dead = append(dead, k)
		}
	}
	n := 0
	for _, k := range dead {
		if err := p.maps.NetdNat.Delete(k); err == nil {
			n++
		}
	}
	return n, nil
}

// Flows counts the entries of the flow table (two per flow).
func (p *Publisher) Flows() (int, error) {
	var (
		k publishNatKey
		v publishNatEntry
		n int
	)
	it := p.maps.NetdNat.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}

// Counters are the publishing programs' totals, summed over CPUs.
type Counters = publishPubCounters

// Stats sums the per-CPU counters.
func (p *Publisher) Stats() (Counters, error) {
	var per []publishPubCounters
	var sum Counters
	if err := p.maps.NetdPubstats.Lookup(uint32(0), &per); err != nil {
		return sum, fmt.Errorf("read publishing counters: %w", err)
	}
	for _, c := range per {
		sum.DnatPkts += c.DnatPkts
		sum.ReplyPkts += c.ReplyPkts
		sum.IcmpPkts += c.IcmpPkts
		sum.FragPkts += c.FragPkts
		sum.HairpinPkts += c.HairpinPkts
		sum.SockConnects += c.SockConnects
		sum.LoopbackDrops += c.LoopbackDrops
		sum.FragMisses += c.FragMisses
		sum.XdpPkts += c.XdpPkts
		sum.NatFull += c.NatFull
	}
	return sum, nil
}

// Close stops the background work and closes handles; every pin stays, so
// published ports keep forwarding until the next daemon adopts them.
func (p *Publisher) Close() error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.att.CloseLinks()
	for _, l := range p.xdpLinks {
		_ = l.Close()
	}
	for _, l := range p.cgLinks {
		_ = l.Close()
	}
	p.cgLinks = nil
	for _, prog := range append([]*ebpf.Program{p.ups.Prog, p.xdp}, valuesOf(p.sock)...) {
		if prog != nil {
			_ = prog.Close()
		}
	}
	errs = append(errs, bpffs.CloseMaps(bpffs.MapsOf(&p.maps))...)
	return errors.Join(errs...)
}

// Forget closes everything and detaches: the uplinks' and cgroup links are
// unpinned and the publishing pins removed. For `network rm` of the last
// network and tests; the bridge fast path owns the rest of the pin dir.
func (p *Publisher) Forget() error {
	p.mu.Lock()
	for name, idx := range p.uplinks {
		p.detachLocked(name, idx)
	}
	for _, l := range p.cgLinks {
		_ = l.Unpin()
	}
	p.mu.Unlock()
	err := p.Close()
	_ = os.RemoveAll(filepath.Join(p.cfg.PinDir, uplinksDir))
	_ = os.Remove(filepath.Join(p.cfg.PinDir, pinPrefix+progUplink))
	for _, h := range sockHooks {
		_ = os.Remove(filepath.Join(p.cfg.PinDir, cgroupPin+h.name))
	}
	return err
}

func valuesOf(m map[ebpf.AttachType]*ebpf.Program) []*ebpf.Program {
	out := make([]*ebpf.Program, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func targetValue(t Target) (publishPubTarget, error) {
	var v publishPubTarget
	if !t.Addr.Is4() {
		return v, fmt.Errorf("publish on endpoint %.12s: the eBPF dataplane publishes to IPv4 endpoints only, not %s", t.EndpointID, t.Addr)
	}
	if len(t.MAC) != 6 || len(t.BridgeMAC) != 6 || t.HostIfindex <= 0 {
		return v, fmt.Errorf("publish on endpoint %.12s: endpoint has no MAC, bridge MAC or host interface yet", t.EndpointID)
	}
	v.Addr = be32(t.Addr)
	v.Ifindex = uint32(t.HostIfindex)
	if t.Gateway.Is4() {
		v.Gateway = be32(t.Gateway)
	}
	copy(v.Mac[:], t.MAC)
	copy(v.GwMac[:], t.BridgeMAC)
	return v, nil
}

func pubKey(m dataplane.PortMapping) (publishPubKey, error) {
	var k publishPubKey
	proto := protoNum(m.Proto)
	if proto == 0 {
		return k, fmt.Errorf("publish %s: protocol %q is not tcp or udp", describe(m), m.Proto)
	}
	if m.HostPort == 0 || m.ContainerPort == 0 {
		return k, fmt.Errorf("publish %s: port 0", describe(m))
	}
	if m.HostIP.IsValid() && !m.HostIP.IsUnspecified() {
		if !m.HostIP.Is4() {
			return k, fmt.Errorf("publish %s: the eBPF dataplane publishes on IPv4 host addresses only", describe(m))
		}
		k.Addr = be32(m.HostIP)
	}
	k.Port = be16(m.HostPort)
	k.Proto = proto
	return k, nil
}

func protoNum(p string) uint8 {
	switch p {
	case "tcp":
		return unix.IPPROTO_TCP
	case "udp":
		return unix.IPPROTO_UDP
	}
	return 0
}

func describe(m dataplane.PortMapping) string {
	ip := "0.0.0.0"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d->%d/%s", ip, m.HostPort, m.ContainerPort, m.Proto)
}

// be32 is an IPv4 address as a __be32 field reads on this (little-endian) host.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// be16 is a port as a __be16 field reads.
func be16(port uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], port)
	return binary.NativeEndian.Uint16(b[:])
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
