//go:build linux

package portalloc

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The ports are on 127.0.0.1 and 127.0.0.2 of the test's netns: loopback only.

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
)

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestAllocateConflictsAndRelease(t *testing.T) {
	a := New(t.TempDir())
	defer a.Close()
	p := freePort(t)
	if _, err := a.Allocate("c1", []Request{{Proto: "tcp", IP: lo1, Port: p}}); err != nil {
		t.Fatal(err)
	}
	// The same port on another address does not conflict; UDP neither.
	if _, err := a.Allocate("c2", []Request{{Proto: "tcp", IP: lo2, Port: p}, {Proto: "udp", IP: lo1, Port: p}}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate("c3", []Request{{Proto: "tcp", IP: lo1, Port: p}})
	if !errors.Is(err, ErrAllocated) || err.Error() != "Bind for 127.0.0.1:"+strconv.Itoa(int(p))+" failed: port is already allocated" {
		t.Errorf("same key: %v", err)
	}
	// A held UDP port receives nothing and keeps host programs off it.
	if c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(int(p))); err == nil {
		c.Close()
		t.Error("a host program could bind the held UDP port")
	}
	// Another owner's release is a no-op; the owner's frees it.
	a.Release("c3", []Key{{"tcp", lo1, p}})
	if a.Held() != 3 {
		t.Errorf("held %d after a foreign release", a.Held())
	}
	a.Release("c1", []Key{{"tcp", lo1, p}})
	if l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(int(p))); err != nil {
		t.Errorf("released port not free: %v", err)
	} else {
		l.Close()
	}
	// Idempotent for its owner (a restart re-allocates).
	if _, err := a.Allocate("c2", []Request{{Proto: "udp", IP: lo1, Port: p}}); err != nil {
		t.Errorf("re-allocate by its owner: %v", err)
	}
}

func TestAllocateRangeAndReserved(t *testing.T) {
	dir := t.TempDir()
	p := freePort(t)
	os.WriteFile(filepath.Join(dir, "ip_local_port_range"), []byte(strconv.Itoa(int(p))+" "+strconv.Itoa(int(p)+1)), 0o644)
	os.WriteFile(filepath.Join(dir, "ip_local_reserved_ports"), []byte(strconv.Itoa(int(p))), 0o644)
	a := New(dir)
	defer a.Close()
	keys, err := a.Allocate("c1", []Request{{Proto: "udp", IP: lo1}})
	if err != nil || keys[0].Port != p+1 {
		t.Fatalf("ephemeral = %v, %v; want port %d (the other is reserved)", keys, err, p+1)
	}
	if _, err := a.Allocate("c2", []Request{{Proto: "udp", IP: lo1}}); err == nil {
		t.Error("an exhausted ephemeral range gave a port")
	}
	// An explicit range picks a free one and says so when none is left.
	keys, err = a.Allocate("c3", []Request{{Proto: "udp", IP: lo1, First: p, Last: p + 1}})
	if err != nil || keys[0].Port != p {
		t.Fatalf("range = %v, %v", keys, err)
	}
	_, err = a.Allocate("c4", []Request{{Proto: "udp", IP: lo1, First: p, Last: p + 1}})
	if !errors.Is(err, ErrAllocated) {
		t.Errorf("full range: %v", err)
	}
	// All or nothing: the first request is given back when the second fails.
	q := freePort(t)
	if _, err := a.Allocate("c5", []Request{{Proto: "tcp", IP: lo1, Port: q}, {Proto: "udp", IP: lo1, Port: p}}); err == nil {
		t.Fatal("no error")
	}
	if a.Held() != 2 {
		t.Errorf("held %d, want 2 after a failed allocation", a.Held())
	}
}
