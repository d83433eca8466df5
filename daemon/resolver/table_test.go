package resolver

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const (
	idWeb = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	idDB  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func testTable() *Table {
	nets := []Network{
		{ID: "nA", Name: "front", Subnet: netip.MustParsePrefix("10.1.0.0/24")},
		{ID: "nB", Name: "Back", Subnet: netip.MustParsePrefix("10.2.0.0/24")},
		{ID: "nI", Name: "priv", Subnet: netip.MustParsePrefix("10.3.0.0/24"), Internal: true},
	}
	eps := []Entry{
		{NetworkID: "nA", Container: "web", ContainerID: idWeb, Aliases: []string{"www", "Shared"}, IPv4: netip.MustParseAddr("10.1.0.2")},
		{NetworkID: "nA", Container: "web2", ContainerID: "aaaaaaaaaaaaaaaa", Aliases: []string{"shared"}, IPv4: netip.MustParseAddr("10.1.0.3")},
		{NetworkID: "nB", Container: "db", ContainerID: idDB, Aliases: []string{"database"}, IPv4: netip.MustParseAddr("10.2.0.2")},
		{NetworkID: "nB", Container: "web", ContainerID: idWeb, IPv4: netip.MustParseAddr("10.2.0.9")},
		{NetworkID: "nI", Container: "vault", ContainerID: "bbbbbbbbbbbbbbbb", IPv4: netip.MustParseAddr("10.3.0.2")},
		{NetworkID: "gone", Container: "ghost", IPv4: netip.MustParseAddr("10.9.0.2")},
		{NetworkID: "nA", Container: "noaddr"},
	}
	return NewTable(nets, eps)
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestLookup(t *testing.T) {
	tb := testTable()
	cases := []struct {
		nets  []string
		name  string
		want  []netip.Addr
		owned bool
	}{
		{[]string{"nA"}, "web", addrs("10.1.0.2"), true},
		{[]string{"nA"}, "WEB.", addrs("10.1.0.2"), true},
		{[]string{"nA"}, idWeb[:12], addrs("10.1.0.2"), true},
		{[]string{"nA"}, idWeb[:11], nil, true}, // only the 12-character prefix
		{[]string{"nA"}, "www", addrs("10.1.0.2"), true},
		{[]string{"nA"}, "shared", addrs("10.1.0.2", "10.1.0.3"), true},
		// Scoping: db is on B only.
		{[]string{"nA"}, "db", nil, true},
		{[]string{"nB"}, "db", addrs("10.2.0.2"), true},
		{[]string{"nB"}, "database", addrs("10.2.0.2"), true},
		{[]string{"nB"}, "www", nil, true}, // aliases are per network
		// First network in interface order answers.
		{[]string{"nB", "nA"}, "web", addrs("10.2.0.9"), true},
		{[]string{"nA", "nB"}, "web", addrs("10.1.0.2"), true},
		// name.network asks that network.
		{[]string{"nA", "nB"}, "web.back", addrs("10.2.0.9"), true},
		{[]string{"nA", "nB"}, "web.front.", addrs("10.1.0.2"), true},
		{[]string{"nA", "nB"}, "nothing.front", nil, true},
		{[]string{"nA"}, "db.back", nil, false}, // not a network of the asker: forwarded
		// Other names are forwarded.
		{[]string{"nA"}, "example.com.", nil, false},
		{[]string{"nA"}, "web.example.com.", nil, false},
		{[]string{"nA"}, "ghost", nil, true},
		{[]string{"nA"}, "noaddr", nil, true},
		{nil, "web", nil, true},
		{[]string{"nA"}, ".", nil, false},
	}
	for _, c := range cases {
		got, owned := tb.Lookup(c.nets, c.name)
		if !slices.Equal(got, c.want) || owned != c.owned {
			t.Errorf("Lookup(%v, %q) = %v, %v; want %v, %v", c.nets, c.name, got, owned, c.want, c.owned)
		}
	}
}

func query(name string, typ uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), typ)
	return m
}

