//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// Overlay setups (setupOvlEBPF, setupOvlKernel, setupUnderlay): two lab
// hosts on an underlay switch (tools/lab Cluster), the client container on
// h1, the server container on h2.

const overlayNetwork = "bench"

// overlayPrograms counts the attachments of the overlay's eBPF programs
// (bpf/overlay.c: overlay_from_container, overlay_from_tunnel). The bridge
// program on an overlay veth does not count: it passes frames for other
// hosts to the bridge, and the kernel's VXLAN device carries them.
func overlayPrograms(st *api.DataplaneStatus) int {
	n := 0
	for _, p := range st.Programs {
		if strings.HasPrefix(p.Program, "overlay") {
			n++
		}
	}
	return n
}

// overlaySetup is an overlay network across two lab hosts, each running its
// own daemon on one dataplane.
type overlaySetup struct {
	name, dataplane, subnet string
	netdBin, prefix, logDir string
	lab                     *lab.Lab
	cl                      *lab.Cluster
	serverIP                string
}

func newOverlaySetup(prefix, dataplane, netdBin, subnet, logDir string) *overlaySetup {
	s := &overlaySetup{dataplane: dataplane, subnet: subnet, netdBin: netdBin, logDir: logDir}
	// Its own lab, so its Close cannot touch the other setups' namespaces.
	if dataplane == api.DataplaneEBPF {
		s.name, s.prefix = setupOvlEBPF, prefix+"o"
	} else {
		s.name, s.prefix = setupOvlKernel, prefix+"q"
	}
	return s
}

func (s *overlaySetup) Name() string { return s.name }

func (s *overlaySetup) Pair() Pair {
	if s.serverIP == "" {
		return Pair{}
	}
	return Pair{ClientNS: s.cl.Hosts[0].ContainerNS("c1"), ServerNS: s.cl.Hosts[1].ContainerNS("c2"), ServerIP: s.serverIP}
}

func (s *overlaySetup) Up(ctx context.Context) error {
	var err error
	if s.lab, s.cl, err = benchCluster(s.netdBin, s.prefix, 2, s.dataplane); err != nil {
		return err
	}
	h1, h2 := s.cl.Hosts[0], s.cl.Hosts[1]
	if err := netdOn(h1, "network", "create", "-d", "overlay", "--attachable", "--subnet", s.subnet, overlayNetwork); err != nil {
		return fmt.Errorf("create overlay network: %w%s", err, logTail(h1))
	}
	if _, err := s.cl.WaitNetwork(overlayNetwork, 15*time.Second); err != nil {
		return err
	}
	for i, h := range []*lab.Host{h1, h2} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c := fmt.Sprintf("c%d", i+1)
		if err := netdOn(h, "container", "create", "--network", overlayNetwork, c); err != nil {
			return fmt.Errorf("create container %s on %s: %w%s", c, h.Node, err, logTail(h))
		}
	}
	if s.dataplane == api.DataplaneEBPF {
		// Without this the "ovl-ebpf" numbers would silently be the kernel overlay's.
		if err := checkOverlayEBPF(s.cl.Hosts, s.name); err != nil {
			return err
		}
	}
	if s.serverIP, err = netnsIPv4(ctx, h2.ContainerNS("c2")); err != nil {
		return err
	}
	if err := waitPing(ctx, s.Pair()); err != nil {
		return fmt.Errorf("%w%s%s", err, logTail(h1), logTail(h2))
	}
	return nil
}

// checkOverlayEBPF fails unless every host (each with an endpoint on the
// overlay network) has the overlay's eBPF programs attached; what names
// the figure that would be wrong otherwise.
func checkOverlayEBPF(hosts []*lab.Host, what string) error {
	for _, h := range hosts {
		st, err := hostDataplane(h)
		if err != nil {
			return fmt.Errorf("overlay eBPF path: %w", err)
		}
		if overlayPrograms(st) == 0 {
			att := "none"
			if len(st.Programs) > 0 {
				var l []string
				for _, p := range st.Programs {
					l = append(l, p.Program+" on "+p.Interface)
				}
				att = "only " + strings.Join(l, ", ")
			}
			return fmt.Errorf("overlay eBPF path not active on %s (--dataplane ebpf): no overlay program of bpf/overlay.c attached (%s); "+
				"this netd carries overlay networks on the kernel path even on ebpf hosts, so %s would measure the kernel overlay", h.Node, att, what)
		}
	}
	return nil
}

// EBPF says whether the setup's counters tell whether traffic took an eBPF path.
func (s *overlaySetup) EBPF() bool { return s.dataplane == api.DataplaneEBPF }

// DataplaneStatus is `netd dataplane show` of the client's host.
func (s *overlaySetup) DataplaneStatus() (*api.DataplaneStatus, error) {
	if s.cl == nil {
		return nil, fmt.Errorf("%s is not set up", s.name)
	}
	return hostDataplane(s.cl.Hosts[0])
}

