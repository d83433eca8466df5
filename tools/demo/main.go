//go:build linux

// Command demo is `sudo make demo`: three lab hosts (network namespaces, each
// running its own `netd daemon`) on one underlay switch, joined into a
// cluster; an overlay network created on h1, a container on every host, a
// ping matrix across them, the counters, and a short look at the eBPF bridge
// on one host. Every command is echoed like a terminal session; everything
// is removed afterwards, also on Ctrl-C or failure.
//
//	go run ./tools/demo [--dataplane ebpf|kernel]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

const (
	overlayNet    = "demo-ovl"
	overlaySubnet = "10.90.0.0/24"
	bridgeNet     = "demo-br"
	bridgeSubnet  = "10.77.0.0/24"
)

func main() {
	dp := flag.String("dataplane", api.DataplaneEBPF, "dataplane of the lab hosts (netd daemon --dataplane): ebpf or kernel; ebpf falls back to kernel, with a note, when overlay networks do not work on it")
	flag.Parse()
	if *dp != api.DataplaneEBPF && *dp != api.DataplaneKernel {
		fmt.Fprintf(os.Stderr, "demo: unknown --dataplane %q: want ebpf or kernel\n", *dp)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces, eBPF): run `sudo make demo`")
		os.Exit(1)
	}
	// Ctrl-C closes every open lab (daemons, namespaces, pins) and exits 130;
	// the walk-through, failing meanwhile, keeps quiet about it.
	defer lab.CloseOnSignal()()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() { <-sigs; interrupted.Store(true) }()

	start := time.Now()
	err := walk(*dp)
	var unsupported *overlayUnsupported
	if errors.As(err, &unsupported) {
		say("")
		say("NOTE: overlay networks do not work on --dataplane ebpf hosts with this build:")
		say("  %s", oneLine(unsupported.err.Error()))
		say("Running the walk-through again with the hosts on --dataplane kernel.")
		err = walk(api.DataplaneKernel)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("# demo finished in %v: everything it created is gone\n", time.Since(start).Round(100*time.Millisecond))
}

var interrupted atomic.Bool

// overlayUnsupported is a failure of the overlay steps on ebpf hosts, after
// which the demo runs again on kernel hosts.
type overlayUnsupported struct{ err error }

func (e *overlayUnsupported) Error() string { return e.err.Error() }

