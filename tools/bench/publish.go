//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/tools/dockerlab"
	"github.com/netd-dev/netd/tools/lab"
)

// The publish run (issue 11): a client in a lab namespace of its own, wired
// to the host namespace (where the daemon runs) by a veth, the host's
// "uplink", connects to the uplink address at a port a container publishes.
// Six setups, each a lab of its own, measured interleaved round by round:
// netd's eBPF dataplane with TC and with XDP on the uplink, netd's kernel
// dataplane (nftables DNAT), Docker with docker-proxy and Docker with
// userland-proxy=false (iptables DNAT), and the same topology routed without
// NAT (the client connects to the container's address) as the reference.
const (
	pubTC     = "ebpf-tc"
	pubXDP    = "ebpf-xdp"
	pubKernel = "kernel-nat"
	pubProxy  = "docker-proxy"
	pubDNAT   = "docker-dnat"
	pubRouted = "routed"
)

// pubSetups are the publish setups in measuring order.
var pubSetups = []string{pubTC, pubXDP, pubKernel, pubProxy, pubDNAT, pubRouted}

// Addresses and ports inside the publish labs; every setup has its own
// namespaces, so only the container subnets differ, for readable logs.
const (
	pubUplinkIF     = "eth0"
	pubHostAddr     = "10.210.0.1"
	pubClientAddr   = "10.210.0.2"
	pubHostPort     = 18080 // published on the host
	pubCtrPort      = 9080  // the container's server
	pubNetwork      = "pub"
	pubServer       = "srv"
	pubRoutedSubnet = "10.216.0.0/24"
	pubRoutedGW     = "10.216.0.1"
	pubRoutedSrv    = "10.216.0.2"
	// Port ranges of the scale part: the timed range, then the RSS one.
	pubRangeFirst = 30000
	pubRSSFirst   = 20000
)

// pubSubnets are the container networks of the setups that have one.
var pubSubnets = map[string]string{
	pubTC: "10.212.0.0/24", pubXDP: "10.213.0.0/24", pubKernel: "10.214.0.0/24",
	pubProxy: "10.215.0.0/24", pubDNAT: "10.217.0.0/24",
}

// pubLetters are the lab prefix letters after the run's prefix (see the
// other setups' letters in setup.go, docker.go, overlay.go, dns.go, ...).
var pubLetters = map[string]string{pubTC: "t", pubXDP: "x", pubKernel: "j", pubProxy: "y", pubDNAT: "z", pubRouted: "r"}

// Publish modes (--publish).
const (
	pubModeFull  = "full"
	pubModeQuick = "quick"
	pubModeNone  = "none"
)

// pubPlan is what one mode measures besides the interleaved rounds.
type pubPlan struct {
	SeqConns    int           `json:"sequential_connections"`
	SeqSlice    int           `json:"sequential_slice"`
	SeqMax      time.Duration `json:"-"`
	RangePorts  int           `json:"range_ports"`  // timed `create -p A-B:A-B`, every setup
	NetdPorts   int           `json:"netd_ports"`   // published for the daemon's RSS
	DockerPorts int           `json:"docker_ports"` // Docker's RSS: the timed range itself
}

func publishPlan(mode string) pubPlan {
	if mode == pubModeQuick {
		return pubPlan{SeqConns: 10_000, SeqSlice: 1_000, SeqMax: time.Minute, RangePorts: 100, NetdPorts: 1_000, DockerPorts: 100}
	}
	return pubPlan{SeqConns: 100_000, SeqSlice: 10_000, SeqMax: 5 * time.Minute, RangePorts: 1_000, NetdPorts: 10_000, DockerPorts: 1_000}
}

// pubSeqSetups get the sequential run: moby#47537 says docker-proxy stalls
// after about 30k connections one after the other.
var pubSeqSetups = []string{pubTC, pubProxy}

// parsePublishSetups parses --publish-setups into measuring order.
func parsePublishSetups(s string) ([]string, error) {
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !contains(pubSetups, f) {
			return nil, fmt.Errorf("unknown setup %q in --publish-setups (want %s)", f, strings.Join(pubSetups, ","))
		}
		seen[f] = true
	}
	var out []string
	for _, n := range pubSetups {
		if seen[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--publish-setups selects no setup")
	}
	return out, nil
}

// Publish metrics; one latency run yields both percentiles.
const (
	pubMetricCRR   = "pub_crr_kcps"
	pubMetricP50   = "pub_rr_p50_us"
	pubMetricP99   = "pub_rr_p99_us"
	pubMetricLocal = "pub_local_crr_kcps"
)

var pubMetrics = []Metric{
	{Key: pubMetricCRR, Title: "Client → published port, new connection per request", Unit: "k/s", HigherBetter: true},
	{Key: pubMetricP50, Title: "Client → published port, RR latency p50", Unit: "µs", HigherBetter: false},
	{Key: pubMetricP99, Title: "Client → published port, RR latency p99", Unit: "µs", HigherBetter: false},
	{Key: pubMetricLocal, Title: "Host → localhost:PORT, new connection per request", Unit: "k/s", HigherBetter: true},
}

// pubTargets are issue 11's connection-rate targets.
var pubTargets = []Target{
	{Issue: 11, Desc: "ebpf-tc conn rate >= 2x docker-proxy", Setup: pubTC, Metric: pubMetricCRR, Ref: pubProxy, AtLeast: true, Bound: 2},
	{Issue: 11, Desc: "ebpf-tc conn rate >= 1.2x docker-dnat", Setup: pubTC, Metric: pubMetricCRR, Ref: pubDNAT, AtLeast: true, Bound: 1.2},
	{Issue: 11, Desc: "ebpf-xdp conn rate >= 2x docker-proxy", Setup: pubXDP, Metric: pubMetricCRR, Ref: pubProxy, AtLeast: true, Bound: 2},
	{Issue: 11, Desc: "ebpf-xdp conn rate >= 1.2x docker-dnat", Setup: pubXDP, Metric: pubMetricCRR, Ref: pubDNAT, AtLeast: true, Bound: 1.2},
}

// PublishResult is the publish run in results.json ("publish").
type PublishResult struct {
	Mode     string   `json:"mode"`
	Rounds   int      `json:"rounds"`
	Duration string   `json:"duration"`
	Setups   []string `json:"setups"`
	Plan     pubPlan  `json:"plan"`
	// XDPMode is how the uplink's XDP program is attached in ebpf-xdp
	// (`ip link`: xdp = native, xdpgeneric = the generic, slower hook).
	XDPMode    string        `json:"xdp_mode,omitempty"`
	Samples    []Sample      `json:"samples"`
	Summary    []PublishStat `json:"summary"`
	Targets    []Target      `json:"targets"`
	Sequential []PubSeqStat  `json:"sequential,omitempty"`
	Scale      []PubScale    `json:"scale,omitempty"`
}

