//go:build linux

package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestHostWireClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// A fake binary: this test covers namespaces, wires and cleanup only.
	l, err := New(nil, Options{NetdBin: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := l.Host("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Host("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wire(a, b, "wire0", "10.250.0.1/30", "10.250.0.2/30"); err != nil {
		t.Fatal(err)
	}
	if err := a.PingFromHost("10.250.0.2"); err != nil {
		t.Fatalf("ping over wire: %v", err)
	}
	// A namespace named like a daemon's container must go with the lab too.
	if _, err := l.run("ip", "netns", "add", a.ContainerNS("c1")); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(a.BPFFSDir(), "sub")
	if err := os.MkdirAll(pin, 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := l.Namespaces()
	if err != nil || len(names) != 3 {
		t.Fatalf("namespaces = %v, %v; want 3", names, err)
	}
	// Two concurrent Closes (a signal handler racing the normal end): neither
	// may return before the cleanup is done.
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			err := l.Close()
			if names, _ := l.Namespaces(); err == nil && len(names) != 0 {
				err = fmt.Errorf("Close returned with namespaces left: %v", names)
			}
			errs <- err
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	openMu.Lock()
	stillOpen := openLabs[l]
	openMu.Unlock()
	if stillOpen {
		t.Errorf("closed lab still registered for CloseOnSignal")
	}
	if _, err := os.Stat(a.BPFFSDir()); !os.IsNotExist(err) {
		t.Fatalf("pin dir left after Close: %v", err)
	}
	if _, err := os.Stat(l.Dir); !os.IsNotExist(err) {
		t.Fatalf("lab dir left after Close: %v", err)
	}
}

func TestPrefixValidation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, p := range []string{"UPPER", "toolongprefix", "a_b"} {
		if l, err := New(nil, Options{Prefix: p, NetdBin: "/bin/true"}); err == nil {
			l.Close()
			t.Errorf("prefix %q accepted", p)
		}
	}
}
