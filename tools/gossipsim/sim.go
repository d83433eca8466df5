package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/netd-dev/netd/gossip"
)

// sim is one cluster size's run.
type sim struct {
	o       options
	n       int
	ctx     context.Context
	rng     *rand.Rand
	rngMu   sync.Mutex
	members []*member
	track   *tracker
	rtt     *rtts
	logs    *logCounter
	logger  *slog.Logger
	res     *SizeResult
	say     func(format string, args ...any)
}

func runSize(parent context.Context, o options, n int, say func(string, ...any)) SizeResult {
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	logs := &logCounter{counts: map[string]int{}}
	s := &sim{
		o: o, n: n, ctx: ctx, rng: rand.New(rand.NewPCG(o.seed, uint64(n))),
		track: newTracker(), rtt: &rtts{}, logs: logs, logger: slog.New(logs),
		res: &SizeResult{N: n, Failures: []string{}, Anomalies: []string{}},
		say: func(format string, args ...any) { say("N=%d: "+format, append([]any{n}, args...)...) },
	}
	start := time.Now()
	if err := s.run(); err != nil {
		s.fail("%v", err)
	}
	st := s.stats(s.up())
	s.res.Totals = map[string]uint64{"queue_dropped": st.QueueDropped, "pulls": st.Pulls, "dropped_messages": st.DroppedMessages, "decrypt_errors": st.DecryptErrors}
	s.shutdownAll()
	s.res.WallS = time.Since(start).Seconds()
	s.res.MaxRSSMB = maxRSSMB()
	s.res.FalseWithdrawals = int(s.track.falseGone.Load())
	s.res.Resyncs = int(s.track.resyncs.Load())
	return *s.res
}

// anomaly records something wrong in what the gossip package did (not in
// the simulation): listed under the table, not a failure of the run.
func (s *sim) anomaly(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.res.Anomalies = append(s.res.Anomalies, msg)
	s.say("ANOMALY: %s", msg)
}

func (s *sim) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.res.Failures = append(s.res.Failures, msg)
	s.say("FAILED: %s", msg)
}

// phase runs f and records its CPU use; a cancelled context stops the run.
func (s *sim) phase(name string, f func() error) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("%s: not started: the --timeout of %v for this size ran out", name, s.o.timeout)
	}
	m := markCPU()
	err := f()
	p := m.phase(name)
	p.Logs = s.logs.take()
	p.Probes = probeStats(s.rtt.take())
	for k, v := range p.Logs {
		if s.res.Logs == nil {
			s.res.Logs = map[string]int{}
		}
		s.res.Logs[k] += v
	}
	s.res.Phases = append(s.res.Phases, p)
	if err == nil && s.ctx.Err() != nil {
		err = fmt.Errorf("%s: the --timeout of %v for this size ran out", name, s.o.timeout)
	}
	return err
}

func (s *sim) run() error {
	if err := s.phase("join", s.join); err != nil {
		return err
	}
	if err := s.phase("drain", s.settle); err != nil {
		return err
	}
	if err := s.phase("rest", s.rest); err != nil {
		return err
	}
	if err := s.phase("spread", s.spread); err != nil {
		return err
	}
	if err := s.phase("churn", s.churn); err != nil {
		return err
	}
	if err := s.phase("crash", func() error { return s.withdraw(false) }); err != nil {
		return err
	}
	return s.phase("leave", func() error { return s.withdraw(true) })
}

func (s *sim) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

func (s *sim) randomID() string {
	b := make([]byte, 32)
	s.rngMu.Lock()
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	s.rngMu.Unlock()
	return hex.EncodeToString(b)
}

// endpointValue is a realistic endpoint row, as the daemon would publish.
func (s *sim) endpointValue(m *member, k int) []byte {
	id := s.randomID()
	ip := netip.AddrFrom4([4]byte{10, 0, byte(m.idx >> 8), byte(m.idx)})
	v, err := gossip.Marshal(gossip.EndpointRecord{
		NetworkID: id[:64], NetworkName: "sim-overlay", Scope: "swarm",
		Container: fmt.Sprintf("%s-c%d", m.name, k), ContainerID: s.randomID(),
		IPv4: ip, MAC: fmt.Sprintf("02:42:0a:00:%02x:%02x", m.idx>>8&0xff, m.idx&0xff),
		Host: m.name, VTEP: netip.MustParseAddr("127.0.0.1"),
	})
	if err != nil {
		panic(err) // a fixed record type: cannot fail
	}
	return v
}

