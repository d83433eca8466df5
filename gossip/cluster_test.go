package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// freePort finds a port free for both TCP and UDP on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// filterTransport wraps memberlist's transport: it records the largest
// datagram sent and can cut the node off (a partition).
type filterTransport struct {
	memberlist.NodeAwareTransport
	cut      atomic.Bool
	maxSent  atomic.Int64
	sent     atomic.Int64
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	pumpOnce sync.Once
	done     chan struct{}
	shutOnce sync.Once
}

// Shutdown stops the pumps first: a pump blocked on a channel memberlist
// no longer reads would keep NetTransport's listeners, and Shutdown, waiting.
func (f *filterTransport) Shutdown() error {
	f.pump()
	f.shutOnce.Do(func() { close(f.done) })
	return f.NodeAwareTransport.Shutdown()
}

// pump passes incoming packets and streams on, dropping them while cut.
func (f *filterTransport) pump() {
	f.pumpOnce.Do(func() {
		f.packets = make(chan *memberlist.Packet, 64)
		f.streams = make(chan net.Conn, 16)
		if f.done == nil {
			f.done = make(chan struct{})
		}
		// Both keep draining the inner channels until the listeners end.
		go func() {
			for p := range f.NodeAwareTransport.PacketCh() {
				if !f.cut.Load() {
					select {
					case f.packets <- p:
					case <-f.done:
					}
				}
			}
		}()
		go func() {
			for c := range f.NodeAwareTransport.StreamCh() {
				if f.cut.Load() {
					c.Close()
					continue
				}
				select {
				case f.streams <- c:
				case <-f.done:
					c.Close()
				}
			}
		}()
	})
}

func (f *filterTransport) PacketCh() <-chan *memberlist.Packet { f.pump(); return f.packets }
func (f *filterTransport) StreamCh() <-chan net.Conn           { f.pump(); return f.streams }

func (f *filterTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if int64(len(b)) > f.maxSent.Load() {
		f.maxSent.Store(int64(len(b)))
	}
	f.sent.Add(int64(len(b)))
	if f.cut.Load() {
		return time.Now(), nil // dropped on the wire
	}
	return f.NodeAwareTransport.WriteToAddress(b, addr)
}

func (f *filterTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return f.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (f *filterTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if f.cut.Load() {
		return nil, errors.New("dial " + addr.Addr + ": i/o timeout (cut)")
	}
	return f.NodeAwareTransport.DialAddressTimeout(addr, timeout)
}

func (f *filterTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return f.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

type testNode struct {
	*Cluster
	tr   *filterTransport
	cfg  Config
	port int
}

type nodeOpt func(*Config)

func withKeys(keys ...[]byte) nodeOpt { return func(c *Config) { c.Keys = keys } }
func withDir(dir string) nodeOpt      { return func(c *Config) { c.StateDir = dir } }
func withPort(p int) nodeOpt          { return func(c *Config) { c.Port = p } }

// fastTune shortens memberlist's timers so failure detection takes about
// a second instead of five.
func fastTune(tr **filterTransport, port int) func(*memberlist.Config) {
	return func(mc *memberlist.Config) {
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.SuspicionMult = 2
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.GossipToTheDeadTime = 2 * time.Second
		mc.TCPTimeout = time.Second
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: port, Logger: mc.Logger})
		if err != nil {
			panic(err)
		}
		ft := &filterTransport{NodeAwareTransport: nodeAware(nt)}
		*tr = ft
		mc.Transport = ft
	}
}

// nodeAware gives NetTransport the node-aware interface memberlist would
// otherwise shim in.
func nodeAware(nt *memberlist.NetTransport) memberlist.NodeAwareTransport {
	return &netShim{NetTransport: nt}
}

type netShim struct{ *memberlist.NetTransport }

func (s *netShim) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return s.WriteTo(b, addr.Addr)
}

func (s *netShim) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return s.NetTransport.DialTimeout(addr.Addr, timeout)
}

func startNode(t *testing.T, name string, join []string, opts ...nodeOpt) *testNode {
	t.Helper()
	n := &testNode{}
	n.port = freePort(t)
	n.cfg = Config{NodeName: name, AdvertiseAddr: "127.0.0.1", Join: join, ReconnectInterval: 200 * time.Millisecond}
	for _, o := range opts {
		o(&n.cfg)
	}
	if n.cfg.Port != 0 {
		n.port = n.cfg.Port
	}
	n.cfg.Port = n.port
	n.cfg.Tune = fastTune(&n.tr, n.port)
	c, err := New(n.cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	n.Cluster = c
	t.Cleanup(func() { _ = c.Shutdown() })
	return n
}

func (n *testNode) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func nodeState(c *Cluster, name string) string {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n.State
		}
	}
	return "absent"
}

