//go:build linux

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/bpffs"
	"github.com/netd-dev/netd/dataplane/bridge"
	"github.com/netd-dev/netd/dataplane/fastpath"
	"github.com/netd-dev/netd/dataplane/macvlan"
	"github.com/netd-dev/netd/dataplane/nlutil"
	"github.com/netd-dev/netd/dataplane/nop"
	"github.com/netd-dev/netd/dataplane/publish"
	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/overlay"
)

// component is one part of the running daemon: started in list order,
// closed in reverse. A later issue's part (gossip, overlay, DNS) is one
// more entry in daemon.components, not more lines in Run.
type component struct {
	name  string
	start func(ctx context.Context) error
	close func() error // nil: nothing to release
}

// startAll starts cs in order. On a failure it closes the ones started and
// returns the error; otherwise stop closes them all in reverse.
func startAll(ctx context.Context, log *slog.Logger, cs []component) (stop func(), err error) {
	var started []component
	stop = func() {
		for i := len(started) - 1; i >= 0; i-- {
			c := started[i]
			if c.close == nil {
				continue
			}
			if err := c.close(); err != nil {
				log.Warn("stop component", "component", c.name, "err", err)
			}
		}
	}
	for _, c := range cs {
		if err := c.start(ctx); err != nil {
			stop()
			return nil, err
		}
		log.Debug("component started", "component", c.name)
		started = append(started, c)
	}
	return stop, nil
}

// daemon is the state its components share while they start.
type daemon struct {
	cfg   Config
	log   *slog.Logger
	pools []AddressPool

	unlocks []func() // held locks, released in reverse

	store    *Store
	accel    *fastpath.EBPF // nil without the eBPF dataplane
	accelErr error
	pub      *publish.Publisher // nil: no port publishing on ebpf networks
	pubErr   error
	drivers  []dataplane.Driver
	m        *Manager
	cluster  *clusterService // nil outside a cluster
	dns      *dnsService
	srv      *http.Server
	serveErr chan error
}

func (d *daemon) components() []component {
	return []component{
		// Locks first: nothing is touched before every one is held.
		{name: "state dir lock", start: d.lockStateDir, close: d.release},
		{name: "socket lock", start: d.lockSocket, close: d.release},
		{name: "pin dir lock", start: d.lockPinDir, close: d.release},
		{name: "store", start: d.openStore, close: func() error { return d.store.Close() }},
		{name: "ebpf fast path", start: d.loadFastpath, close: d.closeFastpath},
		{name: "drivers", start: d.startDrivers, close: d.closeDrivers},
		{name: "manager", start: d.startManager},
		{name: "mount namespace check", start: d.checkMountNamespace},
		{name: "cluster", start: d.startCluster, close: d.closeCluster},
		{name: "embedded dns", start: d.startDNS, close: d.closeDNS},
		{name: "api", start: d.serveAPI, close: d.stopAPI},
	}
}

func (d *daemon) lockStateDir(context.Context) error {
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	return d.hold(lockStateDir(d.cfg.StateDir))
}

func (d *daemon) lockSocket(context.Context) error { return d.hold(lockSocket(d.cfg.Socket)) }

func (d *daemon) lockPinDir(context.Context) error {
	if err := bpffs.Ensure(d.cfg.PinDir()); err != nil {
		return err
	}
	return d.hold(lockPinDir(d.cfg.PinDir()))
}

func (d *daemon) hold(unlock func(), err error) error {
	if err != nil {
		return err
	}
	d.unlocks = append(d.unlocks, unlock)
	return nil
}

// release drops the most recently taken lock (components close in reverse).
func (d *daemon) release() error {
	if n := len(d.unlocks); n > 0 {
		d.unlocks[n-1]()
		d.unlocks = d.unlocks[:n-1]
	}
	return nil
}

func (d *daemon) openStore(context.Context) error {
	// A damaged file stops the daemon here, before reconcile could take
	// what the file lost for stale kernel objects.
	s, err := OpenStoreWith(filepath.Join(d.cfg.StateDir, StateDBName), StoreOptions{Logger: d.log})
	if err != nil {
		return err
	}
	d.store = s
	return nil
}

