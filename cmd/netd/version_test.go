package main

import (
	"strings"
	"testing"

	"github.com/netd-dev/netd/api/apitest"
)

// TestVersionStamped: the one build variable `make build` sets is what
// --version and the Client part of `netd version` show.
func TestVersionStamped(t *testing.T) {
	apitest.StampVersion(t, "c00855e-dirty")
	f := newFakeDaemon(t)
	if out, _, code := netd(t, f.host, "", "version"); code != 0 || !strings.Contains(out, "Client:\n Version:     c00855e-dirty\n") {
		t.Errorf("version: %d\n%s", code, out)
	}
	if out, _, code := netd(t, f.host, "", "--version"); code != 0 || out != "netd version c00855e-dirty\n" {
		t.Errorf("--version: %d %q", code, out)
	}
}
