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
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane"
)

// Config is what `netd daemon` passes to Run.
type Config struct {
	Socket, StateDir, BPFFS, NodeName, Dataplane string
	AddressPools                                 []string // raw Docker syntax; empty = DefaultAddressPools()
	Logger                                       *slog.Logger

	// Status answers GET /v1/dataplane. Unset, the accelerator answers if
	// it implements StatusProvider; otherwise the API answers 501.
	Status StatusProvider
}

// bpffsRoot is where the kernel's BPF filesystem is conventionally mounted.
const bpffsRoot = "/sys/fs/bpf"

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
	case strings.ContainsAny(c.NodeName, "/ \t\n"):
		return fmt.Errorf("invalid config: node name %q contains '/' or spaces", c.NodeName)
	}
	if _, err := ParseDataplane(c.Dataplane); err != nil {
		return fmt.Errorf("invalid config: --dataplane: %w", err)
	}
	return nil
}

// Run starts the daemon and blocks until ctx is cancelled; it then stops
// the API, closes the store and releases the state-dir lock. Kernel state
// stays: containers keep their networking while the daemon is down.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Dataplane == "" {
		cfg.Dataplane = "ebpf"
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	var pools []AddressPool
	for _, raw := range cfg.AddressPools {
		p, err := ParseAddressPool(raw)
		if err != nil {
			return fmt.Errorf("invalid --default-address-pool %q: %w", raw, err)
		}
		pools = append(pools, p)
	}

	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()

	store, err := OpenStore(filepath.Join(cfg.StateDir, "netd.db"))
	if err != nil {
		return err
	}
	defer store.Close()

	if err := ensureBPFFS(cfg.PinDir()); err != nil {
		return err
	}

	// The eBPF fast path adopts whatever a previous daemon pinned, so
	// forwarding never stops across a restart. Without it, kernel networks
	// still work; ebpf ones are refused with the reason.
	var accel dataplane.Accelerator
	ebpfState, accelErr := dataplane.NewEBPF(cfg.PinDir(), log)
	switch {
	case accelErr != nil && cfg.Dataplane == api.DataplaneEBPF:
		return fmt.Errorf("start eBPF dataplane: %w (start with --dataplane kernel to run without it)", accelErr)
	case accelErr != nil:
		log.Warn("eBPF dataplane unavailable; only kernel networks can be created", "err", accelErr)
	default:
		defer ebpfState.Close()
		accel = ebpfState
		if cfg.Status == nil {
			cfg.Status = ebpfState
		}
	}
	bridge, err := dataplane.NewBridgeDriver(dataplane.BridgeDriverConfig{
		NodeName:    cfg.NodeName,
		Accelerator: accel,
		AccelError:  accelErr,
		Logger:      log,
	})
	if err != nil {
		return fmt.Errorf("start bridge driver: %w", err)
	}
	defer bridge.Close()

	m, err := NewManager(ManagerConfig{
		Store:            store,
		Drivers:          []Driver{bridge, dataplane.NewHostDriver(), dataplane.NewNullDriver()},
		Sandboxes:        kernelSandboxes{},
		NodeName:         cfg.NodeName,
		DefaultDataplane: cfg.Dataplane,
		Pools:            pools,
		HostRoutes:       hostRoutes,
		Status:           cfg.Status,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	if err := m.Reconcile(ctx); err != nil {
		// One broken object must not keep the rest of the host down.
		log.Error("reconcile finished with errors", "err", err)
	}
	if err := m.EnsureBuiltins(ctx); err != nil {
		return fmt.Errorf("create built-in networks: %w", err)
	}

	ln, err := listenSocket(cfg.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           NewHandler(m, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("netd daemon ready", "socket", cfg.Socket, "node", cfg.NodeName,
		"state_dir", cfg.StateDir, "pin_dir", cfg.PinDir(), "dataplane", cfg.Dataplane)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve API: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("API shutdown", "err", err)
	}
	return nil
}

// lockStateDir takes an exclusive flock on <dir>/netd.lock; the returned
// func releases it.
func lockStateDir(dir string) (func(), error) {
	path := filepath.Join(dir, "netd.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another netd daemon is using state dir %s (lock held): stop it or pass a different --state-dir", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when missing, then makes pinDir.
func ensureBPFFS(pinDir string) error {
	if strings.HasPrefix(filepath.Clean(pinDir), bpffsRoot+"/") {
		var st unix.Statfs_t
		err := unix.Statfs(bpffsRoot, &st)
		if err != nil || st.Type != unix.BPF_FS_MAGIC {
			if err := os.MkdirAll(bpffsRoot, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", bpffsRoot, err)
			}
			if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, ""); err != nil {
				return fmt.Errorf("mount bpffs at %s: %w", bpffsRoot, err)
			}
		}
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	return nil
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

// hostRoutes lists the IPv4 destinations routed in the daemon's netns.
func hostRoutes() ([]netip.Prefix, error) {
	var (
		routes []netlink.Route
		err    error
	)
	// A dump can be interrupted by a concurrent change; retry a few times.
	for range 5 {
		routes, err = netlink.RouteList(nil, netlink.FAMILY_V4)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out, nil
}

// kernelSandboxes are real named network namespaces under /run/netns.
type kernelSandboxes struct{}

func (kernelSandboxes) Create(name string) (string, error) { return dataplane.CreateSandbox(name) }
func (kernelSandboxes) CreateHost(name string) (string, error) {
	return dataplane.CreateHostSandbox(name)
}
func (kernelSandboxes) Delete(name string) error             { return dataplane.DeleteSandbox(name) }
func (kernelSandboxes) Path(name string) string              { return dataplane.SandboxPath(name) }
func (kernelSandboxes) List(prefix string) ([]string, error) { return dataplane.ListSandboxes(prefix) }
