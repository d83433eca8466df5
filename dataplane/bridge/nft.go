//go:build linux

package bridge

// The driver's firewall is two nftables tables named after the node. Their
// base chains hold fixed rules that dispatch through verdict maps to one
// chain per network, so adding or removing a network is a few messages in
// one small transaction, however many networks there are:
//
//	table inet netd_<node>
//	  set bridges        every netd bridge (isolation between networks)
//	  map from_bridge    bridge -> jump from_<bridge>  (isolation, internal)
//	  map to_bridge      bridge -> jump to_<bridge>    (internal networks)
//	  map masq_subnet    subnet -> jump masq_<subnet>  (masquerade)
//	  map publish_addr   host addr . proto . port -> container addr . port
//	  map publish_any    proto . port -> container addr . port  (-p on 0.0.0.0)
//	  set publish_hairpin  container addr . addr . proto . port  (own port, publish.go)
//	  chain forward      iifname vmap @from_bridge; oifname vmap @to_bridge
//	  chain postrouting  ip saddr vmap @masq_subnet; hairpin and loopback masquerade
//	  chain prerouting   fib daddr type local: dnat through the publish maps
//	  chain output       the same, for the host's own connections
//	  chain raw_prerouting  a packet from outside to 127.0.0.0/8 is dropped
//	table bridge netd_<node>
//	  set noicc_ports    host-side veths of ICC=false networks
//	  chain forward      iifname @noicc_ports oifname @noicc_ports drop
//
// A map key names its chain (from_<key>, masq_<key>), so an element can
// never point at another network's chain, and removal needs no lookup.

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ruleNet is what the firewall needs to know about one bridge network.
type ruleNet struct {
	Bridge     string
	Subnet     netip.Prefix
	Internal   bool
	ICC        bool
	Masquerade bool
	Ports      []string // host-side veths enslaved to the bridge, for ICC=false
}

func (n ruleNet) masq() bool { return n.Masquerade && !n.Internal && n.Subnet.Addr().Is4() }

// NftTableName is the name of this daemon's nftables tables (one inet, one
// bridge family): "netd_" plus the node name reduced to [A-Za-z0-9_].
func NftTableName(node string) string {
	var b strings.Builder
	b.WriteString("netd_")
	for _, r := range node {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	// NFT_NAME_MAXLEN is 256 including the terminating NUL.
	if len(s) > 255 {
		s = s[:255]
	}
	return s
}

// Names of the objects in the tables.
const (
	nftForward     = "forward"
	nftPostrouting = "postrouting"
	nftBridges     = "bridges"
	nftFromBridge  = "from_bridge"
	nftToBridge    = "to_bridge"
	nftMasqSubnet  = "masq_subnet"
	nftPubAddr     = "publish_addr"
	nftPubAny      = "publish_any"
	nftPubHairpin  = "publish_hairpin"
	nftPrerouting  = "prerouting"
	nftOutput      = "output"
	nftRawPre      = "raw_prerouting"
	nftNoICCPorts  = "noicc_ports"
	nftFromPrefix  = "from_"
	nftToPrefix    = "to_"
	nftMasqPrefix  = "masq_"
)

// nftMaxMsgs caps the messages of one transaction: the kernel answers each
// with an ack, and a few hundred overflow the socket's receive buffer.
const nftMaxMsgs = 100

// nftMaxElems caps the elements of one set message.
const nftMaxElems = 256

func fromChain(br string) string { return nftFromPrefix + br }
func toChain(br string) string   { return nftToPrefix + br }

// masqChain is named after the subnet, the key that jumps to it.
func masqChain(p netip.Prefix) string {
	return nftMasqPrefix + strings.ReplaceAll(p.Masked().String(), "/", "-")
}

// ifname pads an interface name to the 16 bytes meta iifname/oifname load.
func nftIfname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// ifnameOf is the name in a padded key.
func ifnameOf(key []byte) string { return string(bytes.TrimRight(key, "\x00")) }

// nftLoad loads a meta key into register 1.
func nftLoad(key expr.MetaKey) []expr.Any { return []expr.Any{&expr.Meta{Key: key, Register: 1}} }

func nftMeta(key expr.MetaKey, op expr.CmpOp, data []byte) []expr.Any {
	return append(nftLoad(key), &expr.Cmp{Op: op, Register: 1, Data: data})
}

func nftMetaInSet(key expr.MetaKey, s *nftables.Set) []expr.Any {
	return append(nftLoad(key), &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
}

// nftVmap jumps to the chain the value in register 1 maps to in m.
func nftVmap(m *nftables.Set) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: m.Name, SetID: m.ID}}
}

