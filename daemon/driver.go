//go:build linux

package daemon

import (
	"context"

	"github.com/netd-dev/netd/dataplane"
)

// Driver is a network driver of the Container Network Model. Every method is
// idempotent: calling it for an object that is already in the wanted state
// succeeds and changes nothing, which is what start-up reconcile relies on.
type Driver interface {
	// Type is the name users pass to -d/--driver.
	Type() string
	// CreateNetwork builds the network's host objects (bridge, rules, ...).
	CreateNetwork(ctx context.Context, n *dataplane.NetworkConfig) error
	// DeleteNetwork removes them; missing objects are not an error.
	DeleteNetwork(ctx context.Context, n *dataplane.NetworkConfig) error
	// CreateEndpoint creates the endpoint's link and plugs it into the
	// network (host side of a veth enslaved to the bridge, ...).
	CreateEndpoint(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error
	// Join moves the container side into ep.SandboxPath as ep.IfName,
	// sets MAC, address and MTU, brings it up and, if ep.DefaultGW, adds
	// the default route via ep.Gateway.
	Join(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error
	// Leave takes the endpoint out of its sandbox and deletes its link.
	Leave(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error
	// DeleteEndpoint releases whatever driver state is left of the endpoint.
	DeleteEndpoint(ctx context.Context, n *dataplane.NetworkConfig, ep *dataplane.EndpointConfig) error
	// Reconcile is called once at start-up after every live network and
	// endpoint was re-created: it removes kernel objects this driver owns
	// that belong to none of them.
	Reconcile(ctx context.Context, nets []*dataplane.NetworkConfig, eps []*dataplane.EndpointConfig) error
}
