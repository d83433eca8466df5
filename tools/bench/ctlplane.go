//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// The control-plane run: on a cluster of ctlHosts hosts, how long after
// `netd container create` on h1 a container on h2 can ping the new one.
const (
	ctlHosts     = 3
	ctlNetwork   = "ctl"
	ctlSubnet    = "10.206.0.0/23" // room for maxCtl containers
	ctlProbe     = "probe"         // the pinging container, on h2
	ctlReachWait = 10 * time.Second
	// ctlTargetP99 is issue 9's bound on the p99 on 3 hosts.
	ctlTargetP99 = 2 * time.Second
	// maxCtl bounds --controlplane.
	maxCtl = 400
)

func ctlStat(dataplane string, containers int, samples []float64) CtlStat {
	st := CtlStat{Dataplane: dataplane, Hosts: ctlHosts, Containers: containers, Unreached: containers - len(samples),
		TargetP99MS: ms(ctlTargetP99), SamplesMS: samples}
	if len(samples) > 0 {
		sorted := append([]float64(nil), samples...)
		sort.Float64s(sorted)
		st.MedianMS, st.P99MS = median(sorted), percentile(sorted, 99)
		st.MinMS, st.MaxMS = sorted[0], sorted[len(sorted)-1]
		ok := st.Unreached == 0 && st.P99MS <= st.TargetP99MS
		st.Achieved = &ok
	}
	return st
}

// ctlRun runs the control-plane figure on one dataplane, in a lab of its own.
type ctlRun struct {
	dataplane, netdBin, prefix, logDir string
	self                               string // the bench binary, for its reach sub-command
	prog                               *progress
	lab                                *lab.Lab
	cl                                 *lab.Cluster
}

func newCtlRun(self, prefix, dataplane, netdBin, logDir string, prog *progress) *ctlRun {
	r := &ctlRun{dataplane: dataplane, netdBin: netdBin, logDir: logDir, self: self, prog: prog}
	// One letter per dataplane after the run's prefix, as the setups have.
	r.prefix = prefix + map[string]string{api.DataplaneEBPF: "g", api.DataplaneKernel: "c"}[dataplane]
	return r
}

func (r *ctlRun) name() string { return "controlplane-" + r.dataplane }

