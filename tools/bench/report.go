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

	"github.com/netd-dev/netd/api"
)

// Setup names; the ratio columns are relative to docker, kernel and veth
// (bridge setups) and to ovl-kernel and underlay (overlay setups, overlay.go).
const (
	setupKernel = "kernel"
	setupVeth   = "veth"
	setupEBPF   = "ebpf"
	setupDocker = "docker"

	// Overlay setups (overlay.go).
	setupOvlEBPF   = "ovl-ebpf"   // an overlay network, both hosts on --dataplane ebpf
	setupOvlKernel = "ovl-kernel" // the same on --dataplane kernel: bridge + VXLAN device + FDB, Docker's way
	setupUnderlay  = "underlay"   // h1's namespace to h2's over the underlay itself: the limit of both
)

// isOverlaySetup says whether a setup's ratios are taken against the
// overlay references (ovl-kernel, underlay) instead of the bridge ones.
func isOverlaySetup(name string) bool {
	return name == setupOvlEBPF || name == setupOvlKernel || name == setupUnderlay
}

// Metric describes one measured quantity.
type Metric struct {
	Key          string `json:"key"`
	Title        string `json:"title"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higher_better"`
}

// Metric keys; one latency run yields both percentiles.
const (
	metricTCP   = "tcp_gbps"
	metricPPS   = "udp64_mpps"
	metricP50   = "rr_p50_us" // client and server pinned to the same CPU
	metricP99   = "rr_p99_us"
	metricP50x2 = "rr_2cpu_p50_us" // client on one CPU, server on the other
	metricP99x2 = "rr_2cpu_p99_us"
	metricCRR   = "tcp_crr_kcps" // new TCP connection per request, thousands per second
)

// metrics is the fixed display order of the table and the chart panels.
var metrics = []Metric{
	{Key: metricTCP, Title: "TCP throughput", Unit: "Gbit/s", HigherBetter: true},
	{Key: metricPPS, Title: "64B UDP rate", Unit: "Mpps", HigherBetter: true},
	{Key: metricP50, Title: "RR latency p50, one CPU", Unit: "µs", HigherBetter: false},
	{Key: metricP99, Title: "RR latency p99, one CPU", Unit: "µs", HigherBetter: false},
	{Key: metricP50x2, Title: "RR latency p50, two CPUs", Unit: "µs", HigherBetter: false},
	{Key: metricP99x2, Title: "RR latency p99, two CPUs", Unit: "µs", HigherBetter: false},
	{Key: metricCRR, Title: "TCP connect+request+response", Unit: "k/s", HigherBetter: true},
}

// metricNotes explain what titles cannot say; each is printed under the table when one of
// its metrics was measured.
var metricNotes = []struct {
	keys []string
	text string
}{
	{[]string{metricP50, metricP99, metricP50x2, metricP99x2}, `RR latency: 64-byte UDP ping-pong round trips. one CPU: client and server pinned to the same CPU
  (the data path alone); two CPUs: client and server on different CPUs, as two containers run by
  default (a cross-CPU wake-up per message included).`},
	{[]string{metricCRR}, `TCP connect+request+response: one client, a new TCP connection per 64-byte request and response,
  both on one CPU; the server resets (SO_LINGER 0) after the client's FIN, so neither side keeps a
  socket in TIME_WAIT and no port waits to be reused.`},
}

func metricByKey(key string) (Metric, bool) {
	for _, m := range metrics {
		if m.Key == key {
			return m, true
		}
	}
	return Metric{}, false
}

