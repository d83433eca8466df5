//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// The load generator runs as a sub-command of the bench binary, re-executed inside a
// netns through nsenter, so the measuring process never shares a namespace or a scheduler
// queue with the orchestrator.

// loadResult is the one JSON line a load sub-command prints on stdout when it ends.
type loadResult struct {
	Packets uint64  `json:"packets"`
	Seconds float64 `json:"seconds"`
	PPS     float64 `json:"pps"`
	Errors  uint64  `json:"errors,omitempty"`
	// Latency percentiles of the Go ping-pong (or per connection of crr), in microseconds.
	P50 float64 `json:"p50_us,omitempty"`
	P99 float64 `json:"p99_us,omitempty"`
	// TimeWait is the number of TIME_WAIT sockets in the client's namespace at the end
	// of the connection-rate test.
	TimeWait uint64 `json:"time_wait,omitempty"`
}

// readyLine is printed by servers once their socket is bound.
const readyLine = "ready"

func printResult(r loadResult) int {
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "encode result:", err)
		return 1
	}
	return 0
}

// runLoadSend blasts fixed-size UDP datagrams at --dst with sendmmsg batches for --duration.
func runLoadSend(args []string) int {
	fs := flag.NewFlagSet("load-send", flag.ContinueOnError)
	dst := fs.String("dst", "", "destination ip:port")
	size := fs.Int("size", 64, "UDP payload bytes")
	batch := fs.Int("batch", 64, "datagrams per sendmmsg")
	dur := fs.Duration("duration", 5*time.Second, "how long to send")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *size < 1 || *size > 65507 || *batch < 1 || *batch > 1024 || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "load-send: bad --size, --batch or --duration")
		return 2
	}
	conn, err := dialUDP(*dst)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	_ = conn.SetWriteBuffer(4 << 20)
	pc := ipv4.NewPacketConn(conn)
	payload := make([]byte, *size)
	msgs := make([]ipv4.Message, *batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{payload}
	}
	var sent, errs uint64
	start := time.Now()
	deadline := start.Add(*dur)
	// Bounded by the deadline; the write deadline keeps a full socket buffer from blocking past it.
	_ = conn.SetWriteDeadline(deadline)
	for time.Now().Before(deadline) {
		n, err := pc.WriteBatch(msgs, 0)
		if n > 0 {
			sent += uint64(n)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			// ICMP unreachable and full queues are transient under overload; count and go on.
			if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) {
				errs++
				continue
			}
			fmt.Fprintln(os.Stderr, "sendmmsg:", err)
			return 1
		}
	}
	secs := time.Since(start).Seconds()
	return printResult(loadResult{Packets: sent, Seconds: secs, PPS: float64(sent) / secs, Errors: errs})
}