// PublishStat summarises one setup and metric; ratios are of medians.
type PublishStat struct {
	Setup    string   `json:"setup"`
	Metric   string   `json:"metric"`
	N        int      `json:"n"`
	Median   float64  `json:"median"`
	Min      float64  `json:"min"`
	Max      float64  `json:"max"`
	VsProxy  *float64 `json:"vs_docker_proxy,omitempty"`
	VsDNAT   *float64 `json:"vs_docker_dnat,omitempty"`
	VsRouted *float64 `json:"vs_routed,omitempty"`
}

// PubSeqStat is one setup's sequential run.
type PubSeqStat struct {
	Setup string `json:"setup"`
	pubConnResult
	// Bounded is set when the time bound ended the run before the count.
	Bounded bool   `json:"bounded,omitempty"`
	Error   string `json:"error,omitempty"`
}

// PubScale is one setup's cost of published ports.
type PubScale struct {
	Setup string `json:"setup"`
	// CreateMS is `container create` (netd) or `docker run -d` (Docker)
	// without ports; RangeMS the same with a RangePorts-port range.
	CreateMS   float64 `json:"create_ms"`
	RangePorts int     `json:"range_ports"`
	RangeMS    float64 `json:"range_ms"`
	// Memory of the daemon (Docker: dockerd plus its docker-proxy
	// processes) before and after publishing RSSPorts more ports.
	RSSPorts int    `json:"rss_ports"`
	Before   pubMem `json:"before"`
	After    pubMem `json:"after"`
	// Processes is the docker-proxy count after (Docker), 0 for netd.
	Processes int    `json:"processes,omitempty"`
	Error     string `json:"error,omitempty"`
}

// pubTarget is what the measurements of one setup talk to.
type pubTarget struct {
	clientNS, hostNS, serverNS string
	remote                     string // ip:port the client connects to
	local                      string // ip:port a host process connects to; empty: not measured
}

// pubSetup is one way of publishing a container port.
type pubSetup interface {
	name() string
	// up builds the setup; on error the caller still calls down.
	up(ctx context.Context) error
	down()
	target() pubTarget
	// create times creating one more container with ports published
	// (first..first+n-1 to the same ports; n == 0: none).
	create(ctx context.Context, name string, first, n int) (time.Duration, error)
	// mem is the memory of the daemon and its helpers and how many helper
	// processes there are.
	mem() (pubMem, int, error)
}

// publishRun measures the publish setups, in labs of their own.
type publishRun struct {
	self, netdBin, prefix, logDir string
	mode                          string
	rounds                        int
	duration                      time.Duration
	setups                        []string
	prog                          *progress
}

func newPublishRun(self, prefix string, o options, prog *progress) *publishRun {
	return &publishRun{self: self, netdBin: o.netdBin, prefix: prefix, logDir: o.out, mode: o.publish,
		rounds: o.rounds, duration: o.duration, setups: o.publishSetups, prog: prog}
}

func (r *publishRun) newSetup(name string) pubSetup {
	prefix := r.prefix + pubLetters[name]
	switch name {
	case pubTC, pubXDP, pubKernel:
		return &netdPub{setup: name, prefix: prefix, netdBin: r.netdBin, logDir: r.logDir}
	case pubProxy, pubDNAT:
		return &dockerPub{setup: name, prefix: prefix, netdBin: r.netdBin, logDir: r.logDir}
	default:
		return &routedPub{prefix: prefix, netdBin: r.netdBin}
	}
}

// pubTest is one measurement of a round.
type pubTest struct {
	name string
	run  func(ctx context.Context, t pubTarget) (vals, extra map[string]float64, err error)
	// skip says a setup has nothing to measure here.
	skip func(setup string, t pubTarget) bool
}

func (r *publishRun) tests() []pubTest {
	d := r.duration
	return []pubTest{
		{name: "conn rate", run: func(ctx context.Context, t pubTarget) (map[string]float64, map[string]float64, error) {
			res, err := r.connRate(ctx, t.clientNS, t, t.remote)
			if err != nil {
				return nil, nil, err
			}
			return map[string]float64{pubMetricCRR: res.Rate / 1e3}, res.extra(), nil
		}},
		{name: "rr latency", run: func(ctx context.Context, t pubTarget) (map[string]float64, map[string]float64, error) {
			srv, err := r.serve(ctx, t, d)
			if err != nil {
				return nil, nil, err
			}
			defer srv.stop()
			var res pubRRResult
			if err := r.client(ctx, t.clientNS, d, &res, "pub-rr", "--dst", t.remote, "--duration", d.String()); err != nil {
				return nil, nil, err
			}
			return map[string]float64{pubMetricP50: res.P50, pubMetricP99: res.P99},
				map[string]float64{"round_trips": float64(res.Count), "max_us": res.Max}, nil
		}},
		{name: "localhost conn rate", run: func(ctx context.Context, t pubTarget) (map[string]float64, map[string]float64, error) {
			res, err := r.connRate(ctx, t.hostNS, t, t.local)
			if err != nil {
				return nil, nil, err
			}
			return map[string]float64{pubMetricLocal: res.Rate / 1e3}, res.extra(), nil
		}, skip: func(setup string, t pubTarget) bool {
			// ebpf-xdp's host side is ebpf-tc's: the same socket hooks.
			return t.local == "" || setup == pubXDP
		}},
	}
}

// connRate runs the server in the container and a connection-rate client
// in ns against dst for the run's duration; the client resets each
// connection after the response, so no side keeps TIME_WAIT, whatever
// proxy sits between.
func (r *publishRun) connRate(ctx context.Context, ns string, t pubTarget, dst string) (pubConnResult, error) {
	var res pubConnResult
	srv, err := r.serve(ctx, t, r.duration)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	err = r.client(ctx, ns, r.duration, &res, "pub-crr", "--dst", dst, "--duration", r.duration.String(), "--close", "reset")
	return res, err
}

// serve starts pub-serve in the container's namespace, bounded to d plus
// a margin.
func (r *publishRun) serve(ctx context.Context, t pubTarget, d time.Duration) (*server, error) {
	// Not pinned: with client and server on one CPU, docker-proxy, the
	// third process, would pay two cross-CPU wake-ups per message and
	// fall to a third of its unpinned rate.
	p := Pair{ServerNS: t.serverNS}
	return startServer(ctx, p, true, "tcp", pubCtrPort, r.self, "pub-serve",
		"--listen", fmt.Sprintf("0.0.0.0:%d", pubCtrPort), "--max", (d + 30*time.Second).String())
}

