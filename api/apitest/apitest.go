// Package apitest has the helpers of tests on both sides of the API: a
// handler served on a unix socket as the daemon serves it, and the build
// stamp both sides report.
package apitest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/netd-dev/netd/api/buildinfo"
)

// Serve serves h on a unix socket in a fresh directory, both gone at
// cleanup, and returns the socket's address for api.NewClient or NETD_HOST.
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	// t.TempDir can exceed the 108-byte sun_path limit; keep it short.
	dir, err := os.MkdirTemp("", "ndt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "netd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

// StampVersion sets buildinfo.Version to v, as `make build` does, until
// cleanup.
func StampVersion(t testing.TB, v string) {
	old := buildinfo.Version
	buildinfo.Version = v
	t.Cleanup(func() { buildinfo.Version = old })
}