func nftExprs(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var nftDrop = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}

var nftIPv4 = nftMeta(expr.MetaKeyNFPROTO, expr.CmpOpEq, []byte{unix.NFPROTO_IPV4})

// nftSaddr loads the IPv4 source address into register 1.
var nftSaddr = []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}}

// nftSaddrIn matches an IPv4 source address inside p.
func nftSaddrIn(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	net4 := p.Masked().Addr().As4()
	return nftExprs(nftSaddr, []expr.Any{
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
	})
}

func jump(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

// subnetElems are the interval elements of p: its first address, and the
// address after its last as the end (none when p reaches 255.255.255.255).
func subnetElems(p netip.Prefix, v *expr.Verdict) []nftables.SetElement {
	p = p.Masked()
	first := p.Addr().As4()
	els := []nftables.SetElement{{Key: first[:], VerdictData: v}}
	last := p.Addr().As4()
	for i := range last {
		if bit := i * 8; p.Bits() < bit+8 {
			host := 8 - max(p.Bits()-bit, 0)
			last[i] |= byte(1<<host - 1)
		}
	}
	if end := netip.AddrFrom4(last).Next(); end.IsValid() {
		e := end.As4()
		els = append(els, nftables.SetElement{Key: e[:], IntervalEnd: true})
	}
	return els
}

// nftTables queues changes to one daemon's tables on c and counts the
// messages, so that callers can keep transactions small.
type nftTables struct {
	c                     *nftables.Conn
	inet, br              *nftables.Table
	fwd, post, brFwd      *nftables.Chain
	pre, out, raw         *nftables.Chain
	bridges, fromBr, toBr *nftables.Set
	masq, noICC           *nftables.Set
	pubAddr, pubAny       *nftables.Set
	pubHairpin            *nftables.Set
	msgs                  int
	elems                 int // published-port elements queued (publish.go)
}

func newNftTables(c *nftables.Conn, table string) *nftTables {
	t := &nftTables{
		c:    c,
		inet: &nftables.Table{Family: nftables.TableFamilyINet, Name: table},
		br:   &nftables.Table{Family: nftables.TableFamilyBridge, Name: table},
	}
	accept := nftables.ChainPolicyAccept
	t.fwd = &nftables.Chain{Name: nftForward, Table: t.inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	t.post = &nftables.Chain{Name: nftPostrouting, Table: t.inet, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept}
	t.brFwd = &nftables.Chain{Name: nftForward, Table: t.br, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	// Host byte order is what nft uses for strings; without it `nft list` shows "".
	ifset := func(tb *nftables.Table, name string) *nftables.Set {
		return &nftables.Set{Table: tb, Name: name, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	}
	ifmap := func(name string) *nftables.Set {
		s := ifset(t.inet, name)
		s.IsMap, s.DataType = true, nftables.TypeVerdict
		return s
	}
	t.bridges, t.fromBr, t.toBr = ifset(t.inet, nftBridges), ifmap(nftFromBridge), ifmap(nftToBridge)
	t.masq = &nftables.Set{Table: t.inet, Name: nftMasqSubnet, KeyType: nftables.TypeIPAddr,
		IsMap: true, DataType: nftables.TypeVerdict, Interval: true}
	t.noICC = ifset(t.br, nftNoICCPorts)
	t.pre = &nftables.Chain{Name: nftPrerouting, Table: t.inet, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept}
	t.out = &nftables.Chain{Name: nftOutput, Table: t.inet, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept}
	t.raw = &nftables.Chain{Name: nftRawPre, Table: t.inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept}
	t.pubAddr, t.pubAny, t.pubHairpin = publishSets(t.inet)
	return t
}

// nftChain names a regular chain of tb.
func nftChain(tb *nftables.Table, name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: tb}
}

func (t *nftTables) addRule(ch *nftables.Chain, e ...[]expr.Any) {
	t.c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: nftExprs(e...)})
	t.msgs++
}

// ensureChain creates ch if needed and empties it, for rules to follow.
func (t *nftTables) ensureChain(ch *nftables.Chain) {
	t.c.AddChain(ch)
	t.c.FlushChain(ch)
	t.msgs += 2
}

// dropChain removes ch whether or not it exists (adding first makes the
// delete valid); nothing may still jump to it.
func (t *nftTables) dropChain(ch *nftables.Chain) {
	t.c.AddChain(ch)
	t.c.FlushChain(ch)
	t.c.DelChain(ch)
	t.msgs += 3
}

func (t *nftTables) addElems(s *nftables.Set, els []nftables.SetElement) error {
	return t.chunked(els, func(part []nftables.SetElement) error {
		if err := t.c.SetAddElements(s, part); err != nil {
			return fmt.Errorf("add elements to nftables set %s: %w", s.Name, err)
		}
		return nil
	})
}

func (t *nftTables) delElems(s *nftables.Set, els []nftables.SetElement) error {
	return t.chunked(els, func(part []nftables.SetElement) error {
		if err := t.c.SetDeleteElements(s, part); err != nil {
			return fmt.Errorf("delete elements from nftables set %s: %w", s.Name, err)
		}
		return nil
	})
}

// chunked queues els in messages of at most nftMaxElems elements.
func (t *nftTables) chunked(els []nftables.SetElement, queue func([]nftables.SetElement) error) error {
	for len(els) > 0 {
		n := min(len(els), nftMaxElems)
		if err := queue(els[:n]); err != nil {
			return err
		}
		t.msgs++
		els = els[n:]
	}
	return nil
}

// dropElems removes els whether or not they are there.
func (t *nftTables) dropElems(s *nftables.Set, els []nftables.SetElement) error {
	if err := t.addElems(s, els); err != nil {
		return err
	}
	return t.delElems(s, els)
}

// base queues the tables, base chains, sets and maps, and rewrites the base
// chains' dispatch rules; it leaves the networks' chains and elements alone.
func (t *nftTables) base() error {
	t.c.AddTable(t.inet)
	t.c.AddTable(t.br)
	t.msgs += 2
	for _, s := range []*nftables.Set{t.bridges, t.fromBr, t.toBr, t.masq, t.noICC, t.pubAddr, t.pubAny, t.pubHairpin} {
		if err := t.c.AddSet(s, nil); err != nil {
			return fmt.Errorf("add nftables set %s: %w", s.Name, err)
		}
		t.msgs++
	}
	for _, ch := range []*nftables.Chain{t.fwd, t.post, t.brFwd, t.pre, t.out, t.raw} {
		t.ensureChain(ch)
	}
	t.addRule(t.fwd, nftLoad(expr.MetaKeyIIFNAME), nftVmap(t.fromBr))
	t.addRule(t.fwd, nftLoad(expr.MetaKeyOIFNAME), nftVmap(t.toBr))
	t.addRule(t.post, nftIPv4, nftSaddr, nftVmap(t.masq))
	t.publishBase()
	// ICC=false: a frame bridged between two ports of such a network. Both
	// ports of a bridged frame are on the same bridge, so one set serves
	// every network; it avoids `meta ibrname`, which needs the
	// nft_meta_bridge module that not every kernel has.
	t.addRule(t.brFwd, nftMetaInSet(expr.MetaKeyIIFNAME, t.noICC), nftMetaInSet(expr.MetaKeyOIFNAME, t.noICC), nftDrop)
	return nil
}

// dropTables removes both tables whether or not they exist.
func (t *nftTables) dropTables() {
	for _, tb := range []*nftables.Table{t.inet, t.br} {
		t.c.AddTable(tb)
		t.c.DelTable(tb)
		t.msgs += 2
	}
}

// netUp queues n's chains, rules and elements, replacing what was there
// (the tables must exist or be queued).
func (t *nftTables) netUp(n ruleNet) error {
	brName := nftIfname(n.Bridge)
	// Each chain matches its own bridge (and subnet) again, so it is right
	// on its own, whatever jumps to it.
	from := nftChain(t.inet, fromChain(n.Bridge))
	t.ensureChain(from)
	if n.Internal {
		// Nothing leaves or enters an internal network through the host.
		t.addRule(from, nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpEq, brName),
			nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, brName), nftDrop)
	}
	if !n.Internal {
		// A published port, and its replies, cross the isolation between
		// networks (DNAT only ever leads to a published container port).
		t.addRule(from, nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpEq, brName), nftCtDNAT, nftAccept)
	}
	// Isolation: nothing is routed from this bridge to another netd bridge.
	t.addRule(from, nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpEq, brName),
		nftMetaInSet(expr.MetaKeyOIFNAME, t.bridges),
		nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, brName), nftDrop)
	if err := t.addElems(t.bridges, []nftables.SetElement{{Key: brName}}); err != nil {
		return err
	}
	if err := t.addElems(t.fromBr, []nftables.SetElement{{Key: brName, VerdictData: jump(from.Name)}}); err != nil {
		return err
	}
	if n.Internal {
		to := nftChain(t.inet, toChain(n.Bridge))
		t.ensureChain(to)
		t.addRule(to, nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpEq, brName),
			nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpNeq, brName), nftDrop)
		if err := t.addElems(t.toBr, []nftables.SetElement{{Key: brName, VerdictData: jump(to.Name)}}); err != nil {
			return err
		}
	}
	if n.masq() {
		masq := nftChain(t.inet, masqChain(n.Subnet))
		t.ensureChain(masq)
		t.addRule(masq, nftIPv4, nftSaddrIn(n.Subnet),
			nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, brName), []expr.Any{&expr.Masq{}})
		if err := t.addElems(t.masq, subnetElems(n.Subnet, jump(masq.Name))); err != nil {
			return err
		}
	}
	if !n.ICC {
		return t.addElems(t.noICC, portElems(n.Bridge, n.Ports))
	}
	return nil
}