// client runs one of the bench's client sub-commands in ns and decodes its
// JSON line into out.
func (r *publishRun) client(ctx context.Context, ns string, d time.Duration, out any, args ...string) error {
	p := Pair{ClientNS: ns}
	b, err := runClient(ctx, p, d+30*time.Second, r.self, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("parse %s output %q: %w", args[0], oneLine(string(b), 200), err)
	}
	return nil
}

// run measures every setup; it returns what it measured, a failure per
// thing that did not work (also when it stops part-way) and the
// measurements that failed once and were run again.
func (r *publishRun) run(ctx context.Context) (res *PublishResult, fails, retried []Failure) {
	plan := publishPlan(r.mode)
	res = &PublishResult{Mode: r.mode, Rounds: r.rounds, Duration: r.duration.String(), Setups: r.setups, Plan: plan,
		Samples: []Sample{}, Targets: []Target{}}
	fail := func(round int, setup, metric string, err error) {
		fails = append(fails, Failure{Round: round, Setup: "publish/" + setup, Metric: metric, Error: err.Error()})
	}
	var live []pubSetup
	defer func() {
		for i := len(live) - 1; i >= 0; i-- {
			r.prog.show("publish  tearing down %s", live[i].name())
			live[i].down()
		}
	}()
	for _, name := range r.setups {
		if ctx.Err() != nil {
			break
		}
		s := r.newSetup(name)
		r.prog.show("publish  setting up %s", name)
		upCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := s.up(upCtx)
		cancel()
		if err != nil {
			fail(0, name, "", fmt.Errorf("set up: %w", err))
			s.down()
			continue
		}
		if x, ok := s.(*netdPub); ok && x.xdpMode != "" {
			res.XDPMode = x.xdpMode
		}
		live = append(live, s)
	}

	tests := r.tests()
	total, step := r.rounds*len(tests)*len(live), 0
rounds:
	for round := 1; round <= r.rounds; round++ {
		for _, t := range tests {
			for _, s := range live {
				if ctx.Err() != nil {
					break rounds
				}
				step++
				tg := s.target()
				if t.skip != nil && t.skip(s.name(), tg) {
					continue
				}
				r.prog.show("publish [%d/%d] round %d/%d  %-12s  %s", step, total, round, r.rounds, s.name(), t.name)
				vals, extra, err := t.run(ctx, tg)
				if err != nil && ctx.Err() == nil {
					// One retry, as the main rounds do; the first error is kept.
					retried = append(retried, Failure{Round: round, Setup: "publish/" + s.name(), Metric: t.name, Error: err.Error()})
					vals, extra, err = t.run(ctx, tg)
				}
				if err != nil {
					if ctx.Err() != nil {
						break rounds
					}
					fail(round, s.name(), t.name, err)
					continue
				}
				for _, m := range pubMetrics {
					if v, ok := vals[m.Key]; ok {
						res.Samples = append(res.Samples, Sample{Round: round, Setup: s.name(), Metric: m.Key, Value: v, At: time.Now(), Extra: extra})
					}
				}
			}
		}
	}
	res.Summary = pubSummarize(res.Samples, r.setups)
	res.Targets = pubCheckTargets(res.Summary)

	for _, s := range live {
		if ctx.Err() != nil || !contains(pubSeqSetups, s.name()) {
			continue
		}
		r.prog.show("publish  %s: %d sequential connections", s.name(), plan.SeqConns)
		st := r.sequential(ctx, s.target(), plan)
		st.Setup = s.name()
		if st.Error != "" {
			fail(0, s.name(), "sequential", errors.New(st.Error))
		}
		res.Sequential = append(res.Sequential, st)
	}
	for _, s := range live {
		if ctx.Err() != nil {
			break
		}
		st := r.scale(ctx, s, plan)
		if st.Error != "" {
			fail(0, s.name(), "published ports", errors.New(st.Error))
		}
		res.Scale = append(res.Scale, st)
	}
	return res, fails, retried
}

// sequential opens plan.SeqConns connections one after the other; the
// client closes each with a FIN after the response, as most clients do.
func (r *publishRun) sequential(ctx context.Context, t pubTarget, plan pubPlan) PubSeqStat {
	var st PubSeqStat
	srv, err := r.serve(ctx, t, plan.SeqMax)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	defer srv.stop()
	err = r.client(ctx, t.clientNS, plan.SeqMax, &st.pubConnResult, "pub-crr", "--dst", t.remote, "--count", strconv.Itoa(plan.SeqConns),
		"--slice", strconv.Itoa(plan.SeqSlice), "--duration", plan.SeqMax.String(), "--close", "fin")
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Bounded = st.Attempts < uint64(plan.SeqConns)
	return st
}

// scale times a container without ports and one with a RangePorts range,
// then reads the daemon's RSS before and after publishing more ports
// (netd: NetdPorts in one more container; Docker: the range itself).
func (r *publishRun) scale(ctx context.Context, s pubSetup, plan pubPlan) PubScale {
	st := PubScale{Setup: s.name(), RangePorts: plan.RangePorts}
	if _, ok := s.(*routedPub); ok {
		return st
	}
	r.prog.show("publish  %s: timing container create without ports", s.name())
	d, err := s.create(ctx, "plain", 0, 0)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.CreateMS = ms(d)
	_, docker := s.(*dockerPub)
	if docker {
		st.RSSPorts = plan.RangePorts
		if st.Before, _, err = s.mem(); err != nil {
			st.Error = err.Error()
			return st
		}
	}
	r.prog.show("publish  %s: timing container create with a %d-port range", s.name(), plan.RangePorts)
	if d, err = s.create(ctx, "range", pubRangeFirst, plan.RangePorts); err != nil {
		st.Error = err.Error()
		return st
	}
	st.RangeMS = ms(d)
	if !docker {
		st.RSSPorts = plan.NetdPorts
		if st.Before, _, err = s.mem(); err != nil {
			st.Error = err.Error()
			return st
		}
		r.prog.show("publish  %s: publishing %d ports", s.name(), plan.NetdPorts)
		if _, err := s.create(ctx, "many", pubRSSFirst, plan.NetdPorts); err != nil {
			st.Error = err.Error()
			return st
		}
	}
	if st.After, st.Processes, err = s.mem(); err != nil {
		st.Error = err.Error()
	}
	return st
}

// portSpec is -p's argument for n ports from first, the same on both sides.
func portSpec(first, n int) string {
	if n == 1 {
		return fmt.Sprintf("%d:%d", first, first)
	}
	last := first + n - 1
	return fmt.Sprintf("%d-%d:%d-%d", first, last, first, last)
}

// pubScaleTimeout bounds one container create of the scale part.
const pubScaleTimeout = 5 * time.Minute

