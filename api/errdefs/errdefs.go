// Package errdefs holds netd's error kinds, as moby's errdefs does: any layer
// (a driver, the manager, the store) says what kind of failure an error is,
// and the HTTP layer maps the kind to Docker's status code without matching
// texts. It is a leaf package: it imports only the standard library.
//
//	InvalidParameter -> 400 bad input (bad CIDR, bad option, bad filter)
//	Forbidden        -> 403 operation refused (e.g. removing a built-in network)
//	NotFound         -> 404 no such network/container/plugin
//	Conflict         -> 409 clashes with existing state (name taken, address in use)
//	Unavailable      -> 503 the host cannot do it now (e.g. no eBPF dataplane loaded)
//
// Anything else is an internal error (500). The constructors take
// fmt.Errorf's arguments (%w allowed); the Is functions see through wrapping.
package errdefs

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind is one class of failure.
type Kind int

// The kinds, in the order HTTPStatus checks them.
const (
	KindUnknown Kind = iota
	KindInvalidParameter
	KindForbidden
	KindNotFound
	KindConflict
	KindUnavailable
)

var kindStatus = map[Kind]int{
	KindInvalidParameter: http.StatusBadRequest,
	KindForbidden:        http.StatusForbidden,
	KindNotFound:         http.StatusNotFound,
	KindConflict:         http.StatusConflict,
	KindUnavailable:      http.StatusServiceUnavailable,
}

// kindError carries a kind and the message it was built with. Unwrap skips
// the fmt wrapper itself, so errors.Is reaches the %w operands.
type kindError struct {
	kind Kind
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return errors.Unwrap(e.err) }

func newf(k Kind, format string, args ...any) error {
	return &kindError{kind: k, err: fmt.Errorf(format, args...)}
}

// InvalidParameter is a bad request: the input cannot be accepted.
func InvalidParameter(format string, args ...any) error {
	return newf(KindInvalidParameter, format, args...)
}

// Forbidden says the operation is never allowed on this object.
func Forbidden(format string, args ...any) error { return newf(KindForbidden, format, args...) }

// NotFound says a named object does not exist.
func NotFound(format string, args ...any) error { return newf(KindNotFound, format, args...) }

// Conflict says the request clashes with existing state.
func Conflict(format string, args ...any) error { return newf(KindConflict, format, args...) }

// Unavailable says this host cannot serve the request as it is configured or now.
func Unavailable(format string, args ...any) error { return newf(KindUnavailable, format, args...) }

// KindOf is the kind of the outermost kind-carrying error in err's chain.
func KindOf(err error) Kind {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.kind
	}
	return KindUnknown
}

// IsInvalidParameter reports whether err is of kind InvalidParameter.
func IsInvalidParameter(err error) bool { return KindOf(err) == KindInvalidParameter }

// IsForbidden reports whether err is of kind Forbidden.
func IsForbidden(err error) bool { return KindOf(err) == KindForbidden }

// IsNotFound reports whether err is of kind NotFound.
func IsNotFound(err error) bool { return KindOf(err) == KindNotFound }

// IsConflict reports whether err is of kind Conflict.
func IsConflict(err error) bool { return KindOf(err) == KindConflict }

// IsUnavailable reports whether err is of kind Unavailable.
func IsUnavailable(err error) bool { return KindOf(err) == KindUnavailable }

// HTTPStatus is the status code Docker answers an error of err's kind with.
func HTTPStatus(err error) int {
	if s, ok := kindStatus[KindOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}
