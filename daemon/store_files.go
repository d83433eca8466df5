package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// readTxID reads the transaction id recorded beside the database; 0 when
// there is no record.
func readTxID(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return id, nil
}

// recordTxID writes txid to the txid file unless a later one is there. It
// rewrites one fixed-width line in place, a single sector, so the file is
// never torn and a commit pays microseconds, not a rename. Only a clean
// stop pays for an fsync: a record lost in a crash is older than the
// database, which is never refused.
func (s *Store) recordTxID(txid uint64, sync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if txid < s.txid || (txid == s.txid && !sync) {
		return
	}
	err := func() error {
		if s.txidFile == nil {
			f, err := os.OpenFile(s.path+txidSuffix, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			s.txidFile = f
		}
		line := fmt.Sprintf("%020d\n", txid)
		if _, err := s.txidFile.WriteAt([]byte(line), 0); err != nil {
			return err
		}
		if err := s.txidFile.Truncate(int64(len(line))); err != nil {
			return err
		}
		if sync {
			return s.txidFile.Sync()
		}
		return nil
	}()
	if err != nil {
		s.log.Warn("cannot record the last transaction of the state database", "file", s.path+txidSuffix, "err", err)
		return
	}
	s.txid = txid
}

// saveLastGood copies the database, as one read transaction sees it, to
// <path>.last-good; with check it first runs bbolt's consistency check.
func (s *Store) saveLastGood(check bool) error {
	return guarded(s.path, s.check, func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if check {
				for err := range tx.Check() {
					return fmt.Errorf("state database %s fails its consistency check, keeping the previous last good copy: %w", s.path, err)
				}
			}
			return writeFileAtomic(s.path+lastGoodSuffix, true, func(w io.Writer) error {
				_, err := tx.WriteTo(w)
				return err
			})
		})
	})
}

// writeFileAtomic writes path through a temporary file and a rename, so a
// reader sees the old content or the new, never a part.
func writeFileAtomic(path string, sync bool, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return fmt.Errorf("sync %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	if sync {
		syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir makes a rename in dir durable; failing is not fatal.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