// pubLab is a lab with a host namespace and a client wired to its uplink.
func pubLab(netdBin, prefix string) (*lab.Lab, *lab.Host, *lab.Host, error) {
	l, err := lab.New(nil, lab.Options{Prefix: prefix, NetdBin: netdBin, LogLevel: "info"})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create lab: %w", err)
	}
	host, err := l.Host("host")
	if err != nil {
		return l, nil, nil, fmt.Errorf("create lab host: %w", err)
	}
	cl, err := l.Host("cl")
	if err != nil {
		return l, nil, nil, fmt.Errorf("create lab host: %w", err)
	}
	if err := l.Wire(cl, host, pubUplinkIF, pubClientAddr+"/24", pubHostAddr+"/24"); err != nil {
		return l, nil, nil, fmt.Errorf("wire the uplink: %w", err)
	}
	// The client computes its checksums, as frames from a real wire carry
	// them: XDP cannot complete the partial ones a veth offloads, and every
	// setup gets the same client.
	if out, err := exec.Command("ip", "netns", "exec", cl.NS(), "ethtool", "-K", pubUplinkIF, "tx", "off").CombinedOutput(); err != nil {
		return l, nil, nil, fmt.Errorf("ethtool -K %s tx off in the client: %v: %s", pubUplinkIF, err, out)
	}
	return l, host, cl, nil
}

// netdPub is a netd daemon in the host namespace with a bridge network and
// a container publishing pubHostPort.
type netdPub struct {
	setup, prefix, netdBin, logDir string
	lab                            *lab.Lab
	host, cl                       *lab.Host
	xdpMode                        string // ebpf-xdp: "xdp" or "xdpgeneric", from ip link
}

func (s *netdPub) name() string { return s.setup }

func (s *netdPub) dataplane() string {
	if s.setup == pubKernel {
		return "kernel"
	}
	return "ebpf"
}

func (s *netdPub) target() pubTarget {
	return pubTarget{clientNS: s.cl.NS(), hostNS: s.host.NS(), serverNS: s.host.ContainerNS(pubServer),
		remote: fmt.Sprintf("%s:%d", pubHostAddr, pubHostPort), local: fmt.Sprintf("127.0.0.1:%d", pubHostPort)}
}

func (s *netdPub) up(ctx context.Context) error {
	if _, err := os.Stat(s.netdBin); err != nil {
		return fmt.Errorf("find netd binary (--netd or NETD_BIN): %w", err)
	}
	var err error
	if s.lab, s.host, s.cl, err = pubLab(s.netdBin, s.prefix); err != nil {
		return err
	}
	args := []string{"--dataplane", s.dataplane()}
	if s.dataplane() == "ebpf" {
		args = append(args, "--publish-ifaces", pubUplinkIF)
	}
	if s.setup == pubXDP {
		args = append(args, "--xdp-publish")
	}
	if err := s.host.StartDaemon(args...); err != nil {
		return err
	}
	if err := netdOn(s.host, "network", "create", "-o", "netd.dataplane="+s.dataplane(), "--subnet", pubSubnets[s.setup], pubNetwork); err != nil {
		return fmt.Errorf("%w%s", err, logTail(s.host))
	}
	if err := netdOn(s.host, "container", "create", "--network", pubNetwork, "-p", fmt.Sprintf("%d:%d", pubHostPort, pubCtrPort), pubServer); err != nil {
		return fmt.Errorf("%w%s", err, logTail(s.host))
	}
	if s.setup == pubXDP {
		// Without it the XDP row would silently be the TC one.
		out, err := run(ctx, 10*time.Second, "ip", "-n", s.host.NS(), "link", "show", pubUplinkIF)
		if err != nil {
			return err
		}
		if s.xdpMode = xdpModeOf(out); s.xdpMode == "" {
			return fmt.Errorf("no XDP program on the uplink %s with --xdp-publish: %s", pubUplinkIF, oneLine(out, 300))
		}
	}
	return nil
}

// xdpModeOf returns the XDP attach mode `ip link show` prints ("xdp" for
// native, "xdpgeneric", "xdpoffload"), or "" without one.
func xdpModeOf(ipLink string) string {
	for _, f := range strings.Fields(ipLink) {
		switch f {
		case "xdp", "xdpgeneric", "xdpoffload", "xdpdrv", "xdpmulti":
			return f
		}
	}
	return ""
}

func (s *netdPub) create(ctx context.Context, name string, first, n int) (time.Duration, error) {
	args := []string{"-H", s.host.HostURL(), "container", "create", "--network", pubNetwork}
	if n > 0 {
		args = append(args, "-p", portSpec(first, n))
	}
	args = append(args, name)
	start := time.Now()
	if _, err := run(ctx, pubScaleTimeout, "nsenter", append([]string{"--net=" + s.host.NSPath(), "--", s.netdBin}, args...)...); err != nil {
		return 0, fmt.Errorf("%w%s", err, logTail(s.host))
	}
	return time.Since(start), nil
}

func (s *netdPub) mem() (pubMem, int, error) {
	pid := s.host.DaemonPID()
	if pid == 0 {
		return pubMem{}, 0, errors.New("read daemon memory: the daemon is not running")
	}
	m, err := procMem(pid)
	return m, 0, err
}

func (s *netdPub) down() {
	if s.lab == nil {
		return
	}
	if s.host != nil {
		keepLogs(s.logDir, "publish-"+s.setup, []*lab.Host{s.host})
	}
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup publish %s: %v\n", s.setup, err)
	}
	s.lab = nil
}

// dockerPub is the real Docker engine in the host namespace with a user
// bridge network and a container publishing pubHostPort. docker-proxy runs
// with --iptables=false: with iptables on, Docker DNATs connections from
// other hosts whatever userland-proxy says, and its proxy carries only the
// host's own and hairpin connections; off, every connection goes through
// the proxy. docker-dnat runs with --userland-proxy=false: DNAT for the
// host's own connections too.
type dockerPub struct {
	setup, prefix, netdBin, logDir string
	lab                            *lab.Lab
	host, cl                       *lab.Host
	eng                            *dockerlab.Engine
	img                            string
}

func (s *dockerPub) name() string { return s.setup }

func (s *dockerPub) target() pubTarget {
	return pubTarget{clientNS: s.cl.NS(), hostNS: s.host.NS(), serverNS: s.host.ContainerNS(pubServer),
		remote: fmt.Sprintf("%s:%d", pubHostAddr, pubHostPort), local: fmt.Sprintf("127.0.0.1:%d", pubHostPort)}
}

