package gossip

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// clockReserve is how far ahead of the last handed-out time the clock file
// is written: one fsync per clockReserve ticks, and a restart starts past
// every time this node could have used.
const clockReserve = 1024

// lamport is the node's Lamport clock. It is persisted with a reservation
// ahead of use, so a restarted node never reuses a version: others would
// take its new entries for stale copies of old ones.
type lamport struct {
	mu       sync.Mutex
	now      uint64
	reserved uint64 // persisted ceiling; now < reserved
	path     string // "" = not persisted (tests, simulation)
}

func openClock(path string) (*lamport, error) {
	c := &lamport{path: path}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("read gossip clock %s: %w", path, err)
	case len(b) != 8:
		// A damaged clock would make this node's new entries look old to
		// the others; refuse rather than guess.
		return nil, fmt.Errorf("gossip clock %s is damaged (%d bytes, want 8): remove it only if every other node has forgotten this one (after 24 h), or restore it", path, len(b))
	default:
		c.now = binary.BigEndian.Uint64(b)
		c.reserved = c.now
	}
	return c, nil
}

// Tick returns a new time, greater than every time this node used or saw.
func (c *lamport) Tick() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now++
	if err := c.reserveLocked(); err != nil {
		c.now--
		return 0, err
	}
	return c.now, nil
}

// Witness moves the clock past t, a time seen on another node's entry.
func (c *lamport) Witness(t uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t > c.now {
		c.now = t
		// Persisting a witnessed time is not needed for safety (this node's
		// own versions are what must not repeat); it is done lazily on the
		// next Tick.
	}
}

// Time is the current time.
func (c *lamport) Time() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *lamport) reserveLocked() error {
	if c.path == "" || c.now < c.reserved {
		return nil
	}
	next := c.now + clockReserve
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], next)
	tmp := c.path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("save gossip clock: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save gossip clock: %w", err)
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return fmt.Errorf("save gossip clock %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save gossip clock %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save gossip clock %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("save gossip clock: %w", err)
	}
	c.reserved = next
	return nil
}
