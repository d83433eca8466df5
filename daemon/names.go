package daemon

import (
	"fmt"
	"regexp"
	"unicode"
	"unicode/utf8"
)

// MaxNetworkNameLen bounds network names in bytes. Docker has no limit; one
// keeps a huge name from making every `network ls` and log line huge.
const MaxNetworkNameLen = 255

// MaxNodeNameLen is HOST_NAME_MAX: every hostname fits, and with it the
// netns names <node>-<container> stay well under a file name's 255 bytes.
const MaxNodeNameLen = 64

// validNodeName is the charset of node names: they become netns name
// prefixes, nftables table names and a bpffs dir, so no '/', no "." or "..".
var validNodeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// checkNetworkName refuses names that cannot be shown or addressed.
func checkNetworkName(name string) error {
	switch {
	case len(name) > MaxNetworkNameLen:
		// Not quoted back: the name itself is the problem.
		return errInvalid("network name is too long: %d bytes, the limit is %d", len(name), MaxNetworkNameLen)
	case name == "." || name == "..":
		// HTTP path cleaning would make such a network unreachable by name.
		return errInvalid("invalid network name %q", name)
	case !utf8.ValidString(name):
		return errInvalid("invalid network name %q: it is not valid UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return errInvalid("invalid network name %q: it contains control characters", name)
		}
	}
	return nil
}

// checkNodeName is the rule for --node-name.
func checkNodeName(name string) error {
	if len(name) > MaxNodeNameLen || !validNodeName.MatchString(name) {
		return fmt.Errorf("invalid config: --node-name %q: use 1 to %d characters of [a-zA-Z0-9_.-], starting with a letter or digit",
			name, MaxNodeNameLen)
	}
	return nil
}
