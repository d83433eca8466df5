package daemon

import "github.com/netd-dev/netd/api/errdefs"

// The daemon builds and tests its errors through these short names; the
// kinds themselves live in api/errdefs, shared with the drivers, and the
// API server maps them to Docker's status codes.

func errInvalid(format string, args ...any) error {
	return errdefs.InvalidParameter(format, args...)
}

func errConflict(format string, args ...any) error { return errdefs.Conflict(format, args...) }

func errNotFound(format string, args ...any) error { return errdefs.NotFound(format, args...) }

func errForbidden(format string, args ...any) error { return errdefs.Forbidden(format, args...) }

func errUnavailable(format string, args ...any) error { return errdefs.Unavailable(format, args...) }

// IsInvalidParameter reports whether err (or one it wraps) is a bad request.
func IsInvalidParameter(err error) bool { return errdefs.IsInvalidParameter(err) }

// IsConflict reports whether err (or one it wraps) clashes with existing state.
func IsConflict(err error) bool { return errdefs.IsConflict(err) }

// IsNotFound reports whether err (or one it wraps) names a missing object.
func IsNotFound(err error) bool { return errdefs.IsNotFound(err) }

// IsForbidden reports whether err (or one it wraps) is a refused operation.
func IsForbidden(err error) bool { return errdefs.IsForbidden(err) }
