//go:build linux

package bpffs

// The eBPF objects a fast path pins here: maps opened by name and adopted
// with their entries, programs adopted when they are the build we carry.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// ErrUnsupported says the kernel lacks what netd's eBPF dataplanes need.
var ErrUnsupported = errors.New("ebpf dataplane not supported by this kernel")

// PrepareDir creates the pin dir, checks that it lies on bpffs and lifts
// RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF memory to.
func PrepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	onBPFFS, err := IsBPFFS(dir)
	if err != nil {
		return fmt.Errorf("stat pin dir: %w", err)
	}
	if !onBPFFS {
		return fmt.Errorf("pin dir %s is not on bpffs (mount -t bpf bpf %s): %w", dir, Root, ErrUnsupported)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("remove memlock limit: %w", err)
	}
	return nil
}

// NamedMap is one map of a bpf2go maps struct with the ELF name it loads by.
type NamedMap struct {
	Name string
	Map  **ebpf.Map
}

// MapsOf lists the maps of a bpf2go maps struct (pass a pointer) by their
// ebpf tags: the one list of maps, so a map added in C needs no Go change to
// be opened, migrated, bound and closed.
func MapsOf(maps any) []NamedMap {
	v := reflect.ValueOf(maps).Elem()
	out := make([]NamedMap, 0, v.NumField())
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("ebpf")
		if p, ok := v.Field(i).Addr().Interface().(**ebpf.Map); ok && name != "" {
			out = append(out, NamedMap{name, p})
		}
	}
	return out
}

// OpenMaps opens every map of spec listed in maps, pinned by name in dir: a
// pin of the same layout is adopted with its entries, one whose layout
// changed is handed to migrate. It reports whether any map was migrated.
// Maps opened before an error stay set, for the caller's CloseMaps.
func OpenMaps(spec *ebpf.CollectionSpec, dir string, maps []NamedMap, migrate func(*ebpf.MapSpec) (*ebpf.Map, error)) (bool, error) {
	migrated := false
	for _, nm := range maps {
		ms, ok := spec.Maps[nm.Name]
		if !ok {
			return migrated, fmt.Errorf("open map %s: not in the eBPF object", nm.Name)
		}
		ms.Pinning = ebpf.PinByName
		m, err := ebpf.NewMapWithOptions(ms, ebpf.MapOptions{PinPath: dir})
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			m, err = migrate(ms)
			migrated = true
		}
		if err != nil {
			return migrated, fmt.Errorf("open map %s: %w", nm.Name, err)
		}
		*nm.Map = m
	}
	return migrated, nil
}

// CloseMaps closes and clears every map (a nil one is skipped); it returns what failed.
func CloseMaps(maps []NamedMap) []error {
	var errs []error
	for _, nm := range maps {
		if err := (*nm.Map).Close(); err != nil { // Close of a nil map is a no-op
			errs = append(errs, fmt.Errorf("close map %s: %w", nm.Name, err))
		}
		*nm.Map = nil
	}
	return errs
}

// LoadCollection loads the programs of spec bound to the opened maps; what
// names them in errors. A verifier rejection comes with the verifier's log.
func LoadCollection(spec *ebpf.CollectionSpec, maps []NamedMap, what string) (*ebpf.Collection, error) {
	replace := map[string]*ebpf.Map{}
	for _, nm := range maps {
		replace[nm.Name] = *nm.Map
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load %s: verifier: %+v", what, ve)
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, fmt.Errorf("load %s: %w: %w", what, ErrUnsupported, err)
		}
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	return coll, nil
}

// PinProgram pins p (named name) at pin in place of what a previous build
// pinned there, and returns its kernel ID. It closes p when it fails.
func PinProgram(p *ebpf.Program, name, pin string) (ebpf.ProgramID, error) {
	if err := os.Remove(pin); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.Close()
		return 0, fmt.Errorf("unpin old program %s: %w", name, err)
	}
	if err := p.Pin(pin); err != nil {
		p.Close()
		return 0, fmt.Errorf("pin program %s: %w", name, err)
	}
	return ProgramID(p, name)
}

// ProgramID is the kernel ID of p (named name). It closes p when it fails.
func ProgramID(p *ebpf.Program, name string) (ebpf.ProgramID, error) {
	info, err := p.Info()
	if err != nil {
		p.Close()
		return 0, fmt.Errorf("program info of %s: %w", name, err)
	}
	id, _ := info.ID()
	return id, nil
}

// Adoptable reports whether p, loaded from a pin, runs the bytecode of ps
// (same kernel tag) bound to the maps just opened. With all, p must bind
// every one of maps; without, it may bind only some, but each must be one
// of them (a program binds only the maps it uses).
func Adoptable(ps *ebpf.ProgramSpec, p *ebpf.Program, maps []NamedMap, all bool) bool {
	info, err := p.Info()
	if err != nil || ps.Compatible(info) != nil {
		return false
	}
	ids, ok := info.MapIDs()
	if !ok {
		return false
	}
	bound := map[ebpf.MapID]bool{}
	for _, id := range ids {
		bound[id] = true
	}
	ours := map[ebpf.MapID]bool{}
	for _, nm := range maps {
		mi, err := (*nm.Map).Info()
		if err != nil {
			return false
		}
		id, _ := mi.ID()
		if all && !bound[id] {
			return false
		}
		ours[id] = true
	}
	if all {
		return true
	}
	for id := range bound {
		if !ours[id] {
			return false
		}
	}
	return len(bound) > 0
}
