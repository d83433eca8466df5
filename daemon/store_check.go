package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Files the store keeps beside the database, named after it.
const (
	// lastGoodSuffix names a consistent copy, refreshed at each clean start
	// and stop while the database checks out and decodes.
	lastGoodSuffix = ".last-good"
	// txidSuffix names the file holding the last transaction id committed,
	// to catch a database that bbolt silently rolled back.
	txidSuffix = ".txid"
	// damagedInfix is how restore-state names the file it moves aside.
	damagedInfix = ".damaged-"
)

// DefaultCheckTimeout bounds the consistency check of the database at open.
const DefaultCheckTimeout = 20 * time.Second

// RestoreCommand is the command that brings back the last good copy.
func RestoreCommand(stateDir string) string {
	return "netd daemon restore-state --state-dir " + stateDir
}

// DamagedError says the database file cannot be used as it is.
type DamagedError struct {
	Path   string
	Reason string
	// RolledBack: the file is readable but older than what netd committed.
	RolledBack bool
}

func (e *DamagedError) Error() string {
	dir := filepath.Dir(e.Path)
	what := "is damaged"
	if e.RolledBack {
		what = "was rolled back"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state database %s %s: %s. netd did not start and changed nothing in the kernel.", e.Path, what, e.Reason)
	if fi, err := os.Stat(e.Path + lastGoodSuffix); err == nil {
		fmt.Fprintf(&b, " To move it aside and go back to the last good copy (%s, saved %s), run `%s`.",
			e.Path+lastGoodSuffix, fi.ModTime().UTC().Format(time.RFC3339), RestoreCommand(dir))
	} else {
		fmt.Fprintf(&b, " There is no last good copy (%s) for `%s` to restore; moving %s aside starts netd without the networks and containers it recorded.",
			e.Path+lastGoodSuffix, RestoreCommand(dir), e.Path)
	}
	if e.RolledBack {
		fmt.Fprintf(&b, " If you replaced %s with an older copy on purpose, delete %s and start again.", e.Path, e.Path+txidSuffix)
	}
	return b.String()
}

func damaged(path, format string, args ...any) error {
	return &DamagedError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// bbolt's on-disk header (go.etcd.io/bbolt/internal/common): a 16-byte page
// header, then the meta fields, little-endian, checksummed with FNV-64a.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumLen     = 56 // bytes before the checksum field
	noFreelist     = ^uint64(0)
)

// boltMeta is one of the two header pages of a bbolt file.
type boltMeta struct {
	valid    bool
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages in use
	txid     uint64
}

func parseMeta(page []byte) boltMeta {
	if len(page) < pageHeaderSize+metaSumLen+8 {
		return boltMeta{}
	}
	m := page[pageHeaderSize:]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	return boltMeta{
		valid: le.Uint32(m[0:]) == boltMagic && le.Uint32(m[4:]) == boltVersion &&
			le.Uint64(m[metaSumLen:]) == h.Sum64(),
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		pgid:     le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}
}

// fileHeader is what the two meta pages say, read without bbolt.
type fileHeader struct {
	size     int64
	meta     boltMeta // the one bbolt will use: valid, highest txid
	oneValid bool     // the other header page is unreadable
}

// readHeader validates the header pages and the file size before bbolt
// maps the file: bbolt faults (SIGBUS) on pages past the end of a
// truncated file, which no recover() catches.
func readHeader(path string) (fileHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileHeader{}, fmt.Errorf("open state database %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileHeader{}, fmt.Errorf("stat state database %s: %w", path, err)
	}
	h := fileHeader{size: fi.Size()}
	buf := make([]byte, 4096)
	read := func(off int64) boltMeta {
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return boltMeta{}
		}
		return parseMeta(buf[:n])
	}
	m0 := read(0)
	var m1 boltMeta
	if m0.valid {
		m1 = read(int64(m0.pageSize))
	} else {
		// Page 0 is unreadable: find page 1 the way bbolt does, by trying
		// the page sizes it supports.
		for i := 0; i <= 14 && int64(1024)<<i < h.size; i++ {
			if m := read(int64(1024) << i); m.valid && int64(m.pageSize) == int64(1024)<<i {
				m1 = m
				break
			}
		}
	}
	switch {
	case !m0.valid && !m1.valid:
		return h, damaged(path, "neither of its two header pages is valid (not a bbolt file, or overwritten)")
	case m0.valid && m1.valid && m0.pageSize != m1.pageSize:
		return h, damaged(path, "its two header pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	case m0.valid && (!m1.valid || m0.txid > m1.txid):
		h.meta = m0
	default:
		h.meta = m1
	}
	h.oneValid = !m0.valid || !m1.valid
	m := h.meta
	if m.pageSize < 1024 || m.pageSize&(m.pageSize-1) != 0 {
		return h, damaged(path, "its header gives an invalid page size %d", m.pageSize)
	}
	if need := int64(m.pgid) * int64(m.pageSize); m.pgid < 2 || need > h.size || need/int64(m.pageSize) != int64(m.pgid) {
		return h, damaged(path, "the file has %d bytes but its header (transaction %d) needs %d pages of %d bytes: it was truncated or its header overwritten",
			h.size, m.txid, m.pgid, m.pageSize)
	}
	if m.root < 2 || m.root >= m.pgid || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
		return h, damaged(path, "its header (transaction %d) points outside the file", m.txid)
	}
	return h, nil
}

