package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9, 1, 7}, 2},
	}
	for _, c := range cases {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("median reordered its input: %v", c.in)
			}
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) should be NaN")
	}
}

func TestMinMaxRatio(t *testing.T) {
	lo, hi := minMax([]float64{4, -1, 9, 3})
	if lo != -1 || hi != 9 {
		t.Errorf("minMax = %v, %v; want -1, 9", lo, hi)
	}
	if lo, hi := minMax(nil); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Error("minMax(nil) should be NaN, NaN")
	}
	if r := ratio(3, 2); r == nil || *r != 1.5 {
		t.Errorf("ratio(3, 2) = %v, want 1.5", r)
	}
	if ratio(1, 0) != nil || ratio(math.NaN(), 1) != nil || ratio(1, math.NaN()) != nil {
		t.Error("ratio with zero or missing reference should be nil")
	}
}

// fixtureSamples: ebpf twice the kernel and docker rate, veth a bit above ebpf; latency
// only for ebpf and kernel, two-CPU latency only for docker.
func fixtureSamples() []Sample {
	var out []Sample
	add := func(setup, metric string, vals ...float64) {
		for i, v := range vals {
			out = append(out, Sample{Round: i + 1, Setup: setup, Metric: metric, Value: v})
		}
	}
	add(setupEBPF, metricPPS, 2.0, 1.8, 2.2)
	add(setupKernel, metricPPS, 1.0, 0.9, 1.2)
	add(setupVeth, metricPPS, 2.5, 2.4, 2.6)
	add(setupDocker, metricPPS, 1.0, 1.0, 1.0)
	add(setupDocker, metricP50x2, 30)
	add(setupEBPF, metricP50, 10, 12, 11)
	add(setupKernel, metricP50, 20, 22, 21)
	add(setupKernel, metricTCP, 5)
	return out
}

func findStat(stats []Stat, setup, metric string) *Stat {
	for i := range stats {
		if stats[i].Setup == setup && stats[i].Metric == metric {
			return &stats[i]
		}
	}
	return nil
}

func TestSummarize(t *testing.T) {
	stats := summarize(fixtureSamples(), allSetups)
	if len(stats) != 8 {
		t.Fatalf("got %d stats, want 8: %+v", len(stats), stats)
	}
	e := findStat(stats, setupEBPF, metricPPS)
	if e == nil || e.N != 3 || e.Median != 2.0 || e.Min != 1.8 || e.Max != 2.2 {
		t.Fatalf("ebpf pps stat = %+v", e)
	}
	if e.VsKernel == nil || math.Abs(*e.VsKernel-2.0) > 1e-9 {
		t.Errorf("ebpf pps vs kernel = %v, want 2", e.VsKernel)
	}
	if e.VsVeth == nil || math.Abs(*e.VsVeth-0.8) > 1e-9 {
		t.Errorf("ebpf pps vs veth = %v, want 0.8", e.VsVeth)
	}
	if e.VsDocker == nil || math.Abs(*e.VsDocker-2.0) > 1e-9 {
		t.Errorf("ebpf pps vs docker = %v, want 2", e.VsDocker)
	}
	if d := findStat(stats, setupDocker, metricPPS); d == nil || d.VsDocker != nil || d.VsKernel == nil || *d.VsKernel != 1 {
		t.Errorf("docker pps ratios wrong: %+v", d)
	}
	k := findStat(stats, setupKernel, metricPPS)
	if k.VsKernel != nil {
		t.Error("kernel has no ratio to itself")
	}
	if k.VsVeth == nil || math.Abs(*k.VsVeth-0.4) > 1e-9 {
		t.Errorf("kernel pps vs veth = %v, want 0.4", k.VsVeth)
	}
	if v := findStat(stats, setupVeth, metricPPS); v.VsVeth != nil || v.VsKernel == nil {
		t.Errorf("veth pps ratios wrong: %+v", v)
	}
	// No veth latency sample: no ratio, not a zero.
	if l := findStat(stats, setupEBPF, metricP50); l.VsVeth != nil || l.VsKernel == nil || math.Abs(*l.VsKernel-11.0/21) > 1e-9 {
		t.Errorf("ebpf p50 ratios wrong: %+v", l)
	}
	if findStat(stats, setupEBPF, metricTCP) != nil {
		t.Error("a setup without samples must have no stat")
	}
	// Setup order follows the setups argument.
	if stats[0].Setup != setupEBPF || stats[len(stats)-1].Setup != setupVeth {
		t.Errorf("stats out of order: first %s, last %s", stats[0].Setup, stats[len(stats)-1].Setup)
	}
}

func TestCheckTargets(t *testing.T) {
	tg := checkTargets(summarize(fixtureSamples(), allSetups))
	byDesc := map[string]Target{}
	for _, x := range tg {
		byDesc[x.Desc] = x
	}
	if x := byDesc["small-packet rate >= 1.35x kernel"]; x.Achieved == nil || !*x.Achieved {
		t.Errorf("pps vs kernel 2.0x should pass: %+v", x)
	}
	if x := byDesc["small-packet rate >= 0.95x veth"]; x.Achieved == nil || *x.Achieved {
		t.Errorf("pps vs veth 0.8x should miss: %+v", x)
	}
	if x := byDesc["p50 latency <= 0.85x kernel"]; x.Achieved == nil || !*x.Achieved {
		t.Errorf("p50 0.52x should pass: %+v", x)
	}
	if x := byDesc["TCP throughput >= 1.0x kernel"]; x.Achieved != nil || x.Ratio != nil {
		t.Errorf("TCP target without ebpf samples must stay unchecked: %+v", x)
	}
}

