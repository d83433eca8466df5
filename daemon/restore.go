//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StateDBName is the state database's file name in the state dir.
const StateDBName = "netd.db"

// RestoreResult says what RestoreState did.
type RestoreResult struct {
	DB, LastGood string
	// Damaged is where the previous database was moved ("" if none);
	// Problem is what its check found ("" if it passed).
	Damaged, Problem     string
	Saved                time.Time // when the last good copy was written
	TxID                 uint64    // transaction of the restored copy
	PrevTxID             uint64    // transaction recorded for the file it replaced
	Networks, Containers int
}

// RestoreState puts the last good copy of the state database of stateDir
// back in place, with no daemon running on it: the current file is moved
// aside as netd.db.damaged-<time>, never deleted. Nothing changes when
// the copy is missing or fails its own check.
func RestoreState(stateDir string, now time.Time) (RestoreResult, error) {
	db := filepath.Join(stateDir, StateDBName)
	r := RestoreResult{DB: db, LastGood: db + lastGoodSuffix}
	if _, err := os.Stat(stateDir); err != nil {
		return r, fmt.Errorf("restore state: %w", err)
	}
	unlock, err := lockStateDir(stateDir)
	if err != nil {
		return r, fmt.Errorf("restore state: %w", err)
	}
	defer unlock()

	fi, err := os.Stat(r.LastGood)
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("restore state: there is no last good copy %s (netd saves one at each clean start and stop); nothing was changed", r.LastGood)
	}
	if err != nil {
		return r, fmt.Errorf("restore state: %w", err)
	}
	r.Saved = fi.ModTime()
	h, err := readHeader(r.LastGood)
	if err != nil {
		return r, fmt.Errorf("restore state: the last good copy is unusable too, nothing was changed: %w", err)
	}
	if r.TxID, err = checkFile(r.LastGood, DefaultCheckTimeout, true); err != nil || h.oneValid {
		if err == nil {
			err = errors.New("one of its header pages is invalid")
		}
		return r, fmt.Errorf("restore state: the last good copy is unusable too, nothing was changed: %w", err)
	}
	if r.Networks, r.Containers, err = countRecords(r.LastGood); err != nil {
		return r, fmt.Errorf("restore state: read %s: %w", r.LastGood, err)
	}
	r.PrevTxID, _ = readTxID(db + txidSuffix)

	if _, err := os.Stat(db); err == nil {
		probe := &Store{path: db, log: slog.New(slog.DiscardHandler), check: DefaultCheckTimeout}
		if err := probe.verify(); err != nil {
			var de *DamagedError
			if errors.As(err, &de) {
				r.Problem = de.Reason
			} else {
				r.Problem = err.Error()
			}
		}
		r.Damaged = db + damagedInfix + now.UTC().Format("20060102T150405Z")
		for i := 2; ; i++ {
			if _, err := os.Lstat(r.Damaged); errors.Is(err, os.ErrNotExist) {
				break
			}
			r.Damaged = fmt.Sprintf("%s%s%s-%d", db, damagedInfix, now.UTC().Format("20060102T150405Z"), i)
		}
		if err := os.Rename(db, r.Damaged); err != nil {
			return r, fmt.Errorf("restore state: move %s aside: %w", db, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("restore state: %w", err)
	}

	src, err := os.Open(r.LastGood)
	if err != nil {
		return r, fmt.Errorf("restore state: %w", err)
	}
	defer src.Close()
	err = writeFileAtomic(db, true, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("restore state: copy %s to %s: %w", r.LastGood, db, err)
	}
	err = writeFileAtomic(db+txidSuffix, true, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%d\n", r.TxID)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("restore state: %w", err)
	}
	return r, nil
}

// countRecords counts the networks and containers of a checked file.
func countRecords(path string) (networks, containers int, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketNetworks); b != nil {
			networks = b.Stats().KeyN
		}
		if b := tx.Bucket(bucketContainers); b != nil {
			containers = b.Stats().KeyN
		}
		return nil
	})
	return networks, containers, err
}