func visibleKeys(c *Cluster, table string) string {
	var keys []string
	for _, e := range c.List(table, false) {
		keys = append(keys, e.Owner+"/"+e.Key)
	}
	return strings.Join(keys, ",")
}

func cluster3(t *testing.T, opts ...nodeOpt) (a, b, c *testNode) {
	a = startNode(t, "a", nil, opts...)
	b = startNode(t, "b", []string{a.addr()}, opts...)
	c = startNode(t, "c", []string{a.addr()}, opts...)
	for _, n := range []*testNode{b, c} {
		if err := n.Join(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*testNode{a, b, c} {
		waitFor(t, n.Name()+" to see 3 members", 10*time.Second, func() bool { return n.ml.NumMembers() == 3 })
	}
	return a, b, c
}

func TestReplicateDeleteWithdraw(t *testing.T) {
	a, b, c := cluster3(t)
	var events atomic.Int64
	stop := b.Watch(func(Event) { events.Add(1) })
	defer stop()

	if err := c.Put(TableEndpoints, "e1", []byte("c1")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{a, b} {
		waitFor(t, n.Name()+" to see c/e1", 5*time.Second, func() bool { return visibleKeys(n.Cluster, TableEndpoints) == "c/e1" })
	}
	if err := c.Delete(TableEndpoints, "e1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see the delete", 5*time.Second, func() bool { return visibleKeys(a.Cluster, TableEndpoints) == "" })

	// Crash (no leave): withdrawn as dead, but kept.
	if err := c.Put(TableEndpoints, "e2", []byte("c2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see c/e2", 5*time.Second, func() bool { return visibleKeys(a.Cluster, TableEndpoints) == "c/e2" })
	_ = c.Shutdown()
	waitFor(t, "c dead on a", 10*time.Second, func() bool { return nodeState(a.Cluster, "c") == NodeDead })
	if got := visibleKeys(a.Cluster, TableEndpoints); got != "" {
		t.Fatalf("dead node's endpoints still visible on a: %s", got)
	}
	if all := a.List(TableEndpoints, true); len(all) != 1 || all[0].State != StateWithdrawn {
		t.Fatalf("dead node's endpoint should be kept as withdrawn: %+v", all)
	}
	if events.Load() < 4 { // upsert, delete, upsert, withdraw
		t.Fatalf("b saw %d events, want at least 4", events.Load())
	}
}

func TestLeaveWithdrawsAndRejoinRestores(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.addr()}, withDir(dir))
	if err := b.Join(); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(TableEndpoints, "e1", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b/e1", 5*time.Second, func() bool { return visibleKeys(a.Cluster, TableEndpoints) == "b/e1" })
	v1 := a.List(TableEndpoints, false)[0].Version
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	defer dumpNodes(t, a.Cluster)
	waitFor(t, "b left on a", 3*time.Second, func() bool { return nodeState(a.Cluster, "b") == NodeLeft })
	if got := visibleKeys(a.Cluster, TableEndpoints); got != "" {
		t.Fatalf("left node's endpoints visible: %s", got)
	}
	// Restart b with the same state dir and name: its clock moved on, so
	// its new write is newer than the old one everywhere.
	b2 := startNode(t, "b", []string{a.addr()}, withDir(dir), withPort(b.port))
	if err := b2.Put(TableEndpoints, "e1", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := b2.Join(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b alive with the new value", 5*time.Second, func() bool {
		l := a.List(TableEndpoints, false)
		return nodeState(a.Cluster, "b") == NodeAlive && len(l) == 1 && string(l[0].Value) == "v2"
	})
	if v2 := a.List(TableEndpoints, false)[0].Version; v2 <= v1 {
		t.Fatalf("version after restart %d not above %d", v2, v1)
	}
}

// A partitioned node is declared dead, its entries are withdrawn but kept,
// and after the heal it is alive again with its entries, without restarts.
func TestPartitionHeals(t *testing.T) {
	a, b, c := cluster3(t)
	if err := c.Put(TableEndpoints, "e1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see c/e1", 5*time.Second, func() bool { return visibleKeys(a.Cluster, TableEndpoints) == "c/e1" })
	c.tr.cut.Store(true)
	waitFor(t, "c dead on a and b", 10*time.Second, func() bool {
		return nodeState(a.Cluster, "c") == NodeDead && nodeState(b.Cluster, "c") == NodeDead
	})
	// Longer than GossipToTheDeadTime: memberlist forgets c; the
	// reconnect loop must bring it back.
	time.Sleep(3 * time.Second)
	if got := visibleKeys(a.Cluster, TableEndpoints); got != "" {
		t.Fatalf("partitioned node's endpoint visible: %s", got)
	}
	c.tr.cut.Store(false)
	waitFor(t, "c alive again with its entry", 10*time.Second, func() bool {
		return nodeState(a.Cluster, "c") == NodeAlive && visibleKeys(a.Cluster, TableEndpoints) == "c/e1" &&
			nodeState(b.Cluster, "c") == NodeAlive && visibleKeys(b.Cluster, TableEndpoints) == "c/e1"
	})
}

func TestDuplicateNameRefused(t *testing.T) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.addr()})
	if err := b.Join(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to see b", 5*time.Second, func() bool { return nodeState(a.Cluster, "b") == NodeAlive })
	dup := startNode(t, "b", []string{a.addr()})
	err := dup.Join()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `node name "b" is already used`) {
		t.Fatalf("duplicate name: got %v, want a refusal naming the taken name", err)
	}
	time.Sleep(500 * time.Millisecond)
	for _, n := range a.Nodes() {
		if n.Name == "b" && n.Port != b.port {
			t.Fatalf("a took the duplicate: %+v", n)
		}
	}
}

