//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netd-dev/netd/tools/lab"
)

// failedStart runs `netd daemon` with the host's flags, expecting it to
// refuse within 30 s; it returns the combined output.
func failedStart(t *testing.T, l *lab.Lab, h *lab.Host) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Command(ctx, l.NetdBin(), h.DaemonArgs()...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("daemon kept running on a damaged state database:\n%s", out)
	}
	if err == nil {
		t.Fatalf("daemon exited 0 on a damaged state database:\n%s", out)
	}
	return string(out)
}

// headerTxID is the transaction id of bbolt header page p (0 or 1) of b.
func headerTxID(b []byte, p int) uint64 {
	return binary.LittleEndian.Uint64(b[p*4096+16+48:])
}

// TestStateDamagedDatabase: a database damaged while the daemon is down
// (truncated, pages overwritten, newest header zeroed: a silent rollback)
// stops the next start with an error naming the file and the restore
// command, and no panic; the kernel is left alone; restore-state brings
// back the last good copy and the containers still ping.
func TestStateDamagedDatabase(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1")
	createNet(t, h, "ebpf", "keep", "--subnet", "10.214.0.0/24", "-o", "com.docker.network.bridge.name=ndtkeep")
	createCtr(t, h, "ca", "--network", "keep")
	createCtr(t, h, "cb", "--network", "keep")
	ipB := ctrIP(t, h, "cb", "keep")
	mustPing(t, h, "ca", ipB)
	before := snapshot(t, h, "ca", "cb")
	db := filepath.Join(h.StateDir, "netd.db")

	damages := []struct {
		name string
		do   func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:3*4096] }},
		{"pages overwritten", func(b []byte) []byte {
			for i := 2 * 4096; i < len(b); i++ {
				b[i] = byte(i*131 + 7)
			}
			return b
		}},
		{"newest header page zeroed", func(b []byte) []byte {
			p := 0
			if headerTxID(b, 1) > headerTxID(b, 0) {
				p = 1
			}
			clear(b[p*4096 : (p+1)*4096])
			return b
		}},
	}
	for i, d := range damages {
		if err := h.StopDaemon(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, d.do(b), 0o600); err != nil {
			t.Fatal(err)
		}
		out := failedStart(t, l, h)
		t.Logf("%s: start refused:\n%s", d.name, out)
		for _, want := range []string{db, "netd daemon restore-state --state-dir " + h.StateDir} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: start-up error does not name %q:\n%s", d.name, want, out)
			}
		}
		for _, bad := range []string{"panic", "goroutine ", "SIGBUS", "fatal error"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: start-up shows %q:\n%s", d.name, bad, out)
			}
		}
		if !netnsExists(h.ContainerNS("ca")) || !netnsExists(h.ContainerNS("cb")) {
			t.Errorf("%s: a refused start removed container namespaces", d.name)
		}
		if _, _, code := h.Run("ip", "link", "show", "ndtkeep"); code != 0 {
			t.Errorf("%s: a refused start removed bridge ndtkeep", d.name)
		}

		out = ok(t, h, "daemon", "restore-state", "--state-dir", h.StateDir)
		if !strings.Contains(out, "netd.db.damaged-") || !strings.Contains(out, "restored "+db) {
			t.Errorf("%s: restore-state does not say what it did:\n%s", d.name, out)
		}
		moved, _ := filepath.Glob(db + ".damaged-*")
		if len(moved) != i+1 {
			t.Errorf("%s: %d damaged files kept, want %d: %v", d.name, len(moved), i+1, moved)
		}
		if err := h.StartDaemon(); err != nil {
			t.Fatalf("%s: start after restore-state: %v", d.name, err)
		}
		sameState(t, d.name+" and restore-state", before, snapshot(t, h, "ca", "cb"))
		mustPing(t, h, "ca", ipB)
		ok(t, h, "system", "check")
	}
	// Refused while the daemon runs: it holds the state dir.
	fails(t, h, []string{"another netd daemon", h.StateDir}, "daemon", "restore-state", "--state-dir", h.StateDir)
	mustPing(t, h, "ca", ipB)
}