func (s *sim) newMember(idx int, join []string) (*member, error) {
	tr, port, err := newCountingTransport(s.logger)
	if err != nil {
		return nil, err
	}
	m := &member{idx: idx, name: fmt.Sprintf("sim-%04d", idx), tr: tr, publishes: s.publishes(idx), peers: len(join)}
	cfg := gossip.Config{
		NodeName: m.name, AdvertiseAddr: "127.0.0.1", BindAddr: "127.0.0.1", Port: port, Join: join,
		Logger: s.logger,
		// Only the transport changes: every timer stays memberlist's LAN default.
		Tune: func(mc *memberlist.Config) { mc.Transport, mc.Ping = tr, s.rtt },
	}
	if s.o.encrypt {
		cfg.Keys = [][]byte{simKey}
	}
	c, err := gossip.New(cfg)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("start member %s: %w", m.name, err)
	}
	m.c = c
	m.up.Store(true)
	c.Watch(s.track.watch(idx))
	for k := range s.o.endpoints {
		if !m.publishes {
			break
		}
		if err := c.Put(gossip.TableEndpoints, s.randomID(), s.endpointValue(m, k)); err != nil {
			return m, fmt.Errorf("put on %s: %w", m.name, err)
		}
	}
	return m, nil
}

// publishes says whether member idx is one of the --publishers, spread
// evenly over the join order.
func (s *sim) publishes(idx int) bool {
	p := min(s.n, s.o.publishers)
	return idx*p/s.n != (idx+1)*p/s.n || p == s.n
}

// simKey is the gossip key with --encrypt (AES-256, as `openssl rand -base64 32` makes).
var simKey = []byte("netd-gossipsim-fixed-key-32bytes")

func (s *sim) up() []*member {
	var out []*member
	for _, m := range s.members {
		if m.up.Load() {
			out = append(out, m)
		}
	}
	return out
}

func aliveCount(c *gossip.Cluster) int {
	n := 0
	for _, x := range c.Nodes() {
		if x.State == gossip.NodeAlive {
			n++
		}
	}
	return n
}

// join starts the members in batches, each joining a few random members
// of the earlier batches, then waits until every member sees all of them
// and all their endpoints.
func (s *sim) join() error {
	t0 := time.Now()
	m0, err := s.newMember(0, nil)
	if m0 != nil {
		s.members = append(s.members, m0)
	}
	if err != nil {
		return err
	}
	var joinErrs atomic.Int64
	var firstErr atomic.Pointer[string]
	for start := 1; start < s.n; start += s.o.joinBatch {
		if s.ctx.Err() != nil {
			s.res.JoinS = time.Since(t0).Seconds()
			s.res.ConvergeS = s.res.JoinS
			return fmt.Errorf("join: timed out with %d of %d members started", len(s.members), s.n)
		}
		end := min(s.n, start+s.o.joinBatch)
		earlier := len(s.members)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := start; i < end; i++ {
			var peers []string
			for _, j := range s.pick(earlier, s.o.joinPeers) {
				peers = append(peers, s.members[j].c.Advertise().String())
			}
			m, err := s.newMember(i, peers)
			if m != nil {
				s.members = append(s.members, m)
			}
			if err != nil {
				return err
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := m.c.Join(); err != nil {
					joinErrs.Add(1)
					msg := fmt.Sprintf("join %s to %v: %v", m.name, peers, err)
					firstErr.CompareAndSwap(nil, &msg)
				}
			}()
		}
		wg.Wait()
		// Pace the batches: let an early member learn of this batch before
		// the next, so the alive messages do not pile up in every queue.
		deadline := time.Now().Add(10 * time.Second)
		for aliveCount(s.members[0].c) < len(s.members) && time.Now().Before(deadline) && s.ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		s.say("joined %d/%d members (%s)", len(s.members), s.n, time.Since(t0).Round(100*time.Millisecond))
	}
	s.res.JoinS = time.Since(t0).Seconds()
	if n := joinErrs.Load(); n > 0 {
		s.fail("%d joins failed, first: %s", n, *firstErr.Load())
	}
	took, ok := s.waitAll(s.o.convergeTimeout, seesMembers)
	s.res.ConvergeS = time.Since(t0).Seconds()
	s.res.Converged = ok
	if !ok {
		s.fail("membership not converged within %v after the joins: %s", s.o.convergeTimeout, s.divergence())
		return nil
	}
	s.say("converged: all %d members see %d alive (%.1fs after the last join)", s.n, s.n, took.Seconds())
	took, ok = s.waitAll(s.o.entriesTimeout, seesEndpoints)
	if ok {
		v := took.Seconds()
		s.res.EndpointsS = &v
		s.say("every member shows every endpoint (%.1fs after membership converged)", v)
	} else {
		s.res.EndpointsLacking = s.lacking()
		s.anomaly("%d members still lack endpoints %v after membership converged: %s", s.res.EndpointsLacking, s.o.entriesTimeout, s.divergence())
	}
	return nil
}

