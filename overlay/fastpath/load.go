//go:build linux

package fastpath

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

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
var ErrEBPFUnsupported = bridgefp.ErrEBPFUnsupported

// Overlay is the eBPF data path of overlay networks on one host: the pinned
// maps, both programs and their attachments.
type Overlay struct {
	logger *slog.Logger
	pinDir string

	mu        sync.Mutex
	maps      overlayMaps
	progs     map[string]*ebpf.Program // program name -> program
	progIDs   map[string]ebpf.ProgramID
	links     map[string]link.Link    // interface -> pinned TCX link
	attached  map[string]*attachState // interface -> what runs there
	forceTC   bool                    // tests: behave as if TCX were missing
	tcxBroken bool                    // TCX probed unsupported: use clsact
}

type attachState struct {
	ifindex int
	prog    string
	hook    string
}

type namedMap struct {
	name string
	m    **ebpf.Map
}

// all lists the maps by their bpf2go tags, so a map added in C is opened,
// migrated and closed without a Go change.
func (om *overlayMaps) all() []namedMap {
	v := reflect.ValueOf(om).Elem()
	out := make([]namedMap, 0, v.NumField())
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("ebpf")
		if p, ok := v.Field(i).Addr().Interface().(**ebpf.Map); ok && name != "" {
			out = append(out, namedMap{name, p})
		}
	}
	return out
}

// Load loads the overlay data path pinned under pinDir (on bpffs), or adopts
// what a previous run pinned there: maps keep their entries, attachments
// keep forwarding, and programs of another build are replaced in place.
func Load(pinDir string, logger *slog.Logger) (*Overlay, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create overlay pin dir: %w", err)
	}
	onBPFFS, err := bpffs.IsBPFFS(pinDir)
	if err != nil {
		return nil, fmt.Errorf("stat overlay pin dir: %w", err)
	}
	if !onBPFFS {
		return nil, fmt.Errorf("overlay pin dir %s is not on bpffs (mount -t bpf bpf /sys/fs/bpf): %w", pinDir, ErrEBPFUnsupported)
	}
	if err := os.MkdirAll(filepath.Join(pinDir, linksDir), 0o700); err != nil {
		return nil, fmt.Errorf("create overlay link pin dir: %w", err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
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
		links:    map[string]link.Link{},
		attached: map[string]*attachState{},
	}
	migrated := false
	for _, nm := range o.maps.all() {
		ms, ok := spec.Maps[nm.name]
		if !ok {
			o.Close()
			return nil, fmt.Errorf("open map %s: not in the eBPF object", nm.name)
		}
		ms.Pinning = ebpf.PinByName
		m, err := ebpf.NewMapWithOptions(ms, ebpf.MapOptions{PinPath: pinDir})
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			m, err = bridgefp.MigratePinnedMap(pinDir, ms, logger)
			migrated = true
		}
		if err != nil {
			o.Close()
			return nil, fmt.Errorf("open map %s: %w", nm.name, err)
		}
		*nm.m = m
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
			if !o.sameProgram(ps, p) {
				p.Close()
				break
			}
			pinned[name] = p
		}
		if len(pinned) == len(spec.Programs) {
			for name, p := range pinned {
				if err := o.setProgram(name, p); err != nil {
					return err
				}
			}
			return nil
		}
		for _, p := range pinned {
			p.Close()
		}
	}

	replace := map[string]*ebpf.Map{}
	for _, nm := range o.maps.all() {
		replace[nm.name] = *nm.m
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load overlay programs: verifier: %+v", ve)
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("load overlay programs: %w: %w", ErrEBPFUnsupported, err)
		}
		return fmt.Errorf("load overlay programs: %w", err)
	}
	defer coll.Close()
	for name := range spec.Programs {
		p := coll.DetachProgram(name)
		pin := progPin(o.pinDir, name)
		if err := os.Remove(pin); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.Close()
			return fmt.Errorf("unpin old program %s: %w", name, err)
		}
		if err := p.Pin(pin); err != nil {
			p.Close()
			return fmt.Errorf("pin program %s: %w", name, err)
		}
		if err := o.setProgram(name, p); err != nil {
			return err
		}
		o.logger.Info("loaded eBPF program", "program", name, "id", o.progIDs[name])
	}
	return nil
}

func (o *Overlay) setProgram(name string, p *ebpf.Program) error {
	info, err := p.Info()
	if err != nil {
		p.Close()
		return fmt.Errorf("program info of %s: %w", name, err)
	}
	id, _ := info.ID()
	o.progs[name], o.progIDs[name] = p, id
	return nil
}

// sameProgram: same bytecode (kernel tag), bound to the maps just opened.
func (o *Overlay) sameProgram(ps *ebpf.ProgramSpec, p *ebpf.Program) bool {
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
	// A program binds only the maps it uses; each of ours must be one we opened.
	ours := map[ebpf.MapID]bool{}
	for _, nm := range o.maps.all() {
		mi, err := (*nm.m).Info()
		if err != nil {
			return false
		}
		id, _ := mi.ID()
		ours[id] = true
	}
	for id := range have {
		if !ours[id] {
			return false
		}
	}
	return len(have) > 0
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
	var errs []error
	for name, l := range o.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of %s: %w", name, err))
		}
	}
	o.links = map[string]link.Link{}
	for name, p := range o.progs {
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close program %s: %w", name, err))
		}
	}
	o.progs = map[string]*ebpf.Program{}
	for _, nm := range o.maps.all() {
		if err := (*nm.m).Close(); err != nil { // Close of a nil map is a no-op
			errs = append(errs, fmt.Errorf("close map %s: %w", nm.name, err))
		}
		*nm.m = nil
	}
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
		if nm.name == name {
			return true
		}
	}
	return name == pinPrefix+ProgFromContainer || name == pinPrefix+ProgFromTunnel
}