func key(b byte, n int) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func TestEncryptionRefusesStrangers(t *testing.T) {
	k1 := key(1, 32)
	a := startNode(t, "a", nil, withKeys(k1))
	b := startNode(t, "b", []string{a.addr()}, withKeys(k1))
	if err := b.Join(); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(TableEndpoints, "e1", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see a/e1", 5*time.Second, func() bool { return visibleKeys(b.Cluster, TableEndpoints) == "a/e1" })

	for _, tc := range []struct {
		name string
		keys [][]byte
	}{{"nokey", nil}, {"wrongkey", [][]byte{key(9, 32)}}} {
		x := startNode(t, tc.name, []string{a.addr()}, withKeys(tc.keys...))
		err := x.Join()
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "key") {
			t.Fatalf("%s: join: %v, want a refusal that names the key", tc.name, err)
		}
		// It cannot inject entries either: its gossip is unreadable.
		_ = x.Put(TableEndpoints, "forged", []byte("x"))
		_ = x.Shutdown()
	}
	time.Sleep(time.Second)
	for _, n := range []*testNode{a, b} {
		for _, m := range n.Nodes() {
			if m.Name == "nokey" || m.Name == "wrongkey" {
				t.Fatalf("%s lists %s", n.Name(), m.Name)
			}
		}
		if got := visibleKeys(n.Cluster, TableEndpoints); got != "a/e1" {
			t.Fatalf("%s view: %s", n.Name(), got)
		}
	}
	if a.Stats().DecryptErrors == 0 {
		t.Fatal("a counted no decrypt errors from the stranger with the wrong key")
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := key(1, 16), key(50, 32)
	a, b, c := cluster3(t, withKeys(k1))
	ctx := context.Background()
	if _, err := a.KeyOp(ctx, KeyUse, k2); err == nil || !strings.Contains(err.Error(), "install") {
		t.Fatalf("use before install: %v", err)
	}
	res, err := a.KeyOp(ctx, KeyInstall, k2)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("install: %v %v", err, res.Failed())
	}
	if _, err := b.KeyOp(ctx, KeyUse, k2); err != nil {
		t.Fatalf("use: %v", err)
	}
	if _, err := c.KeyOp(ctx, KeyRemove, k2); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Fatalf("remove primary: %v", err)
	}
	res, err = c.KeyOp(ctx, KeyRemove, k1)
	if err != nil || len(res.Failed()) > 0 {
		t.Fatalf("remove old: %v %v", err, res.Failed())
	}
	list, err := a.KeyOp(ctx, KeyList, nil)
	if err != nil {
		t.Fatal(err)
	}
	if list.Members != 3 || list.Keys[EncodeKey(k2)] != 3 || list.Primary[EncodeKey(k2)] != 3 || list.Keys[EncodeKey(k1)] != 0 {
		t.Fatalf("list after rotation: %+v", list)
	}
	before := a.Stats().DecryptErrors + b.Stats().DecryptErrors + c.Stats().DecryptErrors
	if err := a.Put(TableEndpoints, "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to see a/after", 5*time.Second, func() bool { return visibleKeys(c.Cluster, TableEndpoints) == "a/after" })
	time.Sleep(time.Second)
	if after := a.Stats().DecryptErrors + b.Stats().DecryptErrors + c.Stats().DecryptErrors; after != before {
		t.Fatalf("decrypt errors after the switch: %d → %d", before, after)
	}
	// Three keys at most.
	_, _ = a.KeyOp(ctx, KeyInstall, key(80, 16))
	_, _ = a.KeyOp(ctx, KeyInstall, key(90, 16))
	if _, err := a.KeyOp(ctx, KeyInstall, key(100, 16)); err == nil || !strings.Contains(err.Error(), "3 keys") {
		t.Fatalf("fourth key: %v", err)
	}
}

