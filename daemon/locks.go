//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Every resource a daemon owns exclusively is locked before the daemon
// touches anything: a second daemon pointed at the same state dir, socket
// or pin dir must give up before its reconcile could tear down what the
// first one runs. flock locks go with the process, also on kill -9.

// flock takes an exclusive non-blocking flock on path (a file created if
// missing, or a directory); busy is the error when another process holds it.
func flock(path string, dir bool, busy error) (func(), error) {
	flags := os.O_CREATE | os.O_RDWR
	if dir {
		flags = os.O_RDONLY | unix.O_DIRECTORY
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, busy
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// lockStateDir takes an exclusive flock on <dir>/netd.lock; the returned
// func releases it.
func lockStateDir(dir string) (func(), error) {
	return flock(filepath.Join(dir, "netd.lock"), false,
		fmt.Errorf("another netd daemon is using state dir %s (lock held): stop it or pass a different --state-dir", dir))
}

// lockSocket claims the API socket path with a lock file beside it, and
// refuses a socket that something (an older daemon) still answers on.
func lockSocket(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	busy := fmt.Errorf("another daemon is listening on %s (lock %s.lock held): stop it or pass a different --socket", path, path)
	unlock, err := flock(path+".lock", false, busy)
	if err != nil {
		return nil, err
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		unlock()
		return nil, fmt.Errorf("another daemon is listening on %s: stop it or pass a different --socket", path)
	}
	return unlock, nil
}

// lockPinDir flocks the daemon's bpffs directory itself (bpffs holds no
// regular files): two daemons with one node name share it otherwise.
func lockPinDir(dir string) (func(), error) {
	return flock(dir, true, fmt.Errorf(
		"another netd daemon is using pin dir %s (lock held): give each daemon its own --node-name (or --bpffs)", dir))
}
