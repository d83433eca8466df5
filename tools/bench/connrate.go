//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The connection-rate test is netperf's TCP_CRR: every request opens a new TCP
// connection, sends size bytes, reads size bytes back and closes, one after the other —
// what a short-lived RPC or a client of a published port pays. Plain blocking syscalls
// on one thread, so the figure is the kernel's path, not Go's poller.
//
// TIME_WAIT is avoided by the server: it answers, waits for the client's FIN and then
// closes with SO_LINGER 0, i.e. sends RST. The client, in FIN_WAIT2, goes straight to
// CLOSED on the RST, and the server never closed actively, so neither side keeps a
// socket in TIME_WAIT and ephemeral ports are never exhausted. The client reports how
// many TIME_WAIT sockets its namespace holds at the end (expected: 0).

// maxConns bounds one client run whatever the duration.
const maxConns = 50_000_000

// runCRRServe serves the connection-rate test until --max has passed.
func runCRRServe(args []string) int { return runServer("crr-serve", args, serveOne) }

// runServer is the bench's TCP servers' loop: it listens on --listen,
// prints readyLine, and hands each accepted connection and a --size-byte
// buffer to serve, one connection at a time, until --max has passed.
func runServer(name string, args []string, serve func(fd int, buf []byte)) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	listen := fs.String("listen", "", "ip:port")
	size := fs.Int("size", 64, "request and response bytes")
	maxDur := fs.Duration("max", time.Minute, "exit after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sa, err := sockaddr(*listen)
	if err != nil || *size < 1 || *size > 65536 {
		fmt.Fprintf(os.Stderr, "%s: bad --listen or --size: %v\n", name, err)
		return 2
	}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: socket: %v\n", name, err)
		return 1
	}
	_ = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(lfd, sa); err != nil {
		fmt.Fprintf(os.Stderr, "%s: bind %s: %v\n", name, *listen, err)
		return 1
	}
	if err := unix.Listen(lfd, 1024); err != nil {
		fmt.Fprintf(os.Stderr, "%s: listen: %v\n", name, err)
		return 1
	}
	// Accept blocks in the kernel; the timer ends the process.
	time.AfterFunc(*maxDur, func() { os.Exit(0) })
	fmt.Println(readyLine)
	buf := make([]byte, *size)
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			fmt.Fprintf(os.Stderr, "%s: accept: %v\n", name, err)
			return 1
		}
		serve(fd, buf)
	}
}

// serveOne answers one request, waits for the client's FIN (bounded) and resets.
func serveOne(fd int, buf []byte) {
	defer unix.Close(fd)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	if readFull(fd, buf) != nil {
		return
	}
	if writeFull(fd, buf) != nil {
		return
	}
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
	}
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// runCRR opens connections to --dst one after the other for --duration.
func runCRR(args []string) int {
	fs := flag.NewFlagSet("crr", flag.ContinueOnError)
	dst := fs.String("dst", "", "server ip:port")
	size := fs.Int("size", 64, "request and response bytes")
	dur := fs.Duration("duration", 5*time.Second, "how long to run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sa, err := sockaddr(*dst)
	if err != nil || *size < 1 || *size > 65536 || *dur <= 0 {
		fmt.Fprintln(os.Stderr, "crr: bad --dst, --size or --duration:", err)
		return 2
	}
	buf := make([]byte, *size)
	times := make([]float64, 0, 1<<16)
	var errs, consecutive uint64
	var lastErr error
	start := time.Now()
	deadline := start.Add(*dur)
	for time.Now().Before(deadline) && len(times) < maxConns {
		t0 := time.Now()
		if err := oneRequest(sa, buf); err != nil {
			errs++
			consecutive++
			lastErr = err
			if consecutive >= 100 {
				fmt.Fprintf(os.Stderr, "crr: %d failed connections in a row to %s, last: %v\n", consecutive, *dst, err)
				return 1
			}
			continue
		}
		consecutive = 0
		times = append(times, float64(time.Since(t0).Nanoseconds())/1e3)
	}
	if len(times) == 0 {
		fmt.Fprintf(os.Stderr, "crr: no connection to %s succeeded: %v\n", *dst, lastErr)
		return 1
	}
	secs := time.Since(start).Seconds()
	sort.Float64s(times)
	return printResult(loadResult{
		Packets: uint64(len(times)), Seconds: secs, PPS: float64(len(times)) / secs, Errors: errs,
		P50: percentile(times, 50), P99: percentile(times, 99), TimeWait: timeWaitCount(),
	})
}

// oneRequest is one connection: connect, request, response, close.
func oneRequest(sa *unix.SockaddrInet4, buf []byte) error { return pubRequest(sa, buf, false) }

func readFull(fd int, buf []byte) error {
	for got := 0; got < len(buf); {
		n, err := unix.Read(fd, buf[got:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("connection closed early")
		}
		got += n
	}
	return nil
}

func writeFull(fd int, buf []byte) error {
	for sent := 0; sent < len(buf); {
		n, err := unix.Write(fd, buf[sent:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		sent += n
	}
	return nil
}

func sockaddr(hostport string) (*unix.SockaddrInet4, error) {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("want IPv4 ip:port, got %q", hostport)
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
}

// timeWaitCount counts TIME_WAIT sockets (state 06) in the process's namespace.
func timeWaitCount() uint64 {
	b, err := os.ReadFile("/proc/self/net/tcp")
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 3 && f[3] == "06" {
			n++
		}
	}
	return n
}

// measureCRR runs the connection-rate test: one client, new connection per request.
func measureCRR(self string) func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
	return func(ctx context.Context, p Pair, d time.Duration) (map[string]float64, map[string]float64, error) {
		addr := fmt.Sprintf("%s:%d", p.ServerIP, portCRR)
		srv, err := startServer(ctx, p, true, "tcp", portCRR, self, "crr-serve", "--listen", addr, "--max", (d + 15*time.Second).String())
		if err != nil {
			return nil, nil, err
		}
		defer srv.stop()
		out, err := runClient(ctx, p, d+15*time.Second, self, "crr", "--dst", addr, "--duration", d.String())
		if err != nil {
			return nil, nil, err
		}
		var r loadResult
		if err := json.Unmarshal(out, &r); err != nil {
			return nil, nil, fmt.Errorf("parse crr output: %w", err)
		}
		return map[string]float64{metricCRR: r.PPS / 1e3},
			map[string]float64{"connections": float64(r.Packets), "failed": float64(r.Errors),
				"conn_p50_us": r.P50, "conn_p99_us": r.P99, "client_time_wait": float64(r.TimeWait)}, nil
	}
}

// connectFD is a blocking connect that survives signals: with SO_SNDTIMEO
// set the kernel does not restart an interrupted connect (the Go runtime's
// preemption signal interrupts it now and then), but the handshake goes on,
// so an EINTR waits for it as the kernel would have.
func connectFD(fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EALREADY) {
		return err
	}
	deadline := time.Now().Add(time.Second)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		left := int(time.Until(deadline) / time.Millisecond)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		n, err := unix.Poll(pfd, left)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.ETIMEDOUT
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}
