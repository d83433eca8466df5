package gossip

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"
)

// DefaultClaimSettle is how long a claim waits for competing claims: a
// few gossip rounds, which reach every member of a small cluster.
const DefaultClaimSettle = time.Second

func blockKey(pool, block netip.Prefix) string { return pool.String() + "/" + block.String() }

// ClaimBlock claims a free block of bits-sized prefixes in pool for this
// node: hosts that allocate addresses at the same time each take from
// their own block, so no address is handed out twice. Two hosts that
// claim one block at once both see both claims after the settle time;
// the lower (version, owner) keeps it and the other claims again.
//
// Under a partition both sides may claim one block; the loser is the one
// with the higher (version, owner) when the partition heals, and Claims
// reports it as Lost.
func (c *Cluster) ClaimBlock(ctx context.Context, pool netip.Prefix, bits int, settle time.Duration) (netip.Prefix, error) {
	return c.claimBlock(ctx, pool, bits, settle, nil, true)
}

// ClaimBlockAvoiding is ClaimBlock skipping the blocks avoid reports (a
// host's routes, subnets already in use), taking the lowest free block
// first (10.0.0.0/24, 10.0.1.0/24, ... as Docker swarm hands out).
func (c *Cluster) ClaimBlockAvoiding(ctx context.Context, pool netip.Prefix, bits int, settle time.Duration, avoid func(netip.Prefix) bool) (netip.Prefix, error) {
	return c.claimBlock(ctx, pool, bits, settle, avoid, false)
}

func (c *Cluster) claimBlock(ctx context.Context, pool netip.Prefix, bits int, settle time.Duration, avoid func(netip.Prefix) bool, random bool) (netip.Prefix, error) {
	if !pool.IsValid() || bits < pool.Bits() || bits > pool.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("claim a block of %s: invalid block size /%d", pool, bits)
	}
	if settle <= 0 {
		settle = DefaultClaimSettle
	}
	pool = pool.Masked()
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-pool.Bits()))
	for attempt := 0; attempt < 16; attempt++ {
		taken := map[string]bool{}
		for _, e := range c.List(TableBlocks, true) {
			taken[e.Key] = true
		}
		block, ok := freeBlock(pool, bits, n, taken, avoid, random)
		if !ok {
			return netip.Prefix{}, fmt.Errorf("claim a /%d block of %s: every block is claimed by a node of the cluster", bits, pool)
		}
		key := blockKey(pool, block)
		val, err := Marshal(BlockRecord{Pool: pool, Block: block})
		if err != nil {
			return netip.Prefix{}, err
		}
		c.setPending(key, settle)
		if err := c.Put(TableBlocks, key, val); err != nil {
			c.setPending(key, 0)
			return netip.Prefix{}, err
		}
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			_ = c.Delete(TableBlocks, key)
			c.setPending(key, 0)
			return netip.Prefix{}, ctx.Err()
		}
		held := c.holds(key)
		c.setPending(key, 0)
		if held {
			return block, nil
		}
		_ = c.Delete(TableBlocks, key) // lost the race: try another block
	}
	return netip.Prefix{}, fmt.Errorf("claim a /%d block of %s: lost 16 races in a row with other nodes", bits, pool)
}

// ClaimKey claims a key of the blocks table (e.g. a VNI) for this node:
// it writes the claim, waits settle for competing ones and reports
// whether it won; a lost claim is withdrawn. The value says what the
// claim is for (a network ID).
func (c *Cluster) ClaimKey(ctx context.Context, key string, value []byte, settle time.Duration) (bool, error) {
	if settle <= 0 {
		settle = DefaultClaimSettle
	}
	for _, e := range c.List(TableBlocks, true) {
		if e.Key == key && e.Owner != c.cfg.NodeName {
			return false, nil // already someone's
		}
	}
	if err := c.Put(TableBlocks, key, value); err != nil {
		return false, err
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		_ = c.Delete(TableBlocks, key)
		return false, ctx.Err()
	}
	if c.holds(key) {
		return true, nil
	}
	return false, c.Delete(TableBlocks, key)
}

// ReleaseKey gives a claimed key back.
func (c *Cluster) ReleaseKey(key string) error { return c.Delete(TableBlocks, key) }

// holds reports whether this node's claim on key beats every other one.
func (c *Cluster) holds(key string) bool {
	var mine *ViewEntry
	var others []ViewEntry
	for _, e := range c.List(TableBlocks, true) {
		if e.Key != key {
			continue
		}
		if e.Owner == c.cfg.NodeName {
			mine = &e
		} else {
			others = append(others, e)
		}
	}
	if mine == nil {
		return false
	}
	for _, o := range others {
		if o.Version < mine.Version || (o.Version == mine.Version && o.Owner < mine.Owner) {
			return false
		}
	}
	return true
}