// rewriteRecords replaces records of a stopped daemon's database with raw
// bytes, as a damaged or foreign writer would leave them.
func rewriteRecords(t *testing.T, path string, recs map[[2]string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for k, v := range recs {
			b := tx.Bucket([]byte(k[0]))
			if b == nil || b.Get([]byte(k[1])) == nil {
				return errors.New("no record " + k[0] + "/" + k[1])
			}
			if err := b.Put([]byte(k[1]), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStateUndecodableRecord: a network record and a container record that
// do not decode do not keep the daemon down; they are named at start-up,
// the other networks work, and their bridge, netns and veths stay.
func TestStateUndecodableRecord(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1")
	createNet(t, h, "ebpf", "good", "--subnet", "10.215.0.0/24")
	badNet := createNet(t, h, "ebpf", "bad", "--subnet", "10.215.1.0/24", "-o", "com.docker.network.bridge.name=ndtbad")
	createCtr(t, h, "c1", "--network", "good")
	createCtr(t, h, "c2", "--network", "good")
	createCtr(t, h, "c3", "--network", "bad")
	createCtr(t, h, "c4", "--network", "good")
	c3 := inspectCtr(t, h, "c3")
	c4 := inspectCtr(t, h, "c4")
	ip2, ip4 := ctrIP(t, h, "c2", "good"), ctrIP(t, h, "c4", "good")
	vethBad := "nd" + c3.NetworkSettings.Networks["bad"].EndpointID[:12]
	veth4 := "nd" + c4.NetworkSettings.Networks["good"].EndpointID[:12]
	mustPing(t, h, "c1", ip2)
	mustPing(t, h, "c1", ip4)
	if err := h.StopDaemon(); err != nil {
		t.Fatal(err)
	}

	db := filepath.Join(h.StateDir, "netd.db")
	badNetRaw := `{"id":"` + badNet + `","name":"bad","subnet":`
	badCtrRaw := "\x00\x01 not json"
	rewriteRecords(t, db, map[[2]string]string{
		{"networks", badNet}:  badNetRaw,
		{"containers", c4.ID}: badCtrRaw,
	})
	logBefore := len(h.DaemonLog())
	if err := h.StartDaemon(); err != nil {
		t.Fatalf("one undecodable record kept the daemon down: %v", err)
	}
	log := h.DaemonLog()[logBefore:]
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") {
			t.Logf("start-up: %s", line)
		}
	}
	for _, want := range []string{"networks/" + badNet, "containers/" + c4.ID, "does not decode"} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log does not report %q:\n%s", want, log)
		}
	}

	// The rest serves.
	mustPing(t, h, "c1", ip2)
	if names := lsNames(t, h); !equal(names, sorted("bridge", "good", "host", "none")) {
		t.Errorf("network ls = %v", names)
	}
	createNet(t, h, "ebpf", "fresh", "--subnet", "10.215.2.0/24")
	createCtr(t, h, "c5", "--network", "fresh")
	createCtr(t, h, "c6", "--network", "fresh")
	mustPing(t, h, "c5", ctrIP(t, h, "c6", "fresh"))

	// The undecodable records' kernel objects stay, and still carry traffic.
	for _, link := range []string{"ndtbad", vethBad, veth4} {
		if _, _, code := h.Run("ip", "link", "show", link); code != 0 {
			t.Errorf("link %s of an undecodable record was removed", link)
		}
	}
	if !netnsExists(h.ContainerNS("c4")) || !netnsExists(h.ContainerNS("c3")) {
		t.Error("netns of c3 or c4 was removed")
	}
	mustPing(t, h, "c1", ip4)
	// A new container cannot take over c4's netns.
	fails(t, h, []string{h.ContainerNS("c4")}, "container", "create", "--network", "good", "c4")
	if !netnsExists(h.ContainerNS("c4")) {
		t.Error("container create c4 removed the netns of the undecodable c4")
	}

	// A second start changes nothing, and the records are left as they were.
	if err := h.RestartDaemon(); err != nil {
		t.Fatal(err)
	}
	mustPing(t, h, "c1", ip4)
	if err := h.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bdb.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("networks")).Get([]byte(badNet)); !bytes.Equal(v, []byte(badNetRaw)) {
			t.Errorf("undecodable network record changed to %q", v)
		}
		if v := tx.Bucket([]byte("containers")).Get([]byte(c4.ID)); !bytes.Equal(v, []byte(badCtrRaw)) {
			t.Errorf("undecodable container record changed to %q", v)
		}
		return nil
	})
	bdb.Close()
}
