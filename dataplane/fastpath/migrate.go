//go:build linux

package fastpath

// What a previous build pinned is carried forward: pins named before the
// netd_ prefix are renamed, and maps whose layout changed are copied over.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// unprefixedPins maps the pin names of builds before the netd_ prefix to today's.
func (e *EBPF) unprefixedPins() map[string]string {
	pins := map[string]string{
		progName:                                progPin,
		strings.TrimPrefix(linksDir, pinPrefix): linksDir,
	}
	for _, nm := range e.maps.all() {
		pins[strings.TrimPrefix(nm.Name, pinPrefix)] = nm.Name
	}
	return pins
}

// adoptUnprefixedPins renames the pins of a build before the netd_ prefix.
// bpffs renames in place: the objects, what they hold and every attachment
// stay as they are, so forwarding never stops across the upgrade.
func (e *EBPF) adoptUnprefixedPins() error {
	pins := e.unprefixedPins()
	olds := make([]string, 0, len(pins))
	for old := range pins {
		olds = append(olds, old)
	}
	sort.Strings(olds)
	for _, old := range olds {
		from, to := filepath.Join(e.pinDir, old), filepath.Join(e.pinDir, pins[old])
		ok, err := pinExists(from)
		if err != nil {
			return fmt.Errorf("adopt old pin: %w", err)
		}
		if !ok {
			continue
		}
		if pins[old] == linksDir {
			if err := e.adoptUnprefixedLinks(from, to); err != nil {
				return err
			}
			continue
		}
		if ok, err := pinExists(to); err != nil {
			return fmt.Errorf("adopt old pin %s: %w", from, err)
		} else if ok {
			// A downgrade ran in between: today's pin wins; the old object lives on while in use.
			e.logger.Warn("removing a pin of a previous build next to the current one", "old", from, "pin", to)
			if err := os.Remove(from); err != nil {
				return fmt.Errorf("remove old pin %s: %w", from, err)
			}
			continue
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("rename old pin %s to %s: %w", from, to, err)
		}
		e.logger.Info("adopted a pin of a previous build", "old", from, "pin", to)
	}
	return nil
}

// adoptUnprefixedLinks moves the link pins of the old links dir into today's.
func (e *EBPF) adoptUnprefixedLinks(from, to string) error {
	ok, err := pinExists(to)
	if err != nil {
		return fmt.Errorf("adopt old link pins: %w", err)
	}
	if !ok {
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("rename old link pin dir %s to %s: %w", from, to, err)
		}
		e.logger.Info("adopted the link pins of a previous build", "old", from, "pin", to)
		return nil
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("list old link pins in %s: %w", from, err)
	}
	for _, ent := range entries {
		op, np := filepath.Join(from, ent.Name()), filepath.Join(to, ent.Name())
		if ok, err := pinExists(np); err != nil {
			return fmt.Errorf("adopt old link pin %s: %w", op, err)
		} else if ok {
			// Two links on one veth: keep today's; detach the old one now, not when the kernel frees its pin.
			e.logger.Warn("detaching a link of a previous build next to the current one", "old", op, "pin", np)
			if l, err := link.LoadPinnedLink(op, nil); err == nil {
				if err := l.Detach(); err != nil {
					e.logger.Warn("detach old link; it goes with its pin", "pin", op, "error", err)
				}
				l.Close()
			}
			if err := os.Remove(op); err != nil {
				return fmt.Errorf("remove old link pin %s: %w", op, err)
			}
			continue
		}
		if err := os.Rename(op, np); err != nil {
			return fmt.Errorf("rename old link pin %s to %s: %w", op, np, err)
		}
	}
	if err := os.Remove(from); err != nil {
		return fmt.Errorf("remove old link pin dir %s: %w", from, err)
	}
	return nil
}

func pinExists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	return true, nil
}

// migrateMap replaces a pinned map whose layout changed, copying what fits.
func (e *EBPF) migrateMap(ms *ebpf.MapSpec) (*ebpf.Map, error) {
	return MigratePinnedMap(e.pinDir, ms, e.logger)
}

// MigratePinnedMap replaces the map pinned as ms.Name in pinDir, whose layout
// differs from ms, by a new one pinned in its place, copying the entries
// whose key fits (values truncated or zero-extended). The overlay data path
// migrates its maps with it too.
func MigratePinnedMap(pinDir string, ms *ebpf.MapSpec, logger *slog.Logger) (*ebpf.Map, error) {
	path := filepath.Join(pinDir, ms.Name)
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
	logger.Warn("migrated pinned eBPF map with a changed layout",
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
