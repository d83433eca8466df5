//go:build linux

package fastpath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/netd-dev/netd/dataplane/bpfattach"
	"github.com/netd-dev/netd/dataplane/bpffs"
	bridgefp "github.com/netd-dev/netd/dataplane/fastpath"
)

// Names on bpffs: every pin starts with netd_, as the bridge's do, and none
// collides with the bridge's, so both may share one pin dir.
const (
	pinPrefix = "netd_"
	linksDir  = pinPrefix + "ov_links" // one TCX link pin per attached interface

	// ProgFromContainer and ProgFromTunnel are the entry points of bpf/overlay.c.
	ProgFromContainer = overlayProgOverlayFromContainer
	ProgFromTunnel    = overlayProgOverlayFromTunnel
)

// ErrEBPFUnsupported says the kernel lacks what the overlay data path needs.
var ErrEBPFUnsupported = bpffs.ErrUnsupported

// Overlay is the eBPF data path of overlay networks on one host: the pinned
// maps, both programs and their attachments.
type Overlay struct {
	logger *slog.Logger
	pinDir string

	mu       sync.Mutex
	maps     overlayMaps
	progs    map[string]*ebpf.Program // program name -> program
	progIDs  map[string]ebpf.ProgramID
	att      bpfattach.Attacher      // interface -> pinned TCX link (or clsact filter)
	attached map[string]*attachState // interface -> what runs there
}

type attachState struct {
	ifindex int
	prog    string
	hook    string
}

// all lists the maps by their bpf2go tags (bpffs.MapsOf).
func (om *overlayMaps) all() []bpffs.NamedMap { return bpffs.MapsOf(om) }

// Load loads the overlay data path pinned under pinDir (on bpffs), or adopts
// what a previous run pinned there: maps keep their entries, attachments
// keep forwarding, and programs of another build are replaced in place.
func Load(pinDir string, logger *slog.Logger) (*Overlay, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := bpffs.PrepareDir(pinDir); err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(pinDir, linksDir), 0o700); err != nil {
		return nil, fmt.Errorf("create overlay link pin dir: %w", err)
	}
	spec, err := loadOverlay()
	if err != nil {
		return nil, fmt.Errorf("load overlay spec: %w", err)
	}
	// .bss only carries a BTF anchor for bpf2go -type; no program uses it.
	delete(spec.Maps, ".bss")
	delete(spec.Variables, overlayVarUnusedDropReason)

	o := &Overlay{
		logger:   logger,
		pinDir:   pinDir,
		progs:    map[string]*ebpf.Program{},
		progIDs:  map[string]ebpf.ProgramID{},
		att:      bpfattach.New(filepath.Join(pinDir, linksDir), logger),
		attached: map[string]*attachState{},
	}
	migrated, err := bpffs.OpenMaps(spec, pinDir, o.maps.all(), func(ms *ebpf.MapSpec) (*ebpf.Map, error) {
		return bridgefp.MigratePinnedMap(pinDir, ms, logger)
	})
	if err != nil {
		o.Close()
		return nil, err
	}
	if err := o.initTunnelCounters(); err != nil {
		o.Close()
		return nil, err
	}
	if err := o.loadPrograms(spec, migrated); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

func progPin(pinDir, name string) string { return filepath.Join(pinDir, pinPrefix+name) }

// loadPrograms adopts the pinned programs when they are the ones we carry,
// bound to our maps; otherwise it loads and pins both afresh (attachments
// move to them when Attach adopts their links).
func (o *Overlay) loadPrograms(spec *ebpf.CollectionSpec, forceReload bool) error {
	if !forceReload {
		pinned := map[string]*ebpf.Program{}
		for name, ps := range spec.Programs {
			p, err := ebpf.LoadPinnedProgram(progPin(o.pinDir, name), nil)
			if err != nil {
				break
			}
			// Each program binds only the maps it uses.
			if !bpffs.Adoptable(ps, p, o.maps.all(), false) {
				p.Close()
				break
			}
			pinned[name] = p
		}
		if len(pinned) == len(spec.Programs) {
			for name, p := range pinned {
				id, err := bpffs.ProgramID(p, name)
				if err != nil {
					return err
				}
				o.progs[name], o.progIDs[name] = p, id
			}
			return nil
		}
		for _, p := range pinned {
			p.Close()
		}
	}

	coll, err := bpffs.LoadCollection(spec, o.maps.all(), "overlay programs")
	if err != nil {
		return err
	}
	defer coll.Close()
	for name := range spec.Programs {
		p := coll.DetachProgram(name)
		id, err := bpffs.PinProgram(p, name, progPin(o.pinDir, name))
		if err != nil {
			return err
		}
		o.progs[name], o.progIDs[name] = p, id
		o.logger.Info("loaded eBPF program", "program", name, "id", o.progIDs[name])
	}
	return nil
}

// ProgramID is the kernel ID of one of the two programs in use.
func (o *Overlay) ProgramID(name string) ebpf.ProgramID {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.progIDs[name]
}

// PinDir is the bpffs directory holding the maps, programs and links.
func (o *Overlay) PinDir() string { return o.pinDir }

// Close releases file descriptors and leaves every pin: forwarding goes on
// while the daemon is down, and the next Load adopts it.
func (o *Overlay) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	errs := o.att.CloseLinks()
	for name, p := range o.progs {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close program %s: %w", name, err))
		}
	}
	o.progs = map[string]*ebpf.Program{}
	errs = append(errs, bpffs.CloseMaps(o.maps.all())...)
	return errors.Join(errs...)
}

// Forget closes everything and removes the pins: pinned links go with them,
// so every TCX attachment is detached (clsact filters stay until Detach or
// until their interface goes).
func (o *Overlay) Forget() error {
	err := o.Close()
	var errs []error
	entries, _ := os.ReadDir(o.pinDir)
	for _, ent := range entries {
		if ent.Name() == linksDir || o.isOurPin(ent.Name()) {
			if rerr := os.RemoveAll(filepath.Join(o.pinDir, ent.Name())); rerr != nil {
				errs = append(errs, fmt.Errorf("remove pin %s: %w", ent.Name(), rerr))
			}
		}
	}
	return errors.Join(append(errs, err)...)
}

// isOurPin: a map or program pin of the overlay (never one of the bridge's).
func (o *Overlay) isOurPin(name string) bool {
	for _, nm := range o.maps.all() {
		if nm.Name == name {
			return true
		}
	}
	return name == pinPrefix+ProgFromContainer || name == pinPrefix+ProgFromTunnel
}