// guarded runs fn in a goroutine of its own that turns memory faults into
// panics and recovers every panic, and gives up after timeout: bbolt
// panics or faults on some damaged files instead of returning an error.
func guarded(path string, timeout time.Duration, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				done <- damaged(path, "reading it failed (%v)", r)
			}
		}()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		// The goroutine may be stuck in a loop of a damaged page; the
		// caller exits, so leaving it is the lesser harm.
		return damaged(path, "its consistency check did not finish within %v", timeout)
	}
}

// checkFile opens the database read-only and reads every page a
// transaction can reach, then (with boltCheck) runs bbolt's consistency
// check: a file that passes cannot make a later read panic. It returns the
// file's transaction id.
func checkFile(path string, timeout time.Duration, boltCheck bool) (uint64, error) {
	var txid uint64
	err := guarded(path, timeout, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: 2 * time.Second})
		if err != nil {
			if errors.Is(err, bolt.ErrTimeout) {
				return fmt.Errorf("open state database %s: locked by another process: %w", path, err)
			}
			return damaged(path, "bbolt cannot open it (%v)", err)
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			txid = uint64(tx.ID())
			if err := walkAll(tx); err != nil {
				return damaged(path, "reading it failed (%v)", err)
			}
			if !boltCheck {
				return nil
			}
			return consistent(path, tx)
		})
	})
	return txid, err
}

// walkAll touches every key and value here, where a fault is a panic we
// recover, before bbolt's own check reads them in a goroutine of its own.
func walkAll(tx *bolt.Tx) error {
	var sum uint32
	var walk func(b *bolt.Bucket, depth int) error
	walk = func(b *bolt.Bucket, depth int) error {
		if depth > 16 {
			return errors.New("buckets nested too deep")
		}
		return b.ForEach(func(k, v []byte) error {
			sum = crc32.Update(sum, crc32.IEEETable, k)
			if v == nil {
				child := b.Bucket(k)
				if child == nil {
					return fmt.Errorf("bucket %q is unreadable", k)
				}
				return walk(child, depth+1)
			}
			sum = crc32.Update(sum, crc32.IEEETable, v)
			return nil
		})
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if err := walk(b, 0); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// consistent runs bbolt's check: free pages, references, key order.
func consistent(path string, tx *bolt.Tx) error {
	var problems []string
	for err := range tx.Check() {
		if len(problems) < 3 {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return damaged(path, "its consistency check failed (%s)", strings.Join(problems, "; "))
	}
	return nil
}

// checkRepairedCopy checks a file one of whose header pages is invalid:
// bbolt's check reads both, so it runs on a copy where one empty commit
// has rewritten the invalid page, as the next commit to the file will.
func checkRepairedCopy(path string, timeout time.Duration) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".check-*")
	if err != nil {
		return fmt.Errorf("check state database %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	src, err := os.Open(path)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("check state database %s: %w", path, err)
	}
	_, err = io.Copy(tmp, src)
	src.Close()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("check state database %s: copy: %w", path, err)
	}
	return guarded(path, timeout, func() error {
		db, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{Timeout: 2 * time.Second, NoSync: true})
		if err != nil {
			return damaged(path, "bbolt cannot open it (%v)", err)
		}
		defer db.Close()
		if err := db.Update(func(*bolt.Tx) error { return nil }); err != nil {
			return damaged(path, "a commit to a copy of it failed (%v)", err)
		}
		return db.View(func(tx *bolt.Tx) error { return consistent(path, tx) })
	})
}
