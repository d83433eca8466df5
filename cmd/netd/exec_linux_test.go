//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// throwawayNetns creates a named netns (ndt-<hex>) with the sandbox package
// the CLI enters it with, and deletes it at cleanup.
func throwawayNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	name := "ndt-" + stringid.RandomHex(6)
	path, err := sandbox.Create(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := sandbox.Delete(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return path
}

func TestContainerExecInSandbox(t *testing.T) {
	path := throwawayNetns(t)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	f := newFakeDaemon(t)
	f.containers["box"] = api.Container{ID: strings.Repeat("e", 64), Name: "box",
		NetworkSettings: api.NetworkSettings{SandboxKey: path}}

	out, errs, code := netd(t, f.host, "hello\n", "container", "exec", "box", "--", "sh", "-c", "readlink /proc/self/ns/net; cat; echo oops >&2; exit 3")
	if code != 3 {
		t.Errorf("exit code %d, want 3 (stderr %q)", code, errs)
	}
	if want := fmt.Sprintf("net:[%d]\nhello\n", st.Ino); out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if errs != "oops\n" {
		t.Errorf("stderr %q", errs)
	}
	// The CLI's own thread went back: this test's netns is not the sandbox's.
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if self == fmt.Sprintf("net:[%d]", st.Ino) {
		t.Error("caller left inside the sandbox namespace")
	}

	// Without "--", the command starts at the second argument; its flags are its own.
	out, _, code = netd(t, f.host, "", "container", "exec", "box", "sh", "-c", "exit 0")
	if code != 0 || out != "" {
		t.Errorf("no --: %d %q", code, out)
	}
	_, errs, code = netd(t, f.host, "", "container", "exec", "box", "/no/such/binary")
	if code != 127 || !strings.Contains(errs, "/no/such/binary") {
		t.Errorf("missing binary: %d %q", code, errs)
	}
	_, _, code = netd(t, f.host, "", "container", "exec", "box", "sh", "-c", "kill -TERM $$")
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("signalled child: code %d", code)
	}
}

// TestContainerExecFallbackNotANamespace: a daemon without the netns route
// makes netd open the SandboxKey path; where that is no namespace (its bind
// mount is in another mount namespace) the error says so and what to do.
func TestContainerExecFallbackNotANamespace(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "ndt-plain")
	if err := os.WriteFile(plain, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	f := newFakeDaemon(t)
	f.containers["box"] = api.Container{ID: strings.Repeat("e", 64), Name: "box",
		NetworkSettings: api.NetworkSettings{SandboxKey: plain}}
	out, errs, code := netd(t, f.host, "", "container", "exec", "box", "--", "true")
	if code != 1 || out != "" || !strings.Contains(errs, plain+" is not one in this mount namespace") ||
		!strings.Contains(errs, "run netd where the daemon runs") {
		t.Errorf("exec into a non-namespace: exit %d stdout %q stderr %q", code, out, errs)
	}
}