// run creates count containers on h1, one at a time, and times each until
// h2's probe container gets an echo reply from it. It returns what it
// measured also when it fails part-way.
func (r *ctlRun) run(ctx context.Context, count int) (*CtlStat, error) {
	defer r.down()
	r.prog.show("%s  building a %d-host cluster", r.name(), ctlHosts)
	var err error
	if r.lab, r.cl, err = benchCluster(r.netdBin, r.prefix, ctlHosts, r.dataplane); err != nil {
		return nil, err
	}
	h1, h2 := r.cl.Hosts[0], r.cl.Hosts[1]
	if err := netdOn(h1, "network", "create", "-d", "overlay", "--attachable", "--subnet", ctlSubnet, ctlNetwork); err != nil {
		return nil, fmt.Errorf("create overlay network: %w%s", err, logTail(h1))
	}
	if _, err := r.cl.WaitNetwork(ctlNetwork, 15*time.Second); err != nil {
		return nil, err
	}
	if err := netdOn(h2, "container", "create", "--network", ctlNetwork, ctlProbe); err != nil {
		return nil, fmt.Errorf("create probe container on %s: %w%s", h2.Node, err, logTail(h2))
	}
	// A failed ARP is retried once a second by default; at 10 ms the figure
	// is the control plane's, not the probe's neighbour timer. (The probe's
	// own namespace, made by its daemon for this run.)
	probeNS := h2.ContainerNS(ctlProbe)
	if _, err := run(ctx, 10*time.Second, "nsenter", "--net="+filepath.Join(lab.NetnsDir, probeNS), "--", "sysctl", "-qw", "net.ipv4.neigh.eth0.retrans_time_ms=10"); err != nil {
		return nil, fmt.Errorf("set the probe's ARP retransmit time: %w", err)
	}
	client, err := api.NewClient(h1.HostURL())
	if err != nil {
		return nil, err
	}
	var samples []float64
	var errs []error
	created := 0
	for i := 0; i < count; i++ {
		if ctx.Err() != nil {
			st := ctlStat(r.dataplane, created, samples)
			return &st, ctx.Err()
		}
		r.prog.show("%s  container %d/%d", r.name(), i+1, count)
		name := fmt.Sprintf("ctl%03d", i)
		d, err := r.one(ctx, client, probeNS, name)
		if errors.Is(err, errNotCreated) {
			st := ctlStat(r.dataplane, created, samples)
			return &st, fmt.Errorf("%w%s", err, logTail(h1))
		}
		created++
		if i == 0 && r.dataplane == api.DataplaneEBPF {
			// Now both hosts have an endpoint on the network.
			if err := checkOverlayEBPF([]*lab.Host{h1, h2}, r.name()); err != nil {
				return nil, err
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		samples = append(samples, ms(d))
	}
	st := ctlStat(r.dataplane, created, samples)
	if len(errs) > 0 {
		return &st, fmt.Errorf("%d of %d containers not reachable from h2: %w", len(errs), created, errs[0])
	}
	return &st, nil
}

var errNotCreated = errors.New("container not created")

// one creates container name on h1 and returns the time until the probe
// gets its first echo reply.
func (r *ctlRun) one(ctx context.Context, client *api.Client, probeNS, name string) (time.Duration, error) {
	h1 := r.cl.Hosts[0]
	start := time.Now()
	if err := netdOn(h1, "container", "create", "--network", ctlNetwork, name); err != nil {
		return 0, fmt.Errorf("%w: %s on %s: %v", errNotCreated, name, h1.Node, err)
	}
	ictx, cancel := context.WithTimeout(ctx, lab.CommandTimeout)
	c, err := client.ContainerInspect(ictx, name)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("%w: inspect %s: %v", errNotCreated, name, err)
	}
	ip := c.NetworkSettings.Networks[ctlNetwork].IPAddress
	if ip == "" {
		return 0, fmt.Errorf("%w: %s has no address on %s", errNotCreated, name, ctlNetwork)
	}
	pctx, cancel := context.WithTimeout(ctx, ctlReachWait+5*time.Second)
	defer cancel()
	out, err := run(pctx, ctlReachWait+5*time.Second, "nsenter", "--net="+filepath.Join(lab.NetnsDir, probeNS), "--", r.self, "reach", ip, ctlReachWait.String())
	if err != nil {
		return 0, fmt.Errorf("%s (%s) from h2's probe: %w", name, ip, err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reach %s: unexpected output %q", ip, out)
	}
	return time.Unix(0, ns).Sub(start), nil
}

// runReach is the `reach DST WAIT` sub-command, run in the probe's netns:
// an ICMP echo request to DST every 10 ms until the first reply, whose
// arrival it prints in Unix nanoseconds; exit 1 after WAIT without one.
// (ping(8) cannot do this: with -w it gives up at the first "host
// unreachable" a failed ARP brings.)
func runReach(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: reach DST WAIT")
		return 2
	}
	dst, err := netip.ParseAddr(args[0])
	wait, werr := time.ParseDuration(args[1])
	if err != nil || !dst.Is4() || werr != nil {
		fmt.Fprintf(os.Stderr, "reach: bad arguments %q\n", args)
		return 2
	}
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "reach: open ICMP socket: %v\n", err)
		return 1
	}
	defer conn.Close()
	id := os.Getpid() & 0xffff
	got := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			at := time.Now()
			m, err := icmp.ParseMessage(1, buf[:n]) // 1: ICMPv4
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && from.String() == dst.String() {
				got <- at
				return
			}
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	var sent, sendErrs int
	var lastErr error
	for seq := 0; ; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("netd-bench-reach")}}
		b, _ := msg.Marshal(nil)
		// A failed ARP makes sends fail with "host unreachable" for a while: keep going.
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			sendErrs++
			lastErr = err
		} else {
			sent++
		}
		select {
		case at := <-got:
			fmt.Println(at.UnixNano())
			return 0
		case <-deadline:
			fmt.Fprintf(os.Stderr, "no echo reply from %s within %v (%d requests sent, %d sends failed, last: %v)\n", dst, wait, sent, sendErrs, lastErr)
			return 1
		case <-tick.C:
		}
	}
}

func (r *ctlRun) down() {
	if r.lab == nil {
		return
	}
	r.prog.show("%s  tearing down", r.name())
	if r.cl != nil {
		keepLogs(r.logDir, r.name(), r.cl.Hosts)
	}
	if err := r.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup %s: %v\n", r.name(), err)
	}
	r.lab, r.cl = nil, nil
}

// writeCtlTable renders the control-plane figures.
func writeCtlTable(w io.Writer, stats []CtlStat) error {
	if len(stats) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nControl plane: `netd container create` on h1 until a container on h2 gets an echo reply from it,\n"+
		"overlay network, %d hosts; ms (target: p99 <= %s, issue 9)\n", ctlHosts, ctlTargetP99)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATAPLANE\tCONTAINERS\tUNREACHED\tMEDIAN\tP99\tMIN–MAX\tTARGET\t")
	for _, s := range stats {
		if len(s.SamplesMS) == 0 {
			fmt.Fprintf(tw, "%s\t%d\t%d\t-\t-\t-\t-\t\n", s.Dataplane, s.Containers, s.Unreached)
			continue
		}
		mark := "-"
		if s.Achieved != nil {
			mark = "MISS"
			if *s.Achieved {
				mark = "ok"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s–%s\t%s\t\n", s.Dataplane, s.Containers, s.Unreached,
			formatValue(s.MedianMS), formatValue(s.P99MS), formatValue(s.MinMS), formatValue(s.MaxMS), mark)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write control-plane table: %w", err)
	}
	return nil
}
