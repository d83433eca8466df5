//go:build linux

package daemon

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSetSocketGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	p := filepath.Join(t.TempDir(), "netd.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gid := func() uint32 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Gid
	}
	if err := setSocketGroup(p, "4242", log); err != nil || gid() != 4242 {
		t.Errorf("by GID: %v, gid %d", err, gid())
	}
	if err := setSocketGroup(p, "root", log); err != nil || gid() != 0 {
		t.Errorf("by name: %v, gid %d", err, gid())
	}
	if err := setSocketGroup(p, "no-such-group-netd", log); err == nil || !strings.Contains(err.Error(), "group no-such-group-netd not found") {
		t.Errorf("unknown group: %v", err)
	}
	// The default group may be missing (not installed): a warning, the socket as it was.
	if _, err := lookupGID(DefaultSocketGroup); err != nil {
		if err := setSocketGroup(p, DefaultSocketGroup, log); err != nil || gid() != 0 {
			t.Errorf("missing default group: %v", err)
		}
	}
}
