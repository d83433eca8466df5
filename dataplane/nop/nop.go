//go:build linux

// Package nop holds Docker's `host` and `null` network drivers. Their one
// built-in network each (`host`, `none`) owns no kernel object and exists
// so containers on it are listed as Docker lists them: the host-netns bind
// mount and the loopback-only namespace are made by the sandbox code.
package nop

import (
	"context"

	"github.com/netd-dev/netd/dataplane"
)

// Driver type names.
const (
	TypeHost = "host"
	TypeNull = "null"
)

// Driver is a driver whose networks need nothing in the kernel.
type Driver struct {
	typ     string
	builtin string // name of its one network
}

var (
	_ dataplane.Driver    = (*Driver)(nil)
	_ dataplane.Builtiner = (*Driver)(nil)
)

// Host returns the `host` driver (containers share the daemon's netns).
func Host() *Driver { return &Driver{typ: TypeHost, builtin: "host"} }

// Null returns the `null` driver (containers get loopback only).
func Null() *Driver { return &Driver{typ: TypeNull, builtin: "none"} }

// Type implements dataplane.Driver.
func (d *Driver) Type() string { return d.typ }

// Capabilities implements dataplane.Driver: one local network, no addresses.
func (d *Driver) Capabilities() dataplane.Capabilities {
	return dataplane.Capabilities{Scope: dataplane.ScopeLocal, Singleton: true}
}

// BuiltinNetwork implements dataplane.Builtiner.
func (d *Driver) BuiltinNetwork() dataplane.BuiltinNetwork {
	return dataplane.BuiltinNetwork{Name: d.builtin}
}

// ValidateNetwork implements dataplane.Driver; the driver keeps no state.
func (d *Driver) ValidateNetwork(*dataplane.NetworkConfig, []*dataplane.NetworkConfig) (map[string]string, error) {
	return nil, nil
}

// CreateNetwork implements dataplane.Driver.
func (d *Driver) CreateNetwork(ctx context.Context, _ *dataplane.NetworkConfig) error {
	return ctx.Err()
}

// DeleteNetwork implements dataplane.Driver.
func (d *Driver) DeleteNetwork(ctx context.Context, _ *dataplane.NetworkConfig) error {
	return ctx.Err()
}

// CreateEndpoint implements dataplane.Driver.
func (d *Driver) CreateEndpoint(ctx context.Context, _ *dataplane.NetworkConfig, _ *dataplane.EndpointConfig) error {
	return ctx.Err()
}

// Join implements dataplane.Driver.
func (d *Driver) Join(ctx context.Context, _ *dataplane.NetworkConfig, _ *dataplane.EndpointConfig) error {
	return ctx.Err()
}

// Leave implements dataplane.Driver.
func (d *Driver) Leave(ctx context.Context, _ *dataplane.NetworkConfig, _ *dataplane.EndpointConfig) error {
	return ctx.Err()
}

// DeleteEndpoint implements dataplane.Driver.
func (d *Driver) DeleteEndpoint(ctx context.Context, _ *dataplane.NetworkConfig, _ *dataplane.EndpointConfig) error {
	return ctx.Err()
}

// Reconcile implements dataplane.Driver.
func (d *Driver) Reconcile(ctx context.Context, _ []*dataplane.NetworkConfig, _ []*dataplane.EndpointConfig, _ bool) ([]dataplane.Orphan, error) {
	return nil, ctx.Err()
}