func (s *overlaySetup) Down() {
	if s.lab == nil {
		return
	}
	if s.cl != nil {
		keepLogs(s.logDir, s.name, s.cl.Hosts)
	}
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup %s: %v\n", s.name, err)
	}
	s.lab, s.cl = nil, nil
}

// underlaySetup is the two hosts' own namespaces on the underlay switch, no
// daemon and no overlay: what the overlay's encapsulation and bridges cost
// is the difference to it.
type underlaySetup struct {
	netdBin, prefix string
	lab             *lab.Lab
	a, b            *lab.Host
	serverIP        string
}

func newUnderlaySetup(prefix, netdBin string) *underlaySetup {
	return &underlaySetup{netdBin: netdBin, prefix: prefix + "u"}
}

func (s *underlaySetup) Name() string { return setupUnderlay }

func (s *underlaySetup) Pair() Pair {
	if s.serverIP == "" {
		return Pair{}
	}
	return Pair{ClientNS: s.a.NS(), ServerNS: s.b.NS(), ServerIP: s.serverIP}
}

func (s *underlaySetup) Up(ctx context.Context) error {
	l, err := lab.New(nil, lab.Options{Prefix: s.prefix, NetdBin: s.netdBin})
	if err != nil {
		return fmt.Errorf("create lab: %w", err)
	}
	s.lab = l
	ul, err := l.Underlay()
	if err != nil {
		return err
	}
	for _, p := range []struct {
		h    **lab.Host
		name string
	}{{&s.a, "h1"}, {&s.b, "h2"}} {
		if *p.h, err = l.Host(p.name); err != nil {
			return fmt.Errorf("create lab host: %w", err)
		}
		if _, err := ul.Attach(*p.h); err != nil {
			return err
		}
	}
	s.serverIP = ul.Addr(s.b).String()
	return waitPing(ctx, s.Pair())
}

func (s *underlaySetup) Down() {
	if s.lab == nil {
		return
	}
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup underlay: %v\n", err)
	}
	s.lab = nil
}

// benchCluster makes a lab with n hosts joined into a cluster, all on dataplane.
func benchCluster(netdBin, prefix string, n int, dataplane string) (*lab.Lab, *lab.Cluster, error) {
	if _, err := os.Stat(netdBin); err != nil {
		return nil, nil, fmt.Errorf("find netd binary (--netd or NETD_BIN): %w", err)
	}
	l, err := lab.New(nil, lab.Options{Prefix: prefix, NetdBin: netdBin, LogLevel: "info"})
	if err != nil {
		return nil, nil, fmt.Errorf("create lab: %w", err)
	}
	cl, err := l.Cluster(n, lab.ClusterOptions{Args: []string{"--dataplane", dataplane}, Timeout: 30 * time.Second})
	if err != nil {
		return l, nil, fmt.Errorf("build a %d-host cluster on --dataplane %s: %w", n, dataplane, err)
	}
	return l, cl, nil
}

// netdOn runs one CLI command against h's daemon.
func netdOn(h *lab.Host, args ...string) error {
	stdout, stderr, code := h.Netd(args...)
	if code != 0 {
		return fmt.Errorf("netd %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr+stdout))
	}
	return nil
}

func hostDataplane(h *lab.Host) (*api.DataplaneStatus, error) {
	c, err := api.NewClient(h.HostURL())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), lab.CommandTimeout)
	defer cancel()
	st, err := c.DataplaneStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("dataplane status of %s: %w", h.Node, err)
	}
	return &st, nil
}

// logTail is the end of h's daemon log, to append to an error.
func logTail(h *lab.Host) string {
	log := strings.TrimSpace(h.DaemonLog())
	if log == "" {
		return ""
	}
	if len(log) > 1500 {
		log = log[len(log)-1500:]
	}
	return fmt.Sprintf("\n--- daemon log of %s (tail) ---\n%s", h.Node, log)
}

// keepLogs copies each host's daemon log and `netd dataplane show` into the
// out dir as netd-<name>-<host>.log and dataplane-<name>-<host>.txt.
func keepLogs(dir, name string, hosts []*lab.Host) {
	_ = os.MkdirAll(dir, 0o755)
	for _, h := range hosts {
		if h.Running() {
			stdout, stderr, code := h.Netd("dataplane", "show")
			if code != 0 {
				stdout += fmt.Sprintf("(netd dataplane show: exit %d) %s", code, stderr)
			}
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("dataplane-%s-%s.txt", name, h.Name)), []byte(stdout), 0o644)
		}
		if log := h.DaemonLog(); log != "" {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("netd-%s-%s.log", name, h.Name)), []byte(log), 0o644)
		}
	}
}