// No datagram is over 1,400 bytes, encryption included, even with many
// entries queued at once.
func TestDatagramLimit(t *testing.T) {
	a, b, _ := cluster3(t, withKeys(key(1, 32)))
	big := strings.Repeat("x", MaxValueSize)
	for i := range 200 {
		if err := a.Put(TableEndpoints, fmt.Sprintf("e%03d", i), []byte(big)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b to have all 200", 10*time.Second, func() bool { return len(b.List(TableEndpoints, false)) == 200 })
	if err := a.Put(TableEndpoints, "toolarge", []byte(big+"x")); err == nil {
		t.Fatal("an entry over MaxValueSize was accepted")
	}
	for _, n := range []*testNode{a, b} {
		if m := n.tr.maxSent.Load(); m > 1400 {
			t.Fatalf("%s sent a %d-byte datagram", n.Name(), m)
		}
	}
}

func TestClaimBlocksConcurrently(t *testing.T) {
	a, b, c := cluster3(t)
	pool := netip.MustParsePrefix("10.20.0.0/24")
	got := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range []*testNode{a, b, c} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				blk, err := n.ClaimBlock(context.Background(), pool, 28, 500*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := got[blk.String()]; dup {
					t.Errorf("block %s handed to %s and %s", blk, prev, n.Name())
				}
				got[blk.String()] = n.Name()
			}()
		}
	}
	wg.Wait()
	if len(got) != 9 {
		t.Fatalf("claimed %d distinct blocks, want 9: %v", len(got), got)
	}
	for _, n := range []*testNode{a, b, c} {
		held, lost := n.Claims(pool)
		if len(held) != 3 || len(lost) != 0 {
			t.Fatalf("%s holds %v, lost %v", n.Name(), held, lost)
		}
	}
}

func TestAdvertiseFor(t *testing.T) {
	if _, err := AdvertiseFor("0.0.0.0", nil, 7946); err == nil {
		t.Fatal("0.0.0.0 accepted")
	}
	if _, err := AdvertiseFor("", nil, 7946); err == nil || !strings.Contains(err.Error(), "--advertise-addr") {
		t.Fatalf("no address and no join: %v", err)
	}
	a, err := AdvertiseFor("", []string{"127.0.0.1"}, 7946)
	if err != nil || a.String() != "127.0.0.1" {
		t.Fatalf("route source towards 127.0.0.1: %v %v", a, err)
	}
}

func TestParseKey(t *testing.T) {
	for _, s := range []string{"", "!!!", EncodeKey(make([]byte, 15))} {
		if _, err := ParseKey(s); err == nil {
			t.Fatalf("key %q accepted", s)
		}
	}
	if _, err := ParseKey(EncodeKey(make([]byte, 24))); err != nil {
		t.Fatal(err)
	}
}

func dumpNodes(t *testing.T, c *Cluster) {
	for _, n := range c.Nodes() {
		t.Logf("%s sees %s %s", c.Name(), n.Name, n.State)
	}
}

// Two nodes pre-claim a block at once; addresses are handed out only from
// settled claims, so neither node allocates from a block it then loses
// (the duplicate container address bench-smoke once hit on ovl-ebpf).
func TestWaitClaimsSettles(t *testing.T) {
	a, b, _ := cluster3(t)
	pool := netip.MustParsePrefix("10.21.0.0/24")
	settle := 400 * time.Millisecond
	for round := 0; round < 5; round++ {
		pool = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 21, byte(round), 0}), 24)
		for _, n := range []*testNode{a, b} {
			go func() { _, _ = n.ClaimBlock(context.Background(), pool, 25, settle) }()
		}
		time.Sleep(20 * time.Millisecond) // both claims written, neither settled
		start := time.Now()
		var heldA, heldB []netip.Prefix
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); heldA, _ = a.WaitClaims(context.Background(), pool) }()
		go func() { defer wg.Done(); heldB, _ = b.WaitClaims(context.Background(), pool) }()
		wg.Wait()
		if time.Since(start) < settle/2 {
			t.Fatalf("round %d: WaitClaims returned before the claims settled", round)
		}
		for _, x := range heldA {
			for _, y := range heldB {
				if x == y {
					t.Fatalf("round %d: both nodes hold %s", round, x)
				}
			}
		}
	}
}
