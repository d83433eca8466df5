package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/netd-dev/netd/gossip"
)

// countingTransport is memberlist's own NetTransport with every byte
// counted: datagrams as they are written and read, streams through a
// wrapped net.Conn on both the dialing and the accepting side.
type countingTransport struct {
	*memberlist.NetTransport
	n       counters
	packets chan *memberlist.Packet
	streams chan net.Conn
	closing chan struct{} // Shutdown began: drop what comes in
	stop    chan struct{} // the listeners have ended: stop pumping
	once    sync.Once
}

type counters struct {
	udpTx, udpRx, tcpTx, tcpRx, pktTx, pktRx, dials, accepts atomic.Int64
}

func (c *counters) snapshot() Counts {
	return Counts{UDPTx: c.udpTx.Load(), UDPRx: c.udpRx.Load(), TCPTx: c.tcpTx.Load(), TCPRx: c.tcpRx.Load(),
		PktTx: c.pktTx.Load(), PktRx: c.pktRx.Load(), Dials: c.dials.Load(), Accepts: c.accepts.Load()}
}

// newCountingTransport binds a free port on 127.0.0.1 (the kernel picks it:
// TCP first, then UDP on the same number, retried if that one is taken).
func newCountingTransport(logger *slog.Logger) (*countingTransport, int, error) {
	var last error
	for range 20 {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"}, BindPort: 0,
			Logger: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		})
		if err != nil {
			last = err
			continue
		}
		t := &countingTransport{NetTransport: nt, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
			closing: make(chan struct{}), stop: make(chan struct{})}
		go t.pumpPackets()
		go t.pumpStreams()
		return t, nt.GetAutoBindPort(), nil
	}
	return nil, 0, fmt.Errorf("bind a gossip port on 127.0.0.1: %w (raise the open-file limit or free ports)", last)
}

func (t *countingTransport) pumpPackets() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			t.n.udpRx.Add(int64(len(p.Buf)))
			t.n.pktRx.Add(1)
			select {
			case t.packets <- p:
			case <-t.closing:
			}
		case <-t.stop:
			return
		}
	}
}

func (t *countingTransport) pumpStreams() {
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			t.n.accepts.Add(1)
			select {
			case t.streams <- &countingConn{Conn: c, n: &t.n}:
			case <-t.closing:
				c.Close()
			}
		case <-t.stop:
			return
		}
	}
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *countingTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.n.udpTx.Add(int64(len(b)))
	t.n.pktTx.Add(1)
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	t.n.dials.Add(1)

	return &countingConn{Conn: c, n: &t.n}, nil
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// Shutdown keeps draining NetTransport's unbuffered channels until its
// listeners have ended: they block on a send to them, and its Shutdown
// waits for them.
func (t *countingTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.closing)
		err = t.NetTransport.Shutdown()
		close(t.stop)
	})
	return err
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

type countingConn struct {
	net.Conn
	n *counters
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.tcpRx.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.tcpTx.Add(int64(n))
	return n, err
}

// member is one simulated host.
type member struct {
	idx  int
	name string
	c    *gossip.Cluster
	tr   *countingTransport
	up   atomic.Bool // false once shut down or left
	// publishes: it put endpoints before joining (--publishers).
	publishes bool
	peers     int // join peers
}

// arrivals records when each member first saw one event.
type arrivals struct {
	start time.Time
	skip  map[int]bool // members that do not count (the writer, the gone member)
	at    []atomic.Int64
	want  int
	n     atomic.Int64
	done  chan struct{}

	mu      sync.Mutex
	reasons map[string]int
}

func newArrivals(members int, skip map[int]bool, want int) *arrivals {
	return &arrivals{start: time.Now(), skip: skip, at: make([]atomic.Int64, members), want: want, done: make(chan struct{}), reasons: map[string]int{}}
}

func (a *arrivals) mark(idx int, now time.Time, reason string) {
	if a.skip[idx] || !a.at[idx].CompareAndSwap(0, now.UnixNano()) {
		return
	}
	if reason != "" {
		a.mu.Lock()
		a.reasons[reason]++
		a.mu.Unlock()
	}
	if a.n.Add(1) == int64(a.want) {
		close(a.done)
	}
}

// wait blocks until every member that counts saw the event, or the bound.
func (a *arrivals) wait(ctx context.Context, bound time.Duration) {
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-a.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

func (a *arrivals) reach(bound time.Duration) Reach {
	var delays []time.Duration
	s := a.start.UnixNano()
	for i := range a.at {
		if v := a.at[i].Load(); v != 0 {
			delays = append(delays, time.Duration(v-s))
		}
	}
	r := reachOf(delays, a.want, bound)
	a.mu.Lock()
	if len(a.reasons) > 0 {
		r.Reasons = map[string]int{}
		for k, v := range a.reasons {
			r.Reasons[k] = v
		}
	}
	a.mu.Unlock()
	return r
}

// tracker turns every member's Watch events into arrivals: new probe
// entries by key, withdrawals by owner.
type tracker struct {
	mu        sync.RWMutex
	probes    map[string]*arrivals
	gone      map[string]*arrivals
	falseGone atomic.Int64
	resyncs   atomic.Int64
}

func newTracker() *tracker {
	return &tracker{probes: map[string]*arrivals{}, gone: map[string]*arrivals{}}
}

func (t *tracker) watch(idx int) func(gossip.Event) {
	return func(ev gossip.Event) {
		now := time.Now()
		switch ev.Kind {
		case gossip.EventUpsert:
			t.mu.RLock()
			a := t.probes[ev.Entry.Key]
			t.mu.RUnlock()
			if a != nil {
				a.mark(idx, now, "")
			}
		case gossip.EventDelete:
			if ev.Reason != gossip.ReasonOwnerDead && ev.Reason != gossip.ReasonOwnerLeft {
				return
			}
			t.mu.RLock()
			a := t.gone[ev.Entry.Owner]
			t.mu.RUnlock()
			if a == nil {
				t.falseGone.Add(1)
				return
			}
			a.mark(idx, now, ev.Reason)
		case gossip.EventResync:
			t.resyncs.Add(1)
		}
	}
}

func (t *tracker) expectProbe(key string, a *arrivals) {
	t.mu.Lock()
	t.probes[key] = a
	t.mu.Unlock()
}

func (t *tracker) expectGone(owner string, a *arrivals) {
	t.mu.Lock()
	t.gone[owner] = a
	t.mu.Unlock()
}

// logCounter counts the members' warnings and errors by message, with
// addresses and numbers masked so that one kind of message is one key.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
	attrs  []slog.Attr
}

var digits = regexp.MustCompile(`[0-9]+`)

func (h *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "reason" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	msg = oneLine(digits.ReplaceAllString(msg, "N"), 160)
	h.mu.Lock()
	h.counts[r.Level.String()+" "+msg]++
	h.mu.Unlock()
	return nil
}

func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCounter) WithGroup(string) slog.Handler      { return h }

func (h *logCounter) take() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.counts
	h.counts = map[string]int{}
	return out
}

// rtts collects the round-trip times of memberlist's probes (its
// PingDelegate): in one process on loopback they are all scheduling delay,
// so they show how late the members run, next to the 500 ms probe timeout.
type rtts struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *rtts) AckPayload() []byte { return nil }

func (r *rtts) NotifyPingComplete(_ *memberlist.Node, rtt time.Duration, _ []byte) {
	r.mu.Lock()
	if len(r.d) < 1_000_000 {
		r.d = append(r.d, rtt)
	}
	r.mu.Unlock()
}

func (r *rtts) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.d
	r.d = nil
	return out
}