func TestWriteTable(t *testing.T) {
	stats := summarize(fixtureSamples(), allSetups)
	var b bytes.Buffer
	fails := []Failure{{Round: 2, Setup: setupEBPF, Metric: "tcp (iperf3)", Error: "iperf3: boom\nsecond line"}}
	retried := []Failure{{Round: 1, Setup: setupVeth, Metric: "udp 64B pps", Error: "load-recv: no datagram received"}}
	if err := writeTable(&b, stats, checkTargets(stats), fails, retried); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"MEDIAN", "vs DOCKER", "vs KERNEL", "vs VETH",
		"64B UDP rate (Mpps, higher is better)",
		"RR latency p50, one CPU (µs, lower is better)",
		"RR latency p50, two CPUs (µs, lower is better)",
		"two CPUs: client and server on different CPUs",
		"2.00", "1.80–2.20", "2.00x", "0.80x",
		"ok    small-packet rate >= 1.35x kernel",
		"MISS  small-packet rate >= 0.95x veth",
		"Failures:\n  ebpf/tcp (iperf3) round 2: iperf3: boom second line",
		"Retried after a failure:\n  veth/udp 64B pps round 1: load-recv: no datagram received",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "TCP throughput >= 1.0x kernel") {
		t.Error("unchecked target printed")
	}
	// One row per stat plus the header.
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "–") && !strings.HasPrefix(line, "METRIC") {
			rows++
		}
	}
	if rows != len(stats) {
		t.Errorf("table has %d data rows, want %d:\n%s", rows, len(stats), out)
	}
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[float64]string{1234.6: "1235", 42.25: "42.2", 0.1749: "0.175", 3: "3.00", 0: "0.00", math.NaN(): "-"} {
		if got := formatValue(in); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	samples := fixtureSamples()
	stats := summarize(samples, allSetups)
	res := &Result{
		Started: time.Unix(1700000000, 0).UTC(), Finished: time.Unix(1700000100, 0).UTC(),
		Host:    map[string]string{"cpus": "2"},
		Config:  Config{Rounds: 3, Duration: "4s", Setups: allSetups, Latency: "sockperf"},
		Samples: samples, Failures: []Failure{{Setup: setupEBPF, Error: "set up: x"}},
		Summary: stats, Targets: checkTargets(stats),
	}
	path := filepath.Join(t.TempDir(), "sub", "results.json")
	if err := writeJSON(path, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results.json is not valid JSON: %v", err)
	}
	if len(back.Samples) != len(samples) || len(back.Summary) != len(stats) || len(back.Failures) != 1 {
		t.Fatalf("round trip lost data: %d samples, %d stats, %d failures", len(back.Samples), len(back.Summary), len(back.Failures))
	}
	if s := findStat(back.Summary, setupEBPF, metricPPS); s == nil || s.VsKernel == nil || *s.VsKernel != 2.0 {
		t.Errorf("summary after round trip: %+v", s)
	}
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	for _, k := range []string{"started", "finished", "host", "config", "samples", "failures", "summary", "targets"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
}

func TestCounterLine(t *testing.T) {
	st := &api.DataplaneStatus{
		Programs: []api.ProgramAttachment{{Interface: "nda"}, {Interface: "ndb"}},
		Endpoints: []api.EndpointCounters{
			{FastPackets: 10, SlowPackets: 2, Drops: map[string]uint64{"spoofed_mac": 1}},
			{FastPackets: 5, SlowPackets: 1, Drops: map[string]uint64{"spoofed_ip": 2, "icc": 3}},
		},
	}
	got := counterLine("ebpf", st)
	want := "ebpf counters after the run: 2 program attachment(s), 2 endpoint(s), fast path 15 packets, slow path 3 packets, drops 6"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestWriteScaleTable(t *testing.T) {
	stats := []ScaleStat{
		scaleStat(setupEBPF, 10, scaleCreate, []float64{3, 1, 2}),
		scaleStat(setupEBPF, 10, scaleRm, []float64{4}),
		scaleStat(setupEBPF, 1000, scaleCreate, []float64{2.5}),
		scaleStat(setupKernel, 10, scaleLsCLI, []float64{20, 30}),
	}
	if s := stats[0]; s.N != 3 || s.MedianMS != 2 || s.MinMS != 1 || s.MaxMS != 3 {
		t.Errorf("scaleStat = %+v", s)
	}
	var b bytes.Buffer
	if err := writeScaleTable(&b, stats); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want title, header and 3 rows:\n%s", b.String())
	}
	for i, want := range [][]string{
		{"DATAPLANE", "NETWORKS", "CREATE", "CREATE --subnet", "RM", "LS (API)", "LS (CLI)", "FILL"},
		{"ebpf", "10", "2.00 (1.00–3.00)", "-", "4.00 (4.00–4.00)", "-", "-", "-"},
		{"ebpf", "1000", "2.50 (2.50–2.50)", "-", "-", "-", "-", "-"},
		{"kernel", "10", "-", "-", "-", "-", "25.0 (20.0–30.0)", "-"},
	} {
		cols := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(lines[i+1]), -1)
		if strings.HasPrefix(cols[len(cols)-1], "FILL") {
			cols[len(cols)-1] = "FILL"
		}
		if strings.Join(cols, "|") != strings.Join(want, "|") {
			t.Errorf("line %d = %q, want columns %q", i+1, lines[i+1], want)
		}
	}
	b.Reset()
	if err := writeScaleTable(&b, nil); err != nil || b.Len() != 0 {
		t.Errorf("no scale run should print nothing, got %q", b.String())
	}
}