// runLoadRecv counts datagrams on --listen with recvmmsg batches, from the first one received
// until none arrives for --idle, and reports the rate over that window.
func runLoadRecv(args []string) int {
	fs := flag.NewFlagSet("load-recv", flag.ContinueOnError)
	listen := fs.String("listen", "", "ip:port to bind")
	batch := fs.Int("batch", 64, "datagrams per recvmmsg")
	idle := fs.Duration("idle", 300*time.Millisecond, "end after this long without a datagram")
	maxWait := fs.Duration("max", 30*time.Second, "hard limit on the whole run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *batch < 1 || *batch > 1024 || *idle <= 0 || *maxWait <= 0 {
		fmt.Fprintln(os.Stderr, "load-recv: bad --batch, --idle or --max")
		return 2
	}
	conn, err := listenUDP(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(8 << 20)
	pc := ipv4.NewPacketConn(conn)
	msgs := make([]ipv4.Message, *batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	fmt.Println(readyLine)
	hardStop := time.Now().Add(*maxWait)
	// The first batch opens the window and is not counted: it may have queued up before.
	var got uint64
	var opened bool
	var first, last time.Time
	for time.Now().Before(hardStop) {
		dl := hardStop
		if opened {
			dl = time.Now().Add(*idle)
		}
		_ = conn.SetReadDeadline(dl)
		n, err := pc.ReadBatch(msgs, 0)
		if n > 0 {
			now := time.Now()
			if opened {
				got += uint64(n)
			} else {
				opened, first = true, now
			}
			last = now
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			fmt.Fprintln(os.Stderr, "recvmmsg:", err)
			return 1
		}
	}
	if got == 0 {
		fmt.Fprintln(os.Stderr, "load-recv: no datagram received")
		return 1
	}
	secs := last.Sub(first).Seconds()
	if secs <= 0 {
		fmt.Fprintln(os.Stderr, "load-recv: receive window too short to measure")
		return 1
	}
	return printResult(loadResult{Packets: got, Seconds: secs, PPS: float64(got) / secs})
}

// runPongServer echoes every datagram back to its sender, for the Go latency fallback.
func runPongServer(args []string) int {
	fs := flag.NewFlagSet("pong", flag.ContinueOnError)
	listen := fs.String("listen", "", "ip:port to bind")
	maxWait := fs.Duration("max", 60*time.Second, "hard limit on the whole run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	conn, err := listenUDP(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	fmt.Println(readyLine)
	_ = conn.SetReadDeadline(time.Now().Add(*maxWait))
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "read:", err)
			return 1
		}
		if _, err := conn.WriteToUDPAddrPort(buf[:n], from); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return 1
		}
	}
}

// dialUDP connects a UDP socket to dst ("ip:port").
func dialUDP(dst string) (*net.UDPConn, error) {
	raddr, err := net.ResolveUDPAddr("udp4", dst)
	if err != nil {
		return nil, fmt.Errorf("resolve destination %s: %w", dst, err)
	}
	conn, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("dial udp %s: %w", dst, err)
	}
	return conn, nil
}

// maxPings caps the RTT slice so a very fast path cannot grow memory without bound.
const maxPings = 5_000_000

// runPing sends one datagram at a time and waits for its echo, for --duration.
func runPing(args []string) int {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	dst := fs.String("dst", "", "destination ip:port")
	size := fs.Int("size", 64, "UDP payload bytes")
	dur := fs.Duration("duration", 5*time.Second, "how long to ping")
	timeout := fs.Duration("timeout", 200*time.Millisecond, "per-reply timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	conn, err := dialUDP(*dst)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	out := make([]byte, *size)
	in := make([]byte, 2048)
	rtts := make([]float64, 0, 1<<16)
	var lost uint64
	start := time.Now()
	deadline := start.Add(*dur)
	for time.Now().Before(deadline) && len(rtts) < maxPings {
		t0 := time.Now()
		if _, err := conn.Write(out); err != nil {
			lost++
			continue
		}
		_ = conn.SetReadDeadline(t0.Add(*timeout))
		if _, err := conn.Read(in); err != nil {
			lost++
			continue
		}
		rtts = append(rtts, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	if len(rtts) == 0 {
		fmt.Fprintln(os.Stderr, "ping: no reply")
		return 1
	}
	sort.Float64s(rtts)
	secs := time.Since(start).Seconds()
	return printResult(loadResult{
		Packets: uint64(len(rtts)), Seconds: secs, PPS: float64(len(rtts)) / secs, Errors: lost,
		P50: percentile(rtts, 50), P99: percentile(rtts, 99),
	})
}

// percentile returns the nearest-rank percentile p of sorted xs.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// readReady waits for a server's ready line on its stdout; the caller bounds it with a timer.
func readReady(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read ready line: %w", err)
	}
	if line != readyLine+"\n" {
		return fmt.Errorf("unexpected server output %q", line)
	}
	return nil
}

// listenUDP binds the IPv4 UDP socket of a receiving load tool.
func listenUDP(listen string) (*net.UDPConn, error) {
	laddr, err := net.ResolveUDPAddr("udp4", listen)
	if err != nil {
		return nil, fmt.Errorf("resolve listen address: %w", err)
	}
	conn, err := net.ListenUDP("udp4", laddr)
	if err != nil {
		return nil, fmt.Errorf("listen udp: %w", err)
	}
	return conn, nil
}
