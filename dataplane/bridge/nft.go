//go:build linux

package bridge

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
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

// ifname pads an interface name to the 16 bytes meta iifname/oifname load.
func nftIfname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func nftMeta(key expr.MetaKey, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

func nftMetaInSet(key expr.MetaKey, s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

func nftIfnameSet(t *nftables.Table, name string, names []string) (*nftables.Set, []nftables.SetElement) {
	// Host byte order is what nft uses for strings; without it `nft list` shows "".
	s := &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	els := make([]nftables.SetElement, 0, len(names))
	for _, n := range names {
		els = append(els, nftables.SetElement{Key: nftIfname(n)})
	}
	return s, els
}

func nftExprs(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var nftDrop = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}

// writeRuleset replaces this daemon's tables with the rules derived from nets
// in one netlink transaction, so the firewall is never half-updated. With no
// networks the tables are removed.
func writeRuleset(c *nftables.Conn, table string, nets []ruleNet) error {
	nets = append([]ruleNet(nil), nets...)
	sort.Slice(nets, func(i, j int) bool { return nets[i].Bridge < nets[j].Bridge })

	inet := &nftables.Table{Family: nftables.TableFamilyINet, Name: table}
	br := &nftables.Table{Family: nftables.TableFamilyBridge, Name: table}
	// Adding first makes the delete valid whether or not the table existed.
	for _, t := range []*nftables.Table{inet, br} {
		c.AddTable(t)
		c.DelTable(t)
	}
	if len(nets) == 0 {
		return flushRuleset(c)
	}
	if err := addInetRules(c, c.AddTable(inet), nets); err != nil {
		return err
	}
	if err := addBridgeRules(c, c.AddTable(br), nets); err != nil {
		return err
	}
	return flushRuleset(c)
}

func flushRuleset(c *nftables.Conn) error {
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write nftables ruleset: %w", err)
	}
	return nil
}

// addInetRules: masquerade, isolation between networks, internal networks.
func addInetRules(c *nftables.Conn, t *nftables.Table, nets []ruleNet) error {
	policy := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &policy,
	})

	names := make([]string, len(nets))
	for i, n := range nets {
		names[i] = n.Bridge
	}
	bridges, els := nftIfnameSet(t, "bridges", names)
	if err := c.AddSet(bridges, els); err != nil {
		return fmt.Errorf("add nftables set bridges: %w", err)
	}

	for _, n := range nets {
		brName := nftIfname(n.Bridge)
		if n.Internal {
			// Nothing leaves or enters an internal network through the host.
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: nftExprs(
				nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpEq, brName),
				nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, brName), nftDrop)})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: nftExprs(
				nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpEq, brName),
				nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpNeq, brName), nftDrop)})
		}
		// Isolation: nothing is routed from this bridge to another netd bridge.
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: nftExprs(
			nftMeta(expr.MetaKeyIIFNAME, expr.CmpOpEq, brName),
			nftMetaInSet(expr.MetaKeyOIFNAME, bridges),
			nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, brName), nftDrop)})

		if n.Masquerade && !n.Internal && n.Subnet.Addr().Is4() {
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: nftExprs(
				nftMeta(expr.MetaKeyNFPROTO, expr.CmpOpEq, []byte{unix.NFPROTO_IPV4}),
				nftSaddrIn(n.Subnet.Masked()),
				nftMeta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, brName),
				[]expr.Any{&expr.Masq{}})})
		}
	}
	return nil
}

// nftSaddrIn matches an IPv4 source address inside p.
func nftSaddrIn(p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	net4 := p.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
	}
}

// addBridgeRules: ICC=false drops frames bridged between two ports of the same
// network. It matches the port set, not `meta ibrname`, which needs the
// nft_meta_bridge module that not every kernel has.
func addBridgeRules(c *nftables.Conn, t *nftables.Table, nets []ruleNet) error {
	policy := nftables.ChainPolicyAccept
	fwd := c.AddChain(&nftables.Chain{
		Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	for _, n := range nets {
		if n.ICC || len(n.Ports) == 0 {
			continue
		}
		ports := append([]string(nil), n.Ports...)
		sort.Strings(ports)
		s, els := nftIfnameSet(t, "noicc_"+n.Bridge, ports)
		if err := c.AddSet(s, els); err != nil {
			return fmt.Errorf("add nftables set %s: %w", s.Name, err)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: nftExprs(
			nftMetaInSet(expr.MetaKeyIIFNAME, s),
			nftMetaInSet(expr.MetaKeyOIFNAME, s), nftDrop)})
	}
	return nil
}
