//go:build linux

package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIperf3(t *testing.T) {
	r, err := parseIperf3(readFixture(t, "iperf3_tcp.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Values of the captured fixture's "end" section.
	if r.ReceivedBps < 1e9 || r.SentBps < r.ReceivedBps*0.9 {
		t.Errorf("implausible throughput: %+v", r)
	}
	_, err = parseIperf3(readFixture(t, "iperf3_error.json"))
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("error report not surfaced: %v", err)
	}
	if _, err := parseIperf3([]byte("iperf3: error - unable to connect")); err == nil {
		t.Error("non-JSON output accepted")
	}
	if _, err := parseIperf3([]byte(`{"end":{}}`)); err == nil {
		t.Error("report without throughput accepted")
	}
}

func TestParseIperf3Exact(t *testing.T) {
	in := `{"end":{"sum_sent":{"bits_per_second":2.5e10,"retransmits":7},"sum_received":{"bits_per_second":2.4e10}}}`
	r, err := parseIperf3([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if r.SentBps != 2.5e10 || r.ReceivedBps != 2.4e10 || r.Retransmits != 7 {
		t.Errorf("got %+v", r)
	}
}

func TestParseSockperf(t *testing.T) {
	r, err := parseSockperf(readFixture(t, "sockperf_pp_fullrtt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if r.P50 != 13.159 || r.P99 != 60.630 || r.Avg != 23.484 || r.Observations == 0 {
		t.Errorf("got %+v, want p50 13.159 p99 60.630 avg 23.484", r)
	}
	if _, err := parseSockperf(readFixture(t, "sockperf_pp_halfrtt.txt")); err == nil {
		t.Error("half round-trip output accepted")
	}
	if _, err := parseSockperf([]byte("sockperf: ERROR: no connection")); err == nil {
		t.Error("output without percentiles accepted")
	}
}

func TestSocketTableHasPort(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0200C80A:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100C80A:9C40 0200C80A:1451 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1`
	if !socketTableHasPort(tcp, 5201, "0A") {
		t.Error("listening port 5201 (0x1451) not found")
	}
	if socketTableHasPort(tcp, 40000, "0A") {
		t.Error("established socket taken for a listener")
	}
	if socketTableHasPort(tcp, 5202, "0A") {
		t.Error("wrong port matched")
	}
}

func TestWholeSeconds(t *testing.T) {
	for in, want := range map[time.Duration]int{300 * time.Millisecond: 1, 3 * time.Second: 3, 3500 * time.Millisecond: 4} {
		if got := wholeSeconds(in); got != want {
			t.Errorf("wholeSeconds(%v) = %d, want %d", in, got, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	if p := percentile(xs, 50); p != 50 {
		t.Errorf("p50 = %v, want 50", p)
	}
	if p := percentile(xs, 99); p != 99 {
		t.Errorf("p99 = %v, want 99", p)
	}
	if p := percentile([]float64{7}, 99); p != 7 {
		t.Errorf("p99 of one = %v", p)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--rounds", "2", "--duration", "3s", "--only", "veth,ebpf", "--pin", "none", "--latency", "go"})
	if err != nil {
		t.Fatal(err)
	}
	// --only keeps the canonical interleaving order, not the order given.
	if o.rounds != 2 || o.duration != 3*time.Second || strings.Join(o.only, ",") != "ebpf,veth" || o.pin != [2]string{} || o.latency != "go" {
		t.Errorf("got %+v", o)
	}
	if o, err := parseFlags([]string{"--pin", "1,0"}); err != nil || o.pin != [2]string{"1", "0"} {
		t.Errorf("--pin 1,0: %+v, %v", o.pin, err)
	}
	for _, bad := range [][]string{
		{"--only", "bogus"}, {"--only", ","}, {"--rounds", "0"}, {"--duration", "10ms"},
		{"--pin", "x"}, {"--latency", "nope"}, {"extra"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestMeasurements(t *testing.T) {
	names := func(ms []measurement) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.name)
		}
		return strings.Join(out, "|")
	}
	pinned := measurements("/bench", options{latency: "sockperf", pin: [2]string{"0", "1"}})
	if got, want := names(pinned), "tcp (iperf3)|udp 64B pps|rr one CPU (sockperf)|rr two CPUs (sockperf)|tcp conn/request"; got != want {
		t.Errorf("pinned tests %q, want %q", got, want)
	}
	if pinned[2].pin != pinSame || pinned[3].pin != pinSplit || pinned[4].pin != pinSame {
		t.Errorf("pin modes: one CPU %v, two CPUs %v, conn rate %v", pinned[2].pin, pinned[3].pin, pinned[4].pin)
	}
	if got, want := names(measurements("/bench", options{latency: "go"})), "tcp (iperf3)|udp 64B pps|rr one CPU (go ping)|tcp conn/request"; got != want {
		t.Errorf("unpinned tests %q, want %q", got, want)
	}
	run := renamed(func(context.Context, Pair, time.Duration) (map[string]float64, map[string]float64, error) {
		return map[string]float64{metricP50: 1, metricP99: 2, "other": 3}, map[string]float64{"x": 4}, nil
	}, map[string]string{metricP50: metricP50x2, metricP99: metricP99x2})
	vals, extra, err := run(context.Background(), Pair{}, time.Second)
	if err != nil || len(vals) != 3 || vals[metricP50x2] != 1 || vals[metricP99x2] != 2 || vals["other"] != 3 || extra["x"] != 4 {
		t.Errorf("renamed: %v %v %v", vals, extra, err)
	}
}
