//go:build linux

package dataplane

import "context"

// NopDriver backs the `host` and `null` drivers: their networks own no kernel
// objects and exist so containers on them are listed like Docker does. The
// host netns bind mount and the empty netns are made by the sandbox code.
type NopDriver struct{ typ string }

// NewHostDriver returns the `host` driver (containers share the daemon's netns).
func NewHostDriver() *NopDriver { return &NopDriver{typ: "host"} }

// NewNullDriver returns the `null` driver (containers get loopback only).
func NewNullDriver() *NopDriver { return &NopDriver{typ: "null"} }

// Type implements daemon.Driver.
func (d *NopDriver) Type() string { return d.typ }

// CreateNetwork implements daemon.Driver.
func (d *NopDriver) CreateNetwork(ctx context.Context, n *NetworkConfig) error { return ctx.Err() }

// DeleteNetwork implements daemon.Driver.
func (d *NopDriver) DeleteNetwork(ctx context.Context, n *NetworkConfig) error { return ctx.Err() }

// CreateEndpoint implements daemon.Driver.
func (d *NopDriver) CreateEndpoint(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error {
	return ctx.Err()
}

// Join implements daemon.Driver.
func (d *NopDriver) Join(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error {
	return ctx.Err()
}

// Leave implements daemon.Driver.
func (d *NopDriver) Leave(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error {
	return ctx.Err()
}

// DeleteEndpoint implements daemon.Driver.
func (d *NopDriver) DeleteEndpoint(ctx context.Context, n *NetworkConfig, ep *EndpointConfig) error {
	return ctx.Err()
}

// Reconcile implements daemon.Driver.
func (d *NopDriver) Reconcile(ctx context.Context, nets []*NetworkConfig, eps []*EndpointConfig) error {
	return ctx.Err()
}
