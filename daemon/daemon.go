//go:build linux

// Package daemon is netd's control plane: the HTTP API on the unix socket,
// the network manager (CNM objects), IPAM, the bbolt store and the start-up
// reconcile of the kernel with the store.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/netd-dev/netd/dataplane"
)

// Config is what `netd daemon` passes to Run.
type Config struct {
	Socket, StateDir, BPFFS, NodeName, Dataplane string
	AddressPools                                 []string // raw Docker syntax; empty = DefaultAddressPools()
	Logger                                       *slog.Logger

	// Cluster configures gossip with other hosts (off when empty).
	Cluster ClusterConfig

	// DNS configures the embedded DNS server of containers.
	DNS DNSConfig

	// Publish configures port publishing on ebpf networks.
	Publish PublishConfig

	// SocketGroup owns the API socket (mode 0660), as dockerd's --group:
	// a name or a GID; "" leaves the daemon's own group (setSocketGroup).
	SocketGroup string

	// PruneOrphans deletes at start the kernel objects this daemon's kind
	// owns that have no record (otherwise they are only listed).
	PruneOrphans bool

	// Status answers GET /v1/dataplane. Unset, the eBPF fast path answers
	// when it is loaded; otherwise the API answers 501.
	Status StatusProvider
}

// PublishConfig is where published ports of ebpf networks are translated
// (dataplane/publish.Config).
type PublishConfig struct {
	Ifaces []string // uplinks; empty: detected
	XDP    bool     // also at XDP on the uplinks
	Cgroup string   // cgroup v2 dir of the host socket hooks; "none": off
}

// shutdownTimeout bounds how long in-flight API requests may take at stop.
const shutdownTimeout = 10 * time.Second

// PinDir is the daemon's own directory on bpffs: <BPFFS>/<node>.
func (c Config) PinDir() string { return filepath.Join(c.BPFFS, c.NodeName) }

func (c Config) validate() error {
	switch {
	case c.Socket == "":
		return errors.New("invalid config: --socket is empty")
	case c.StateDir == "":
		return errors.New("invalid config: --state-dir is empty")
	case c.BPFFS == "":
		return errors.New("invalid config: --bpffs is empty")
	case c.NodeName == "":
		return errors.New("invalid config: --node-name is empty")
	}
	if err := checkNodeName(c.NodeName); err != nil {
		return err
	}
	if _, err := dataplane.ParseDataplane(c.Dataplane); err != nil {
		return fmt.Errorf("invalid config: --dataplane: %w", err)
	}
	return nil
}

// Run starts the daemon's components in order and blocks until ctx is
// cancelled or the API fails; it then closes them in reverse. Kernel state
// stays: containers keep their networking while the daemon is down.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dataplane == "" {
		cfg.Dataplane = dataplane.DataplaneEBPF
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	d := &daemon{cfg: cfg, log: cfg.Logger}
	for _, raw := range cfg.AddressPools {
		p, err := ParseAddressPool(raw)
		if err != nil {
			return fmt.Errorf("invalid --default-address-pool %q: %w", raw, err)
		}
		d.pools = append(d.pools, p)
	}
	stop, err := startAll(ctx, d.log, d.components())
	if err != nil {
		return err
	}
	defer stop()
	d.log.Info("netd daemon ready", "socket", cfg.Socket, "node", cfg.NodeName,
		"state_dir", cfg.StateDir, "pin_dir", cfg.PinDir(), "dataplane", cfg.Dataplane)
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
		return nil
	case err := <-d.serveErr:
		return fmt.Errorf("serve API: %w", err)
	}
}

// listenSocket listens on a unix socket, removing a stale socket file only
// when nothing answers on it.
func listenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil, fmt.Errorf("another daemon is listening on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}
