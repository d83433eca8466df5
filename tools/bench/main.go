//go:build linux

// Command bench measures netd's dataplanes side by side: a bridge network on the eBPF
// dataplane, one on the kernel dataplane (Linux bridge), the real Docker engine's
// user-defined bridge network, and a direct veth pair between two namespaces as the limit.
// Every setup lives in namespaces the bench creates and removes.
//
// Then the scale run times network create, rm and ls on each netd dataplane as
// a daemon's networks grow to each count of --scale, and the control-plane run
// times, on a 3-host cluster per overlay dataplane, how long after `container
// create` on one host another host reaches the new container (--controlplane),
// the DNS run times a container's queries to its embedded resolver (--dns),
// and the publish run measures published ports against Docker's (--publish).
//
//	go run ./tools/bench [--rounds N] [--duration D] [--only ebpf,kernel,docker,veth,ovl-kernel,...] [--scale 10,100,1000|none] [--controlplane 50] [--dns 4s] [--publish full|quick|none] [--out DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/dockerlab"
)

func main() {
	if len(os.Args) > 1 {
		// Sub-commands the bench re-executes inside a namespace.
		switch os.Args[1] {
		case "load-send":
			os.Exit(runLoadSend(os.Args[2:]))
		case "load-recv":
			os.Exit(runLoadRecv(os.Args[2:]))
		case "pong":
			os.Exit(runPongServer(os.Args[2:]))
		case "ping":
			os.Exit(runPing(os.Args[2:]))
		case "crr-serve":
			os.Exit(runCRRServe(os.Args[2:]))
		case "crr":
			os.Exit(runCRR(os.Args[2:]))
		case "reach":
			os.Exit(runReach(os.Args[2:]))
		case "dns-load":
			os.Exit(runDNSLoad(os.Args[2:]))
		case "pub-serve":
			os.Exit(runPubServe(os.Args[2:]))
		case "pub-crr":
			os.Exit(runPubCRR(os.Args[2:]))
		case "pub-rr":
			os.Exit(runPubRR(os.Args[2:]))
		}
	}
	os.Exit(runBench(os.Args[1:]))
}

// setupEnv is what a setup is built from.
type setupEnv struct {
	prefix  string // the run's random prefix; each setup adds a letter for its own lab
	netdBin string
	out     string // results dir, where setups leave their daemon logs
}

// setups are all the setups the bench knows, in the order they are measured within each
// round. A setup is one file (setup.go, docker.go, ...) and one line here.
var setups = []struct {
	name string
	make func(setupEnv) Setup
}{
	{setupEBPF, func(e setupEnv) Setup { return newNetdSetup(e.prefix, "ebpf", e.netdBin, "10.202.0.0/24", e.out) }},
	{setupKernel, func(e setupEnv) Setup { return newNetdSetup(e.prefix, "kernel", e.netdBin, "10.201.0.0/24", e.out) }},
	{setupDocker, func(e setupEnv) Setup { return newDockerSetup(e.prefix, e.netdBin, e.out) }},
	{setupVeth, func(e setupEnv) Setup { return newVethSetup(e.prefix, e.netdBin) }},
	{setupMacvlan, func(e setupEnv) Setup { return newMacvlanSetup(e.prefix, e.netdBin, e.out) }},
	{setupOvlEBPF, func(e setupEnv) Setup { return newOverlaySetup(e.prefix, "ebpf", e.netdBin, "10.204.0.0/24", e.out) }},
	{setupOvlKernel, func(e setupEnv) Setup { return newOverlaySetup(e.prefix, "kernel", e.netdBin, "10.205.0.0/24", e.out) }},
	{setupUnderlay, func(e setupEnv) Setup { return newUnderlaySetup(e.prefix, e.netdBin) }},
}

// allSetups is the setups' names in measuring order.
var allSetups = func() []string {
	var names []string
	for _, s := range setups {
		names = append(names, s.name)
	}
	return names
}()

func newSetup(name string, env setupEnv) Setup {
	for _, s := range setups {
		if s.name == name {
			return s.make(env)
		}
	}
	panic("unknown setup " + name)
}

