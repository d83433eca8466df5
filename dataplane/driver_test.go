package dataplane

import (
	"fmt"
	"testing"

	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/api/errdefs/errdefstest"
)

func TestOptionParseDataplane(t *testing.T) {
	for _, s := range []string{"ebpf", "kernel"} {
		if got, err := ParseDataplane(s); err != nil || got != s {
			t.Errorf("ParseDataplane(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "EBPF", "tc", "kernel "} {
		_, err := ParseDataplane(s)
		errdefstest.CheckErr(t, err, fmt.Sprintf("invalid dataplane %q: must be \"ebpf\" or \"kernel\"", s), errdefs.IsInvalidParameter)
	}
}
