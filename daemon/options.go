package daemon

// Error kinds. Every error that is the caller's fault carries one of four
// types so the API server can answer with Docker's status code without
// matching texts:
//
//	*InvalidParameterError -> 400 bad input (bad CIDR, bad option, bad filter)
//	*ConflictError         -> 409 conflict (name taken, address in use, pool overlap)
//	*NotFoundError         -> 404 no such network/container
//	*ForbiddenError        -> 403 operation refused (e.g. removing a built-in network)
//
// Build them with errInvalid, errConflict, errNotFound and errForbidden
// (fmt.Errorf semantics, %w allowed) and test them with IsInvalidParameter,
// IsConflict, IsNotFound and IsForbidden, which see through wrapping.
// Anything else is an internal error (500).

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/netd-dev/netd/api"
)

// InvalidParameterError is a bad request: the input cannot be accepted.
type InvalidParameterError struct{ err error }

func (e *InvalidParameterError) Error() string { return e.err.Error() }
func (e *InvalidParameterError) Unwrap() error { return errors.Unwrap(e.err) }

// ConflictError says the request clashes with existing state.
type ConflictError struct{ err error }

func (e *ConflictError) Error() string { return e.err.Error() }
func (e *ConflictError) Unwrap() error { return errors.Unwrap(e.err) }

// NotFoundError says a named object does not exist.
type NotFoundError struct{ err error }

func (e *NotFoundError) Error() string { return e.err.Error() }
func (e *NotFoundError) Unwrap() error { return errors.Unwrap(e.err) }

// ForbiddenError says the operation is never allowed on this object.
type ForbiddenError struct{ err error }

func (e *ForbiddenError) Error() string { return e.err.Error() }
func (e *ForbiddenError) Unwrap() error { return errors.Unwrap(e.err) }

func errInvalid(format string, args ...any) error {
	return &InvalidParameterError{fmt.Errorf(format, args...)}
}

func errConflict(format string, args ...any) error {
	return &ConflictError{fmt.Errorf(format, args...)}
}

func errNotFound(format string, args ...any) error {
	return &NotFoundError{fmt.Errorf(format, args...)}
}

func errForbidden(format string, args ...any) error {
	return &ForbiddenError{fmt.Errorf(format, args...)}
}

// IsInvalidParameter reports whether err (or one it wraps) is an *InvalidParameterError.
func IsInvalidParameter(err error) bool {
	var e *InvalidParameterError
	return errors.As(err, &e)
}

// IsConflict reports whether err (or one it wraps) is a *ConflictError.
func IsConflict(err error) bool {
	var e *ConflictError
	return errors.As(err, &e)
}

// IsNotFound reports whether err (or one it wraps) is a *NotFoundError.
func IsNotFound(err error) bool {
	var e *NotFoundError
	return errors.As(err, &e)
}

// IsForbidden reports whether err (or one it wraps) is a *ForbiddenError.
func IsForbidden(err error) bool {
	var e *ForbiddenError
	return errors.As(err, &e)
}

// Bridge MTU bounds: 68 is the IPv4 minimum (RFC 791), 65535 the largest IP packet.
const (
	minMTU = 68
	maxMTU = 65535
)

// BridgeOptions are the -o options of a bridge network, parsed and checked.
// Name is empty when the user gave none: the caller then names the bridge
// like Docker ("br-" + ShortID(network ID)).
type BridgeOptions struct {
	Name       string
	ICC        bool
	Masquerade bool
	MTU        int // 0 means the driver default (1500)
	Dataplane  string
}

// ParseBridgeOptions reads the bridge driver's options from a network's
// Options map. Unknown keys are ignored, as Docker's bridge driver does.
// An empty defaultDataplane means ebpf.
func ParseBridgeOptions(opts map[string]string, defaultDataplane string) (BridgeOptions, error) {
	if defaultDataplane == "" {
		defaultDataplane = api.DataplaneEBPF
	}
	o := BridgeOptions{ICC: true, Masquerade: true}
	var err error
	if v, ok := opts[api.OptBridgeName]; ok {
		if err := validIfName(v); err != nil {
			return BridgeOptions{}, errInvalid("invalid bridge name %q: %v", v, err)
		}
		o.Name = v
	}
	if v, ok := opts[api.OptEnableICC]; ok {
		if o.ICC, err = strconv.ParseBool(v); err != nil {
			return BridgeOptions{}, optParseErr(api.OptEnableICC, v, err.Error())
		}
	}
	if v, ok := opts[api.OptEnableMasq]; ok {
		if o.Masquerade, err = strconv.ParseBool(v); err != nil {
			return BridgeOptions{}, optParseErr(api.OptEnableMasq, v, err.Error())
		}
	}
	if v, ok := opts[api.OptMTU]; ok {
		if o.MTU, err = strconv.Atoi(v); err != nil {
			return BridgeOptions{}, optParseErr(api.OptMTU, v, err.Error())
		}
		if o.MTU != 0 && (o.MTU < minMTU || o.MTU > maxMTU) {
			return BridgeOptions{}, optParseErr(api.OptMTU, v,
				fmt.Sprintf("MTU must be between %d and %d", minMTU, maxMTU))
		}
	}
	dp := defaultDataplane
	if v, ok := opts[api.OptDataplane]; ok {
		dp = v
	}
	if o.Dataplane, err = ParseDataplane(dp); err != nil {
		return BridgeOptions{}, err
	}
	return o, nil
}

// optParseErr is Docker's bridge driver text for an option it cannot parse.
func optParseErr(key, value, why string) error {
	return errInvalid("failed to parse %s value: %s (%s)", key, value, why)
}

// validIfName applies the kernel's dev_valid_name rules.
func validIfName(s string) error {
	switch {
	case s == "":
		return errors.New("name is empty")
	case len(s) > 15:
		return errors.New("name is longer than 15 characters")
	case s == "." || s == "..":
		return errors.New("name cannot be . or ..")
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("name contains invalid character %q", r)
		}
	}
	return nil
}

// ParseDataplane checks a dataplane name (-o netd.dataplane, --dataplane).
func ParseDataplane(s string) (string, error) {
	switch s {
	case api.DataplaneEBPF, api.DataplaneKernel:
		return s, nil
	}
	return "", errInvalid("invalid dataplane %q: must be %q or %q", s, api.DataplaneEBPF, api.DataplaneKernel)
}

// NewID returns a random 64-hex-digit ID. Like Docker it never returns one
// whose short form is all digits, which some tools would read as a number.
func NewID() string {
	b := make([]byte, 32)
	var id string
	// An all-digit short ID has probability (10/16)^12, so 100 draws always suffice.
	for range 100 {
		// crypto/rand.Read never fails on Linux (it panics instead).
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
		if strings.Trim(ShortID(id), "0123456789") != "" {
			break
		}
	}
	return id
}

// ShortID is the 12-character form shown by ls; shorter input is returned as is.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