func TestAnswer(t *testing.T) {
	tb := testTable()
	a := []string{"nA"}

	resp, v := tb.Answer(a, query("shared", dns.TypeA))
	if v != Answered || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 2 || !resp.Authoritative {
		t.Fatalf("A shared: %v %v", v, resp)
	}
	for _, rr := range resp.Answer {
		if rr.Header().Ttl != TTL || rr.Header().Name != "shared." {
			t.Errorf("record %v", rr)
		}
	}
	if resp, v := tb.Answer(a, query("web", dns.TypeAAAA)); v != Answered || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
		t.Errorf("AAAA web: want NODATA, got %v %v", v, resp)
	}
	if resp, v := tb.Answer(a, query("db", dns.TypeA)); v != NXDomain || resp.Rcode != dns.RcodeNameError {
		t.Errorf("A db from A: want NXDOMAIN, got %v %v", v, resp)
	}
	if resp, v := tb.Answer(a, query("example.org", dns.TypeA)); v != Forward || resp != nil {
		t.Errorf("A example.org: want forward, got %v %v", v, resp)
	}

	// PTR: own addresses, unknown ones of a shared subnet, others.
	ptr := func(addr string) *dns.Msg {
		n, _ := dns.ReverseAddr(addr)
		return query(n, dns.TypePTR)
	}
	resp, v = tb.Answer(a, ptr("10.1.0.3"))
	if v != Answered || len(resp.Answer) != 1 || resp.Answer[0].(*dns.PTR).Ptr != "web2.front." {
		t.Errorf("PTR 10.1.0.3: %v %v", v, resp)
	}
	if _, v := tb.Answer(a, ptr("10.1.0.77")); v != NXDomain {
		t.Errorf("PTR 10.1.0.77: want NXDOMAIN, got %v", v)
	}
	if _, v := tb.Answer(a, ptr("10.2.0.2")); v != Forward {
		t.Errorf("PTR of another network's container: want forward, got %v", v)
	}
	if _, v := tb.Answer(a, ptr("192.0.2.1")); v != Forward {
		t.Errorf("PTR 192.0.2.1: want forward, got %v", v)
	}
	if _, v := tb.Answer(a, query("1.2.in-addr.arpa", dns.TypePTR)); v != Forward {
		t.Errorf("partial reverse name: want forward, got %v", v)
	}

	// Not a plain query.
	m := query("web", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	if resp, v := tb.Answer(a, m); v != Refused || resp.Rcode != dns.RcodeRefused {
		t.Errorf("update: %v %v", v, resp)
	}
	m = query("web", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	if _, v := tb.Answer(a, m); v != Refused {
		t.Errorf("two questions: %v", v)
	}

	// EDNS is answered with EDNS.
	m = query("web", dns.TypeA)
	m.SetEdns0(4096, false)
	if resp, _ := tb.Answer(a, m); resp.IsEdns0() == nil || resp.IsEdns0().UDPSize() != EDNSSize {
		t.Errorf("EDNS answer: %v", resp)
	}
}

func TestForwards(t *testing.T) {
	tb := testTable()
	if !tb.Forwards([]string{"nA"}) || !tb.Forwards([]string{"nI", "nA"}) {
		t.Error("a container on a non-internal network forwards")
	}
	if tb.Forwards([]string{"nI"}) {
		t.Error("a container only on internal networks must not forward")
	}
}

func TestTruncateLargeAnswer(t *testing.T) {
	var eps []Entry
	for i := range 40 {
		eps = append(eps, Entry{NetworkID: "n", Container: "c" + string(rune('a'+i%26)) + string(rune('a'+i/26)), ContainerID: strings.Repeat("1", 12),
			Aliases: []string{"big"}, IPv4: netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i)})})
	}
	tb := NewTable([]Network{{ID: "n", Name: "n", Subnet: netip.MustParsePrefix("10.0.0.0/24")}}, eps)
	req := query("big", dns.TypeA)
	resp, _ := tb.Answer([]string{"n"}, req)
	if len(resp.Answer) != 40 {
		t.Fatalf("want 40 records, got %d", len(resp.Answer))
	}
	resp.Truncate(udpSize(req))
	if !resp.Truncated || resp.Len() > dns.MinMsgSize {
		t.Errorf("a 40-record answer over plain UDP must be truncated to 512 bytes: TC %v, %d bytes", resp.Truncated, resp.Len())
	}
}

func TestResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	body := "# comment\nnameserver 192.0.2.53\nnameserver bogus\nnameserver 2001:db8::1\ndomain old.example\nsearch corp.example lab.example\noptions edns0 timeout:1\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := ReadResolvConf(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.Upstreams(); !slices.Equal(got, []string{"192.0.2.53:53", "[2001:db8::1]:53", "192.0.2.54:53"}) {
		t.Errorf("upstreams %v", got)
	}
	out := string(rc.Container("web"))
	for _, want := range []string{"\nnameserver 127.0.0.11\n", "\nsearch corp.example lab.example\n", "\noptions ndots:0 edns0 timeout:1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("container resolv.conf lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "nameserver") != 1 {
		t.Errorf("only the embedded server is listed:\n%s", out)
	}
	rc.Options = []string{"ndots:2"}
	if out := string(rc.Container("web")); !strings.Contains(out, "\noptions ndots:2\n") {
		t.Errorf("the host's ndots wins:\n%s", out)
	}
	missing, err := ReadResolvConf(filepath.Join(t.TempDir(), "none"))
	if err != nil || len(missing.Upstreams()) != 0 {
		t.Errorf("missing file: %v %v", missing, err)
	}
}
