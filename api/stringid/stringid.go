// Package stringid makes and shortens the random IDs of networks,
// endpoints and containers, and the random names of throwaway lab objects.
// It is a leaf package, like moby's pkg/stringid.
package stringid

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// shortLen is the length of the short ID shown by ls (Docker's 12).
const shortLen = 12

// RandomHex returns n random lowercase hex digits.
func RandomHex(n int) string {
	b := make([]byte, (n+1)/2)
	// crypto/rand.Read never fails on Linux (it panics instead).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// NewID returns a random 64-hex-digit ID. Like Docker it never returns one
// whose short form is all digits, which some tools would read as a number.
func NewID() string {
	var id string
	// An all-digit short ID has probability (10/16)^12, so 100 draws always suffice.
	for range 100 {
		id = RandomHex(64)
		if strings.Trim(ShortID(id), "0123456789") != "" {
			break
		}
	}
	return id
}

// ShortID is the 12-character form shown by ls; shorter input is returned as is.
func ShortID(id string) string {
	if len(id) > shortLen {
		return id[:shortLen]
	}
	return id
}