// loadFastpath adopts whatever a previous daemon pinned, so forwarding
// never stops across a restart. Without it, kernel networks still work;
// ebpf ones are refused with the reason.
func (d *daemon) loadFastpath(context.Context) error {
	e, err := fastpath.NewEBPF(d.cfg.PinDir(), d.log)
	switch {
	case err != nil && d.cfg.Dataplane == dataplane.DataplaneEBPF:
		return fmt.Errorf("start eBPF dataplane: %w (start with --dataplane kernel to run without it)", err)
	case err != nil:
		d.log.Warn("eBPF dataplane unavailable; only kernel networks can be created", "err", err)
		d.accelErr = err
	default:
		d.accel = e
		if d.cfg.Status == nil {
			d.cfg.Status = fastpathStatus{e: e, d: d}
		}
		d.loadPublisher()
	}
	return nil
}

// loadPublisher loads port publishing next to the fast path, whose flow
// table it shares. Without it ebpf networks work but refuse -p, with why.
func (d *daemon) loadPublisher() {
	p, err := publish.New(publish.Config{
		PinDir: d.cfg.PinDir(),
		Ifaces: d.cfg.Publish.Ifaces,
		XDP:    d.cfg.Publish.XDP,
		Cgroup: d.cfg.Publish.Cgroup,
		Logger: d.log,
	})
	if err != nil {
		d.log.Warn("port publishing on ebpf networks unavailable", "err", err)
		d.pubErr = fmt.Errorf("port publishing on the eBPF dataplane is unavailable: %w (use a network with --opt netd.dataplane=kernel)", err)
		return
	}
	d.pub = p
}

func (d *daemon) closeFastpath() error {
	var errs []error
	if d.pub != nil {
		errs = append(errs, d.pub.Close())
	}
	if d.accel != nil {
		errs = append(errs, d.accel.Close())
	}
	return errors.Join(errs...)
}

func (d *daemon) startDrivers(context.Context) error {
	cfg := bridge.Config{
		NodeName:         d.cfg.NodeName,
		DefaultDataplane: d.cfg.Dataplane,
		AccelError:       d.accelErr,
		Logger:           d.log,
	}
	if d.accel != nil {
		cfg.Accelerator = d.accel
	}
	if d.pub != nil {
		cfg.Publisher = d.pub
	} else {
		cfg.PublisherError = d.pubErr
		if d.pubErr == nil {
			cfg.PublisherError = d.accelErr
		}
	}
	br, err := bridge.New(cfg)
	if err != nil {
		return fmt.Errorf("start bridge driver: %w", err)
	}
	mv, err := macvlan.New(macvlan.Config{Logger: d.log})
	if err != nil {
		br.Close()
		return fmt.Errorf("start macvlan driver: %w", err)
	}
	ov, err := overlay.New(overlay.Config{Bridge: br, Dataplane: d.cfg.Dataplane, Port: d.cfg.Cluster.VXLANPort, PinDir: d.cfg.PinDir(), Logger: d.log})
	if err != nil {
		br.Close()
		mv.Close()
		return fmt.Errorf("start overlay driver: %w", err)
	}
	// Registration order is the order built-in networks are created in.
	d.drivers = []dataplane.Driver{br, nop.Host(), nop.Null(), mv, ov}
	return nil
}