// walk runs the whole walk-through in a lab of its own and removes it.
func walk(dp string) (err error) {
	l, err := lab.New(nil, lab.Options{LogLevel: "info"})
	if err != nil {
		return err
	}
	d := &demo{lab: l, dp: dp}
	defer func() {
		if interrupted.Load() {
			l.Close() // waits for the signal handler's cleanup, which exits
			return
		}
		if err != nil && d.cl != nil {
			var u *overlayUnsupported
			if !errors.As(err, &u) {
				for _, h := range d.cl.Hosts {
					fmt.Fprintf(os.Stderr, "---- daemon log of %s (last lines) ----\n%s\n", h.Node, lastLines(h.DaemonLog(), 25))
				}
			}
		}
		fmt.Printf("\n# cleaning up lab %s: daemons, namespaces, eBPF pins, files\n", l.Prefix)
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	return d.run()
}

type demo struct {
	lab  *lab.Lab
	dp   string
	cl   *lab.Cluster
	ips  map[*lab.Host]string // each host's container address on the overlay
	step int
}

// section prints the next numbered heading.
func (d *demo) section(format string, args ...any) {
	d.step++
	say("---- %d. %s ----", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) run() error {
	say("netd demo: three lab hosts h1, h2, h3 — network namespaces %s-h1.. — each running its own", d.lab.Prefix)
	say("`netd daemon --dataplane %s`, plugged into one underlay switch (%s) like machines on a LAN,", d.dp, lab.UnderlayNet)
	say("joined into one cluster (gossip, encrypted with a shared key). Every command below is the real")
	say("netd CLI, run on the host named before the $. Nothing touches this machine's own network.")
	start := time.Now()
	cl, err := d.lab.Cluster(3, lab.ClusterOptions{Args: []string{"--dataplane", d.dp}})
	if err != nil {
		return fmt.Errorf("build the cluster: %w", err)
	}
	d.cl = cl
	h1 := cl.Hosts[0]
	say("")
	d.section("the cluster: three daemons started and agreeing after %v", time.Since(start).Round(100*time.Millisecond))
	say("h1 was started with --advertise-addr %s; h2 and h3 with --join %s:", cl.Addr(h1), cl.Addr(h1))
	for _, h := range cl.Hosts {
		if _, err := d.netd(h, "node", "ls"); err != nil {
			return err
		}
	}

	say("")
	d.section("an overlay network, created on h1, listed on every host")
	if _, err := d.netd(h1, "network", "create", "-d", "overlay", "--attachable", "--subnet", overlaySubnet, overlayNet); err != nil {
		return d.overlayFailed(err)
	}
	took, err := cl.WaitNetwork(overlayNet, 15*time.Second)
	if err != nil {
		return d.overlayFailed(err)
	}
	say("(h2 and h3 listed it %v after the create returned)", took.Round(time.Millisecond))
	for _, h := range cl.Hosts {
		if _, err := d.netd(h, "network", "ls"); err != nil {
			return err
		}
	}

	say("")
	d.section("a container on every host, all on %s", overlayNet)
	d.ips = map[*lab.Host]string{}
	for i, h := range cl.Hosts {
		if _, err := d.netd(h, "container", "create", "--network", overlayNet, ctr(i)); err != nil {
			return d.overlayFailed(err)
		}
		if d.ips[h], err = containerIP(h, ctr(i), overlayNet); err != nil {
			return err
		}
	}
	if _, err := d.netd(cl.Hosts[2], "network", "inspect", "-f", inspectFormat, overlayNet); err != nil {
		return err
	}
	say("Each host now knows the others' endpoints (ENDPOINTS: entries gossiped by each member):")
	if _, err := d.netd(cl.Hosts[2], "node", "ls"); err != nil {
		return err
	}

	say("")
	d.section("ping matrix: one echo request (-c 1 -W 2) from every container to every other")
	// The first packets after a create may still wait for the gossip; wait,
	// bounded, until c1 reaches every container, then measure each cell once.
	for i, h := range cl.Hosts {
		if took, err := pingUntil(h1, ctr(0), d.ips[h], 10*time.Second); err != nil {
			return d.overlayFailed(err)
		} else if i > 0 {
			say("c1 (h1) reaches %s (%s): first answer after %v of trying", ctr(i), h.Name, took.Round(time.Millisecond))
		}
	}
	lost, err := d.pingMatrix()
	if err != nil {
		return err
	}
	if lost > 0 {
		return d.overlayFailed(fmt.Errorf("%d of 9 pings in the matrix were not answered", lost))
	}

	say("")
	d.section("the counters: where the packets went")
	if err := d.counters(); err != nil {
		return err
	}

	if d.dp == api.DataplaneEBPF {
		say("")
		d.section("for comparison, a bridge network on h1 alone: local traffic on the eBPF fast path")
		if err := d.bridge(h1); err != nil {
			return err
		}
	}

	say("")
	d.section("removing what we made: containers on their hosts, the network from h3")
	for i, h := range cl.Hosts {
		if _, err := d.netd(h, "container", "rm", ctr(i)); err != nil {
			return err
		}
	}
	// h3 learns of the removals through the gossip: retry, bounded.
	if err := retry(15*time.Second, func() error { _, err := d.quiet(cl.Hosts[2], "network", "rm", overlayNet); return err }); err != nil {
		return err
	}
	fmt.Printf("\nh3$ netd network rm %s\n%s\n", overlayNet, overlayNet)
	for _, h := range cl.Hosts {
		if err := retry(15*time.Second, func() error {
			out, err := d.quiet(h, "network", "ls", "--format", "{{.Name}}")
			if err == nil && strings.Contains(out, overlayNet) {
				err = fmt.Errorf("%s still lists %s", h.Node, overlayNet)
			}
			return err
		}); err != nil {
			return err
		}
	}
	_, err = d.netd(h1, "network", "ls")
	return err
}

// overlayFailed marks a failed overlay step on ebpf hosts as the reason
// to fall back to kernel hosts.
func (d *demo) overlayFailed(err error) error {
	if d.dp == api.DataplaneEBPF {
		return &overlayUnsupported{err}
	}
	return err
}

func ctr(i int) string { return fmt.Sprintf("c%d", i+1) }

// inspectFormat is a one-screen `network inspect` (the full JSON is Docker's, and long).
const inspectFormat = `{{.Name}}: {{.Driver}}, scope {{.Scope}}, VNI {{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}, {{range .IPAM.Config}}{{.Subnet}}{{end}}; peers (host, VTEP):{{range .Peers}} {{.Name}}={{.IP}}{{end}}`

var rttRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// pingMatrix pings every container from every container once and prints
// the round-trip times as a table; it returns how many went unanswered.
func (d *demo) pingMatrix() (int, error) {
	hosts := d.cl.Hosts
	fmt.Println("\n(each cell: `netd container exec FROM -- ping -c 1 -W 2 ADDRESS-OF-TO` on FROM's host)")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO\t")
	for i, h := range hosts {
		fmt.Fprintf(tw, "%s (%s, %s)\t", ctr(i), h.Name, d.ips[h])
	}
	fmt.Fprintln(tw)
	lost := 0
	for i, from := range hosts {
		fmt.Fprintf(tw, "%s (%s)\t", ctr(i), from.Name)
		for _, to := range hosts {
			out, _, code := from.Exec(ctr(i), "ping", "-c", "1", "-W", "2", d.ips[to])
			cell := "lost"
			if code == 0 {
				cell = "ok"
				if m := rttRE.FindStringSubmatch(out); m != nil {
					cell = m[1] + " ms"
				}
			} else {
				lost++
				if code != 1 {
					cell = fmt.Sprintf("error (exit %d)", code)
				}
			}
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintln(tw)
	}
	return lost, tw.Flush()
}

// counters shows each host's eBPF counters and its VXLAN forwarding entries.
func (d *demo) counters() error {
	var progs int
	if d.dp == api.DataplaneEBPF {
		for _, h := range d.cl.Hosts {
			if _, err := d.netd(h, "dataplane", "show"); err != nil {
				return err
			}
			st, err := dataplaneStatus(h)
			if err != nil {
				return err
			}
			progs += overlayPrograms(st)
		}
	}
	switch {
	case d.dp == api.DataplaneKernel:
		say("On kernel hosts each overlay network is a bridge plus a VXLAN device (Docker's way), with")
		say("static forwarding entries programmed from the gossip (MAC → remote host's VTEP):")
		for _, h := range d.cl.Hosts {
			d.fdb(h)
		}
	case progs > 0:
		say("ENCAP-PKTS / DECAP-PKTS: frames for other hosts got their tunnel key (VNI, remote VTEP) in")
		say("overlay_from_container and went out of the one collect-metadata device netd_vxlan; frames from")
		say("other hosts were handed to the container by overlay_from_tunnel. No bridge, no FDB on the way:")
		d.fdb(d.cl.Hosts[0])
	default:
		say("NOTE: the hosts run --dataplane ebpf, but none has the overlay's eBPF programs attached: this")
		say("build carries overlay networks on the kernel path on every host (bridge + VXLAN device +")
		say("static FDB; the bridge program on the overlay veths passes frames for other hosts to the bridge):")
		d.fdb(d.cl.Hosts[0])
	}
	return nil
}

// overlayPrograms counts h's attachments of the overlay's eBPF programs
// (bpf/overlay.c: overlay_from_container, overlay_from_tunnel). The
// bridge's from_container on an overlay veth does not count: it hands frames
// for other hosts to the bridge, and the kernel's VXLAN device carries them.
func overlayPrograms(st *api.DataplaneStatus) int {
	n := 0
	for _, p := range st.Programs {
		if strings.HasPrefix(p.Program, "overlay") {
			n++
		}
	}
	return n
}

// bridge is the single-host part: a bridge network with two containers,
// 200 pings, and the fast-path counters before and after.
func (d *demo) bridge(h *lab.Host) error {
	if _, err := d.netd(h, "network", "create", "--subnet", bridgeSubnet, bridgeNet); err != nil {
		return err
	}
	for _, c := range []string{"web", "db"} {
		if _, err := d.netd(h, "container", "create", "--network", bridgeNet, c); err != nil {
			return err
		}
	}
	dbIP, err := containerIP(h, "db", bridgeNet)
	if err != nil {
		return err
	}
	before, err := fastPackets(h, bridgeNet)
	if err != nil {
		return err
	}
	if _, err := d.netd(h, "container", "exec", "web", "--", "ping", "-q", "-c", "200", "-i", "0.005", "-W", "2", dbIP); err != nil {
		return err
	}
	if _, err := d.netd(h, "dataplane", "show", "--format", `{{range .Endpoints}}{{if eq .Network "`+bridgeNet+`"}}{{.Container}} {{.Interface}}: fast {{.FastPackets}} slow {{.SlowPackets}}{{println}}{{end}}{{end}}`); err != nil {
		return err
	}
	after, err := fastPackets(h, bridgeNet)
	if err != nil {
		return err
	}
	say("FAST-PKTS of web and db went from %d to %d: each echo request and reply was handed from", before, after)
	say("veth to veth by bpf_redirect_peer; only ARP and the gateway took the Linux bridge.")
	if after < before+400 {
		return fmt.Errorf("fast-path counters moved by %d, want at least 400 (200 requests + 200 replies)", after-before)
	}
	if _, err := d.netd(h, "container", "rm", "web", "db"); err != nil {
		return err
	}
	_, err = d.netd(h, "network", "rm", bridgeNet)
	return err
}

// fastPackets sums the fast-path packet counters of network's endpoints on h.
func fastPackets(h *lab.Host, network string) (uint64, error) {
	st, err := dataplaneStatus(h)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, e := range st.Endpoints {
		if e.Network == network {
			n += e.FastPackets
		}
	}
	return n, nil
}

func dataplaneStatus(h *lab.Host) (*api.DataplaneStatus, error) {
	out, errOut, code := h.Netd("dataplane", "show", "--format", "json")
	if code != 0 {
		return nil, fmt.Errorf("netd dataplane show --format json on %s: exit %d: %s", h.Name, code, errOut)
	}
	var st api.DataplaneStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("parse netd dataplane show of %s: %w", h.Name, err)
	}
	return &st, nil
}

// netd echoes and runs one CLI command on h; a non-zero exit is an error.
func (d *demo) netd(h *lab.Host, args ...string) (string, error) {
	fmt.Printf("\n%s$ netd %s\n", h.Name, lab.ShellJoin(args))
	out, errOut, code := h.Netd(args...)
	fmt.Print(out)
	fmt.Fprint(os.Stderr, errOut)
	if code != 0 {
		return out, fmt.Errorf("netd %s on %s: exit %d: %s", lab.ShellJoin(args), h.Name, code, strings.TrimSpace(errOut))
	}
	return out, nil
}

// quiet runs a CLI command on h without echoing it (polls).
func (d *demo) quiet(h *lab.Host, args ...string) (string, error) {
	out, errOut, code := h.Netd(args...)
	if code != 0 {
		return out, fmt.Errorf("netd %s on %s: exit %d: %s", lab.ShellJoin(args), h.Name, code, strings.TrimSpace(errOut))
	}
	return out, nil
}

// fdb shows the remote entries of h's bridge forwarding database (those
// with a VTEP); failures are shown, not fatal.
func (d *demo) fdb(h *lab.Host) {
	fmt.Printf("\n%s$ bridge fdb show | grep ' dst '\n", h.Name)
	out, errOut, code := h.Run("bridge", "fdb", "show")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " dst ") {
			fmt.Println(line)
			n++
		}
	}
	if code != 0 {
		fmt.Print(errOut)
	} else if n == 0 {
		fmt.Println("(none: no VXLAN device with FDB entries on this host)")
	}
}