func (s *dockerPub) up(ctx context.Context) error {
	var err error
	if s.lab, s.host, s.cl, err = pubLab(s.netdBin, s.prefix); err != nil {
		return err
	}
	args := []string{"--iptables=false"}
	if s.setup == pubDNAT {
		args = []string{"--userland-proxy=false"}
	}
	if s.eng, err = dockerlab.Start(ctx, dockerlab.Options{NetNS: s.host.NS(), Dir: filepath.Join(s.lab.Dir, "docker"), DockerdArgs: args}); err != nil {
		return err
	}
	if s.img, err = s.eng.Image(ctx); err != nil {
		return err
	}
	if _, err := s.eng.Docker(ctx, "network", "create", "--driver", "bridge", "--subnet", pubSubnets[s.setup], pubNetwork); err != nil {
		return err
	}
	if _, err := s.create(ctx, pubServer, 0, 0); err != nil {
		return err
	}
	return s.eng.AttachNetns(ctx, pubServer, s.host.ContainerNS(pubServer))
}

// create runs a container that only holds its namespace (a day outlasts
// any run); the bench container publishes pubHostPort.
func (s *dockerPub) create(ctx context.Context, name string, first, n int) (time.Duration, error) {
	args := []string{"run", "-d", "--name", name, "--network", pubNetwork}
	switch {
	case name == pubServer:
		args = append(args, "-p", fmt.Sprintf("%d:%d", pubHostPort, pubCtrPort))
	case n > 0:
		args = append(args, "-p", portSpec(first, n))
	}
	args = append(args, s.img, "sleep", "86400")
	ctx, cancel := context.WithTimeout(ctx, pubScaleTimeout)
	defer cancel()
	start := time.Now()
	stdout, stderr, code, err := s.eng.DockerCLI(ctx, nil, args...)
	d := time.Since(start)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d: %s", code, strings.TrimSpace(stderr+stdout))
	}
	if err != nil {
		return 0, fmt.Errorf("docker %s: %w\n--- dockerd log (tail) ---\n%s", strings.Join(args, " "), err, s.eng.LogTail(10))
	}
	return d, nil
}

// mem sums dockerd's and its docker-proxy children's memory: the proxies
// are what a published port costs with the userland proxy.
func (s *dockerPub) mem() (pubMem, int, error) {
	b, err := os.ReadFile(filepath.Join(s.eng.Dir, "dockerd.pid"))
	if err != nil {
		return pubMem{}, 0, fmt.Errorf("read dockerd pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return pubMem{}, 0, fmt.Errorf("read dockerd pid: %w", err)
	}
	total, err := procMem(pid)
	if err != nil {
		return total, 0, err
	}
	kids := childrenNamed(pid, "docker-proxy")
	for _, k := range kids {
		if m, err := procMem(k); err == nil {
			total.add(m)
		}
	}
	return total, len(kids), nil
}

func (s *dockerPub) down() {
	if s.eng != nil {
		for src, dst := range map[string]string{s.eng.DockerdLog: "docker-" + s.setup + "-dockerd.log"} {
			if b, err := os.ReadFile(src); err == nil {
				_ = os.MkdirAll(s.logDir, 0o755)
				_ = os.WriteFile(filepath.Join(s.logDir, dst), b, 0o644)
			}
		}
		if err := s.eng.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup publish %s: %v\n", s.setup, err)
		}
		s.eng = nil
	}
	if s.lab != nil {
		if err := s.lab.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup publish %s lab: %v\n", s.setup, err)
		}
		s.lab = nil
	}
}

// routedPub is the same topology without NAT and without a daemon: the
// host forwards from the uplink to a Linux bridge with the server's veth,
// and the client connects to the server's own address.
type routedPub struct {
	prefix, netdBin string
	lab             *lab.Lab
	host, cl, srv   *lab.Host
}

func (s *routedPub) name() string { return pubRouted }

func (s *routedPub) target() pubTarget {
	dst := fmt.Sprintf("%s:%d", pubRoutedSrv, pubCtrPort)
	// The host's own connections go to the server's address too: the
	// reference for host → localhost:PORT.
	return pubTarget{clientNS: s.cl.NS(), hostNS: s.host.NS(), serverNS: s.srv.NS(), remote: dst, local: dst}
}

func (s *routedPub) up(ctx context.Context) error {
	var err error
	if s.lab, s.host, s.cl, err = pubLab(s.netdBin, s.prefix); err != nil {
		return err
	}
	if s.srv, err = s.lab.Host("srv"); err != nil {
		return fmt.Errorf("create lab host: %w", err)
	}
	h, srv := s.host.NS(), s.srv.NS()
	steps := [][]string{
		{"ip", "-n", h, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", h, "addr", "add", pubRoutedGW + "/24", "dev", "br0"},
		{"ip", "-n", h, "link", "set", "br0", "up"},
		{"ip", "-n", h, "link", "add", "vsrv", "type", "veth", "peer", "name", "eth0", "netns", srv},
		{"ip", "-n", h, "link", "set", "vsrv", "master", "br0", "up"},
		{"ip", "-n", srv, "addr", "add", pubRoutedSrv + "/24", "dev", "eth0"},
		{"ip", "-n", srv, "link", "set", "eth0", "up"},
		{"ip", "-n", srv, "route", "add", "default", "via", pubRoutedGW},
		{"ip", "-n", s.cl.NS(), "route", "add", pubRoutedSubnet, "via", pubHostAddr},
		// The lab host's own namespace, never the root one.
		{"nsenter", "--net=" + s.host.NSPath(), "--", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	}
	for _, st := range steps {
		if _, err := run(ctx, 10*time.Second, st[0], st[1:]...); err != nil {
			return fmt.Errorf("set up routing: %w", err)
		}
	}
	return nil
}

func (s *routedPub) create(context.Context, string, int, int) (time.Duration, error) {
	return 0, errors.New("the routed setup has no daemon")
}

func (s *routedPub) mem() (pubMem, int, error) {
	return pubMem{}, 0, errors.New("the routed setup has no daemon")
}

func (s *routedPub) down() {
	if s.lab == nil {
		return
	}
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup publish %s: %v\n", pubRouted, err)
	}
	s.lab = nil
}

// pubMem is the memory of a set of processes in KiB: RSS counts the pages
// they share (a binary's text) once per process, PSS splits them.
type pubMem struct {
	RSSKB uint64 `json:"rss_kb"`
	PSSKB uint64 `json:"pss_kb"`
}

func (m *pubMem) add(o pubMem) { m.RSSKB += o.RSSKB; m.PSSKB += o.PSSKB }

// procMem reads a process's Rss and Pss from /proc/PID/smaps_rollup.
func procMem(pid int) (pubMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return pubMem{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	m, err := parseRollup(string(b))
	if err != nil {
		return m, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	return m, nil
}

func parseRollup(s string) (pubMem, error) {
	var m pubMem
	var seen int
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "Rss:" && f[0] != "Pss:") {
			continue
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse %q: %w", line, err)
		}
		if f[0] == "Rss:" {
			m.RSSKB = kb
		} else {
			m.PSSKB = kb
		}
		seen++
	}
	if seen != 2 {
		return m, errors.New("no Rss and Pss lines in smaps_rollup")
	}
	return m, nil
}

// childrenNamed lists the processes whose parent is ppid and whose command
// name is comm.
func childrenNamed(ppid int, comm string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if name, parent, ok := parseStat(string(b)); ok && parent == ppid && name == comm {
			out = append(out, pid)
		}
	}
	return out
}

