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
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/bpffs"
)

// Hook names reported in Attachment.
const (
	HookTCXIngress = bpfattach.HookTCXIngress
	HookTCIngress  = bpfattach.HookTCIngress
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
var ErrEBPFUnsupported = bpffs.ErrUnsupported

// EBPF is the eBPF fast path of the bridge driver: it owns the pinned maps,
// the from_container program and one attachment per host-side veth.
type EBPF struct {
	logger *slog.Logger
	pinDir string

	mu       sync.Mutex
	prog     *ebpf.Program
	progID   ebpf.ProgramID
	maps     fastpathMaps        // every map of bpf/lib/maps.h, pinned by name
	netNames map[uint32]string   // network index -> name, for Status
	eps      map[string]*epState // host ifname -> endpoint
	att      bpfattach.Attacher  // host ifname -> pinned TCX link (or clsact filter)
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

// all lists the maps by their bpf2go tags (bpffs.MapsOf).
func (fm *fastpathMaps) all() []bpffs.NamedMap { return bpffs.MapsOf(fm) }

// NewEBPF loads (or adopts) the fast path pinned under pinDir, which must be on bpffs.
func NewEBPF(pinDir string, logger *slog.Logger) (*EBPF, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := bpffs.PrepareDir(pinDir); err != nil {
		return nil, err
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
		att:      bpfattach.New(filepath.Join(pinDir, linksDir), logger),
	}
	if err := e.adoptUnprefixedPins(); err != nil {
		return nil, fmt.Errorf("adopt the pins of a previous netd build in %s (removing it and restarting the daemon re-attaches every endpoint afresh): %w", pinDir, err)
	}
	if err := os.MkdirAll(filepath.Join(pinDir, linksDir), 0o700); err != nil {
		return nil, fmt.Errorf("create link pin dir: %w", err)
	}
	migrated, err := bpffs.OpenMaps(spec, pinDir, e.maps.all(), e.migrateMap)
	if err != nil {
		e.Close()
		return nil, err
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
			// from_container binds every map of ours.
			if bpffs.Adoptable(ps, p, e.maps.all(), true) {
				id, err := bpffs.ProgramID(p, progName)
				if err != nil {
					return err
				}
				e.prog, e.progID = p, id
				return nil
			}
			p.Close()
		}
	}

	coll, err := bpffs.LoadCollection(spec, e.maps.all(), "program "+progName)
	if err != nil {
		return err
	}
	p := coll.DetachProgram(progName)
	coll.Close()
	id, err := bpffs.PinProgram(p, progName, pinPath)
	if err != nil {
		return err
	}
	e.prog, e.progID = p, id
	e.logger.Info("loaded eBPF program", "program", progName, "id", e.progID)
	return nil
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
	errs := e.att.CloseLinks()
	if e.prog != nil {
		if err := e.prog.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close program: %w", err))
		}
	}
	e.prog = nil
	errs = append(errs, bpffs.CloseMaps(e.maps.all())...)
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