// Sample is one measurement of one metric of one setup in one round.
type Sample struct {
	Round  int       `json:"round"`
	Setup  string    `json:"setup"`
	Metric string    `json:"metric"`
	Value  float64   `json:"value"`
	At     time.Time `json:"at"`
	// Extra holds side numbers of the run (e.g. packets sent, retransmits).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Failure records a setup or measurement that did not produce a number.
type Failure struct {
	Round  int    `json:"round,omitempty"`
	Setup  string `json:"setup"`
	Metric string `json:"metric,omitempty"`
	Error  string `json:"error"`
}

// Stat summarises the samples of one setup and metric.
type Stat struct {
	Setup  string  `json:"setup"`
	Metric string  `json:"metric"`
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Ratios of medians; nil when the reference setup has no samples.
	VsDocker *float64 `json:"vs_docker,omitempty"`
	VsKernel *float64 `json:"vs_kernel,omitempty"`
	VsVeth   *float64 `json:"vs_veth,omitempty"`
	// Overlay setups' ratios, to the kernel overlay and the bare underlay.
	VsOvlKernel *float64 `json:"vs_ovl_kernel,omitempty"`
	VsUnderlay  *float64 `json:"vs_underlay,omitempty"`
}

// Target is one goal of an issue (3: eBPF bridge, 9: eBPF overlay),
// checked against the medians.
type Target struct {
	Issue    int      `json:"issue"`
	Desc     string   `json:"desc"`
	Setup    string   `json:"setup"`
	Metric   string   `json:"metric"`
	Ref      string   `json:"ref"`
	AtLeast  bool     `json:"at_least"` // ratio >= Bound, else ratio <= Bound
	Bound    float64  `json:"bound"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Achieved *bool    `json:"achieved,omitempty"`
}

// targets are the acceptance numbers of issue 3 for the eBPF bridge and of
// issue 9 for the eBPF overlay.
var targets = []Target{
	{Issue: 3, Desc: "small-packet rate >= 1.35x kernel", Setup: setupEBPF, Metric: metricPPS, Ref: setupKernel, AtLeast: true, Bound: 1.35},
	{Issue: 3, Desc: "p50 latency <= 0.85x kernel", Setup: setupEBPF, Metric: metricP50, Ref: setupKernel, AtLeast: false, Bound: 0.85},
	{Issue: 3, Desc: "TCP throughput >= 1.0x kernel", Setup: setupEBPF, Metric: metricTCP, Ref: setupKernel, AtLeast: true, Bound: 1.0},
	{Issue: 3, Desc: "small-packet rate >= 0.95x veth", Setup: setupEBPF, Metric: metricPPS, Ref: setupVeth, AtLeast: true, Bound: 0.95},
	{Issue: 9, Desc: "overlay small-packet rate >= 1.3x ovl-kernel", Setup: setupOvlEBPF, Metric: metricPPS, Ref: setupOvlKernel, AtLeast: true, Bound: 1.3},
	{Issue: 9, Desc: "overlay p50 latency <= 0.75x ovl-kernel", Setup: setupOvlEBPF, Metric: metricP50, Ref: setupOvlKernel, AtLeast: false, Bound: 0.75},
	{Issue: 9, Desc: "overlay TCP throughput >= 0.9x ovl-kernel", Setup: setupOvlEBPF, Metric: metricTCP, Ref: setupOvlKernel, AtLeast: true, Bound: 0.9},
}

// Config is the run configuration as recorded in the JSON.
type Config struct {
	Rounds   int      `json:"rounds"`
	Duration string   `json:"duration"`
	Setups   []string `json:"setups"`
	NetdBin  string   `json:"netd_bin,omitempty"`
	Latency  string   `json:"latency_tool"`
	Pin      string   `json:"pin_client_server,omitempty"`
	// Scale is the network counts of the scale run (--scale).
	Scale []int `json:"scale_networks,omitempty"`
	// ControlPlane is the container count of the control-plane run (--controlplane).
	ControlPlane int `json:"controlplane_containers,omitempty"`
	// DNS is each row's length in the DNS run (--dns).
	DNS string `json:"dns_row,omitempty"`
	// Publish is the port-publishing run's mode (--publish).
	Publish string `json:"publish,omitempty"`
}

// Result is the whole JSON document written to the out dir.
type Result struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Host     map[string]string `json:"host"`
	Config   Config            `json:"config"`
	Samples  []Sample          `json:"samples"`
	Failures []Failure         `json:"failures"`
	// Retried lists measurements that failed once and were run again.
	Retried []Failure `json:"retried"`
	Summary []Stat    `json:"summary"`
	Targets []Target  `json:"targets"`
	// Dataplane is `netd dataplane show` of each eBPF setup after the run.
	Dataplane map[string]*api.DataplaneStatus `json:"dataplane,omitempty"`
	// Scale is the time of network operations at each count of the scale run.
	Scale []ScaleStat `json:"scale,omitempty"`
	// ControlPlane is, per overlay dataplane, the time from container
	// create on one host until another host reaches it (ctlplane.go).
	ControlPlane []CtlStat `json:"control_plane,omitempty"`
	// DNS is a container's queries to its embedded resolver (dns.go).
	DNS *DNSStat `json:"dns,omitempty"`
	// Publish is the port-publishing run (publish.go).
	Publish *PublishResult `json:"publish,omitempty"`
}

// Operations the scale run times.
const (
	scaleFill         = "fill"          // the creates that brought the daemon to the count
	scaleCreate       = "create"        // one more network, subnet from the pool
	scaleCreateSubnet = "create_subnet" // one more with --subnet: no pool search
	scaleRm           = "rm"            // one of those removed again
	scaleLsAPI        = "ls_api"        // GET /networks
	scaleLsCLI        = "ls_cli"        // `netd network ls`, CLI start and table included
)

// scaleOrder and scaleTitles are the scale table's columns.
var (
	scaleOrder  = []string{scaleCreate, scaleCreateSubnet, scaleRm, scaleLsAPI, scaleLsCLI, scaleFill}
	scaleTitles = map[string]string{scaleCreate: "CREATE", scaleCreateSubnet: "CREATE --subnet", scaleRm: "RM",
		scaleLsAPI: "LS (API)", scaleLsCLI: "LS (CLI)", scaleFill: "FILL (creates up to the count)"}
)

// ScaleStat is the time of one operation on a daemon holding Networks
// custom networks: N timed runs, in milliseconds.
type ScaleStat struct {
	Dataplane string  `json:"dataplane"`
	Networks  int     `json:"networks"`
	Op        string  `json:"op"`
	N         int     `json:"n"`
	MedianMS  float64 `json:"median_ms"`
	MinMS     float64 `json:"min_ms"`
	MaxMS     float64 `json:"max_ms"`
}

func scaleStat(dataplane string, networks int, op string, ms []float64) ScaleStat {
	lo, hi := minMax(ms)
	return ScaleStat{Dataplane: dataplane, Networks: networks, Op: op, N: len(ms), MedianMS: median(ms), MinMS: lo, MaxMS: hi}
}

// writeScaleTable renders the scale run: one row per dataplane and count,
// medians in ms.
func writeScaleTable(w io.Writer, stats []ScaleStat) error {
	if len(stats) == 0 {
		return nil
	}
	type row struct {
		dp string
		n  int
	}
	var rows []row
	cell := map[row]map[string]ScaleStat{}
	for _, s := range stats {
		r := row{s.Dataplane, s.Networks}
		if cell[r] == nil {
			cell[r] = map[string]ScaleStat{}
			rows = append(rows, r)
		}
		cell[r][s.Op] = s
	}
	fmt.Fprintln(w, "\nScale: median ms per operation with NETWORKS custom networks (min–max of the runs); flat down a column is good")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "DATAPLANE\tNETWORKS\t")
	for _, op := range scaleOrder {
		fmt.Fprintf(tw, "%s\t", scaleTitles[op])
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t", r.dp, r.n)
		for _, op := range scaleOrder {
			s, ok := cell[r][op]
			if !ok || s.N == 0 {
				fmt.Fprint(tw, "-\t")
				continue
			}
			fmt.Fprintf(tw, "%s (%s–%s)\t", formatValue(s.MedianMS), formatValue(s.MinMS), formatValue(s.MaxMS))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write scale table: %w", err)
	}
	return nil
}

// CtlStat is the control-plane figure of one dataplane.
type CtlStat struct {
	Dataplane  string `json:"dataplane"`
	Hosts      int    `json:"hosts"`
	Containers int    `json:"containers"` // created and timed
	// Unreached counts containers h2 could not ping within the wait (10 s);
	// they are not in the percentiles. The times are 0 without any sample.
	Unreached   int       `json:"unreached"`
	MedianMS    float64   `json:"median_ms"`
	P99MS       float64   `json:"p99_ms"` // nearest rank: of 50 or fewer samples, the slowest
	MinMS       float64   `json:"min_ms"`
	MaxMS       float64   `json:"max_ms"`
	TargetP99MS float64   `json:"target_p99_ms"`
	Achieved    *bool     `json:"achieved,omitempty"`
	SamplesMS   []float64 `json:"samples_ms"`
}

// counterLine sums an eBPF setup's endpoint counters into one line for the report.
func counterLine(setup string, st *api.DataplaneStatus) string {
	var fast, slow, drops uint64
	for _, e := range st.Endpoints {
		fast += e.FastPackets
		slow += e.SlowPackets
		for _, n := range e.Drops {
			drops += n
		}
	}
	return fmt.Sprintf("%s counters after the run: %d program attachment(s), %d endpoint(s), fast path %d packets, slow path %d packets, drops %d",
		setup, len(st.Programs), len(st.Endpoints), fast, slow, drops)
}

// median returns the median of xs (mean of the middle two for even n); NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minMax(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	lo, hi = xs[0], xs[0]
	for _, x := range xs[1:] {
		lo = math.Min(lo, x)
		hi = math.Max(hi, x)
	}
	return lo, hi
}

// ratio returns a/b, or nil when either is missing or b is zero.
func ratio(a, b float64) *float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return nil
	}
	r := a / b
	return &r
}

// summarize computes one Stat per (setup, metric) that has samples, in setup then metric order.
func summarize(samples []Sample, setups []string) []Stat {
	vals := map[[2]string][]float64{}
	for _, s := range samples {
		k := [2]string{s.Setup, s.Metric}
		vals[k] = append(vals[k], s.Value)
	}
	medOf := func(setup, metric string) float64 {
		return median(vals[[2]string{setup, metric}])
	}
	var out []Stat
	for _, setup := range setups {
		for _, m := range metrics {
			xs := vals[[2]string{setup, m.Key}]
			if len(xs) == 0 {
				continue
			}
			lo, hi := minMax(xs)
			st := Stat{Setup: setup, Metric: m.Key, N: len(xs), Median: median(xs), Min: lo, Max: hi}
			if isOverlaySetup(setup) {
				if setup != setupOvlKernel {
					st.VsOvlKernel = ratio(st.Median, medOf(setupOvlKernel, m.Key))
				}
				if setup != setupUnderlay {
					st.VsUnderlay = ratio(st.Median, medOf(setupUnderlay, m.Key))
				}
				out = append(out, st)
				continue
			}
			if setup != setupDocker {
				st.VsDocker = ratio(st.Median, medOf(setupDocker, m.Key))
			}
			if setup != setupKernel {
				st.VsKernel = ratio(st.Median, medOf(setupKernel, m.Key))
			}
			if setup != setupVeth {
				st.VsVeth = ratio(st.Median, medOf(setupVeth, m.Key))
			}
			out = append(out, st)
		}
	}
	return out
}

// checkTargets fills Ratio and Achieved of each target whose setups were measured.
func checkTargets(stats []Stat) []Target {
	med := map[[2]string]float64{}
	for _, s := range stats {
		med[[2]string{s.Setup, s.Metric}] = s.Median
	}
	return evalTargets(targets, med)
}

// evalTargets fills Ratio and Achieved of each of ts whose setup and
// reference have a median in med (keyed by setup and metric).
func evalTargets(ts []Target, med map[[2]string]float64) []Target {
	out := make([]Target, 0, len(ts))
	for _, t := range ts {
		a, okA := med[[2]string{t.Setup, t.Metric}]
		b, okB := med[[2]string{t.Ref, t.Metric}]
		if r := ratio(a, b); okA && okB && r != nil {
			t.Ratio = r
			ok := *r <= t.Bound
			if t.AtLeast {
				ok = *r >= t.Bound
			}
			t.Achieved = &ok
		}
		out = append(out, t)
	}
	return out
}

// formatValue prints a value with about three significant digits.
func formatValue(v float64) string {
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

func formatRatio(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fx", *r)
}

// writeTable renders the summary and the target check as aligned text.
func writeTable(w io.Writer, stats []Stat, tgts []Target, failures, retried []Failure) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	overlay := false
	for _, s := range stats {
		overlay = overlay || isOverlaySetup(s.Setup)
	}
	header := "METRIC\tSETUP\tN\tMEDIAN\tMIN–MAX\tvs DOCKER\tvs KERNEL\tvs VETH\t"
	if overlay {
		header += "vs OVL-KERNEL\tvs UNDERLAY\t"
	}
	fmt.Fprintln(tw, header)
	for _, m := range metrics {
		better := "higher is better"
		if !m.HigherBetter {
			better = "lower is better"
		}
		first := true
		for _, s := range stats {
			if s.Metric != m.Key {
				continue
			}
			label := ""
			if first {
				label = fmt.Sprintf("%s (%s, %s)", m.Title, m.Unit, better)
				first = false
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s–%s\t%s\t%s\t%s\t", label, s.Setup, s.N,
				formatValue(s.Median), formatValue(s.Min), formatValue(s.Max),
				formatRatio(s.VsDocker), formatRatio(s.VsKernel), formatRatio(s.VsVeth))
			if overlay {
				fmt.Fprintf(tw, "%s\t%s\t", formatRatio(s.VsOvlKernel), formatRatio(s.VsUnderlay))
			}
			fmt.Fprintln(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	measured := map[string]bool{}
	for _, s := range stats {
		measured[s.Metric] = true
	}
	sep := "\n"
	for _, n := range metricNotes {
		for _, k := range n.keys {
			if measured[k] {
				fmt.Fprint(w, sep+n.text+"\n")
				sep = ""
				break
			}
		}
	}
	var checked []Target
	for _, t := range tgts {
		if t.Achieved != nil {
			checked = append(checked, t)
		}
	}
	if len(checked) > 0 {
		fmt.Fprintln(w, "\nTargets (ratios of medians; issue 3: ebpf bridge, issue 9: ebpf overlay):")
		for _, t := range checked {
			mark := "MISS"
			if *t.Achieved {
				mark = "ok"
			}
			fmt.Fprintf(w, "  %-4s  %-46s measured %-6s (issue %d)\n", mark, t.Desc, formatRatio(t.Ratio), t.Issue)
		}
	}
	writeFailures(w, "Retried after a failure:", retried)
	writeFailures(w, "Failures:", failures)
	return nil
}

func writeFailures(w io.Writer, title string, fs []Failure) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+title)
	for _, f := range fs {
		where := f.Setup
		if f.Metric != "" {
			where += "/" + f.Metric
		}
		if f.Round > 0 {
			where += fmt.Sprintf(" round %d", f.Round)
		}
		fmt.Fprintf(w, "  %s: %s\n", where, oneLine(f.Error, 600))
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

// writeJSON writes the result document with every sample.
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
