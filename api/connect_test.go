package api

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// dialErr is the error http.Client.Do returns when connect(2) fails.
func dialErr(sock string, errno syscall.Errno) error {
	op := &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: sock, Net: "unix"},
		Err: os.NewSyscallError("connect", errno)}
	return &url.Error{Op: "Get", URL: "http://netd/v1/version", Err: op}
}

func TestConnectErrorText(t *testing.T) {
	const host = "unix:///run/netd/netd.sock"
	denied := "permission denied while trying to connect to the netd daemon socket at " + host +
		": dial unix /run/netd/netd.sock: connect: permission denied"
	notRunning := "Cannot connect to the netd daemon at " + host + ". Is the netd daemon running?"
	for errno, want := range map[syscall.Errno]string{
		syscall.EACCES:       denied,
		syscall.EPERM:        "permission denied while trying to connect to the netd daemon socket at " + host + ": dial unix /run/netd/netd.sock: connect: operation not permitted",
		syscall.ENOENT:       notRunning,
		syscall.ECONNREFUSED: notRunning,
	} {
		e := &ConnectError{Host: host, Err: dialErr("/run/netd/netd.sock", errno)}
		if got := e.Error(); got != want {
			t.Errorf("%v:\n got %q\nwant %q", errno, got, want)
		}
		if e.PermissionDenied() != (errno == syscall.EACCES || errno == syscall.EPERM) {
			t.Errorf("%v: PermissionDenied = %v", errno, e.PermissionDenied())
		}
		if !errors.Is(e, errno) {
			t.Errorf("%v: not unwrapped to the errno", errno)
		}
	}
}

// Through the real client, as a user the socket's mode refuses (root is
// never refused, so this part needs an unprivileged run).
func TestConnectPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root is not refused by a socket's mode; the e2e test covers it with setpriv")
	}
	dir, err := os.MkdirTemp("", "ndc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(sock, 0); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Version(context.Background())
	var ce *ConnectError
	if !errors.As(err, &ce) || !ce.PermissionDenied() {
		t.Fatalf("got %v, want a permission-denied *ConnectError", err)
	}
	want := "permission denied while trying to connect to the netd daemon socket at unix://" + sock +
		": dial unix " + sock + ": connect: permission denied"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}

// "." and ".." reach the daemon as names, not as path segments to clean.
func TestObjPathDots(t *testing.T) {
	for in, want := range map[string]string{
		".":    "/networks/%2E",
		"..":   "/networks/%2E%2E",
		"..a":  "/networks/..a",
		"a/..": "/networks/a%2F..",
		"":     "/networks/",
	} {
		if got := objPath("networks", in); got != want {
			t.Errorf("objPath(%q) = %q, want %q", in, got, want)
		}
	}
}
