//go:build linux

// Package fastpath is the eBPF fast path of the bridge driver: from_container
// (bpf/bridge.c) on TC ingress of every host-side veth, and the pinned maps it
// reads. Everything lives pinned under one bpffs directory, so forwarding goes
// on while the daemon is down and a restarted daemon adopts it.
package fastpath

// bpf/bridge.c compiled for little-endian BPF; the generated
// fastpath_bpfel.go/.o are committed so go build needs no clang.
//go:generate go tool bpf2go -tags linux -target bpfel -type endpoint_key -type endpoint_info -type iface_info -type network_info -type subnet_key -type subnet_info -type ep_counters -type drop_reason fastpath ../../bpf/bridge.c -- -I../../bpf -I../../bpf/lib -I../../bpf/include

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"

	"github.com/netd-dev/netd/dataplane/bpffs"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Hook names reported in Attachment.
const (
	HookTCXIngress = "tcx-ingress"
	HookTCIngress  = "tc-ingress"
)

// Every pin under the pin dir starts with pinPrefix, so netd's pins are
// known as its own; the C side names its maps with it too.
const (
	pinPrefix = "netd_"
	// progName is the entry point in bpf/bridge.c, as Status and tc show it.
	progName = fastpathProgFromContainer
	progPin  = pinPrefix + progName
	linksDir = pinPrefix + "links" // one TCX link pin per host-side veth
)

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
	maps      fastpathMaps         // every map of bpf/lib/maps.h, pinned by name
	forceTC   bool                 // tests: behave as if TCX were missing
	tcxBroken bool                 // TCX probed unsupported: use clsact
	netNames  map[uint32]string    // network index -> name, for Status
	eps       map[string]*epState  // host ifname -> endpoint
	links     map[string]link.Link // host ifname -> pinned TCX link
}

// epState is what Status and EndpointDown need of an endpoint brought up.
type epState struct {
	network   string
	container string
	ifname    string
	ifindex   int
	mac       net.HardwareAddr
	hook      string
}

// namedMap is one field of fastpathMaps with the ELF name it is loaded by.
type namedMap struct {
	name string
	m    **ebpf.Map
}

// all lists the maps by the bpf2go struct tags: the one list of maps, so a
// map added in C needs no Go change to be opened, migrated, bound and closed.
func (fm *fastpathMaps) all() []namedMap {
	v := reflect.ValueOf(fm).Elem()
	out := make([]namedMap, 0, v.NumField())
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("ebpf")
		if p, ok := v.Field(i).Addr().Interface().(**ebpf.Map); ok && name != "" {
			out = append(out, namedMap{name, p})
		}
	}
	return out
}

// NewEBPF loads (or adopts) the fast path pinned under pinDir, which must be on bpffs.
func NewEBPF(pinDir string, logger *slog.Logger) (*EBPF, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	onBPFFS, err := bpffs.IsBPFFS(pinDir)
	if err != nil {
		return nil, fmt.Errorf("stat pin dir: %w", err)
	}
	if !onBPFFS {
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
		eps:      map[string]*epState{},
		links:    map[string]link.Link{},
	}
	if err := e.adoptUnprefixedPins(); err != nil {
		return nil, fmt.Errorf("adopt the pins of a previous netd build in %s (removing it and restarting the daemon re-attaches every endpoint afresh): %w", pinDir, err)
	}
	if err := os.MkdirAll(filepath.Join(pinDir, linksDir), 0o700); err != nil {
		return nil, fmt.Errorf("create link pin dir: %w", err)
	}
	migrated := false
	for _, nm := range e.maps.all() {
		ms, ok := spec.Maps[nm.name]
		if !ok {
			e.Close()
			return nil, fmt.Errorf("open map %s: not in the eBPF object", nm.name)
		}
		ms.Pinning = ebpf.PinByName
		m, err := ebpf.NewMapWithOptions(ms, ebpf.MapOptions{PinPath: pinDir})
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			m, err = e.migrateMap(ms)
			migrated = true
		}
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("open map %s: %w", nm.name, err)
		}
		*nm.m = m
	}

	if err := e.loadProgram(spec, migrated); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// loadProgram adopts the pinned program when it is the one we carry and uses
// our maps; otherwise it loads the new one and moves every pinned link to it.
func (e *EBPF) loadProgram(spec *ebpf.CollectionSpec, forceReload bool) error {
	ps := spec.Programs[progName]
	pinPath := filepath.Join(e.pinDir, progPin)
	if !forceReload {
		if p, err := ebpf.LoadPinnedProgram(pinPath, nil); err == nil {
			if e.sameProgram(ps, p) {
				return e.setProgram(p)
			}
			p.Close()
		}
	}

	replace := map[string]*ebpf.Map{}
	for _, nm := range e.maps.all() {
		replace[nm.name] = *nm.m
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load program %s: verifier: %+v", progName, ve)
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("load program %s: %w: %w", progName, ErrEBPFUnsupported, err)
		}
		return fmt.Errorf("load program %s: %w", progName, err)
	}
	p := coll.DetachProgram(progName)
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
	e.logger.Info("loaded eBPF program", "program", progName, "id", e.progID)
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
	for _, nm := range e.maps.all() {
		mi, err := (*nm.m).Info()
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
	e.prog = nil
	for _, nm := range e.maps.all() {
		if err := (*nm.m).Close(); err != nil { // Close of a nil map is a no-op
			errs = append(errs, fmt.Errorf("close map %s: %w", nm.name, err))
		}
		*nm.m = nil
	}
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
