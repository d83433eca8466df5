package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestOptionErrorKinds(t *testing.T) {
	kinds := []struct {
		err  error
		is   func(error) bool
		name string
	}{
		{errInvalid("bad %s", "x"), IsInvalidParameter, "invalid"},
		{errConflict("taken %d", 1), IsConflict, "conflict"},
		{errNotFound("network %s not found", "n"), IsNotFound, "not found"},
		{errForbidden("no"), IsForbidden, "forbidden"},
	}
	preds := []func(error) bool{IsInvalidParameter, IsConflict, IsNotFound, IsForbidden}
	for i, k := range kinds {
		for j, p := range preds {
			if got := p(k.err); got != (i == j) {
				t.Errorf("%s: predicate %d = %v", k.name, j, got)
			}
			// Wrapping keeps the kind.
			if got := p(fmt.Errorf("create network: %w", k.err)); got != (i == j) {
				t.Errorf("wrapped %s: predicate %d = %v", k.name, j, got)
			}
		}
	}
	if got := errNotFound("network %s not found", "n").Error(); got != "network n not found" {
		t.Errorf("text %q", got)
	}
	// %w inside a kind keeps the cause reachable.
	err := errInvalid("open state: %w", fs.ErrNotExist)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "open state: file does not exist" {
		t.Errorf("wrapped cause lost: %v", err)
	}
	if IsConflict(nil) || IsNotFound(errors.New("plain")) {
		t.Error("plain errors have no kind")
	}
}