// parseStat takes the command name and the parent pid from /proc/PID/stat
// ("pid (comm) state ppid ..."; comm may hold spaces and parentheses).
func parseStat(stat string) (string, int, bool) {
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(stat[end+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return "", 0, false
	}
	return stat[open+1 : end], ppid, true
}

// pubSummarize is one PublishStat per setup and metric with samples.
func pubSummarize(samples []Sample, setups []string) []PublishStat {
	vals := map[[2]string][]float64{}
	for _, s := range samples {
		k := [2]string{s.Setup, s.Metric}
		vals[k] = append(vals[k], s.Value)
	}
	med := func(setup, metric string) float64 { return median(vals[[2]string{setup, metric}]) }
	var out []PublishStat
	for _, setup := range setups {
		for _, m := range pubMetrics {
			xs := vals[[2]string{setup, m.Key}]
			if len(xs) == 0 {
				continue
			}
			lo, hi := minMax(xs)
			st := PublishStat{Setup: setup, Metric: m.Key, N: len(xs), Median: median(xs), Min: lo, Max: hi}
			if setup != pubProxy {
				st.VsProxy = ratio(st.Median, med(pubProxy, m.Key))
			}
			if setup != pubDNAT {
				st.VsDNAT = ratio(st.Median, med(pubDNAT, m.Key))
			}
			if setup != pubRouted {
				st.VsRouted = ratio(st.Median, med(pubRouted, m.Key))
			}
			out = append(out, st)
		}
	}
	return out
}

// pubCheckTargets fills Ratio and Achieved of each target whose setups
// were both measured.
func pubCheckTargets(stats []PublishStat) []Target {
	med := map[[2]string]float64{}
	for _, s := range stats {
		med[[2]string{s.Setup, s.Metric}] = s.Median
	}
	return evalTargets(pubTargets, med)
}

// writePublishTable renders the publish run.
func writePublishTable(w io.Writer, r *PublishResult) error {
	if r == nil {
		return nil
	}
	fmt.Fprintf(w, "\nPort publishing (issue 11): a client in another namespace connects to the host's uplink address at\n"+
		"port %d, published to a container's %d (routed: to the container's address, no NAT); medians of %d\n"+
		"interleaved round(s) of %s; ratios of medians\n", pubHostPort, pubCtrPort, r.Rounds, r.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tSETUP\tN\tMEDIAN\tMIN–MAX\tvs DOCKER-PROXY\tvs DOCKER-DNAT\tvs ROUTED\t")
	for _, m := range pubMetrics {
		better := "higher is better"
		if !m.HigherBetter {
			better = "lower is better"
		}
		first := true
		for _, s := range r.Summary {
			if s.Metric != m.Key {
				continue
			}
			label := ""
			if first {
				label, first = fmt.Sprintf("%s (%s, %s)", m.Title, m.Unit, better), false
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s–%s\t%s\t%s\t%s\t\n", label, s.Setup, s.N, formatValue(s.Median),
				formatValue(s.Min), formatValue(s.Max), formatRatio(s.VsProxy), formatRatio(s.VsDNAT), formatRatio(s.VsRouted))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write publish table: %w", err)
	}
	fmt.Fprint(w, `Connection rate: one client, a new TCP connection per 64-byte request and response, reset by the client
  after the response (no TIME_WAIT on any side, whatever sits between); nothing pinned (pinned with the
  server on one CPU, docker-proxy falls to a third). RR latency: 64-byte round trips over one persistent
  connection.
  Host → localhost: the client in the host namespace connects to 127.0.0.1:PORT (routed: to the
  container's address); ebpf-xdp's host path is ebpf-tc's (the same socket hooks) and is not repeated.
  docker-proxy: dockerd --iptables=false, so every connection goes through the proxy (with iptables on,
  Docker DNATs other hosts' connections and its proxy carries only the host's own and hairpin ones);
  docker-dnat: dockerd --userland-proxy=false.
`)
	if r.XDPMode != "" {
		fmt.Fprintf(w, "  ebpf-xdp: the uplink's XDP program is attached as %q (ip link).\n", r.XDPMode)
	}
	var checked []Target
	for _, t := range r.Targets {
		if t.Achieved != nil {
			checked = append(checked, t)
		}
	}
	if len(checked) > 0 {
		fmt.Fprintln(w, "Targets (issue 11, connection rate, ratios of medians):")
		for _, t := range checked {
			mark := "MISS"
			if *t.Achieved {
				mark = "ok"
			}
			fmt.Fprintf(w, "  %-4s  %-46s measured %s\n", mark, t.Desc, formatRatio(t.Ratio))
		}
	}
	if err := writePubSeqTable(w, r.Sequential); err != nil {
		return err
	}
	return writePubScaleTable(w, r.Scale)
}

func writePubSeqTable(w io.Writer, seq []PubSeqStat) error {
	if len(seq) == 0 {
		return nil
	}
	slice := 0
	for _, s := range seq {
		if len(s.Slices) > 0 {
			slice = s.Slices[0].Attempts
		}
	}
	fmt.Fprintf(w, "\nSequential connections, one after the other, closed by the client with a FIN after the response\n"+
		"(the server resets after it): p99 in µs of each slice of %d (failed attempts in brackets); flat is good.\n"+
		"docker-proxy does not pass the server's reset on: it closes the client's connection itself after the\n"+
		"client's FIN, so the client keeps every connection in TIME_WAIT (60 s) and runs out of ports at ~28k.\n", slice)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	n := 0
	for _, s := range seq {
		n = max(n, len(s.Slices))
	}
	fmt.Fprint(tw, "SETUP\tCONNECTIONS\tFAILED\tCONN/S\t")
	for i := 0; i < n; i++ {
		fmt.Fprintf(tw, "%d\t", i+1)
	}
	fmt.Fprintln(tw, "CLIENT TIME_WAIT\t")
	for _, s := range seq {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t", s.Setup, s.Connections, s.Failed, formatValue(s.Rate))
		for i := 0; i < n; i++ {
			if i >= len(s.Slices) {
				fmt.Fprint(tw, "-\t")
				continue
			}
			sl := s.Slices[i]
			cell := formatValue(sl.P99)
			if sl.Failed > 0 {
				cell += fmt.Sprintf(" (%d)", sl.Failed)
			}
			fmt.Fprintf(tw, "%s\t", cell)
		}
		fmt.Fprintf(tw, "%d\t\n", s.TimeWait)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write sequential table: %w", err)
	}
	for _, s := range seq {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "FAILED %s: %s\n", s.Setup, oneLine(s.Error, 300))
		case s.Bounded:
			fmt.Fprintf(w, "%s: stopped by the time bound after %d attempts\n", s.Setup, s.Attempts)
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "%s: last failure: %s\n", s.Setup, oneLine(s.LastError, 200))
		}
	}
	return nil
}