// netDown queues the removal of everything netUp may have made for n,
// whether or not it is there.
func (t *nftTables) netDown(n ruleNet) error {
	brName := nftIfname(n.Bridge)
	if err := t.dropElems(t.bridges, []nftables.SetElement{{Key: brName}}); err != nil {
		return err
	}
	for _, m := range []struct {
		set   *nftables.Set
		chain string
	}{{t.fromBr, fromChain(n.Bridge)}, {t.toBr, toChain(n.Bridge)}} {
		ch := nftChain(t.inet, m.chain)
		t.c.AddChain(ch) // the element added below must have a chain to jump to
		t.msgs++
		if err := t.dropElems(m.set, []nftables.SetElement{{Key: brName, VerdictData: jump(m.chain)}}); err != nil {
			return err
		}
		t.dropChain(ch)
	}
	if n.Subnet.Addr().Is4() {
		ch := nftChain(t.inet, masqChain(n.Subnet))
		t.c.AddChain(ch)
		t.msgs++
		if err := t.dropElems(t.masq, subnetElems(n.Subnet, jump(ch.Name))); err != nil {
			return err
		}
		t.dropChain(ch)
	}
	if len(n.Ports) > 0 {
		return t.dropElems(t.noICC, portElems(n.Bridge, n.Ports))
	}
	return nil
}

