package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Fractions of members at which spread and withdrawal are timed.
var fractions = []float64{0.50, 0.99, 1.00}

// Reach is how long an event took to reach fractions of the members that
// should see it: 50 %, 99 %, 100 %. A nil time was not reached in the bound.
type Reach struct {
	Of      int      `json:"of"`      // members that should see it
	Reached int      `json:"reached"` // members that saw it within the bound
	P50MS   *float64 `json:"p50_ms"`
	P99MS   *float64 `json:"p99_ms"`
	P100MS  *float64 `json:"p100_ms"`
	BoundMS float64  `json:"bound_ms"` // how long the simulation waited
	// Reasons counts the event reasons the members reported (withdrawals:
	// "owner dead" or "owner left").
	Reasons map[string]int `json:"reasons,omitempty"`
}

// reachOf computes a Reach from the delays of the members that saw the
// event, out of total that should have.
func reachOf(delays []time.Duration, total int, bound time.Duration) Reach {
	ts := fractionTimes(delays, total, fractions)
	return Reach{Of: total, Reached: len(delays), P50MS: ts[0], P99MS: ts[1], P100MS: ts[2], BoundMS: ms(bound)}
}

// fractionTimes returns, for each fraction f, the delay by which
// ceil(f*total) members had seen the event (the k-th smallest delay), or
// nil when fewer than that saw it.
func fractionTimes(delays []time.Duration, total int, fs []float64) []*float64 {
	d := append([]time.Duration(nil), delays...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	out := make([]*float64, len(fs))
	for i, f := range fs {
		k := int(math.Ceil(f*float64(total) - 1e-9))
		if total <= 0 || k < 1 {
			k = 1
		}
		if total <= 0 || k > len(d) {
			continue
		}
		v := ms(d[k-1])
		out[i] = &v
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// medianOpt is the median of values where nil means "not reached" (larger
// than any number); nil when the median itself was not reached, or no values.
func medianOpt(xs []*float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = math.Inf(1)
		if x != nil {
			v[i] = *x
		}
	}
	sort.Float64s(v)
	n := len(v)
	m := v[n/2]
	if n%2 == 0 {
		m = (v[n/2-1] + v[n/2]) / 2
	}
	if math.IsInf(m, 1) {
		return nil
	}
	return &m
}

func maxOpt(xs []*float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	var m float64
	for _, x := range xs {
		if x == nil {
			return nil
		}
		m = math.Max(m, *x)
	}
	return &m
}

// SpreadSummary is the median and worst of the spread of several entries.
type SpreadSummary struct {
	Entries int      `json:"entries"`
	P50MS   *float64 `json:"p50_ms"` // medians over the entries
	P99MS   *float64 `json:"p99_ms"`
	P100MS  *float64 `json:"p100_ms"`
	MaxP99  *float64 `json:"max_p99_ms"` // worst entry
	MaxP100 *float64 `json:"max_p100_ms"`
}

func summarizeSpread(rs []Reach) SpreadSummary {
	var p50, p99, p100 []*float64
	for _, r := range rs {
		p50, p99, p100 = append(p50, r.P50MS), append(p99, r.P99MS), append(p100, r.P100MS)
	}
	return SpreadSummary{Entries: len(rs), P50MS: medianOpt(p50), P99MS: medianOpt(p99), P100MS: medianOpt(p100),
		MaxP99: maxOpt(p99), MaxP100: maxOpt(p100)}
}

// Counts are one member's transport counters (payload bytes: UDP and TCP
// headers not included).
type Counts struct {
	UDPTx, UDPRx, TCPTx, TCPRx int64
	PktTx, PktRx               int64
	Dials, Accepts             int64 // TCP connections
}

func (c Counts) sub(o Counts) Counts {
	return Counts{c.UDPTx - o.UDPTx, c.UDPRx - o.UDPRx, c.TCPTx - o.TCPTx, c.TCPRx - o.TCPRx, c.PktTx - o.PktTx, c.PktRx - o.PktRx,
		c.Dials - o.Dials, c.Accepts - o.Accepts}
}

func (c Counts) tx() int64 { return c.UDPTx + c.TCPTx }
func (c Counts) rx() int64 { return c.UDPRx + c.TCPRx }

// Traffic is the gossip traffic per member over a window.
type Traffic struct {
	WindowS float64 `json:"window_s"`
	Members int     `json:"members"`
	// Means over the members, bytes per second (payload, UDP + TCP).
	TxBps    float64 `json:"tx_bytes_per_s"`
	RxBps    float64 `json:"rx_bytes_per_s"`
	UDPTxBps float64 `json:"udp_tx_bytes_per_s"`
	TCPTxBps float64 `json:"tcp_tx_bytes_per_s"`
	// The busiest member's sent plus received bytes per second.
	MaxTxRxBps float64 `json:"max_tx_rx_bytes_per_s"`
	PktTxPerS  float64 `json:"udp_packets_tx_per_s"` // mean per member
	// DialsPerMin: TCP connections each member opens per minute (push-pull,
	// reliable sends, fallback pings, reconnects), mean.
	DialsPerMin float64 `json:"tcp_dials_per_min"`
	// WindowTCPTxBps: TCP sent during the window itself; at rest the TCP
	// figures above are the push-pull share instead (see PushPull).
	WindowTCPTxBps float64 `json:"window_tcp_tx_bytes_per_s"`
	// Writes are the Put and Delete calls during the window (churn).
	Writes int `json:"writes,omitempty"`
	// QueueDropped and Pulls are the summed gossip.Stats deltas.
	QueueDropped uint64 `json:"queue_dropped"`
	Pulls        uint64 `json:"pulls"`
}

// trafficOf turns per-member counter deltas over a window into rates.
func trafficOf(deltas []Counts, window time.Duration) Traffic {
	t := Traffic{WindowS: window.Seconds(), Members: len(deltas)}
	if len(deltas) == 0 || window <= 0 {
		return t
	}
	s := window.Seconds()
	var tx, rx, udp, tcp, pkt, dials float64
	for _, d := range deltas {
		tx += float64(d.tx())
		rx += float64(d.rx())
		udp += float64(d.UDPTx)
		tcp += float64(d.TCPTx)
		pkt += float64(d.PktTx)
		dials += float64(d.Dials)
		t.MaxTxRxBps = math.Max(t.MaxTxRxBps, float64(d.tx()+d.rx())/s)
	}
	n := float64(len(deltas)) * s
	t.TxBps, t.RxBps, t.UDPTxBps, t.TCPTxBps, t.PktTxPerS, t.DialsPerMin = tx/n, rx/n, udp/n, tcp/n, pkt/n, dials/n*60
	return t
}

// Phase is the CPU use during one phase of a size's run.
type Phase struct {
	Name  string  `json:"name"`
	WallS float64 `json:"wall_s"`
	// ProcCores is this process's CPU seconds per wall second (user +
	// system); MachineCores is the whole machine's busy CPUs over the same
	// time, other engineers' work included. Both out of Cores.
	ProcCores    float64 `json:"proc_cores"`
	MachineCores float64 `json:"machine_cores"`
	Cores        int     `json:"cores"`
	Load1        float64 `json:"load1_end"`
	// Probes: round-trip times of memberlist's successful probes.
	Probes *ProbeStats `json:"probes,omitempty"`
	// Logs are the members' warnings and errors during the phase.
	Logs map[string]int `json:"logs,omitempty"`
}

// ProbeStats summarises probe round trips, in ms.
type ProbeStats struct {
	N     int     `json:"n"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
	// Over500 counts the ones slower than the LAN ProbeTimeout (500 ms),
	// answered only in the indirect-probe grace.
	Over500 int `json:"over_500ms"`
}

func probeStats(d []time.Duration) *ProbeStats {
	if len(d) == 0 {
		return nil
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(f float64) float64 { return ms(d[min(len(d)-1, int(math.Ceil(f*float64(len(d))))-1)]) }
	p := &ProbeStats{N: len(d), P50MS: at(0.5), P99MS: at(0.99), MaxMS: ms(d[len(d)-1])}
	for _, x := range d {
		if x > 500*time.Millisecond {
			p.Over500++
		}
	}
	return p
}

// Withdrawal times how fast the others stop showing a gone member's endpoints.
type Withdrawal struct {
	Member string `json:"member"`
	Reach
	// StillVisible is how many members still listed one of its endpoints
	// in List(TableEndpoints, false) when the simulation checked at the end.
	StillVisible int `json:"still_visible"`
}

// SizeResult is everything measured at one cluster size.
type SizeResult struct {
	N int `json:"n"`
	// JoinS: until every member's Join returned; ConvergeS: until every
	// member saw all N alive and every endpoint (from the first Join).
	JoinS     float64 `json:"join_s"`
	ConvergeS float64 `json:"converge_s"`
	Converged bool    `json:"converged"`
	// EndpointsS: after membership converged, until every member showed
	// every endpoint; nil if not within the bound, with EndpointsLacking
	// members still short.
	EndpointsS       *float64 `json:"endpoints_s"`
	EndpointsLacking int      `json:"endpoints_lacking"`
	// DrainS: after the endpoints converged (or their bound), until the
	// members sent no more than probing needs; nil if not within the bound.
	DrainS       *float64      `json:"drain_s"`
	SettleSeries []SettlePoint `json:"drain_series"`

	Spread        []Reach       `json:"spread"`
	SpreadSummary SpreadSummary `json:"spread_summary"`
	Rest          *Traffic      `json:"rest,omitempty"`
	PushPull      *PushPull     `json:"push_pull,omitempty"`
	Churn         *Traffic      `json:"churn,omitempty"`
	// ChurnConvergeS: after the churn stopped, until every member's view
	// matched the owners' entries; nil if not within the bound.
	ChurnConvergeS *float64    `json:"churn_converge_s"`
	ChurnLacking   int         `json:"churn_lacking"`
	Dead           *Withdrawal `json:"dead,omitempty"`
	Leave          *Withdrawal `json:"leave,omitempty"`

	// FalseWithdrawals counts endpoint withdrawals of members that were
	// alive (memberlist declared them dead: CPU starvation, loss).
	FalseWithdrawals int     `json:"false_withdrawals"`
	Resyncs          int     `json:"resyncs"` // watchers that fell behind
	Phases           []Phase `json:"phases"`
	// Totals are the gossip.Stats counters summed over the members still
	// up at the end.
	Totals    map[string]uint64 `json:"totals"`
	Logs      map[string]int    `json:"logs,omitempty"` // warnings and errors, by message
	Failures  []string          `json:"failures"`
	Anomalies []string          `json:"anomalies"` // wrong behaviour of the gossip package seen
	WallS     float64           `json:"wall_s"`
	MaxRSSMB  float64           `json:"max_rss_mb"`
}

// PushPull is the measured size of memberlist push-pull exchanges (both
// directions, gossip's digest and the pulls it starts included) and
// memberlist's interval at this size.
type PushPull struct {
	Exchanges        int     `json:"exchanges"`
	BytesPerExchange float64 `json:"bytes_per_exchange"`
	IntervalS        float64 `json:"interval_s"`
}

// SettlePoint is the mean rate per member over one slice of the drain wait.
type SettlePoint struct {
	AtS     float64 `json:"at_s"`
	PktPerS float64 `json:"udp_packets_tx_per_s"`
	TxBps   float64 `json:"tx_bytes_per_s"`
}

// Target is one goal of issue 8.
type Target struct {
	Desc     string   `json:"desc"`
	N        int      `json:"n"`
	Bound    float64  `json:"bound"`
	Unit     string   `json:"unit"`
	Measured *float64 `json:"measured,omitempty"`
	Achieved *bool    `json:"achieved,omitempty"`
}

// checkTargets: 99 % of 1,000 members within 3 s (median over the
// entries), and at most 10 KB/s per member at rest (sent plus received,
// mean over the members) at every size measured.
func checkTargets(rs []SizeResult) []Target {
	var out []Target
	spread := Target{Desc: "entry seen by 99% of 1,000 members", N: 1000, Bound: 3, Unit: "s"}
	for _, r := range rs {
		if r.N == 1000 && len(r.Spread) > 0 {
			if p := r.SpreadSummary.P99MS; p != nil {
				v := *p / 1000
				spread.Measured = &v
				ok := v <= spread.Bound
				spread.Achieved = &ok
			} else {
				no := false
				spread.Achieved = &no
			}
		}
	}
	out = append(out, spread)
	for _, r := range rs {
		if r.Rest == nil {
			continue
		}
		v := (r.Rest.TxBps + r.Rest.RxBps) / 1000
		ok := v <= 10
		out = append(out, Target{Desc: fmt.Sprintf("at rest, %d members: sent+received per member", r.N), N: r.N, Bound: 10, Unit: "KB/s", Measured: &v, Achieved: &ok})
	}
	return out
}

// Config is the run configuration as recorded in the JSON.
type Config struct {
	Sizes         []int   `json:"sizes"`
	Entries       int     `json:"entries"`
	Endpoints     int     `json:"endpoints_per_publisher"`
	Publishers    int     `json:"publishers"`
	RestS         float64 `json:"rest_s"`
	ChurnS        float64 `json:"churn_s"`
	ChurnInterval float64 `json:"churn_interval_s"`
	JoinPeers     int     `json:"join_peers"`
	JoinBatch     int     `json:"join_batch"`
	Encrypt       bool    `json:"encrypt"`
	Quick         bool    `json:"quick"`
	TimeoutS      float64 `json:"timeout_per_size_s"`
	Timers        string  `json:"timers"`
}

// Result is the JSON document (results-gossip.json).
type Result struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Host     map[string]string `json:"host"`
	Config   Config            `json:"config"`
	Sizes    []SizeResult      `json:"sizes"`
	Targets  []Target          `json:"targets"`
}

func fmtMS(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmtNum(*v)
}

func fmtS(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmtNum(*v / 1000)
}

// fmtNum prints about three significant digits.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "-"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1 || a == 0:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func notReached(r Reach, v *float64) string {
	if v != nil {
		return fmtNum(*v / 1000)
	}
	if r.Of == 0 {
		return "-"
	}
	return fmt.Sprintf(">%s (%d/%d)", fmtNum(r.BoundMS/1000), r.Reached, r.Of)
}

func kbps(v float64) string { return fmtNum(v / 1000) }

// writeTable prints one row per quantity, one column per size.
func writeTable(w io.Writer, rs []SizeResult, tgts []Target, cfg Config) error {
	fmt.Fprintf(w, "Gossip simulation: N members of the real gossip package in one process on 127.0.0.1, memberlist %s timers\n\n", cfg.Timers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "METRIC\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "N=%d\t", r.N)
	}
	fmt.Fprintln(tw)
	row := func(label string, cell func(r SizeResult) string) {
		fmt.Fprintf(tw, "%s\t", label)
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t", cell(r))
		}
		fmt.Fprintln(tw)
	}
	row("join (s, all Join calls) / all see N alive (s, from the first Join)", func(r SizeResult) string {
		c := fmtNum(r.ConvergeS)
		if !r.Converged {
			c = ">" + c + " NOT converged"
		}
		return fmtNum(r.JoinS) + " / " + c
	})
	row("then every member shows every endpoint after (s)", func(r SizeResult) string {
		switch {
		case r.EndpointsS != nil:
			return fmtNum(*r.EndpointsS)
		case r.EndpointsLacking > 0:
			return fmt.Sprintf("NO: %d members lack some", r.EndpointsLacking)
		}
		return "-"
	})
	row("then gossip queues empty after (s; no writes meanwhile)", func(r SizeResult) string {
		if r.DrainS != nil {
			return fmtNum(*r.DrainS)
		}
		if n := len(r.SettleSeries); n > 0 {
			return fmt.Sprintf("NO: %.0f datagrams/s after %.0fs", r.SettleSeries[n-1].PktPerS, r.SettleSeries[n-1].AtS)
		}
		return "-"
	})
	spread := func(pick func(SpreadSummary) *float64, worst func(SpreadSummary) *float64) func(SizeResult) string {
		return func(r SizeResult) string {
			if len(r.Spread) == 0 {
				return "-"
			}
			s := fmtS(pick(r.SpreadSummary))
			if worst != nil {
				s += " (worst " + fmtS(worst(r.SpreadSummary)) + ")"
			}
			return s
		}
	}
	entries := 0
	for _, r := range rs {
		entries = max(entries, len(r.Spread))
	}
	row(fmt.Sprintf("new entry seen by 50%% of members (s, median of %d)", entries), spread(func(s SpreadSummary) *float64 { return s.P50MS }, nil))
	row("new entry seen by 99% (s)", spread(func(s SpreadSummary) *float64 { return s.P99MS }, func(s SpreadSummary) *float64 { return s.MaxP99 }))
	row("new entry seen by 100% (s)", spread(func(s SpreadSummary) *float64 { return s.P100MS }, func(s SpreadSummary) *float64 { return s.MaxP100 }))
	wd := func(pick func(SizeResult) *Withdrawal, i int) func(SizeResult) string {
		return func(r SizeResult) string {
			x := pick(r)
			if x == nil {
				return "-"
			}
			return notReached(x.Reach, []*float64{x.P50MS, x.P99MS, x.P100MS}[i])
		}
	}
	dead := func(r SizeResult) *Withdrawal { return r.Dead }
	leave := func(r SizeResult) *Withdrawal { return r.Leave }
	row("crash (no leave) -> endpoints withdrawn at 50% (s)", wd(dead, 0))
	row("crash -> withdrawn at 99% (s)", wd(dead, 1))
	row("crash -> withdrawn at 100% (s)", wd(dead, 2))
	row("graceful leave -> withdrawn at 50% (s)", wd(leave, 0))
	row("leave -> withdrawn at 99% (s)", wd(leave, 1))
	row("leave -> withdrawn at 100% (s)", wd(leave, 2))
	row("leave seen as left / as dead (members)", func(r SizeResult) string {
		if r.Leave == nil {
			return "-"
		}
		return fmt.Sprintf("%d / %d", r.Leave.Reasons["owner left"], r.Leave.Reasons["owner dead"])
	})
	traffic := func(pick func(SizeResult) *Traffic, f func(Traffic) string) func(SizeResult) string {
		return func(r SizeResult) string {
			t := pick(r)
			if t == nil {
				return "-"
			}
			return f(*t)
		}
	}
	rest := func(r SizeResult) *Traffic { return r.Rest }
	churn := func(r SizeResult) *Traffic { return r.Churn }
	row("at rest: KB/s per member sent / received (mean)", traffic(rest, func(t Traffic) string { return kbps(t.TxBps) + " / " + kbps(t.RxBps) }))
	row("at rest: sent UDP / TCP push-pull share (KB/s), busiest member sent+received", traffic(rest, func(t Traffic) string {
		return kbps(t.UDPTxBps) + " / " + kbps(t.TCPTxBps) + ", " + kbps(t.MaxTxRxBps)
	}))
	row("push-pull: KB per exchange (both ways), every (s) per member", func(r SizeResult) string {
		if r.PushPull == nil {
			return "-"
		}
		return fmt.Sprintf("%s, %.0f", kbps(r.PushPull.BytesPerExchange), r.PushPull.IntervalS)
	})
	row("at rest: UDP datagrams sent per member per s, TCP connections opened per min", traffic(rest, func(t Traffic) string {
		return fmtNum(t.PktTxPerS) + ", " + fmtNum(t.DialsPerMin)
	}))
	row(fmt.Sprintf("churn (a write every %gs per member): KB/s per member sent / received", cfg.ChurnInterval), traffic(churn, func(t Traffic) string { return kbps(t.TxBps) + " / " + kbps(t.RxBps) }))
	row("churn: sent UDP / TCP (KB/s), busiest member sent+received", traffic(churn, func(t Traffic) string {
		return kbps(t.UDPTxBps) + " / " + kbps(t.TCPTxBps) + ", " + kbps(t.MaxTxRxBps)
	}))
	row("churn: writes, queue drops, pulls", traffic(churn, func(t Traffic) string {
		return fmt.Sprintf("%d, %d, %d", t.Writes, t.QueueDropped, t.Pulls)
	}))
	row("churn: all views agree again after (s)", func(r SizeResult) string {
		switch {
		case r.Churn == nil:
			return "-"
		case r.ChurnConvergeS != nil:
			return fmtNum(*r.ChurnConvergeS)
		}
		return fmt.Sprintf("NO: %d members differ", r.ChurnLacking)
	})
	row("false withdrawals (events: alive members declared dead)", func(r SizeResult) string { return fmt.Sprint(r.FalseWithdrawals) })
	for _, name := range []string{"join", "drain", "rest", "spread", "churn", "crash"} {
		row(fmt.Sprintf("CPU during %s: this process / whole machine (cores)", name), func(r SizeResult) string {
			for _, p := range r.Phases {
				if p.Name == name {
					return fmt.Sprintf("%.2f / %.2f of %d", p.ProcCores, p.MachineCores, p.Cores)
				}
			}
			return "-"
		})
	}
	row("wall time of the size (s), max RSS (MB)", func(r SizeResult) string { return fmt.Sprintf("%s, %.0f", fmtNum(r.WallS), r.MaxRSSMB) })
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	fmt.Fprintln(w)
	for _, n := range notes(cfg) {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintln(w, "\nTargets (issue 8):")
	for _, t := range tgts {
		mark, got := "-", "not measured"
		if t.Achieved != nil {
			mark = "MISS"
			if *t.Achieved {
				mark = "ok"
			}
			got = "not reached"
		}
		if t.Measured != nil {
			got = "measured " + fmtNum(*t.Measured) + " " + t.Unit
		}
		fmt.Fprintf(w, "  %-4s  %-50s <= %g %s, %s\n", mark, t.Desc, t.Bound, t.Unit, got)
	}
	for _, r := range rs {
		if len(r.Anomalies) > 0 {
			fmt.Fprintf(w, "\nAnomalies of the gossip package at N=%d:\n", r.N)
			for _, a := range r.Anomalies {
				fmt.Fprintf(w, "  %s\n", oneLine(a, 600))
			}
		}
		if len(r.Failures) > 0 {
			fmt.Fprintf(w, "\nFailures at N=%d:\n", r.N)
			for _, f := range r.Failures {
				fmt.Fprintf(w, "  %s\n", oneLine(f, 400))
			}
		}
	}
	return nil
}

func notes(cfg Config) []string {
	return []string{
		"Spread: a Put on one random member, timed until the others' Watch reports it. Withdrawal: Shutdown",
		"  (crash) or Leave of one random member, timed until the others' Watch reports its endpoints",
		"  withdrawn; List(endpoints) checked on every member afterwards. '>B (k/n)': only k of n within B s.",
		"Traffic: payload bytes through each member's transport (UDP datagrams, TCP streams both ways;",
		"  IP/UDP/TCP headers not included), mean over the members; at rest = no writes, after convergence",
		"  and after the gossip queues drained: the window's UDP plus the push-pull share (measured bytes of",
		"  an exchange / memberlist's interval at N; a window of seconds would miss push-pulls, the first",
		fmt.Sprintf("  of which comes 1-2 intervals after start). %d endpoint entries on each of min(N, %d) members.", cfg.Endpoints, cfg.Publishers),
		"CPU: all members share this one process; when it nears the machine's cores, timers fire late and",
		"  acks miss memberlist's 500 ms probe timeout, so times grow and alive members may be declared dead.",
	}
}

// oneLine flattens an error text for the table and caps its length.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// writeJSON writes the result document.
func writeJSON(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create out dir: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
