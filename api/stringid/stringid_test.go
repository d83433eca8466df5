package stringid

import (
	"regexp"
	"testing"
)

func TestOptionIDs(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 200 {
		id := NewID()
		if !hex64.MatchString(id) {
			t.Fatalf("NewID() = %q, not 64 hex digits", id)
		}
		if regexp.MustCompile(`^[0-9]{12}$`).MatchString(ShortID(id)) {
			t.Fatalf("NewID() = %q has an all-digit short ID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
	if got := ShortID("0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("ShortID = %q", got)
	}
	if got := ShortID("abc"); got != "abc" {
		t.Errorf("ShortID(short) = %q", got)
	}
}