// portElems are the noicc_ports elements of ports, commented with their bridge.
func portElems(bridge string, ports []string) []nftables.SetElement {
	ports = append([]string(nil), ports...)
	sort.Strings(ports)
	els := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		els = append(els, nftables.SetElement{Key: nftIfname(p), Comment: bridge})
	}
	return els
}

// flush sends the queued messages as one transaction.
func (t *nftTables) flush() error {
	t.msgs, t.elems = 0, 0
	if err := t.c.Flush(); err != nil {
		return fmt.Errorf("write nftables rules: %w", err)
	}
	return nil
}

// flushIfFull starts a new transaction when the next unit of up to next
// messages would make this one too long.
func (t *nftTables) flushIfFull(next int) error {
	if t.msgs > 0 && t.msgs+next > nftMaxMsgs {
		return t.flush()
	}
	return nil
}

// nftOpen connects to nftables in the netns ns. The connection stays open
// until CloseLasting; acks carry no copy of the request, which keeps the
// answers to a transaction small.
func nftOpen(ns int) (*nftables.Conn, error) {
	capAck := func(c *netlink.Conn) error { return c.SetOption(netlink.CapAcknowledge, true) }
	c, err := nftables.New(nftables.WithNetNSFd(ns), nftables.AsLasting(), nftables.WithSockOptions(capAck))
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	return c, nil
}