func writePubScaleTable(w io.Writer, sc []PubScale) error {
	var rows []PubScale
	for _, s := range sc {
		if s.CreateMS > 0 || s.Error != "" {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nPublished ports: time of `container create` (Docker: `docker run -d`) without ports and with a port range;\n"+
		"daemon memory before and after publishing PORTS more ports (netd: one more container; Docker: the range\n"+
		"itself, dockerd plus its docker-proxy processes; RSS counts their shared pages once per process, PSS splits them)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETUP\tCREATE (no -p)\tCREATE -p RANGE\tPORTS\tRSS BEFORE\tRSS AFTER\tRSS PER PORT\tPSS PER PORT\tDOCKER-PROXY PROCESSES\t")
	for _, s := range rows {
		if s.Error != "" && s.After.RSSKB == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t-\t-\t-\t-\t-\t\n", s.Setup, msOrDash(s.CreateMS), rangeCell(s), s.RSSPorts)
			continue
		}
		procs := "-"
		if s.Setup == pubProxy || s.Setup == pubDNAT {
			procs = strconv.Itoa(s.Processes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", s.Setup, msOrDash(s.CreateMS), rangeCell(s), s.RSSPorts,
			formatBytes(float64(s.Before.RSSKB)*1024), formatBytes(float64(s.After.RSSKB)*1024),
			perPort(s.Before.RSSKB, s.After.RSSKB, s.RSSPorts), perPort(s.Before.PSSKB, s.After.PSSKB, s.RSSPorts), procs)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write published-ports table: %w", err)
	}
	for _, s := range rows {
		if s.Error != "" {
			fmt.Fprintf(w, "FAILED %s: %s\n", s.Setup, oneLine(s.Error, 300))
		}
	}
	return nil
}

// perPort is the growth from before to after per port ("-" when it shrank).
func perPort(beforeKB, afterKB uint64, ports int) string {
	if ports <= 0 || afterKB < beforeKB {
		return "-"
	}
	return formatBytes(float64(afterKB-beforeKB) * 1024 / float64(ports))
}

func rangeCell(s PubScale) string {
	if s.RangeMS == 0 {
		return fmt.Sprintf("- (%d ports)", s.RangePorts)
	}
	return fmt.Sprintf("%s (%d ports)", msOrDash(s.RangeMS), s.RangePorts)
}

func msOrDash(v float64) string {
	if v == 0 {
		return "-"
	}
	return formatValue(v) + " ms"
}

// formatBytes prints a size in KiB, MiB or GiB with about three digits.
func formatBytes(b float64) string {
	switch {
	case b >= 1<<30:
		return formatValue(b/(1<<30)) + " GiB"
	case b >= 1<<20:
		return formatValue(b/(1<<20)) + " MiB"
	default:
		return formatValue(b/(1<<10)) + " KiB"
	}
}

// pubColors are the publish setups' colours in publish.svg: netd's hues
// as in chart.svg, Docker's orange, the reference grey.
var pubColors = map[string]string{
	pubTC: "#2e7d32", pubXDP: "#66bb6a", pubKernel: "#1565c0",
	pubProxy: "#ef6c00", pubDNAT: "#ffa726", pubRouted: "#9e9e9e",
}

func init() {
	for k, v := range pubColors {
		setupColors[k] = v
	}
}

// renderPublishSVG draws one panel per publish metric, bars as in
// chart.svg; the ratio under a bar is to docker-proxy.
func renderPublishSVG(r *PublishResult, title string) []byte {
	var stats []Stat
	for _, s := range r.Summary {
		stats = append(stats, Stat{Setup: s.Setup, Metric: s.Metric, N: s.N, Median: s.Median, Min: s.Min, Max: s.Max, VsDocker: s.VsProxy})
	}
	var panels []Metric
	for _, m := range pubMetrics {
		for _, s := range stats {
			if s.Metric == m.Key {
				panels = append(panels, m)
				break
			}
		}
	}
	rows := max(1, (len(panels)+panelCols-1)/panelCols)
	width, height := panelW*panelCols, panelH*rows+56
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" text-anchor="middle">%s</text>`+"\n", width/2, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="42" text-anchor="middle" fill="#555555">%s</text>`+"\n", width/2,
		esc("ratios under the bars: to docker-proxy; routed: the client to the container's address, no NAT"))
	for i, m := range panels {
		drawPanel(&b, float64((i%panelCols)*panelW), float64(56+(i/panelCols)*panelH), m, stats, r.Setups)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func writePublishSVG(path string, r *PublishResult, title string) error {
	if err := os.WriteFile(path, renderPublishSVG(r, title), 0o644); err != nil {
		return fmt.Errorf("write publish chart: %w", err)
	}
	return nil
}

// ---- the client and server sub-commands, run inside the lab namespaces ----

// pubConnResult is what pub-crr prints: latencies in µs of the connections
// that succeeded, each connect + request + response + close.
type pubConnResult struct {
	Attempts    uint64     `json:"attempts"`
	Connections uint64     `json:"connections"` // succeeded
	Failed      uint64     `json:"failed"`
	LastError   string     `json:"last_error,omitempty"`
	Seconds     float64    `json:"seconds"`
	Rate        float64    `json:"per_second"` // succeeded per second
	P50         float64    `json:"p50_us"`
	P99         float64    `json:"p99_us"`
	Max         float64    `json:"max_us"`
	TimeWait    uint64     `json:"client_time_wait"` // TIME_WAIT sockets in the client's namespace at the end
	Slices      []pubSlice `json:"slices,omitempty"`
}

func (r pubConnResult) extra() map[string]float64 {
	return map[string]float64{"connections": float64(r.Connections), "failed": float64(r.Failed),
		"conn_p50_us": r.P50, "conn_p99_us": r.P99, "conn_max_us": r.Max, "client_time_wait": float64(r.TimeWait)}
}

// pubSlice is one slice of consecutive attempts of a counted run.
type pubSlice struct {
	Attempts int     `json:"attempts"`
	Failed   int     `json:"failed"`
	Seconds  float64 `json:"seconds"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	Max      float64 `json:"max_us"`
}

// pubAttempt is one connection attempt: how long it took and whether it
// succeeded.
type pubAttempt struct {
	us float64
	ok bool
}

// summarizeAttempts fills the percentiles and, with slice > 0, the slices.
func summarizeAttempts(r *pubConnResult, atts []pubAttempt, slice int) {
	var okUS []float64
	for _, a := range atts {
		if a.ok {
			okUS = append(okUS, a.us)
		}
	}
	r.Attempts, r.Connections, r.Failed = uint64(len(atts)), uint64(len(okUS)), uint64(len(atts)-len(okUS))
	if r.Seconds > 0 {
		r.Rate = float64(len(okUS)) / r.Seconds
	}
	sort.Float64s(okUS)
	if len(okUS) > 0 {
		r.P50, r.P99, r.Max = percentile(okUS, 50), percentile(okUS, 99), okUS[len(okUS)-1]
	}
	if slice <= 0 {
		return
	}
	for start := 0; start < len(atts); start += slice {
		part := atts[start:min(start+slice, len(atts))]
		var s pubSlice
		var us []float64
		for _, a := range part {
			s.Seconds += a.us / 1e6
			if a.ok {
				us = append(us, a.us)
			} else {
				s.Failed++
			}
		}
		s.Attempts = len(part)
		sort.Float64s(us)
		if len(us) > 0 {
			s.P50, s.P99, s.Max = percentile(us, 50), percentile(us, 99), us[len(us)-1]
		}
		r.Slices = append(r.Slices, s)
	}
}

// runPubCRR opens connections to --dst one after the other: for
// --duration, or --count of them within --duration. --close reset aborts
// each connection after the response (RST: no TIME_WAIT anywhere), fin
// closes it as most clients do.
func runPubCRR(args []string) int {
	fs := flag.NewFlagSet("pub-crr", flag.ContinueOnError)
	dst := fs.String("dst", "", "server ip:port")
	size := fs.Int("size", 64, "request and response bytes")
	dur := fs.Duration("duration", 5*time.Second, "how long to run (with --count: the bound)")
	count := fs.Int("count", 0, "stop after this many attempts (0: at --duration)")
	slice := fs.Int("slice", 0, "report percentiles per slice of this many attempts")
	closeMode := fs.String("close", "reset", "reset or fin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sa, err := sockaddr(*dst)
	if err != nil || *size < 1 || *size > 65536 || *dur <= 0 || *count < 0 || *count > maxConns || *slice < 0 ||
		(*closeMode != "reset" && *closeMode != "fin") {
		fmt.Fprintln(os.Stderr, "pub-crr: bad --dst, --size, --duration, --count, --slice or --close:", err)
		return 2
	}
	abort := *closeMode == "reset"
	buf := make([]byte, *size)
	atts := make([]pubAttempt, 0, max(*count, 1<<16))
	var res pubConnResult
	consecutive := 0
	start := time.Now()
	deadline := start.Add(*dur)
	for time.Now().Before(deadline) && len(atts) < maxConns && (*count == 0 || len(atts) < *count) {
		t0 := time.Now()
		err := pubRequest(sa, buf, abort)
		atts = append(atts, pubAttempt{us: float64(time.Since(t0).Nanoseconds()) / 1e3, ok: err == nil})
		if err == nil {
			consecutive = 0
			continue
		}
		res.LastError = err.Error()
		consecutive++
		if *count == 0 && consecutive >= 100 {
			fmt.Fprintf(os.Stderr, "pub-crr: %d failed connections in a row to %s, last: %v\n", consecutive, *dst, err)
			return 1
		}
		// A counted run goes on through failures, which it reports; a
		// refused connect fails at once, so do not spin on it.
		time.Sleep(time.Millisecond)
	}
	res.Seconds = time.Since(start).Seconds()
	res.TimeWait = timeWaitCount()
	sl := 0
	if *count > 0 {
		sl = *slice
	}
	summarizeAttempts(&res, atts, sl)
	if res.Connections == 0 {
		fmt.Fprintf(os.Stderr, "pub-crr: no connection to %s succeeded: %s\n", *dst, res.LastError)
		return 1
	}
	return printJSON(res)
}

// pubRequest is one connection: connect, request, response, then reset
// (abort) or close.
func pubRequest(sa *unix.SockaddrInet4, buf []byte, abort bool) (err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer func() {
		if abort && err == nil {
			_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
		unix.Close(fd)
	}()
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 1})
	if err := connectFD(fd, sa); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := writeFull(fd, buf); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	if err := readFull(fd, buf); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	return nil
}

// pubRRResult is what pub-rr prints: round trips over one connection, µs.
type pubRRResult struct {
	Count   int     `json:"round_trips"`
	Seconds float64 `json:"seconds"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	Max     float64 `json:"max_us"`
}

// runPubRR sends --size-byte requests over one connection for --duration,
// each after the previous response.
func runPubRR(args []string) int {
	fs := flag.NewFlagSet("pub-rr", flag.ContinueOnError)
	dst := fs.String("dst", "", "server ip:port")
	size := fs.Int("size", 64, "request and response bytes")
	dur := fs.Duration("duration", 5*time.Second, "how long to run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sa, err := sockaddr(*dst)
	if err != nil || *size < 1 || *size > 65536 || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "pub-rr: bad --dst, --size or --duration:", err)
		return 2
	}
	res, err := pubRoundTrips(sa, *size, *dur)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pub-rr: %s: %v\n", *dst, err)
		return 1
	}
	return printJSON(res)
}