type options struct {
	rounds   int
	duration time.Duration
	only     []string
	out      string
	netdBin  string
	latency  string
	pin      [2]string     // client CPU, server CPU; empty = not pinned
	scale    []int         // network counts of the scale run; none: skipped
	ctl      int           // containers of the control-plane run; 0: skipped
	dns      time.Duration // each row of the DNS run; 0: skipped
	// publish is the port-publishing run's mode (full, quick); "": skipped.
	publish       string
	publishSetups []string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := options{}
	defNetd := os.Getenv("NETD_BIN")
	if defNetd == "" {
		defNetd = "./bin/netd"
	}
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds")
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "length of each measurement")
	only := fs.String("only", strings.Join(allSetups, ","), "comma-separated setups to measure: "+strings.Join(allSetups, ","))
	fs.StringVar(&o.out, "out", "bench-results", "directory for results.json, chart.svg and daemon logs")
	fs.StringVar(&o.netdBin, "netd", defNetd, "netd binary (env NETD_BIN)")
	fs.StringVar(&o.latency, "latency", "auto", "latency tool: sockperf, go, or auto (sockperf if installed)")
	scale := fs.String("scale", "10,100,1000", "network counts at which to time network create, rm and ls on each netd dataplane of --only, or none")
	fs.IntVar(&o.ctl, "controlplane", 50, fmt.Sprintf("containers to time from `container create` on h1 until h2 pings them, on a %d-host cluster per overlay setup of --only (ovl-ebpf, ovl-kernel); 0 skips it", ctlHosts))
	fs.DurationVar(&o.dns, "dns", 4*time.Second, "length of each row of the DNS run (a container's queries to its embedded resolver: latency, forwarded name, rate); 0 skips it")
	publish := fs.String("publish", pubModeFull, "port-publishing run (issue 11), after the others: full (100,000 sequential connections, 10,000 published ports), quick (10,000 and 1,000, for bench-smoke), or none")
	pubOnly := fs.String("publish-setups", strings.Join(pubSetups, ","), "comma-separated setups of the port-publishing run: "+strings.Join(pubSetups, ","))
	pin := fs.String("pin", "auto", "CPUs A,B: packet-rate sender and two-CPU ping-pong client on A, their servers on B; TCP, one-CPU ping-pong and connection rate both on B; none, or auto (0,1 on 2+ cores)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.scale, err = parseScale(*scale); err != nil {
		return o, err
	}
	switch *pin {
	case "none":
	case "auto":
		if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
			o.pin = [2]string{"0", "1"}
		}
	default:
		c, srv, ok := strings.Cut(*pin, ",")
		if !ok || !isCPU(c) || !isCPU(srv) {
			return o, fmt.Errorf("bad --pin %q: want A,B like 0,1", *pin)
		}
		o.pin = [2]string{c, srv}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch *publish {
	case pubModeFull, pubModeQuick:
		o.publish = *publish
		if o.publishSetups, err = parsePublishSetups(*pubOnly); err != nil {
			return o, err
		}
	case pubModeNone:
	default:
		return o, fmt.Errorf("bad --publish %q: want full, quick or none", *publish)
	}
	if o.ctl < 0 || o.ctl > maxCtl {
		return o, fmt.Errorf("--controlplane must be 0..%d", maxCtl)
	}
	if o.dns < 0 || o.dns > maxDNS {
		return o, fmt.Errorf("--dns must be 0..%s", maxDNS)
	}
	if o.rounds < 1 || o.rounds > 100 {
		return o, errors.New("--rounds must be 1..100")
	}
	if o.duration < time.Second || o.duration > 5*time.Minute {
		return o, errors.New("--duration must be 1s..5m")
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		if !contains(allSetups, s) {
			return o, fmt.Errorf("unknown setup %q in --only (want %s)", s, strings.Join(allSetups, ","))
		}
		seen[s] = true
	}
	for _, s := range allSetups {
		if seen[s] {
			o.only = append(o.only, s)
		}
	}
	if len(o.only) == 0 {
		return o, errors.New("--only selects no setup")
	}
	switch o.latency {
	case "auto":
		o.latency = "go"
		if _, err := exec.LookPath("sockperf"); err == nil {
			o.latency = "sockperf"
		}
	case "sockperf", "go":
	default:
		return o, fmt.Errorf("unknown --latency %q", o.latency)
	}
	if o.netdBin != "" {
		if abs, err := filepath.Abs(o.netdBin); err == nil {
			o.netdBin = abs
		}
	}
	return o, nil
}