// netUpTx installs n in one transaction, with the base objects first when
// withBase (they may be missing).
func netUpTx(c *nftables.Conn, table string, n ruleNet, withBase bool) error {
	t := newNftTables(c, table)
	if withBase {
		if err := t.base(); err != nil {
			return err
		}
	}
	if err := t.netUp(n); err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("add firewall rules of bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// netDownTx removes n in one transaction; with last, n was the last network
// and both tables go.
func netDownTx(c *nftables.Conn, table string, n ruleNet, withBase, last bool) error {
	t := newNftTables(c, table)
	if last {
		t.dropTables()
	} else {
		if withBase {
			if err := t.base(); err != nil {
				return err
			}
		}
		if err := t.netDown(n); err != nil {
			return err
		}
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("remove firewall rules of bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// portTx adds or removes one ICC=false port in one transaction.
func portTx(c *nftables.Conn, table string, n ruleNet, port string, add, withBase bool) error {
	t := newNftTables(c, table)
	if withBase {
		if err := t.base(); err != nil {
			return err
		}
	}
	els := portElems(n.Bridge, []string{port})
	var err error
	if add {
		err = t.addElems(t.noICC, els)
	} else {
		err = t.dropElems(t.noICC, els)
	}
	if err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("update ICC port set of bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// keptRules are the firewall objects of orphans (bridges and veths with no
// record, kept until pruned): syncRuleset leaves them in place. Their masq
// entries are keyed by a subnet no record names, so with any orphan kept,
// no masq entry is removed.
type keptRules struct {
	bridges map[string]bool
	ports   map[string]bool
}

func (k keptRules) empty() bool { return len(k.bridges) == 0 && len(k.ports) == 0 }

// keeps reports whether chain is a kept orphan's.
func (k keptRules) keeps(chain string) bool {
	if strings.HasPrefix(chain, nftMasqPrefix) {
		return !k.empty()
	}
	for _, p := range []string{nftFromPrefix, nftToPrefix} {
		if br, ok := strings.CutPrefix(chain, p); ok && k.bridges[br] {
			return true
		}
	}
	return false
}

// syncRuleset makes this daemon's tables hold exactly the rules of nets and
// of what keep names: it rewrites the base chains and every network's
// chains, and removes chains, sets and elements of anything else, in
// transactions of at most nftMaxMsgs messages. Each transaction leaves
// every network it touches complete. With no networks and nothing kept the
// tables are removed; with nothing but kept objects they are left alone.
func syncRuleset(c *nftables.Conn, table string, nets []ruleNet, keep keptRules) error {
	t := newNftTables(c, table)
	if len(nets) == 0 {
		if !keep.empty() {
			return nil
		}
		t.dropTables()
		return t.flush()
	}
	nets = append([]ruleNet(nil), nets...)
	sort.Slice(nets, func(i, j int) bool { return nets[i].Bridge < nets[j].Bridge })

	if err := t.base(); err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		// Tables of an unknown shape (a set of another type): start afresh.
		t.dropTables()
		if err2 := t.base(); err2 != nil {
			return err2
		}
		if err2 := t.flush(); err2 != nil {
			return fmt.Errorf("write base chains and sets: %w (and after recreating the tables: %w)", err, err2)
		}
	}

	// What should be there, by the key or name that identifies it.
	wantChains := map[string]bool{}
	wantBridges := map[string]bool{}
	wantFrom, wantTo := map[string]bool{}, map[string]bool{}
	wantMasq := map[netip.Addr]netip.Prefix{}
	wantPorts := map[string]bool{}
	for _, n := range nets {
		wantBridges[n.Bridge], wantFrom[n.Bridge] = true, true
		wantChains[fromChain(n.Bridge)] = true
		if n.Internal {
			wantTo[n.Bridge] = true
			wantChains[toChain(n.Bridge)] = true
		}
		if n.masq() {
			wantMasq[n.Subnet.Masked().Addr()] = n.Subnet.Masked()
			wantChains[masqChain(n.Subnet)] = true
		}
		if !n.ICC {
			for _, p := range n.Ports {
				wantPorts[p] = true
			}
		}
	}

	// Stale elements first: a chain can only go once nothing jumps to it.
	for _, s := range []struct {
		set  *nftables.Set
		want map[string]bool
	}{{t.bridges, wantBridges}, {t.fromBr, wantFrom}, {t.toBr, wantTo}, {t.noICC, wantPorts}} {
		els, err := c.GetSetElements(s.set)
		if err != nil {
			return fmt.Errorf("list nftables set %s: %w", s.set.Name, err)
		}
		var stale []nftables.SetElement
		for _, e := range els {
			name := ifnameOf(e.Key)
			if !s.want[name] && !keep.bridges[name] && !keep.ports[name] {
				stale = append(stale, nftables.SetElement{Key: e.Key})
			}
		}
		if err := t.flushIfFull(len(stale)/nftMaxElems + 1); err != nil {
			return err
		}
		if err := t.delElems(s.set, stale); err != nil {
			return err
		}
	}
	masqEls, err := c.GetSetElements(t.masq)
	if err != nil {
		return fmt.Errorf("list nftables set %s: %w", t.masq.Name, err)
	}
	if stale := staleIntervals(masqEls, wantMasq); len(stale) > 0 && keep.empty() {
		if err := t.flushIfFull(len(stale)/nftMaxElems + 1); err != nil {
			return err
		}
		if err := t.delElems(t.masq, stale); err != nil {
			return err
		}
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("remove stale firewall elements: %w", err)
	}

	for _, n := range nets {
		// At most 16 messages per network, plus its ports.
		if err := t.flushIfFull(16 + len(n.Ports)/nftMaxElems); err != nil {
			return err
		}
		if err := t.netUp(n); err != nil {
			return err
		}
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("rewrite firewall rules of %d networks: %w", len(nets), err)
	}

	// Chains and sets of networks that are gone, or of an older layout.
	var staleChains []*nftables.Chain
	for _, fam := range []*nftables.Table{t.inet, t.br} {
		chains, err := c.ListChainsOfTableFamily(fam.Family)
		if err != nil {
			return fmt.Errorf("list nftables chains: %w", err)
		}
		for _, ch := range chains {
			if ch.Table.Name != table || ch.Hooknum != nil || (fam == t.inet && wantChains[ch.Name]) {
				continue
			}
			if fam == t.inet && keep.keeps(ch.Name) {
				continue
			}
			staleChains = append(staleChains, nftChain(fam, ch.Name))
		}
	}
	// Flushed in one round, deleted in the next: stale chains may jump to each other.
	for _, ch := range staleChains {
		if err := t.flushIfFull(1); err != nil {
			return err
		}
		t.c.FlushChain(ch)
		t.msgs++
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("flush stale firewall chains: %w", err)
	}
	for _, ch := range staleChains {
		if err := t.flushIfFull(1); err != nil {
			return err
		}
		t.c.DelChain(ch)
		t.msgs++
	}
	inetSets := map[string]bool{nftBridges: true, nftFromBridge: true, nftToBridge: true, nftMasqSubnet: true,
		nftPubAddr: true, nftPubAny: true, nftPubHairpin: true}
	for _, tb := range []*nftables.Table{t.inet, t.br} {
		sets, err := c.GetSets(tb)
		if err != nil {
			return fmt.Errorf("list nftables sets of table %s: %w", tb.Name, err)
		}
		for _, s := range sets {
			if tb == t.inet && inetSets[s.Name] || tb == t.br && s.Name == nftNoICCPorts {
				continue
			}
			if err := t.flushIfFull(1); err != nil {
				return err
			}
			t.c.DelSet(&nftables.Set{Table: tb, Name: s.Name})
			t.msgs++
		}
	}
	if err := t.flush(); err != nil {
		return fmt.Errorf("remove stale firewall chains and sets: %w", err)
	}
	return nil
}

// staleIntervals returns the elements of an interval map that are not
// exactly the intervals of want (keyed by first address).
func staleIntervals(els []nftables.SetElement, want map[netip.Addr]netip.Prefix) []nftables.SetElement {
	// Adjacent subnets share a key: the end of one, the start of the next.
	sort.Slice(els, func(i, j int) bool {
		if c := bytes.Compare(els[i].Key, els[j].Key); c != 0 {
			return c < 0
		}
		return els[i].IntervalEnd && !els[j].IntervalEnd
	})
	var stale []nftables.SetElement
	for i := 0; i < len(els); i++ {
		e := els[i]
		if e.IntervalEnd {
			stale = append(stale, nftables.SetElement{Key: e.Key, IntervalEnd: true})
			continue
		}
		hasEnd := i+1 < len(els) && els[i+1].IntervalEnd
		if a, _ := netip.AddrFromSlice(e.Key); want[a].IsValid() {
			switch wantEls := subnetElems(want[a], nil); {
			case len(wantEls) == 2 && hasEnd && bytes.Equal(els[i+1].Key, wantEls[1].Key):
				i++ // start and end as wanted
				continue
			case len(wantEls) == 1 && !hasEnd:
				continue
			}
		}
		stale = append(stale, nftables.SetElement{Key: e.Key})
	}
	return stale
}

// ruleNetOf is n as the firewall sees it, with its recorded ports. d.mu held.
func (d *Driver) ruleNetOf(n *network) ruleNet {
	rn := ruleNet{Bridge: n.BridgeName, Subnet: n.Subnet, Internal: n.Internal, ICC: n.ICC, Masquerade: n.Masquerade}
	for p := range d.ports[n.ID] {
		rn.Ports = append(rn.Ports, p)
	}
	return rn
}

// firewall is the driver's nftables state, guarded by Driver.mu.
type firewall struct {
	// c stays open: closing a netlink socket after a transaction that
	// deleted objects waits for an RCU grace period (~10 ms).
	c *nftables.Conn
	// base: the tables, base chains and dispatch rules are in place; in
	// doubt until a change succeeds.
	base bool
}

// close releases the connection.
func (fw *firewall) close() {
	if fw.c != nil {
		fw.c.CloseLasting()
		fw.c = nil
	}
}

// withNft runs f on the driver's nftables connection; withBase tells f to
// (re)write the base objects. After an error the connection, which may hold
// unread answers, is replaced. d.mu held.
func (d *Driver) withNft(f func(c *nftables.Conn, withBase bool) error) error {
	if d.fw.c == nil {
		c, err := nftOpen(int(d.ns))
		if err != nil {
			return err
		}
		d.fw.c = c
	}
	err := f(d.fw.c, !d.fw.base)
	d.fw.base = err == nil
	if err != nil {
		d.fw.close()
	}
	return err
}

// rulesUp adds the firewall rules of n, a member of d.nets. d.mu held.
func (d *Driver) rulesUp(n *network) error {
	rn := d.ruleNetOf(n)
	return d.withNft(func(c *nftables.Conn, withBase bool) error {
		return netUpTx(c, d.table, rn, withBase)
	})
}

// rulesDown removes the firewall rules of n, just taken out of d.nets with
// its ports; after the last network the tables go. d.mu held.
func (d *Driver) rulesDown(n *network, ports map[string]struct{}) error {
	rn := d.ruleNetOf(n)
	for p := range ports {
		rn.Ports = append(rn.Ports, p)
	}
	last := len(d.nets) == 0 && d.kept.empty()
	err := d.withNft(func(c *nftables.Conn, withBase bool) error {
		return netDownTx(c, d.table, rn, withBase, last)
	})
	if last {
		d.fw.base = false
	}
	return err
}

// portRule adds or removes port in the ICC=false port set. d.mu held.
func (d *Driver) portRule(n *network, port string, add bool) error {
	rn := d.ruleNetOf(n)
	return d.withNft(func(c *nftables.Conn, withBase bool) error {
		return portTx(c, d.table, rn, port, add, withBase)
	})
}

// syncRules makes the firewall exactly that of d.nets and d.ports, plus
// the kept orphans' d.kept. d.mu held.
func (d *Driver) syncRules() error {
	nets := make([]ruleNet, 0, len(d.nets))
	for _, n := range d.nets {
		nets = append(nets, d.ruleNetOf(n))
	}
	pubs := d.kernelRules()
	err := d.withNft(func(c *nftables.Conn, _ bool) error {
		if err := syncRuleset(c, d.table, nets, d.kept); err != nil || len(nets) == 0 {
			return err
		}
		return syncPublished(c, d.table, pubs)
	})
	d.fw.base = err == nil && len(nets) > 0
	if err != nil {
		return fmt.Errorf("reconcile nftables tables %s: %w", d.table, err)
	}
	return nil
}

// checkRules lists, per bridge of nets, what of its firewall is missing:
// set and map entries and chains (rules inside chains are rewritten at
// every start). Read-only. d.mu held.
func (d *Driver) checkRules(nets []*network) (map[string][]string, error) {
	out := map[string][]string{}
	err := d.withNft(func(c *nftables.Conn, _ bool) error {
		t := newNftTables(c, d.table)
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return fmt.Errorf("list nftables chains: %w", err)
		}
		have := map[string]bool{}
		for _, ch := range chains {
			if ch.Table.Name == d.table {
				have[ch.Name] = true
			}
		}
		elems := map[string]map[string]bool{}
		for _, s := range []*nftables.Set{t.bridges, t.fromBr, t.toBr, t.noICC} {
			elems[s.Name] = map[string]bool{}
			els, err := c.GetSetElements(s)
			if err != nil && len(nets) > 0 {
				return fmt.Errorf("list nftables set %s of table %s: %w", s.Name, d.table, err)
			}
			for _, e := range els {
				elems[s.Name][ifnameOf(e.Key)] = true
			}
		}
		published, err := d.missingPublished(c)
		if err != nil && len(nets) > 0 {
			return err
		}
		for _, n := range nets {
			rn := d.ruleNetOf(n)
			ps := published[n.ID]
			missing := func(what string) { ps = append(ps, "nftables "+what+" missing") }
			if !elems[nftBridges][rn.Bridge] {
				missing("element " + rn.Bridge + " of set " + nftBridges)
			}
			if !elems[nftFromBridge][rn.Bridge] || !have[fromChain(rn.Bridge)] {
				missing("isolation dispatch (" + nftFromBridge + ", chain " + fromChain(rn.Bridge) + ")")
			}
			if rn.Internal && (!elems[nftToBridge][rn.Bridge] || !have[toChain(rn.Bridge)]) {
				missing("internal-network dispatch (" + nftToBridge + ", chain " + toChain(rn.Bridge) + ")")
			}
			if rn.masq() && !have[masqChain(rn.Subnet)] {
				missing("masquerade chain " + masqChain(rn.Subnet))
			}
			if !rn.ICC {
				for _, p := range rn.Ports {
					if !elems[nftNoICCPorts][p] {
						missing("ICC=false port " + p + " in set " + nftNoICCPorts)
					}
				}
			}
			if len(ps) > 0 {
				out[n.ID] = ps
			}
		}
		return nil
	})
	return out, err
}
