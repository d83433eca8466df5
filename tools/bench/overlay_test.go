//go:build linux

package main

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api"
)

func near(r *float64, want float64) bool { return r != nil && math.Abs(*r-want) < 1e-9 }

func TestOverlayRatiosAndTargets(t *testing.T) {
	var samples []Sample
	add := func(setup, metric string, v float64) {
		samples = append(samples, Sample{Round: 1, Setup: setup, Metric: metric, Value: v})
	}
	add(setupOvlEBPF, metricPPS, 1.4)
	add(setupOvlKernel, metricPPS, 1.0)
	add(setupUnderlay, metricPPS, 2.0)
	add(setupOvlEBPF, metricP50, 20)
	add(setupOvlKernel, metricP50, 25)
	add(setupOvlEBPF, metricTCP, 8.5)
	add(setupOvlKernel, metricTCP, 10)
	add(setupKernel, metricPPS, 0.5)
	stats := summarize(samples, allSetups)

	e := findStat(stats, setupOvlEBPF, metricPPS)
	if e == nil || !near(e.VsOvlKernel, 1.4) || !near(e.VsUnderlay, 0.7) {
		t.Fatalf("ovl-ebpf pps: %+v", e)
	}
	// The bridge references mean nothing for an overlay setup, and back.
	if e.VsKernel != nil || e.VsDocker != nil || e.VsVeth != nil {
		t.Errorf("ovl-ebpf has bridge ratios: %+v", e)
	}
	if k := findStat(stats, setupKernel, metricPPS); k.VsOvlKernel != nil || k.VsUnderlay != nil {
		t.Errorf("kernel bridge has overlay ratios: %+v", k)
	}
	if k := findStat(stats, setupOvlKernel, metricPPS); k.VsOvlKernel != nil || !near(k.VsUnderlay, 0.5) {
		t.Errorf("ovl-kernel pps: %+v", k)
	}
	if u := findStat(stats, setupUnderlay, metricPPS); u.VsUnderlay != nil || !near(u.VsOvlKernel, 2) {
		t.Errorf("underlay pps: %+v", u)
	}

	got := map[string]bool{}
	for _, tg := range checkTargets(stats) {
		if tg.Issue == 9 && tg.Achieved != nil {
			got[tg.Desc] = *tg.Achieved
		}
	}
	want := map[string]bool{
		"overlay small-packet rate >= 1.3x ovl-kernel": true,  // 1.4
		"overlay p50 latency <= 0.75x ovl-kernel":      false, // 0.8
		"overlay TCP throughput >= 0.9x ovl-kernel":    false, // 0.85
	}
	if len(got) != len(want) {
		t.Fatalf("issue 9 targets checked: %v, want %v", got, want)
	}
	for d, w := range want {
		if got[d] != w {
			t.Errorf("%s: achieved %v, want %v", d, got[d], w)
		}
	}

	var b bytes.Buffer
	if err := writeTable(&b, stats, checkTargets(stats), nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"vs OVL-KERNEL", "vs UNDERLAY", "1.40x", "MISS  overlay p50 latency <= 0.75x ovl-kernel", "(issue 9)"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	// Without overlay setups the table keeps its bridge columns only.
	b.Reset()
	bridge := summarize(fixtureSamples(), allSetups)
	if err := writeTable(&b, bridge, checkTargets(bridge), nil, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "OVL-KERNEL") {
		t.Errorf("overlay columns without overlay setups:\n%s", b.String())
	}
}

func TestOverlayPrograms(t *testing.T) {
	st := &api.DataplaneStatus{Programs: []api.ProgramAttachment{{Interface: "nd1", Program: "from_container"}}}
	if overlayPrograms(st) != 0 {
		t.Error("the bridge program counted as the overlay's")
	}
	st.Programs = append(st.Programs, api.ProgramAttachment{Interface: "netd_vxlan", Program: "overlay_from_tunnel"})
	if overlayPrograms(st) != 1 {
		t.Error("overlay program not counted")
	}
}

func TestCtlStat(t *testing.T) {
	samples := make([]float64, 50)
	for i := range samples {
		samples[i] = float64(50 - i) // 50 .. 1, unsorted
	}
	st := ctlStat("kernel", 50, samples)
	if st.MedianMS != 25.5 || st.P99MS != 50 || st.MinMS != 1 || st.MaxMS != 50 || st.Unreached != 0 || st.Achieved == nil || !*st.Achieved {
		t.Fatalf("ctlStat = %+v", st)
	}
	if samples[0] != 50 {
		t.Error("ctlStat reordered its input")
	}
	if st := ctlStat("ebpf", 5, []float64{100, 2500, 120, 130, 140}); st.Achieved == nil || *st.Achieved {
		t.Errorf("p99 2.5 s must miss the 2 s target: %+v", st)
	}
	if st := ctlStat("ebpf", 3, []float64{100, 120}); st.Unreached != 1 || st.Achieved == nil || *st.Achieved {
		t.Errorf("an unreached container must miss the target: %+v", st)
	}
	var b bytes.Buffer
	if err := writeCtlTable(&b, []CtlStat{ctlStat("kernel", 50, samples), ctlStat("ebpf", 2, nil)}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"DATAPLANE", "P99", "kernel", "25.5", "1.00–50.0", "ok"} {
		if !strings.Contains(out, s) {
			t.Errorf("control-plane table lacks %q:\n%s", s, out)
		}
	}
	if !regexp.MustCompile(`(?m)^ebpf\s+2\s+2\s+-\s+-`).MatchString(out) {
		t.Errorf("no sample: want dashes in the ebpf row:\n%s", out)
	}
}

func TestParseControlPlaneFlag(t *testing.T) {
	o, err := parseFlags([]string{"--controlplane", "5", "--only", "ovl-kernel,underlay"})
	if err != nil || o.ctl != 5 || strings.Join(o.only, ",") != "ovl-kernel,underlay" {
		t.Fatalf("parseFlags: %+v %v", o, err)
	}
	if _, err := parseFlags([]string{"--controlplane", "-1"}); err == nil {
		t.Error("negative --controlplane accepted")
	}
	if o, err := parseFlags(nil); err != nil || o.ctl != 50 {
		t.Errorf("default --controlplane = %d, %v; want 50", o.ctl, err)
	}
}