func pubRoundTrips(sa *unix.SockaddrInet4, size int, d time.Duration) (pubRRResult, error) {
	var res pubRRResult
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Sec: 1})
	// Small messages one at a time: Nagle would hold none back, but say so.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := connectFD(fd, sa); err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	buf := make([]byte, size)
	us := make([]float64, 0, 1<<16)
	start := time.Now()
	for deadline := start.Add(d); time.Now().Before(deadline) && len(us) < maxConns; {
		t0 := time.Now()
		if err := writeFull(fd, buf); err != nil {
			return res, fmt.Errorf("send request %d: %w", len(us)+1, err)
		}
		if err := readFull(fd, buf); err != nil {
			return res, fmt.Errorf("read response %d: %w", len(us)+1, err)
		}
		us = append(us, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	res.Seconds = time.Since(start).Seconds()
	sort.Float64s(us)
	res.Count = len(us)
	if len(us) > 0 {
		res.P50, res.P99, res.Max = percentile(us, 50), percentile(us, 99), us[len(us)-1]
	}
	return res, nil
}

// runPubServe answers --size-byte requests, any number per connection, one
// connection at a time, until --max has passed. At the client's FIN or
// reset it resets the connection, so it never keeps TIME_WAIT itself.
func runPubServe(args []string) int { return runServer("pub-serve", args, serveRequests) }

// serveRequests answers requests on fd until the client ends, then resets.
func serveRequests(fd int, buf []byte) {
	defer unix.Close(fd)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	for readFull(fd, buf) == nil && writeFull(fd, buf) == nil {
	}
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

func printJSON(v any) int {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "encode result:", err)
		return 1
	}
	return 0
}
