package gossip

import (
	"fmt"
	"net/netip"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The rows of netd's tables. Values are msgpack arrays: an endpoint is
// about 120 bytes, so 100 of them per host at 1,000 hosts stay a few MB in
// memory and never travel as one push-pull.

// NetworkRecord is a cluster-wide network (TableNetworks, key: ID).
type NetworkRecord struct {
	_struct     bool `codec:",toarray"` //nolint:unused // codec option
	ID          string
	Name        string
	Driver      string
	Options     map[string]string
	DriverState map[string]string // the driver's state (an overlay's VNI), the same on every host
	Subnet      netip.Prefix
	Gateway     netip.Addr
	IPRange     netip.Prefix
	Internal    bool
	Attachable  bool
	Labels      map[string]string
	Created     int64 // Unix nanoseconds
}

// RemovalRecord asks for a cluster-wide network to be removed
// (TableRemovals, key: network ID). Only the creator may delete the
// network's entry, so a host removing another's network writes its own
// removal entry; the creator then deletes the network, and every host
// hides it at once, also while the creator is down.
type RemovalRecord struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	Name    string
	At      int64 // Unix nanoseconds
}

// EndpointRecord is a container's attachment (TableEndpoints, key:
// endpoint ID). Host is the owner node; VTEP the address its tunnel
// traffic comes from.
type EndpointRecord struct {
	_struct     bool `codec:",toarray"` //nolint:unused // codec option
	NetworkID   string
	NetworkName string
	Scope       string // the network's scope: local networks are listed, not routed
	Container   string
	ContainerID string
	IPv4        netip.Addr
	MAC         string
	Host        string
	VTEP        netip.Addr
	Aliases     []string
}

// BlockRecord claims an address block of a cluster-wide pool
// (TableBlocks, key: pool/block).
type BlockRecord struct {
	_struct bool `codec:",toarray"` //nolint:unused // codec option
	Pool    netip.Prefix
	Block   netip.Prefix
}

// Marshal encodes a record for Put.
func Marshal(v any) ([]byte, error) {
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes a record from an entry's value.
func Unmarshal(b []byte, v any) error {
	if err := codec.NewDecoderBytes(b, msgpackHandle).Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}
