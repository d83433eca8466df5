package errdefs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestKindsAndStatus(t *testing.T) {
	base := errors.New("pool overlaps")
	cases := []struct {
		err    error
		is     func(error) bool
		status int
	}{
		{InvalidParameter("bad %s", "cidr"), IsInvalidParameter, http.StatusBadRequest},
		{Forbidden("no"), IsForbidden, http.StatusForbidden},
		{NotFound("network %s not found", "x"), IsNotFound, http.StatusNotFound},
		{Conflict("taken: %w", base), IsConflict, http.StatusConflict},
		{Unavailable("no ebpf"), IsUnavailable, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("create network n1: %w", c.err)
		if !c.is(c.err) || !c.is(wrapped) {
			t.Errorf("%q: kind not seen through wrapping", c.err)
		}
		if got := HTTPStatus(wrapped); got != c.status {
			t.Errorf("%q: status %d, want %d", c.err, got, c.status)
		}
		if wrapped.Error() != "create network n1: "+c.err.Error() {
			t.Errorf("text changed: %q", wrapped)
		}
	}
	if !errors.Is(cases[3].err, base) {
		t.Error("%w operand not reachable with errors.Is")
	}
	if HTTPStatus(errors.New("boom")) != http.StatusInternalServerError || KindOf(nil) != KindUnknown {
		t.Error("plain errors must be internal (500)")
	}
	if IsNotFound(InvalidParameter("x")) {
		t.Error("kinds must not match each other")
	}
}
