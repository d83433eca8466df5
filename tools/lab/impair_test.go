//go:build linux

package lab

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/dataplane/sandbox"
)

// impairLab is two lab hosts a and b on an underlay, without daemons.
func impairLab(t *testing.T) (*Lab, *Underlay, *Host, *Host) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	l, err := New(t, Options{NetdBin: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	ul, err := l.Underlay()
	if err != nil {
		t.Fatal(err)
	}
	a, b := l.MustHost("a"), l.MustHost("b")
	for _, h := range []*Host{a, b} {
		if _, err := ul.Attach(h); err != nil {
			t.Fatal(err)
		}
	}
	// Before any impairment: ARP is resolved, so the counts below are
	// the relay's and not a lost neighbour solicitation's.
	if err := a.PingFromHost(ul.Addr(b).String()); err != nil {
		t.Fatal(err)
	}
	return l, ul, a, b
}

type pingResult struct {
	sent, received int
	min, avg, mdev time.Duration
}

func (p pingResult) loss() float64 { return 1 - float64(p.received)/float64(p.sent) }

func (p pingResult) String() string {
	return fmt.Sprintf("%d/%d received (%.1f%% loss), rtt min %v avg %v mdev %v", p.received, p.sent, p.loss()*100, p.min, p.avg, p.mdev)
}

var (
	pingCounts = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingRTT    = regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms`)
)

// ping sends count pings 10 ms apart from h to addr (bounded by
// CommandTimeout; -w would keep sending until count replies came).
func ping(t *testing.T, h *Host, addr string, count int) pingResult {
	t.Helper()
	out, errOut, code := h.Run("ping", "-q", "-n", "-c", strconv.Itoa(count), "-i", "0.01", "-W", "2", addr)
	if code < 0 || code > 1 {
		t.Fatalf("ping %s from %s: exit %d: %s%s", addr, h.Node, code, out, errOut)
	}
	m := pingCounts.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s from %s: no summary in %q", addr, h.Node, out)
	}
	var r pingResult
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	if r.sent != count {
		t.Fatalf("ping %s from %s: sent %d of %d within its deadline: %s", addr, h.Node, r.sent, count, out)
	}
	if m := pingRTT.FindStringSubmatch(out); m != nil {
		ms := func(s string) time.Duration {
			f, _ := strconv.ParseFloat(s, 64)
			return time.Duration(f * float64(time.Millisecond))
		}
		r.min, r.avg, r.mdev = ms(m[1]), ms(m[2]), ms(m[4])
	}
	return r
}

func stats(t *testing.T, ul *Underlay, h *Host) (toHost, fromHost laneStats) {
	t.Helper()
	to, from, ok := ul.impairStats(h)
	if !ok {
		t.Fatalf("%s: no relay on its port", h.Node)
	}
	return to, from
}

func TestImpairLossAndDelay(t *testing.T) {
	_, ul, a, b := impairLab(t)
	bAddr := ul.Addr(b).String()

	// Both ways on b's port: a request and its reply each cross the relay
	// once, so 1-0.9² = 19 % of pings are lost and an RTT is two draws of
	// 50 ms ± 50 ms, 100 ms on average.
	if err := ul.Impair(b, Impairment{Loss: 0.1, Delay: 50 * time.Millisecond, Jitter: 50 * time.Millisecond, Direction: BothWays}); err != nil {
		t.Fatal(err)
	}
	r := ping(t, a, bAddr, 200)
	to, from := stats(t, ul, b)
	t.Logf("both ways, 10%% loss, 50±50 ms: %v; relay to b %+v, from b %+v", r, to, from)
	// Loose bands: 200 pings at p = 0.19 fall outside 5..40 % about once
	// in 10^6 runs; a relay that does nothing shows 0 % and < 1 ms.
	if l := r.loss(); l < 0.05 || l > 0.40 {
		t.Errorf("loss %.1f%%, want about 19%% (5..40%%)", l*100)
	}
	if r.avg < 40*time.Millisecond || r.avg > 500*time.Millisecond {
		t.Errorf("average RTT %v, want about 100 ms (40..500 ms)", r.avg)
	}
	if r.mdev < 10*time.Millisecond {
		t.Errorf("RTT mdev %v, want about 40 ms: no jitter", r.mdev)
	}
	if to.Lost == 0 || from.Lost == 0 || to.Relayed == 0 || from.Relayed == 0 {
		t.Errorf("relay counters to b %+v, from b %+v: want frames lost and relayed both ways", to, from)
	}

	// Replaced in place: only towards b now (as netem on the port), a fixed
	// 50 ms, so no RTT can be shorter and nothing is lost from b.
	if err := ul.Impair(b, Impairment{Loss: 0.1, Delay: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	_, from0 := stats(t, ul, b)
	r = ping(t, a, bAddr, 200)
	to, from = stats(t, ul, b)
	t.Logf("towards b, 10%% loss, 50 ms: %v; relay to b %+v, from b %+v", r, to, from)
	if l := r.loss(); l < 0.01 || l > 0.30 {
		t.Errorf("loss %.1f%%, want about 10%% (1..30%%)", l*100)
	}
	if r.min < 50*time.Millisecond {
		t.Errorf("minimum RTT %v, want at least the 50 ms delay", r.min)
	}
	if from.Lost != from0.Lost {
		t.Errorf("frames from b lost: %d → %d, want none with Direction ToHost", from0.Lost, from.Lost)
	}

	// Cut and Restore still act on an impaired port.
	if err := ul.Cut(b); err != nil {
		t.Fatal(err)
	}
	if out, _, code := a.Run("ping", "-c", "2", "-i", "0.2", "-W", "1", bAddr); code == 0 {
		t.Errorf("ping through a cut impaired port answered:\n%s", out)
	}
	if err := ul.Restore(b); err != nil {
		t.Fatal(err)
	}
	if err := a.PingFromHost(bAddr); err != nil {
		t.Errorf("after Restore of an impaired port: %v", err)
	}

	for _, bad := range []Impairment{{Loss: 1.5}, {Loss: -0.1}, {Delay: -time.Second}, {Direction: 7}, {Limit: -1}} {
		if err := ul.Impair(b, bad); err == nil {
			t.Errorf("Impair(%+v) = nil, want an error", bad)
		}
	}
}

func TestImpairClear(t *testing.T) {
	l, ul, a, b := impairLab(t)
	bAddr := ul.Addr(b).String()
	if err := ul.Impair(b, Impairment{Loss: 0.1, Delay: 50 * time.Millisecond, Jitter: 50 * time.Millisecond, Direction: BothWays}); err != nil {
		t.Fatal(err)
	}
	if err := a.PingFromHost(bAddr); err != nil {
		t.Fatal(err)
	}
	ul.imp.mu.Lock()
	r := ul.imp.relays[b]
	ul.imp.mu.Unlock()
	if err := ul.ClearImpair(b); err != nil {
		t.Fatal(err)
	}
	if !relayClosed(r) {
		t.Errorf("relay still running after ClearImpair")
	}
	out, err := l.run("ip", "-n", ul.Switch.Node, "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := ul.port(b)
	tapA, tapB := tapNames(port)
	if !regexp.MustCompile(`\b`+port+`@\S+ .*master br0`).MatchString(out) || strings.Contains(out, tapA) || strings.Contains(out, tapB) {
		t.Errorf("switch links after ClearImpair, want %s on br0 and no %s/%s:\n%s", port, tapA, tapB, out)
	}
	p := ping(t, a, bAddr, 100)
	t.Logf("after ClearImpair: %v", p)
	if p.received != p.sent {
		t.Errorf("%v, want no loss", p)
	}
	if p.avg > 10*time.Millisecond {
		t.Errorf("average RTT %v, want the direct port's (< 10 ms)", p.avg)
	}
	if err := ul.ClearImpair(b); err != nil {
		t.Errorf("ClearImpair of a port that is not impaired: %v", err)
	}

	// Lab.Close stops a relay still running, so the switch namespace goes.
	if err := ul.Impair(a, Impairment{Delay: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ul.imp.mu.Lock()
	r = ul.imp.relays[a]
	ul.imp.mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !relayClosed(r) {
		t.Errorf("relay still running after Lab.Close")
	}
	if err := ul.Impair(a, Impairment{}); err == nil {
		t.Errorf("Impair after Lab.Close = nil, want an error")
	}
}

// relayClosed reports whether r was stopped (close returns after its
// goroutines did) and its sockets closed.
func relayClosed(r *relay) bool {
	select {
	case <-r.stop:
	default:
		return false
	}
	for _, s := range []*packetSock{r.port, r.tap} {
		if s.rc.Control(func(uintptr) {}) == nil {
			return false
		}
	}
	return true
}

// TCP and UDP through the relay: frames with offloaded checksums and TSO
// segments must arrive intact.
func TestImpairCarriesTCPAndUDP(t *testing.T) {
	_, ul, a, b := impairLab(t)
	if err := ul.Impair(b, Impairment{Delay: time.Millisecond, Direction: BothWays}); err != nil {
		t.Fatal(err)
	}
	bAddr := ul.Addr(b).String()
	var tl net.Listener
	var ul4 net.PacketConn
	if err := sandbox.DoPath(b.NSPath(), func() (err error) {
		if tl, err = net.Listen("tcp4", net.JoinHostPort(bAddr, "0")); err != nil {
			return err
		}
		ul4, err = net.ListenPacket("udp4", net.JoinHostPort(bAddr, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close(); ul4.Close() })
	var tc net.Conn
	var uc net.Conn
	if err := sandbox.DoPath(a.NSPath(), func() (err error) {
		if tc, err = net.DialTimeout("tcp4", tl.Addr().String(), 10*time.Second); err != nil {
			return err
		}
		uc, err = net.Dial("udp4", ul4.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close(); uc.Close() })

	data := make([]byte, 4<<20)
	rand.Read(data)
	got := make(chan []byte, 1)
	go func() {
		c, err := tl.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		all, _ := io.ReadAll(c)
		got <- all
	}()
	tc.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := tc.Write(data); err != nil {
		t.Fatalf("send over TCP through the relay: %v", err)
	}
	tc.(*net.TCPConn).CloseWrite()
	if all := <-got; !bytes.Equal(all, data) {
		t.Fatalf("TCP through the relay: got %d bytes, want the %d sent, unchanged", len(all), len(data))
	}

	const datagrams = 50
	payload := bytes.Repeat([]byte("u"), 1200)
	ul4.SetReadDeadline(time.Now().Add(20 * time.Second))
	recv := make(chan int, 1)
	go func() {
		n, buf := 0, make([]byte, 2048)
		for n < datagrams {
			m, _, err := ul4.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:m], payload) {
				break
			}
			n++
		}
		recv <- n
	}()
	for i := 0; i < datagrams; i++ {
		if _, err := uc.Write(payload); err != nil {
			t.Fatalf("send UDP through the relay: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if n := <-recv; n != datagrams {
		t.Errorf("UDP through the relay: %d of %d datagrams arrived intact", n, datagrams)
	}
	to, from := stats(t, ul, b)
	t.Logf("relay to b %+v, from b %+v", to, from)
}