func isCPU(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n < 4096
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// progress prints one status line, rewritten in place on a terminal.
type progress struct {
	tty   bool
	start time.Time
}

func (p *progress) show(format string, args ...any) {
	line := fmt.Sprintf("[%s] ", time.Since(p.start).Round(time.Second)) + fmt.Sprintf(format, args...)
	if p.tty {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(os.Stderr, line)
	}
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}

func runBench(args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: must run as root (it creates network namespaces)")
		return 2
	}
	need := []string{"ip", "nsenter", "ping", "iperf3"}
	if o.latency == "sockperf" {
		need = append(need, "sockperf")
	}
	for _, tool := range need {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s not found (make deps installs it): %v\n", tool, err)
			return 2
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: find own executable:", err)
		return 1
	}

	// Signals cancel the run; the deferred teardown below still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	res := &Result{
		Started: time.Now(),
		Host:    hostInfo(),
		Config: Config{Rounds: o.rounds, Duration: o.duration.String(), Setups: o.only,
			NetdBin: o.netdBin, Latency: o.latency, Pin: strings.Trim(strings.Join(o.pin[:], ","), ","), Scale: o.scale, ControlPlane: o.ctl},
		Samples:  []Sample{},
		Failures: []Failure{},
		Retried:  []Failure{},
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench: create out dir:", err)
		return 1
	}
	prefix := randomPrefix()
	prog := &progress{tty: isTerminal(os.Stderr), start: time.Now()}

	var live []Setup
	defer func() {
		for i := len(live) - 1; i >= 0; i-- {
			prog.show("tearing down %s", live[i].Name())
			live[i].Down()
		}
		prog.done()
	}()
	for _, name := range o.only {
		s := newSetup(name, setupEnv{prefix: prefix, netdBin: o.netdBin, out: o.out})
		prog.show("setting up %s", name)
		upCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
		err := s.Up(upCtx)
		cancel()
		if err != nil {
			res.Failures = append(res.Failures, Failure{Setup: name, Error: "set up: " + err.Error()})
			prog.done()
			fmt.Fprintf(os.Stderr, "bench: set up %s: %v\n", name, err)
			s.Down()
			continue
		}
		live = append(live, s)
		if ctx.Err() != nil {
			break
		}
	}

	tests := measurements(self, o)
	total := o.rounds * len(tests) * len(live)
	step := 0
