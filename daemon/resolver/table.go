// Package resolver is netd's embedded DNS server: Docker's 127.0.0.11 inside
// every container on a user-defined network. It answers the names of the
// containers on the networks the asking container shares, from an immutable
// Table the daemon rebuilds after every change, and forwards other names to
// the host's resolvers. It knows nothing of the manager or of gossip.
package resolver

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// TTL of the records the resolver answers itself (Docker's 600 s).
const TTL = 600

// EDNSSize is the UDP payload size the resolver offers to EDNS clients
// (the DNS flag day's 1,232 bytes).
const EDNSSize = 1232

// Network is one user-defined network with embedded DNS.
type Network struct {
	ID, Name string
	Subnet   netip.Prefix
	// Internal networks never forward: a container only on internal
	// networks gets no answer from outside (as Docker since 26.0).
	Internal bool
}

// Entry is one container's endpoint on a network: what its names point at.
type Entry struct {
	NetworkID   string
	Container   string // name
	ContainerID string // full ID; its first 12 characters are a name too
	Aliases     []string
	IPv4        netip.Addr
}

// names are an entry's DNS names: container name, 12-character ID, aliases.
func (e Entry) names() []string {
	out := []string{e.Container}
	if len(e.ContainerID) >= 12 {
		out = append(out, e.ContainerID[:12])
	}
	out = append(out, e.Aliases...)
	return out
}

type netTable struct {
	Network
	lname  string                  // lower-case name
	byName map[string][]netip.Addr // lower-case name -> addresses
	byAddr map[netip.Addr]string   // address -> "container.network."
}

// Table is an immutable view of every name the resolver answers.
type Table struct {
	nets map[string]*netTable
}

// NewTable builds a table; entries of unknown networks and without an
// address are left out.
func NewTable(nets []Network, entries []Entry) *Table {
	t := &Table{nets: map[string]*netTable{}}
	for _, n := range nets {
		t.nets[n.ID] = &netTable{Network: n, lname: strings.ToLower(n.Name), byName: map[string][]netip.Addr{}, byAddr: map[netip.Addr]string{}}
	}
	for _, e := range entries {
		nt := t.nets[e.NetworkID]
		if nt == nil || !e.IPv4.IsValid() {
			continue
		}
		seen := map[string]bool{}
		for _, name := range e.names() {
			ln := strings.ToLower(strings.TrimSuffix(name, "."))
			if ln == "" || seen[ln] {
				continue
			}
			seen[ln] = true
			if !slices.Contains(nt.byName[ln], e.IPv4) {
				nt.byName[ln] = append(nt.byName[ln], e.IPv4)
			}
		}
		nt.byAddr[e.IPv4] = dns.Fqdn(e.Container + "." + nt.Name)
	}
	for _, nt := range t.nets {
		for _, addrs := range nt.byName {
			slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		}
	}
	return t
}

// scope is the asking container's networks, in its interface order.
func (t *Table) scope(networks []string) []*netTable {
	var out []*netTable
	for _, id := range networks {
		if nt := t.nets[id]; nt != nil {
			out = append(out, nt)
		}
	}
	return out
}

// Lookup returns the addresses of name as seen from a container on
// networks (IDs in interface order): the first network that knows the name
// answers, as in Docker; "name.network" asks that network only. owned says
// the name is the resolver's to answer (NXDOMAIN when there is no address):
// a single label, or a name under a network's name. Others are forwarded.
func (t *Table) Lookup(networks []string, name string) (addrs []netip.Addr, owned bool) {
	ln := strings.ToLower(strings.TrimSuffix(name, "."))
	if ln == "" {
		return nil, false
	}
	sc := t.scope(networks)
	for _, nt := range sc {
		if a := nt.byName[ln]; len(a) > 0 {
			return a, true
		}
	}
	owned = !strings.Contains(ln, ".")
	// container.network: any dot may split a name that has dots itself.
	for i := strings.IndexByte(ln, '.'); i >= 0; i = nextDot(ln, i) {
		host, netName := ln[:i], ln[i+1:]
		for _, nt := range sc {
			if nt.lname != netName {
				continue
			}
			owned = true
			if a := nt.byName[host]; len(a) > 0 {
				return a, true
			}
		}
	}
	return nil, owned
}

func nextDot(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '.')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// Reverse returns the PTR target of addr ("container.network.") on the
// asking container's networks; owned says addr is in one of their subnets.
func (t *Table) Reverse(networks []string, addr netip.Addr) (name string, owned bool) {
	for _, nt := range t.scope(networks) {
		if n, ok := nt.byAddr[addr]; ok {
			return n, true
		}
		owned = owned || nt.Subnet.Contains(addr)
	}
	return "", owned
}

// Forwards says whether a container on networks may have names forwarded:
// not when every one of them is internal.
func (t *Table) Forwards(networks []string) bool {
	sc := t.scope(networks)
	if len(sc) == 0 {
		return true
	}
	for _, nt := range sc {
		if !nt.Internal {
			return true
		}
	}
	return false
}

// Verdict is what Answer decided.
type Verdict int

const (
	Answered Verdict = iota // the resolver's own answer, with records or NODATA
	NXDomain                // a name of the resolver's that nothing has
	Forward                 // not the resolver's: ask the upstream servers
	Refused                 // not a query the resolver takes (opcode, class, count)
)

// Answer builds the reply to req from a container on networks, or says to
// forward it. The reply is not truncated.
func (t *Table) Answer(networks []string, req *dns.Msg) (*dns.Msg, Verdict) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(EDNSSize, false)
	}
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || req.Question[0].Qclass != dns.ClassINET {
		resp.SetRcode(req, dns.RcodeRefused)
		return resp, Refused
	}
	q := req.Question[0]
	if q.Qtype == dns.TypePTR {
		addr, ok := reverseAddr(q.Name)
		if !ok {
			return nil, Forward
		}
		target, owned := t.Reverse(networks, addr)
		switch {
		case target != "":
			resp.Authoritative = true
			resp.Answer = []dns.RR{&dns.PTR{Hdr: header(q.Name, dns.TypePTR), Ptr: target}}
			return resp, Answered
		case owned:
			resp.Authoritative = true
			resp.SetRcode(req, dns.RcodeNameError)
			return resp, NXDomain
		}
		return nil, Forward
	}
	addrs, owned := t.Lookup(networks, q.Name)
	switch {
	case len(addrs) > 0:
		resp.Authoritative = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			// Several containers with one alias: shuffled, as Docker does.
			order := rand.Perm(len(addrs))
			for _, i := range order {
				resp.Answer = append(resp.Answer, &dns.A{Hdr: header(q.Name, dns.TypeA), A: addrs[i].AsSlice()})
			}
		}
		// Other types (AAAA: IPv4-only networks): NOERROR without records.
		return resp, Answered
	case owned:
		resp.Authoritative = true
		resp.SetRcode(req, dns.RcodeNameError)
		return resp, NXDomain
	}
	return nil, Forward
}

func header(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: TTL}
}

// reverseAddr parses d.c.b.a.in-addr.arpa.
func reverseAddr(name string) (netip.Addr, bool) {
	const suffix = ".in-addr.arpa."
	n := strings.ToLower(dns.Fqdn(name))
	if !strings.HasSuffix(n, suffix) {
		return netip.Addr{}, false
	}
	labels := strings.Split(strings.TrimSuffix(n, suffix), ".")
	if len(labels) != 4 {
		return netip.Addr{}, false
	}
	slices.Reverse(labels)
	a, err := netip.ParseAddr(strings.Join(labels, "."))
	return a, err == nil && a.Is4()
}