// ReleaseBlock gives a block back.
func (c *Cluster) ReleaseBlock(pool, block netip.Prefix) error {
	return c.Delete(TableBlocks, blockKey(pool.Masked(), block))
}

// Claims lists this node's blocks of pool; Lost are those another node's
// claim beats (found after a partition healed): stop allocating from them.
func (c *Cluster) Claims(pool netip.Prefix) (held, lost []netip.Prefix) {
	pool = pool.Masked()
	for key, v := range c.Own(TableBlocks) {
		var b BlockRecord
		if Unmarshal(v, &b) != nil || b.Pool != pool {
			continue
		}
		if c.holds(key) {
			held = append(held, b.Block)
		} else {
			lost = append(lost, b.Block)
		}
	}
	return held, lost
}

// setPending marks key as this node's claim in its settle time, for d
// (0: settled, or withdrawn).
func (c *Cluster) setPending(key string, d time.Duration) {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	if d <= 0 {
		delete(c.pending, key)
		return
	}
	if c.pending == nil {
		c.pending = map[string]time.Time{}
	}
	c.pending[key] = time.Now().Add(d)
}

// pendingIn is how long the longest settle time of this node's claims in
// pool still runs (0: none pending).
func (c *Cluster) pendingIn(pool netip.Prefix) time.Duration {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	prefix := pool.Masked().String() + "/"
	var wait time.Duration
	for key, until := range c.pending {
		if strings.HasPrefix(key, prefix) {
			wait = max(wait, time.Until(until))
		}
	}
	return wait
}

// WaitClaims is Claims once this node's claims in pool have settled: an
// address handed out of a block whose claim is still settling may be one
// another node hands out too, should that node win the block. It waits
// at most ctx's time (and never past a settle time and a half per claim
// round, as the claiming goroutine clears or replaces them).
func (c *Cluster) WaitClaims(ctx context.Context, pool netip.Prefix) (held, lost []netip.Prefix) {
	for {
		wait := c.pendingIn(pool)
		if wait <= 0 {
			break
		}
		select {
		case <-time.After(wait + 10*time.Millisecond):
		case <-ctx.Done():
			return c.Claims(pool)
		}
	}
	return c.Claims(pool)
}

// freeBlock picks a block no one claims, starting at a random one so that
// hosts claiming at once rarely pick the same.
func freeBlock(pool netip.Prefix, bits int, n *big.Int, taken map[string]bool, avoid func(netip.Prefix) bool, random bool) (netip.Prefix, bool) {
	total := n.Int64()
	if !n.IsInt64() || total > 1<<20 {
		total = 1 << 20 // enough choice; the rest of a huge pool is not scanned
	}
	start := int64(0)
	if random {
		start = rand.Int64N(total)
	}
	base := new(big.Int).SetBytes(pool.Addr().AsSlice())
	size := new(big.Int).Lsh(big.NewInt(1), uint(pool.Addr().BitLen()-bits))
	for i := int64(0); i < total; i++ {
		idx := (start + i) % total
		v := new(big.Int).Add(base, new(big.Int).Mul(big.NewInt(idx), size))
		b := v.FillBytes(make([]byte, pool.Addr().BitLen()/8))
		addr, _ := netip.AddrFromSlice(b)
		block := netip.PrefixFrom(addr, bits)
		if !taken[blockKey(pool, block)] && (avoid == nil || !avoid(block)) {
			return block, true
		}
	}
	return netip.Prefix{}, false
}

// FreeBlock returns the lowest block of pool that no node claims and that
// avoid does not refuse, without claiming it (ClaimBlockExact does).
func (c *Cluster) FreeBlock(pool netip.Prefix, bits int, avoid func(netip.Prefix) bool) (netip.Prefix, bool) {
	if !pool.IsValid() || bits < pool.Bits() || bits > pool.Addr().BitLen() {
		return netip.Prefix{}, false
	}
	pool = pool.Masked()
	taken := map[string]bool{}
	for _, e := range c.List(TableBlocks, true) {
		taken[e.Key] = true
	}
	return freeBlock(pool, bits, new(big.Int).Lsh(big.NewInt(1), uint(bits-pool.Bits())), taken, avoid, false)
}

// ClaimBlockExact claims one given block of pool and reports whether this
// node won it.
func (c *Cluster) ClaimBlockExact(ctx context.Context, pool, block netip.Prefix, settle time.Duration) (bool, error) {
	pool = pool.Masked()
	val, err := Marshal(BlockRecord{Pool: pool, Block: block})
	if err != nil {
		return false, err
	}
	return c.ClaimKey(ctx, blockKey(pool, block), val, settle)
}