rounds:
	// Interleaved: within a round, each test runs on every setup before the next test.
	for round := 1; round <= o.rounds; round++ {
		for _, t := range tests {
			for _, s := range live {
				if ctx.Err() != nil {
					break rounds
				}
				step++
				prog.show("[%d/%d] round %d/%d  %-6s  %s", step, total, round, o.rounds, s.Name(), t.name)
				p := s.Pair()
				switch t.pin {
				case pinSplit:
					p.ClientCPU, p.ServerCPU = o.pin[0], o.pin[1]
				case pinSame:
					p.ClientCPU, p.ServerCPU = o.pin[1], o.pin[1]
				}
				vals, extra, err := t.run(ctx, p, o.duration)
				if err != nil && ctx.Err() == nil {
					// One retry for a tool's transient hiccup; the first error stays in the report.
					res.Retried = append(res.Retried, Failure{Round: round, Setup: s.Name(), Metric: t.name, Error: err.Error()})
					prog.show("[%d/%d] round %d/%d  %-6s  %s (retry)", step, total, round, o.rounds, s.Name(), t.name)
					vals, extra, err = t.run(ctx, p, o.duration)
				}
				if err != nil {
					if ctx.Err() != nil {
						break rounds
					}
					res.Failures = append(res.Failures, Failure{Round: round, Setup: s.Name(), Metric: t.name, Error: err.Error()})
					continue
				}
				for _, m := range metrics {
					if v, ok := vals[m.Key]; ok {
						res.Samples = append(res.Samples, Sample{Round: round, Setup: s.Name(), Metric: m.Key, Value: v, At: time.Now(), Extra: extra})
					}
				}
			}
		}
	}
	prog.done()
	if ctx.Err() != nil {
		res.Failures = append(res.Failures, Failure{Setup: "all", Error: "interrupted"})
	}

	// The eBPF counters tell whether the measured traffic really took the fast path.
	for _, s := range live {
		ns, ok := s.(ebpfSetup)
		if !ok || !ns.EBPF() {
			continue
		}
		st, err := ns.DataplaneStatus()
		if err != nil {
			res.Failures = append(res.Failures, Failure{Setup: s.Name(), Error: "read counters: " + err.Error()})
			continue
		}
		if res.Dataplane == nil {
			res.Dataplane = map[string]*api.DataplaneStatus{}
		}
		res.Dataplane[s.Name()] = st
	}

	// The scale run has the machine to itself.
	for i := len(live) - 1; i >= 0; i-- {
		prog.show("tearing down %s", live[i].Name())
		live[i].Down()
	}
	live = nil
	for _, dp := range []string{setupEBPF, setupKernel} {
		if len(o.scale) == 0 || !contains(o.only, dp) || ctx.Err() != nil {
			continue
		}
		stats, err := newScaleRun(prefix, dp, o.netdBin, o.out, prog).run(ctx, o.scale)
		res.Scale = append(res.Scale, stats...)
		if err != nil {
			res.Failures = append(res.Failures, Failure{Setup: "scale-" + dp, Error: err.Error()})
		}
	}
	for _, c := range []struct{ setup, dp string }{{setupOvlEBPF, api.DataplaneEBPF}, {setupOvlKernel, api.DataplaneKernel}} {
		if o.ctl == 0 || !contains(o.only, c.setup) || ctx.Err() != nil {
			continue
		}
		r := newCtlRun(self, prefix, c.dp, o.netdBin, o.out, prog)
		st, err := r.run(ctx, o.ctl)
		if st != nil {
			res.ControlPlane = append(res.ControlPlane, *st)
		}
		if err != nil {
			res.Failures = append(res.Failures, Failure{Setup: r.name(), Error: err.Error()})
		}
	}
	if o.dns > 0 && ctx.Err() == nil {
		res.Config.DNS = o.dns.String()
		r := newDNSRun(self, prefix, o.netdBin, o.out, prog)
		st, err := r.run(ctx, o.dns)
		res.DNS = st
		if err != nil {
			res.Failures = append(res.Failures, Failure{Setup: r.name(), Error: err.Error()})
		}
	}
	if o.publish != "" && ctx.Err() == nil {
		res.Config.Publish = o.publish
		pr, fails, retried := newPublishRun(self, prefix, o, prog).run(ctx)
		res.Publish = pr
		res.Failures = append(res.Failures, fails...)
		res.Retried = append(res.Retried, retried...)
	}
	prog.done()

	res.Finished = time.Now()
	res.Summary = summarize(res.Samples, o.only)
	res.Targets = checkTargets(res.Summary)
	fmt.Printf("netd bench: %d round(s) x %s, %s, %s cores, kernel %s\n\n", o.rounds, o.duration,
		strings.Join(o.only, " "), res.Host["cpus"], res.Host["kernel"])
	if err := writeTable(os.Stdout, res.Summary, res.Targets, res.Failures, res.Retried); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if o.pin == [2]string{} {
		fmt.Println("\nCPU pinning off (--pin none, or one core): nothing was pinned, \"one CPU\" does not hold, and the two-CPU latency run was skipped.")
	}
	if err := writeScaleTable(os.Stdout, res.Scale); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if err := writeCtlTable(os.Stdout, res.ControlPlane); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if err := writeDNSTable(os.Stdout, res.DNS); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if err := writePublishTable(os.Stdout, res.Publish); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	for name, st := range res.Dataplane {
		fmt.Printf("\n%s\n", counterLine(name, st))
	}
	code := 0
	jsonPath := filepath.Join(o.out, "results.json")
	svgPath := filepath.Join(o.out, "chart.svg")
	if err := writeJSON(jsonPath, res); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		code = 1
	}
	title := fmt.Sprintf("netd bench — medians of %d interleaved rounds, whiskers min–max (%s)", o.rounds, res.Started.Format("2006-01-02 15:04"))
	if err := writeSVG(svgPath, res.Summary, o.only, title); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		code = 1
	}
	if res.Publish != nil {
		pubPath := filepath.Join(o.out, "publish.svg")
		pubTitle := fmt.Sprintf("netd bench, port publishing — medians of %d interleaved rounds, whiskers min–max (%s)", o.rounds, res.Started.Format("2006-01-02 15:04"))
		if err := writePublishSVG(pubPath, res.Publish, pubTitle); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			code = 1
		}
		svgPath += " and " + pubPath
	}
	fmt.Printf("\nwrote %s and %s\n", jsonPath, svgPath)
	if len(res.Failures) > 0 {
		return 1
	}
	return code
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// hostInfo records what the numbers depend on.
func hostInfo() map[string]string {
	h := map[string]string{
		"cpus":       fmt.Sprint(runtime.NumCPU()),
		"go_version": runtime.Version(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h["kernel"] = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("iperf3", "--version").Output(); err == nil {
		h["iperf3"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if b, err := dockerlab.FindBinaries(); err == nil {
		if out, err := exec.Command(b.Dockerd, "--version").Output(); err == nil {
			h["dockerd"] = b.Dockerd + ": " + strings.TrimSpace(string(out))
		}
	}
	if out, err := exec.Command("sockperf", "--version").CombinedOutput(); err == nil {
		h["sockperf"] = oneLine(ansiRE.ReplaceAllString(strings.SplitN(string(out), "\n", 2)[0], ""), 80)
	}
	return h
}