func (d *daemon) closeDrivers() error {
	var errs []error
	for _, drv := range d.drivers {
		if c, ok := drv.(dataplane.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func (d *daemon) startManager(ctx context.Context) error {
	m, err := NewManager(ManagerConfig{
		Store:            d.store,
		Drivers:          d.drivers,
		Sandboxes:        sandbox.Namespaces{Mark: "netd:sandbox:" + d.cfg.NodeName},
		NodeName:         d.cfg.NodeName,
		DefaultDataplane: d.cfg.Dataplane,
		Pools:            d.pools,
		HostRoutes:       hostRoutes,
		Status:           d.cfg.Status,
		Logger:           d.log,
	})
	if err != nil {
		return err
	}
	orphans, err := m.Reconcile(ctx, d.cfg.PruneOrphans)
	if err != nil {
		// One broken object must not keep the rest of the host down.
		d.log.Error("reconcile finished with errors", "err", err)
	}
	logOrphans(d.log, orphans, d.cfg.PruneOrphans && len(m.Undecodable()) == 0)
	if err := m.EnsureBuiltins(ctx); err != nil {
		return fmt.Errorf("create built-in networks: %w", err)
	}
	d.m = m
	return nil
}

func (d *daemon) serveAPI(context.Context) error {
	ln, err := listenSocket(d.cfg.Socket)
	if err != nil {
		return err
	}
	if err := setSocketGroup(d.cfg.Socket, d.cfg.SocketGroup, d.log); err != nil {
		ln.Close()
		return err
	}
	d.srv = newAPIServer(NewHandler(d.m, d.log), d.log)
	d.serveErr = make(chan error, 1)
	go func() { d.serveErr <- d.srv.Serve(ln) }()
	return nil
}

func (d *daemon) stopAPI() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return d.srv.Shutdown(ctx)
}

// logOrphans warns about kernel objects of this daemon's kind that have no
// record: left alone unless pruned, so a typo in --state-dir or an emptied
// database never tears down what runs.
func logOrphans(log *slog.Logger, orphans []dataplane.Orphan, pruned bool) {
	if len(orphans) == 0 {
		return
	}
	names := make([]string, len(orphans))
	for i, o := range orphans {
		names[i] = o.String()
	}
	if pruned {
		log.Warn("removed kernel objects that had no record (--prune-orphans)", "count", len(orphans), "objects", names)
		return
	}
	log.Warn("kept kernel objects that have no record in this state dir: if they are this daemon's (a lost or emptied database), "+
		"remove them with `netd system prune` or restart with --prune-orphans; if --state-dir is wrong, restart with the right one",
		"count", len(orphans), "objects", names)
}

// hostRoutes lists the IPv4 destinations routed in the daemon's netns.
func hostRoutes() ([]netip.Prefix, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	return nlutil.RoutePrefixes(h)
}

// fastpathStatus renders the fast path's status as the API's, with the
// overlay's eBPF data path (its own programs and maps) beside the bridge's.
type fastpathStatus struct {
	e *fastpath.EBPF
	d *daemon
}

// overlayStatus is the overlay driver's part of the status.
type overlayStatus interface {
	DataplaneStatus() ([]api.ProgramAttachment, []api.EndpointCounters, []api.TunnelCounters, error)
}

func (f fastpathStatus) Status() (api.DataplaneStatus, error) {
	st, err := f.e.Status()
	out := api.DataplaneStatus{
		Default:   f.d.cfg.Dataplane,
		PinDir:    st.PinDir,
		Programs:  []api.ProgramAttachment{},
		Endpoints: []api.EndpointCounters{},
	}
	for _, p := range st.Programs {
		out.Programs = append(out.Programs, api.ProgramAttachment(p))
	}
	for _, c := range st.Endpoints {
		out.Endpoints = append(out.Endpoints, api.EndpointCounters{Network: c.Network, Container: c.Container, Interface: c.Interface,
			MacAddress: c.MacAddress, FastPackets: c.FastPackets, FastBytes: c.FastBytes, SlowPackets: c.SlowPackets, Drops: c.Drops})
	}
	if f.d == nil {
		return out, err
	}
	for _, drv := range f.d.drivers {
		if ovs, ok := drv.(overlayStatus); ok {
			progs, eps, tuns, oerr := ovs.DataplaneStatus()
			out.Programs = append(out.Programs, progs...)
			out.Endpoints = append(out.Endpoints, eps...)
			out.Tunnels = append(out.Tunnels, tuns...)
			err = errors.Join(err, oerr)
		}
	}
	return out, err
}
