// Package errdefstest checks error texts and kinds in tests.
package errdefstest

import "testing"

// CheckErr fails unless err's text is want ("" = no error) and, for an
// error, its kind matches isKind (nil = any kind).
func CheckErr(t testing.TB, err error, want string, isKind func(error) bool) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want %q", want)
	case want != "" && err.Error() != want:
		t.Fatalf("error %q, want %q", err.Error(), want)
	case want != "" && isKind != nil && !isKind(err):
		t.Fatalf("error %q (%T) is not of the wanted kind", err, err)
	}
}
