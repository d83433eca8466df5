//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ports used inside the bench's own namespaces.
const (
	portIperf    = 5201
	portLoad     = 9000
	portSockperf = 11111
	portPong     = 9001
	portCRR      = 9002
)

// runFunc runs one test on a pair for d and returns metric values and side numbers.
type runFunc = func(ctx context.Context, p Pair, d time.Duration) (vals, extra map[string]float64, err error)

// measurement runs one kind of test on a pair and returns one or more samples' values.
type measurement struct {
	name string // shown in the progress line
	run  runFunc
	pin  pinMode
}

// measurements are the tests of one round, in order.
func measurements(self string, o options) []measurement {
	rr, tool := measureSockperf, "sockperf"
	if o.latency != "sockperf" {
		rr, tool = measureGoPing(self), "go ping"
	}
	tests := []measurement{
		{name: "tcp (iperf3)", run: measureTCP, pin: pinSame},
		{name: "udp 64B pps", run: measurePPS(self), pin: pinSplit},
		{name: "rr one CPU (" + tool + ")", run: rr, pin: pinSame},
	}
	// Unpinned, the two latency runs would be the same test.
	if o.pin != [2]string{} {
		tests = append(tests, measurement{name: "rr two CPUs (" + tool + ")", pin: pinSplit,
			run: renamed(rr, map[string]string{metricP50: metricP50x2, metricP99: metricP99x2})})
	}
	return append(tests, measurement{name: "tcp conn/request", run: measureCRR(self), pin: pinSame})
}

// renamed reports run's values under other metric keys.
func renamed(run runFunc, keys map[string]string) runFunc {
	return func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
		vals, extra, err := run(ctx, p, d)
		out := map[string]float64{}
		for k, v := range vals {
			if nk, ok := keys[k]; ok {
				k = nk
			}
			out[k] = v
		}
		return out, extra, err
	}
}

// pinMode says how a measurement's client and server are placed on the --pin CPUs.
type pinMode int

const (
	pinNone pinMode = iota
	// pinSplit: separate CPUs, so a flooding sender does not starve its receiver.
	pinSplit
	// pinSame: one CPU; on a small VM cross-CPU wake-ups would otherwise make ping-pong
	// latency bimodal (13 vs 60 µs on veth) depending on where the scheduler put the two.
	// Ping-pong is also measured pinSplit: that wake-up is what two containers pay.
	pinSame
)

// server is a background process in a namespace that a measurement talks to.
type server struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr syncBuffer
	rest   bytes.Buffer  // stdout after the ready line; read only after done is closed
	done   chan struct{} // closed when stdout reaches EOF, i.e. the server exited
}

// startServer starts name in ns; with ready set it waits for the ready line on stdout,
// otherwise until the process has a listening socket on port.
func startServer(ctx context.Context, p Pair, ready bool, proto string, port int, name string, args ...string) (*server, error) {
	bin, argv := pinned(p.ServerCPU, name, args)
	s := &server{cmd: nsCommand(ctx, p.ServerNS, bin, argv...), done: make(chan struct{})}
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("pipe %s: %w", name, err)
	}
	s.stdout = bufio.NewReader(out)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if ready {
		errc := make(chan error, 1)
		go func() { errc <- readReady(s.stdout) }()
		select {
		case err = <-errc:
		case <-time.After(10 * time.Second):
			err = errors.New("timed out")
		}
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("wait for %s: %w: %s", name, err, strings.TrimSpace(s.stderr.String()))
		}
	} else if err := waitListening(s.cmd.Process.Pid, proto, port, 10*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("wait for %s: %w: %s", name, err, strings.TrimSpace(s.stderr.String()))
	}
	// Drain stdout so a chatty server never blocks on a full pipe.
	go func() { _, _ = s.stdout.WriteTo(&s.rest); close(s.done) }()
	return s, nil
}

// syncBuffer is a bytes.Buffer safe to read while exec's copier writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stop kills the server and waits for it, bounded.
func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	waited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}
}