// pick returns k distinct random indexes below n (all of them if k >= n).
func (s *sim) pick(n, k int) []int {
	if k >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	seen := map[int]bool{}
	var out []int
	for len(out) < k {
		i := s.intn(n)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

// expectedEndpoints is the number of live endpoint rows of the up members.
func expectedEndpoints(ms []*member) int {
	n := 0
	for _, m := range ms {
		n += len(m.c.Own(gossip.TableEndpoints))
	}
	return n
}

// A view check: does m see alive members alive, or exactly the up
// members' endpoints (want of them)?
type viewCheck func(m *member, alive, want int) bool

func seesMembers(m *member, alive, _ int) bool { return aliveCount(m.c) == alive }

func seesEndpoints(m *member, alive, want int) bool {
	return aliveCount(m.c) == alive && len(m.c.List(gossip.TableEndpoints, false)) == want
}

// waitAll waits until check holds on every up member. Members already
// found good are not checked again until all are (each check is O(N)),
// then all are checked once more.
func (s *sim) waitAll(bound time.Duration, check viewCheck) (time.Duration, bool) {
	t0 := time.Now()
	deadline := t0.Add(bound)
	poll := 200 * time.Millisecond
	if s.n >= 500 {
		poll = time.Second
	}
	ms := s.up()
	next := 0
	for {
		want := expectedEndpoints(ms)
		for next < len(ms) && check(ms[next], len(ms), want) {
			next++
		}
		if next == len(ms) {
			all := true
			for i, m := range ms {
				if !check(m, len(ms), want) {
					all, next = false, i
					break
				}
			}
			if all {
				return time.Since(t0), true
			}
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			return time.Since(t0), false
		}
		time.Sleep(poll)
	}
}

// lacking counts the up members whose endpoint view is not exactly the
// owners' entries.
func (s *sim) lacking() int {
	ms := s.up()
	want := expectedEndpoints(ms)
	n := 0
	for _, m := range ms {
		if len(m.c.List(gossip.TableEndpoints, false)) != want {
			n++
		}
	}
	return n
}

// divergence describes how far from converged the members are.
func (s *sim) divergence() string {
	ms := s.up()
	want := expectedEndpoints(ms)
	var badAlive, badEP int
	minAlive, minEP := math.MaxInt, math.MaxInt
	for _, m := range ms {
		a, e := aliveCount(m.c), len(m.c.List(gossip.TableEndpoints, false))
		if a != len(ms) {
			badAlive++
		}
		if e != want {
			badEP++
		}
		minAlive, minEP = min(minAlive, a), min(minEP, e)
	}
	return fmt.Sprintf("%d members see fewer or more than %d alive (fewest %d), %d do not show exactly %d endpoints (fewest %d)%s",
		badAlive, len(ms), minAlive, badEP, want, minEP, missing(ms, 3))
}

// missing names, for at most limit members, entries they lack: the owner's
// version of each and the highest version of that owner they do hold (a
// lacking entry below it is one that anti-entropy by version alone misses).
func missing(ms []*member, limit int) string {
	owners := map[string]map[string]uint64{} // owner -> key -> version, as the owner has it
	for _, m := range ms {
		own := map[string]uint64{}
		for _, e := range m.c.List(gossip.TableEndpoints, false) {
			if e.Owner == m.name {
				own[e.Key] = e.Version
			}
		}
		owners[m.name] = own
	}
	var out []string
	for _, m := range ms {
		if len(out) >= limit {
			break
		}
		have := map[string]map[string]uint64{}
		for _, e := range m.c.List(gossip.TableEndpoints, true) {
			if have[e.Owner] == nil {
				have[e.Owner] = map[string]uint64{}
			}
			have[e.Owner][e.Key] = e.Version
		}
		for owner, keys := range owners {
			var top uint64
			for _, v := range have[owner] {
				top = max(top, v)
			}
			for k, v := range keys {
				if hv, ok := have[owner][k]; !ok || hv != v {
					out = append(out, fmt.Sprintf("%s lacks %s/%s… v%d (holds v%d; highest it holds of %s: v%d)", m.name, owner, k[:8], v, hv, owner, top))
					break
				}
			}
			if len(out) >= limit {
				break
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; e.g. " + strings.Join(out, "; ")
}

func (s *sim) counts(ms []*member) []Counts {
	out := make([]Counts, len(ms))
	for i, m := range ms {
		out[i] = m.tr.n.snapshot()
	}
	return out
}

func (s *sim) stats(ms []*member) gossip.Stats {
	var t gossip.Stats
	for _, m := range ms {
		st := m.c.Stats()
		t.QueueDropped += st.QueueDropped
		t.Pulls += st.Pulls
		t.DecryptErrors += st.DecryptErrors
		t.DroppedMessages += st.DroppedMessages
	}
	return t
}

// drainedPPS: memberlist gossips only while a broadcast queue holds
// something, and then to 3 members every 200 ms (15 datagrams/s per
// member); probing alone is about 2 (a ping sent, an ack returned).
const drainedPPS = 4.0

// settle waits after convergence until the gossip queues are empty: the
// alive messages and entries of the joins are retransmitted RetransmitMult
// × log10(N) times by every member, at most 15 datagrams a second, which
// is not traffic at rest.
func (s *sim) settle() error {
	t0 := time.Now()
	ms := s.up()
	slice := s.o.settleSlice
	prev := s.counts(ms)
	drained := 0
	for time.Since(t0) < s.o.settleMax && s.ctx.Err() == nil && drained < 2 {
		sleepCtx(s.ctx, slice)
		cur := s.counts(ms)
		t := trafficOf(deltas(cur, prev), slice)
		prev = cur
		s.res.SettleSeries = append(s.res.SettleSeries, SettlePoint{AtS: time.Since(t0).Seconds(), PktPerS: t.PktTxPerS, TxBps: t.TxBps})
		if t.PktTxPerS <= drainedPPS {
			drained++
		} else {
			drained = 0
		}
		if n := len(s.res.SettleSeries); n%15 == 0 {
			s.say("gossip queues still sending: %.1f datagrams/s, %.1f KB/s per member (%.0fs)", t.PktTxPerS, t.TxBps/1000, time.Since(t0).Seconds())
		}
	}
	v := time.Since(t0).Seconds()
	if drained >= 2 {
		s.res.DrainS = &v
		s.say("gossip queues drained %.0fs after convergence", v)
		return nil
	}
	last := SettlePoint{}
	if n := len(s.res.SettleSeries); n > 0 {
		last = s.res.SettleSeries[n-1]
	}
	s.anomaly("gossip queues still sending %.1f datagrams/s (%.1f KB/s) per member %v after convergence, with no writes: rest measured anyway", last.PktPerS, last.TxBps/1000, s.o.settleMax)
	return nil
}

func deltas(after, before []Counts) []Counts {
	out := make([]Counts, len(after))
	for i := range after {
		out[i] = after[i].sub(before[i])
	}
	return out
}

func (s *sim) rest() error {
	ms := s.up()
	before, st0, t0 := s.counts(ms), s.stats(ms), time.Now()
	s.say("at rest for %v", s.o.rest)
	sleepCtx(s.ctx, s.o.rest)
	after, st1 := s.counts(ms), s.stats(ms)
	t := trafficOf(deltas(after, before), time.Since(t0))
	t.QueueDropped, t.Pulls = st1.QueueDropped-st0.QueueDropped, st1.Pulls-st0.Pulls
	t.WindowTCPTxBps = t.TCPTxBps
	// memberlist's first periodic push-pull comes 1 to 2 intervals after
	// start (90-120 s at 100 members, 180-210 s at 1,000), so a window of
	// seconds misses it: measure exchanges and add their share instead.
	pp, err := s.pushPullBytes(ms)
	if err != nil {
		return err
	}
	s.res.PushPull = pp
	// Each member starts one exchange per interval: N exchanges of B bytes
	// are B per member and interval, sent and received alike.
	share := pp.BytesPerExchange / pp.IntervalS
	t.TCPTxBps = share
	t.TxBps = t.UDPTxBps + share
	t.RxBps = t.RxBps - t.WindowTCPTxBps + share
	t.MaxTxRxBps += 2 * share
	s.res.Rest = &t
	s.say("at rest: %.2f KB/s sent, %.2f KB/s received per member (push-pull: %.1f KB per exchange every %.0fs)", t.TxBps/1000, t.RxBps/1000, pp.BytesPerExchange/1000, pp.IntervalS)
	return nil
}

// pushPullScale is memberlist's (util.go): the push-pull interval grows
// with log2 of the cluster size past 32 members.
func pushPullScale(interval time.Duration, n int) time.Duration {
	if n <= 32 {
		return interval
	}
	return time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(32))+1) * interval
}

// pushPullBytes has a few members push-pull with their join peers (a
// repeated Join is one memberlist push-pull per peer, the periodic kind
// with the join flag set) and counts the TCP bytes of both sides, follow-up
// pulls of missing entries included.
func (s *sim) pushPullBytes(ms []*member) (*PushPull, error) {
	k := min(10, len(ms))
	before := s.counts(ms)
	exchanges := 0
	for _, i := range s.pick(len(ms), k) {
		m := ms[i]
		if err := m.c.Join(); err != nil {
			return nil, fmt.Errorf("push-pull of %s with its join peers: %w", m.name, err)
		}
		exchanges += m.peers // member 0 has none: its Join is a no-op
	}
	sleepCtx(s.ctx, 2*time.Second) // the pulls MergeRemoteState starts run after the exchange
	var tcp int64
	for _, c := range deltas(s.counts(ms), before) {
		tcp += c.TCPTx
	}
	pp := &PushPull{Exchanges: exchanges, IntervalS: pushPullScale(30*time.Second, len(ms)).Seconds()}
	if exchanges > 0 {
		pp.BytesPerExchange = float64(tcp) / float64(exchanges)
	}
	return pp, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// spread puts new entries on random members, one after the other, and
// times their arrival at every other member.
func (s *sim) spread() error {
	for e := range s.o.entries {
		if s.ctx.Err() != nil {
			break
		}
		ms := s.up()
		w := ms[s.intn(len(ms))]
		key := s.randomID()
		a := newArrivals(s.n, map[int]bool{w.idx: true}, len(ms)-1)
		s.track.expectProbe(key, a)
		a.start = time.Now()
		if err := w.c.Put(gossip.TableEndpoints, key, s.endpointValue(w, 100+e)); err != nil {
			return fmt.Errorf("spread: put on %s: %w", w.name, err)
		}
		a.wait(s.ctx, s.o.spreadTimeout)
		r := a.reach(s.o.spreadTimeout)
		s.res.Spread = append(s.res.Spread, r)
		s.say("entry %d/%d from %s: 50%% %s s, 99%% %s s, 100%% %s s (%d/%d)", e+1, s.o.entries, w.name,
			fmtS(r.P50MS), fmtS(r.P99MS), fmtS(r.P100MS), r.Reached, r.Of)
		sleepCtx(s.ctx, s.o.gap)
	}
	s.res.SpreadSummary = summarizeSpread(s.res.Spread)
	return nil
}

// churn has every member put and delete endpoint entries in turn, one
// write per --churn-interval, at random phases, while counting the bytes.
func (s *sim) churn() error {
	ms := s.up()
	before, st0, t0 := s.counts(ms), s.stats(ms), time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, s.o.churn)
	defer cancel()
	var writes atomic.Int64
	var errs atomic.Pointer[string]
	var wg sync.WaitGroup
	s.say("churn for %v: each member writes every %v", s.o.churn, s.o.churnInterval)
	for _, m := range ms {
		offset := time.Duration(s.intn(int(s.o.churnInterval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := ""
			t := time.NewTimer(offset)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				var err error
				if key == "" {
					key = s.randomID()
					err = m.c.Put(gossip.TableEndpoints, key, s.endpointValue(m, 1000+k))
				} else {
					err = m.c.Delete(gossip.TableEndpoints, key)
					key = ""
				}
				if err != nil {
					msg := fmt.Sprintf("churn write on %s: %v", m.name, err)
					errs.CompareAndSwap(nil, &msg)
				}
				writes.Add(1)
				t.Reset(s.o.churnInterval)
			}
		}()
	}
	wg.Wait()
	after, st1 := s.counts(ms), s.stats(ms)
	t := trafficOf(deltas(after, before), time.Since(t0))
	t.Writes = int(writes.Load())
	t.QueueDropped, t.Pulls = st1.QueueDropped-st0.QueueDropped, st1.Pulls-st0.Pulls
	s.res.Churn = &t
	if e := errs.Load(); e != nil {
		s.fail("%s", *e)
	}
	s.say("churn: %d writes, %.2f KB/s sent per member; waiting for the views to agree", t.Writes, t.TxBps/1000)
	took, ok := s.waitAll(s.o.churnSettle, seesEndpoints)
	if ok {
		v := took.Seconds()
		s.res.ChurnConvergeS = &v
	} else {
		s.res.ChurnLacking = s.lacking()
		s.anomaly("after churn, %d members' views did not agree with the owners' within %v: %s", s.res.ChurnLacking, s.o.churnSettle, s.divergence())
	}
	return nil
}

// withdraw stops one random member, as a crash (Shutdown) or gracefully
// (Leave), and times until the others no longer show its endpoints.
func (s *sim) withdraw(leave bool) error {
	ms := s.up()
	var pubs []*member
	for _, m := range ms {
		if m.publishes {
			pubs = append(pubs, m)
		}
	}
	if len(pubs) == 0 || len(ms) < 2 {
		return errors.New("no publishing member left to stop")
	}
	v := pubs[s.intn(len(pubs))]
	a := newArrivals(s.n, map[int]bool{v.idx: true}, len(ms)-1)
	s.track.expectGone(v.name, a)
	what, bound := "crash", s.o.deadTimeout
	if leave {
		what, bound = "leave", s.o.leaveTimeout
	}
	s.say("%s of %s", what, v.name)
	a.start = time.Now()
	v.up.Store(false)
	var err error
	if leave {
		err = v.c.Leave(5 * time.Second)
	} else {
		err = v.c.Shutdown()
	}
	if err != nil {
		s.fail("%s of %s: %v", what, v.name, err)
	}
	a.wait(s.ctx, bound)
	w := &Withdrawal{Member: v.name, Reach: a.reach(bound)}
	for _, m := range s.up() {
		for _, e := range m.c.List(gossip.TableEndpoints, false) {
			if e.Owner == v.name {
				w.StillVisible++
				break
			}
		}
	}
	if leave {
		s.res.Leave = w
	} else {
		s.res.Dead = w
	}
	s.say("%s of %s: withdrawn at 50%% %s s, 99%% %s s, 100%% %s s (%d/%d), reasons %v, still listed by %d",
		what, v.name, fmtS(w.P50MS), fmtS(w.P99MS), fmtS(w.P100MS), w.Reached, w.Of, w.Reasons, w.StillVisible)
	return nil
}

// shutdownAll stops every member still up, a few at a time.
func (s *sim) shutdownAll() {
	ms := s.up()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, m := range ms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.up.Store(false)
			_ = m.c.Shutdown()
		}()
	}
	wg.Wait()
	if len(s.res.Logs) > 0 {
		keys := make([]string, 0, len(s.res.Logs))
		for k := range s.res.Logs {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return s.res.Logs[keys[i]] > s.res.Logs[keys[j]] })
		for _, k := range keys[:min(len(keys), 6)] {
			s.say("log %6d× %s", s.res.Logs[k], k)
		}
	}
}