func inspect(h *lab.Host, name string) (api.Container, error) {
	out, errOut, code := h.Netd("container", "inspect", name)
	if code != 0 {
		return api.Container{}, fmt.Errorf("container inspect %s on %s: %s", name, h.Name, errOut)
	}
	var cs []api.Container
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
		return api.Container{}, fmt.Errorf("container inspect %s on %s: unexpected output: %v", name, h.Name, err)
	}
	return cs[0], nil
}

func containerIP(h *lab.Host, name, network string) (string, error) {
	c, err := inspect(h, name)
	if err != nil {
		return "", err
	}
	ep, found := c.NetworkSettings.Networks[network]
	if !found || ep.IPAddress == "" {
		return "", fmt.Errorf("container %s on %s has no address on %s", name, h.Name, network)
	}
	return ep.IPAddress, nil
}

// pingUntil pings addr from container c on h until it answers, bounded.
func pingUntil(h *lab.Host, c, addr string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		out, errOut, code := h.Exec(c, "ping", "-c", "1", "-W", "1", addr)
		if code == 0 {
			return time.Since(start), nil
		}
		last = strings.TrimSpace(out + errOut)
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s on %s got no answer from %s within %v: %s", c, h.Name, addr, timeout, oneLine(last))
}

// retry calls fn until it succeeds or timeout passes, returning its last error.
func retry(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func say(format string, args ...any) {
	if format == "" {
		fmt.Println()
		return
	}
	fmt.Printf("# "+format+"\n", args...)
	time.Sleep(30 * time.Millisecond) // readable pacing when watched live
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