// waitListening polls /proc/<pid>/net/<proto> (the process's own netns) for a socket bound
// to port, listening for TCP, unconnected for UDP.
func waitListening(pid int, proto string, port int, timeout time.Duration) error {
	want := "0A" // TCP_LISTEN
	if proto == "udp" {
		want = "07" // TCP_CLOSE, which is how an unconnected UDP socket shows
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err == nil && socketTableHasPort(string(b), port, want) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no %s socket on port %d after %s", proto, port, timeout)
}

// socketTableHasPort reports whether a /proc/net/{tcp,udp} table has a local port in state.
func socketTableHasPort(table string, port int, state string) bool {
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == state {
			return true
		}
	}
	return false
}

// runClient runs a client to completion and returns its stdout.
func runClient(ctx context.Context, p Pair, timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bin, argv := pinned(p.ClientCPU, name, args)
	cmd := nsCommand(ctx, p.ClientNS, bin, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = oneLine(stdout.String(), 300)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return stdout.Bytes(), nil
}

// wholeSeconds rounds a duration up to whole seconds, at least one: iperf3 and sockperf take integers.
func wholeSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// measureTCP runs one iperf3 TCP stream from client to server.
func measureTCP(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
	srv, err := startServer(ctx, p, false, "tcp", portIperf, "iperf3", "-s", "-1", "-B", p.ServerIP, "-p", strconv.Itoa(portIperf))
	if err != nil {
		return nil, nil, err
	}
	defer srv.stop()
	secs := wholeSeconds(d)
	out, err := runClient(ctx, p, d+20*time.Second, "iperf3", "-c", p.ServerIP, "-p", strconv.Itoa(portIperf), "-t", strconv.Itoa(secs), "-J")
	res, perr := parseIperf3(out)
	if perr != nil {
		if err != nil {
			return nil, nil, err
		}
		return nil, nil, perr
	}
	return map[string]float64{metricTCP: res.ReceivedBps / 1e9},
		map[string]float64{"retransmits": float64(res.Retransmits), "sent_gbps": res.SentBps / 1e9}, nil
}

// iperf3Result holds the numbers the bench takes from iperf3 -J.
type iperf3Result struct {
	SentBps     float64
	ReceivedBps float64
	Retransmits int
}

// parseIperf3 reads iperf3's JSON report (a TCP test).
func parseIperf3(b []byte) (iperf3Result, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Retransmits   int     `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return iperf3Result{}, fmt.Errorf("parse iperf3 JSON: %w", err)
	}
	if doc.Error != "" {
		return iperf3Result{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	if doc.End.SumReceived.BitsPerSecond <= 0 {
		return iperf3Result{}, errors.New("iperf3: no received throughput in report")
	}
	return iperf3Result{
		SentBps:     doc.End.SumSent.BitsPerSecond,
		ReceivedBps: doc.End.SumReceived.BitsPerSecond,
		Retransmits: doc.End.SumSent.Retransmits,
	}, nil
}

// measurePPS runs the Go sendmmsg/recvmmsg load generator with 64-byte payloads.
func measurePPS(self string) func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
	return func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
		addr := fmt.Sprintf("%s:%d", p.ServerIP, portLoad)
		srv, err := startServer(ctx, p, true, "udp", portLoad, self, "load-recv",
			"--listen", addr, "--idle", "300ms", "--max", (d + 15*time.Second).String())
		if err != nil {
			return nil, nil, err
		}
		defer srv.stop()
		sendOut, err := runClient(ctx, p, d+15*time.Second, self, "load-send", "--dst", addr, "--size", "64", "--duration", d.String())
		if err != nil {
			return nil, nil, err
		}
		var sent loadResult
		if err := json.Unmarshal(sendOut, &sent); err != nil {
			return nil, nil, fmt.Errorf("parse load-send output: %w", err)
		}
		// The receiver ends on its own after its idle timeout; wait for its report.
		select {
		case <-srv.done:
		case <-time.After(10 * time.Second):
			return nil, nil, fmt.Errorf("load-recv did not finish: %s", strings.TrimSpace(srv.stderr.String()))
		}
		recvOut := srv.rest.Bytes()
		var got loadResult
		if err := json.Unmarshal(recvOut, &got); err != nil {
			return nil, nil, fmt.Errorf("parse load-recv output %q: %w: %s", recvOut, err, strings.TrimSpace(srv.stderr.String()))
		}
		return map[string]float64{metricPPS: got.PPS / 1e6},
			map[string]float64{"sent_mpps": sent.PPS / 1e6, "sent": float64(sent.Packets), "received": float64(got.Packets), "send_errors": float64(sent.Errors)}, nil
	}
}

// measureSockperf runs a sockperf UDP ping-pong with 64-byte messages and full RTTs.
func measureSockperf(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
	port := strconv.Itoa(portSockperf)
	srv, err := startServer(ctx, p, false, "udp", portSockperf, "sockperf", "sr", "-i", p.ServerIP, "-p", port)
	if err != nil {
		return nil, nil, err
	}
	defer srv.stop()
	out, err := runClient(ctx, p, d+20*time.Second, "sockperf", "pp", "-i", p.ServerIP, "-p", port, "-m", "64", "-t", strconv.Itoa(wholeSeconds(d)), "--full-rtt")
	if err != nil {
		return nil, nil, err
	}
	res, err := parseSockperf(out)
	if err != nil {
		return nil, nil, err
	}
	return map[string]float64{metricP50: res.P50, metricP99: res.P99},
		map[string]float64{"avg_us": res.Avg, "observations": float64(res.Observations)}, nil
}

// measureGoPing is the latency fallback when sockperf is not installed.
func measureGoPing(self string) func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
	return func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
		addr := fmt.Sprintf("%s:%d", p.ServerIP, portPong)
		srv, err := startServer(ctx, p, true, "udp", portPong, self, "pong", "--listen", addr, "--max", (d + 15*time.Second).String())
		if err != nil {
			return nil, nil, err
		}
		defer srv.stop()
		out, err := runClient(ctx, p, d+15*time.Second, self, "ping", "--dst", addr, "--size", "64", "--duration", d.String())
		if err != nil {
			return nil, nil, err
		}
		var r loadResult
		if err := json.Unmarshal(out, &r); err != nil {
			return nil, nil, fmt.Errorf("parse ping output: %w", err)
		}
		return map[string]float64{metricP50: r.P50, metricP99: r.P99},
			map[string]float64{"observations": float64(r.Packets), "lost": float64(r.Errors)}, nil
	}
}

// sockperfResult holds the numbers the bench takes from sockperf pp.
type sockperfResult struct {
	Avg          float64
	P50          float64
	P99          float64
	Observations int
}

var (
	ansiRE         = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	sockPctRE      = regexp.MustCompile(`percentile\s+([0-9.]+)\s*=\s*([0-9.]+)`)
	sockAvgRE      = regexp.MustCompile(`avg-(?:rtt|lat)\s*=\s*([0-9.]+)`)
	sockObsRE      = regexp.MustCompile(`Total\s+(\d+)\s+observations`)
	sockRoundTrip  = regexp.MustCompile(`Round trip is`)
	sockHalfTripRE = regexp.MustCompile(`Latency is`)
)

// parseSockperf reads the summary of `sockperf pp`; with --full-rtt values are round trips.
func parseSockperf(b []byte) (sockperfResult, error) {
	text := ansiRE.ReplaceAllString(string(b), "")
	var r sockperfResult
	pcts := map[string]float64{}
	for _, m := range sockPctRE.FindAllStringSubmatch(text, -1) {
		p, err1 := strconv.ParseFloat(m[1], 64)
		v, err2 := strconv.ParseFloat(m[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		pcts[strconv.FormatFloat(p, 'f', 3, 64)] = v
	}
	p50, ok50 := pcts["50.000"]
	p99, ok99 := pcts["99.000"]
	if !ok50 || !ok99 {
		// The summary that explains a missing histogram is at the end.
		flat := oneLine(text, len(text))
		if len(flat) > 500 {
			flat = "…" + flat[len(flat)-500:]
		}
		return r, fmt.Errorf("parse sockperf output: no 50th/99th percentile in %q", flat)
	}
	if !sockRoundTrip.MatchString(text) && sockHalfTripRE.MatchString(text) {
		return r, errors.New("parse sockperf output: half-trip latency reported; --full-rtt expected")
	}
	r.P50, r.P99 = p50, p99
	if m := sockAvgRE.FindStringSubmatch(text); m != nil {
		r.Avg, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := sockObsRE.FindStringSubmatch(text); m != nil {
		r.Observations, _ = strconv.Atoi(m[1])
	}
	return r, nil
}
