// Command gossipsim runs N members of netd's real gossip package in one
// process on 127.0.0.1, with memberlist's LAN default timers, and measures
// what issue 8 asks: how fast a new entry reaches 50/99/100 % of the
// members, how fast a crashed or leaving member's endpoints are withdrawn,
// and the bytes per second per member at rest and under churn.
//
//	go run ./tools/gossipsim [--sizes 10,100,1000] [--quick] [--out DIR] [--timeout 10m]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	sizes         []int
	out           string
	timeout       time.Duration
	entries       int
	endpoints     int
	publishers    int
	rest          time.Duration
	churn         time.Duration
	churnInterval time.Duration
	churnSettle   time.Duration
	joinPeers     int
	joinBatch     int
	settleMax     time.Duration
	settleSlice   time.Duration
	convergeTimeout,
	entriesTimeout,
	spreadTimeout,
	deadTimeout,
	leaveTimeout time.Duration
	gap     time.Duration
	encrypt bool
	quick   bool
	seed    uint64
	cpuProf string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("gossipsim", flag.ContinueOnError)
	var o options
	sizes := fs.String("sizes", "10,100,1000", "comma-separated cluster sizes")
	fs.StringVar(&o.out, "out", "", "directory for results-gossip.json (none: table only)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on each size's whole run")
	fs.IntVar(&o.entries, "entries", 5, "new entries timed per size (the table shows their median)")
	fs.IntVar(&o.endpoints, "endpoints", 3, "endpoint entries each publishing member publishes before joining")
	fs.IntVar(&o.publishers, "publishers", 100, "members that publish endpoints before joining, spread over the cluster (at most N): every entry is relayed RetransmitMult × log10(N) times by every member, so a whole 1,000-member cluster of publishers keeps one process CPU-bound for many minutes")
	fs.DurationVar(&o.rest, "rest", 15*time.Second, "window of the at-rest traffic measurement")
	fs.DurationVar(&o.churn, "churn", 15*time.Second, "window of the churn traffic measurement")
	fs.DurationVar(&o.churnInterval, "churn-interval", 5*time.Second, "during churn, each member puts or deletes an endpoint this often")
	fs.DurationVar(&o.churnSettle, "churn-settle", 30*time.Second, "bound on the wait for all views to agree after churn")
	fs.IntVar(&o.joinPeers, "join-peers", 3, "random earlier members each new member joins")
	fs.IntVar(&o.joinBatch, "join-batch", 50, "members started and joined together")
	fs.DurationVar(&o.settleMax, "settle-max", 60*time.Second, "bound on the wait for the gossip rate to settle before the rest window")
	fs.DurationVar(&o.convergeTimeout, "converge-timeout", 4*time.Minute, "bound on the wait for every member to see every member and endpoint")
	fs.DurationVar(&o.entriesTimeout, "entries-timeout", time.Minute, "after membership converged, bound on the wait for every member to show every endpoint")
	fs.DurationVar(&o.spreadTimeout, "spread-timeout", 30*time.Second, "bound on the wait for one new entry to reach every member")
	fs.DurationVar(&o.deadTimeout, "dead-timeout", 2*time.Minute, "bound on the wait for a crashed member's endpoints to be withdrawn everywhere")
	fs.DurationVar(&o.leaveTimeout, "leave-timeout", 30*time.Second, "bound on the wait for a leaving member's endpoints to be withdrawn everywhere")
	fs.BoolVar(&o.encrypt, "encrypt", false, "gossip with an AES-256 key, as with --gossip-key-file")
	fs.BoolVar(&o.quick, "quick", false, "short run for a smoke test: 1 endpoint per publisher, 3 entries, 5s rest and churn, shorter bounds (flags given explicitly win)")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	seed := fs.Uint64("seed", 0, "random seed for the choice of writers, peers and victims (0: from the clock)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.settleSlice, o.gap = 2*time.Second, time.Second
	if o.quick {
		quick := map[string]func(){
			"entries":         func() { o.entries = 3 },
			"rest":            func() { o.rest = 5 * time.Second },
			"churn":           func() { o.churn = 5 * time.Second },
			"endpoints":       func() { o.endpoints = 1 },
			"churn-settle":    func() { o.churnSettle = 5 * time.Second },
			"settle-max":      func() { o.settleMax = 30 * time.Second },
			"entries-timeout": func() { o.entriesTimeout = 5 * time.Second },
			"spread-timeout":  func() { o.spreadTimeout = 10 * time.Second },
		}
		for name, f := range quick {
			if !set[name] {
				f()
			}
		}
		o.settleSlice, o.gap = time.Second, 300*time.Millisecond
	}
	o.seed = *seed
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 || n > 5000 {
			return o, fmt.Errorf("bad --sizes entry %q: want numbers from 3 to 5000, like 10,100,1000", f)
		}
		o.sizes = append(o.sizes, n)
	}
	switch {
	case o.entries < 1 || o.entries > 100:
		return o, errors.New("--entries must be 1..100")
	case o.endpoints < 1 || o.endpoints > 100:
		return o, errors.New("--endpoints must be 1..100")
	case o.publishers < 2:
		return o, errors.New("--publishers must be at least 2 (the crashed and the leaving member)")
	case o.joinPeers < 1 || o.joinBatch < 1:
		return o, errors.New("--join-peers and --join-batch must be at least 1")
	case o.churnInterval < 100*time.Millisecond:
		return o, errors.New("--churn-interval must be at least 100ms")
	case o.rest < time.Second || o.churn < time.Second:
		return o, errors.New("--rest and --churn must be at least 1s")
	case o.timeout < 10*time.Second:
		return o, errors.New("--timeout must be at least 10s")
	}
	return o, nil
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "gossipsim:", err)
		return 2
	}
	largest := 0
	for _, n := range o.sizes {
		largest = max(largest, n)
	}
	// Two sockets per member, its TCP connections, and room for the rest.
	if err := raiseFileLimit(uint64(8*largest + 1024)); err != nil {
		fmt.Fprintln(os.Stderr, "gossipsim:", err)
		return 1
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gossipsim: cpu profile:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "gossipsim: cpu profile:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	begin := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Since(begin).Round(100*time.Millisecond), fmt.Sprintf(format, args...))
	}
	res := &Result{
		Started: begin, Host: hostInfo(),
		Config: Config{Sizes: o.sizes, Entries: o.entries, Endpoints: o.endpoints, Publishers: o.publishers, RestS: o.rest.Seconds(), ChurnS: o.churn.Seconds(),
			ChurnInterval: o.churnInterval.Seconds(), JoinPeers: o.joinPeers, JoinBatch: o.joinBatch, Encrypt: o.encrypt,
			Quick: o.quick, TimeoutS: o.timeout.Seconds(), Timers: "LAN default (probe 1s/500ms, gossip 200ms to 3, push-pull 30s scaled by N)"},
		Sizes: []SizeResult{},
	}
	say("gossipsim: sizes %v, seed %d", o.sizes, o.seed)
	failed := false
	for _, n := range o.sizes {
		if ctx.Err() != nil {
			break
		}
		r := runSize(ctx, o, n, say)
		failed = failed || len(r.Failures) > 0
		res.Sizes = append(res.Sizes, r)
	}
	res.Finished = time.Now()
	res.Targets = checkTargets(res.Sizes)
	if err := writeTable(os.Stdout, res.Sizes, res.Targets, res.Config); err != nil {
		fmt.Fprintln(os.Stderr, "gossipsim:", err)
		return 1
	}
	if o.out != "" {
		path := filepath.Join(o.out, "results-gossip.json")
		if err := writeJSON(path, res); err != nil {
			fmt.Fprintln(os.Stderr, "gossipsim:", err)
			return 1
		}
		fmt.Printf("\nJSON: %s\n", path)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "gossipsim: interrupted")
		return 130
	}
	if failed {
		return 1
	}
	return 0
}
