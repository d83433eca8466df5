//go:build linux

package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/tools/lab"
)

// upstream is a DNS server in a lab namespace standing for the host's
// resolvers: ext.example has one address, big.example 100 (more than a
// UDP answer holds), nx.example does not exist, slow.example never answers.
type upstream struct {
	udp, tcp atomic.Int64 // queries received per transport
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	if isUDP {
		u.udp.Add(1)
	} else {
		u.tcp.Add(1)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	switch strings.ToLower(q.Name) {
	case "ext.example.":
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 10)})
	case "big.example.":
		for i := range 100 {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(198, 51, 100, byte(i+1))})
		}
	case "slow.example.":
		return
	default:
		m.SetRcode(req, dns.RcodeNameError)
	}
	if isUDP {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// startUpstream serves u on 127.0.0.1:53 (UDP and TCP) inside the
// namespace at nsPath, until the test ends.
func startUpstream(t *testing.T, nsPath string) *upstream {
	t.Helper()
	u := &upstream{}
	var pc net.PacketConn
	var ln net.Listener
	err := sandbox.DoPath(nsPath, func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:53"); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", "127.0.0.1:53")
		return err
	})
	if err != nil {
		t.Fatalf("start upstream DNS server in %s: %v", nsPath, err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: u}, {Listener: ln, Handler: u}} {
		go func() { _ = s.ActivateAndServe() }()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return u
}

// writeResolvConf writes the daemon's --dns-resolv-conf: the upstream, a
// search domain and an option containers must inherit.
func writeResolvConf(t *testing.T, l *lab.Lab) string {
	t.Helper()
	p := filepath.Join(l.Dir, "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.1\nsearch lab.example\noptions edns0 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dig runs dig in a container against the embedded server; one try.
func dig(h *lab.Host, ctr string, args ...string) (string, int) {
	out, errOut, code := h.Exec(ctr, append([]string{"dig", "@127.0.0.11", "+time=3", "+tries=1"}, args...)...)
	return out + errOut, code
}

// digShort returns dig +short's answer lines.
func digShort(t *testing.T, h *lab.Host, ctr string, args ...string) []string {
	t.Helper()
	out, code := dig(h, ctr, append([]string{"+short"}, args...)...)
	if code != 0 {
		t.Fatalf("dig %v from %s: exit %d: %s", args, ctr, code, out)
	}
	return strings.Fields(out)
}

// rcode returns the status dig printed (NOERROR, NXDOMAIN, SERVFAIL...).
func rcode(t *testing.T, h *lab.Host, ctr string, args ...string) string {
	t.Helper()
	out, code := dig(h, ctr, args...)
	if code != 0 {
		t.Fatalf("dig %v from %s: exit %d: %s", args, ctr, code, out)
	}
	_, after, found := strings.Cut(out, "status: ")
	if !found {
		t.Fatalf("dig %v from %s: no status in %s", args, ctr, out)
	}
	return strings.TrimSuffix(strings.Fields(after)[0], ",")
}

func ctrDNS(t *testing.T, h *lab.Host, ctr string) *api.ContainerDNS {
	t.Helper()
	return inspectCtr(t, h, ctr).DNS
}

func requireDig(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig is not installed (apt-get install dnsutils; make deps does it)")
	}
}

func TestDNSSingleHost(t *testing.T) {
	requireDig(t)
	l := newLab(t)
	h := l.MustHost("h1")
	up := startUpstream(t, h.NSPath())
	if err := h.StartDaemon("--dns-resolv-conf", writeResolvConf(t, l)); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")

	ok(t, h, "network", "create", "--subnet", "10.91.0.0/24", "front")
	ok(t, h, "network", "create", "--subnet", "10.92.0.0/24", "back")
	ok(t, h, "network", "create", "--internal", "--subnet", "10.93.0.0/24", "priv")
	createCtr(t, h, "c1", "--network", "front")
	createCtr(t, h, "c2", "--network", "front")
	createCtr(t, h, "c3", "--network", "back")
	createCtr(t, h, "c4") // default bridge: no embedded DNS
	createCtr(t, h, "c5", "--network", "priv")
	ip1, ip2 := ctrIP(t, h, "c1", "front"), ctrIP(t, h, "c2", "front")

	t.Run("names", func(t *testing.T) {
		if got := digShort(t, h, "c1", "c2"); len(got) != 1 || got[0] != ip2 {
			t.Errorf("c1: dig c2 = %v, want %s", got, ip2)
		}
		id2 := inspectCtr(t, h, "c2").ID
		if got := digShort(t, h, "c1", id2[:12]); len(got) != 1 || got[0] != ip2 {
			t.Errorf("c1: dig %s (c2's ID) = %v, want %s", id2[:12], got, ip2)
		}
		if got := digShort(t, h, "c2", "C1.front."); len(got) != 1 || got[0] != ip1 {
			t.Errorf("c2: dig C1.front = %v, want %s", got, ip1)
		}
		out, errOut, code := h.Exec("c1", "getent", "hosts", "c2")
		if code != 0 || !strings.HasPrefix(out, ip2+" ") {
			t.Errorf("c1: getent hosts c2: exit %d, %q %q; want %s", code, out, errOut, ip2)
		}
		if st := rcode(t, h, "c1", "nosuchcontainer"); st != "NXDOMAIN" {
			t.Errorf("c1: dig nosuchcontainer: %s, want NXDOMAIN", st)
		}
		if st := rcode(t, h, "c1", "c2", "AAAA"); st != "NOERROR" {
			t.Errorf("c1: dig c2 AAAA: %s, want NOERROR (no records)", st)
		}
	})

	t.Run("scoping", func(t *testing.T) {
		if st := rcode(t, h, "c1", "c3"); st != "NXDOMAIN" {
			t.Errorf("c1 (front) resolves c3 (back only): %s, want NXDOMAIN", st)
		}
		if st := rcode(t, h, "c3", "c1"); st != "NXDOMAIN" {
			t.Errorf("c3 (back) resolves c1 (front only): %s, want NXDOMAIN", st)
		}
	})

	t.Run("default bridge has none", func(t *testing.T) {
		out, code := dig(h, "c4", "+time=1", "c1")
		if code == 0 {
			t.Errorf("a container on the default bridge got an answer from 127.0.0.11: %s", out)
		}
		if d := ctrDNS(t, h, "c4"); d != nil {
			t.Errorf("c4 inspect shows DNS %+v", d)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", h.ContainerNS("c4"))); !os.IsNotExist(err) {
			t.Errorf("/etc/netns/%s exists for a container on the default bridge: %v", h.ContainerNS("c4"), err)
		}
		if d := ctrDNS(t, h, "c1"); d == nil || d.Address != "127.0.0.11:53" || d.Answered == 0 {
			t.Errorf("c1 inspect DNS = %+v, want 127.0.0.11:53 with answers counted", d)
		}
	})

	t.Run("resolv.conf", func(t *testing.T) {
		out := ok(t, h, "container", "exec", "c1", "--", "cat", "/etc/resolv.conf")
		for _, want := range []string{"nameserver 127.0.0.11\n", "search lab.example\n", "options ndots:0 edns0 attempts:2\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("c1's /etc/resolv.conf lacks %q:\n%s", want, out)
			}
		}
		if strings.Count(out, "nameserver") != 1 {
			t.Errorf("c1's resolv.conf lists more than the embedded server:\n%s", out)
		}
		if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(hostResolv) {
			t.Error("the host's /etc/resolv.conf changed")
		}
		// ip netns exec shows the same file.
		if out, err := exec.Command("ip", "netns", "exec", h.ContainerNS("c1"), "cat", "/etc/resolv.conf").CombinedOutput(); err != nil || !strings.Contains(string(out), "nameserver 127.0.0.11") {
			t.Errorf("ip netns exec %s cat /etc/resolv.conf: %v\n%s", h.ContainerNS("c1"), err, out)
		}
	})

	t.Run("aliases", func(t *testing.T) {
		ok(t, h, "network", "connect", "--alias", "db", "--alias", "database", "back", "c1")
		ip1b := ctrIP(t, h, "c1", "back")
		for _, name := range []string{"db", "database", "c1"} {
			if got := digShort(t, h, "c3", name); len(got) != 1 || got[0] != ip1b {
				t.Errorf("c3: dig %s = %v, want c1's back address %s", name, got, ip1b)
			}
		}
		if st := rcode(t, h, "c2", "db"); st != "NXDOMAIN" {
			t.Errorf("c2 (front) resolves c1's back alias db: %s, want NXDOMAIN", st)
		}
		// c1 is on front first: its own name answers with the front address.
		if got := digShort(t, h, "c1", "c1"); len(got) != 1 || got[0] != ip1 {
			t.Errorf("c1: dig c1 = %v, want %s (first network)", got, ip1)
		}
		if got := digShort(t, h, "c1", "c3"); len(got) != 1 || got[0] != ctrIP(t, h, "c3", "back") {
			t.Errorf("c1 (now also on back): dig c3 = %v", got)
		}
	})

	t.Run("ptr", func(t *testing.T) {
		if got := digShort(t, h, "c1", "-x", ip2); len(got) != 1 || got[0] != "c2.front." {
			t.Errorf("c1: dig -x %s = %v, want c2.front.", ip2, got)
		}
		if st := rcode(t, h, "c1", "-x", "10.91.0.200"); st != "NXDOMAIN" {
			t.Errorf("c1: dig -x of a free address of front: %s, want NXDOMAIN", st)
		}
	})

	t.Run("forwarding", func(t *testing.T) {
		if got := digShort(t, h, "c1", "ext.example"); len(got) != 1 || got[0] != "192.0.2.10" {
			t.Errorf("c1: dig ext.example = %v, want 192.0.2.10 from the upstream", got)
		}
		out, _, code := h.Exec("c2", "getent", "hosts", "ext.example")
		if code != 0 || !strings.HasPrefix(out, "192.0.2.10 ") {
			t.Errorf("c2: getent hosts ext.example: exit %d %q", code, out)
		}
		if st := rcode(t, h, "c1", "nx.example"); st != "NXDOMAIN" {
			t.Errorf("c1: dig nx.example: %s, want the upstream's NXDOMAIN", st)
		}
		if st := rcode(t, h, "c1", "slow.example"); st != "SERVFAIL" {
			t.Errorf("c1: dig slow.example (upstream silent): %s, want SERVFAIL", st)
		}
		if st := rcode(t, h, "c5", "ext.example"); st != "SERVFAIL" {
			t.Errorf("c5 (internal network only): dig ext.example: %s, want SERVFAIL (no forwarding)", st)
		}
		if d := ctrDNS(t, h, "c1"); d == nil || d.Forwarded < 2 || d.ServFail < 1 {
			t.Errorf("c1 DNS counters %+v: want forwarded ≥ 2, servfail ≥ 1", d)
		}
	})

	t.Run("tcp fallback", func(t *testing.T) {
		tcpBefore := up.tcp.Load()
		out, code := dig(h, "c1", "+noall", "+answer", "+comments", "big.example")
		if code != 0 {
			t.Fatalf("dig big.example: exit %d\n%s", code, out)
		}
		if !strings.Contains(out, "Truncated, retrying in TCP mode") {
			t.Errorf("dig did not see a truncated UDP answer:\n%s", out)
		}
		if n := strings.Count(out, "198.51.100."); n != 100 {
			t.Errorf("big.example over TCP: %d records, want 100\n%s", n, out)
		}
		if up.tcp.Load() == tcpBefore {
			t.Error("the forwarder never asked the upstream over TCP after its truncated UDP answer")
		}
	})

	c1ns := sandbox.Path(h.ContainerNS("c1"))
	t.Run("malformed", func(t *testing.T) {
		before := ctrDNS(t, h, "c1").Malformed
		// Too short for a header; a header announcing a question that is cut off.
		sendFrom(t, c1ns, [][]byte{[]byte("garbage"), {0, 1}, {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'e'}})
		if !waitFor(5*time.Second, func() bool { return ctrDNS(t, h, "c1").Malformed >= before+3 }) {
			t.Errorf("malformed queries not counted: %+v (before %d)", ctrDNS(t, h, "c1"), before)
		}
		if got := digShort(t, h, "c1", "c2"); len(got) != 1 || got[0] != ip2 {
			t.Errorf("after malformed queries: dig c2 = %v", got)
		}
	})

	t.Run("flood", func(t *testing.T) {
		q := new(dns.Msg)
		q.SetQuestion("c2.", dns.TypeA)
		b, _ := q.Pack()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		var sent int
		go func() {
			defer wg.Done()
			sent = flood(c1ns, b, 20000, stop)
		}()
		out, code := dig(h, "c2", "+short", "c1")
		close(stop)
		wg.Wait()
		if code != 0 || strings.TrimSpace(out) != ip1 {
			t.Errorf("c2 during c1's flood: exit %d %q, want %s", code, out, ip1)
		}
		d1, d2 := ctrDNS(t, h, "c1"), ctrDNS(t, h, "c2")
		t.Logf("flood: %d queries sent from c1; c1 %+v; c2 %+v", sent, d1, d2)
		if d1.RateLimited == 0 {
			t.Errorf("c1 sent %d queries and none was rate limited: %+v", sent, d1)
		}
		if d2.RateLimited != 0 {
			t.Errorf("c2 was rate limited by c1's flood: %+v", d2)
		}
	})

	t.Run("restart", func(t *testing.T) {
		if err := h.RestartDaemon(); err != nil {
			t.Fatal(err)
		}
		if got := digShort(t, h, "c1", "c2"); len(got) != 1 || got[0] != ip2 {
			t.Errorf("after a daemon restart: dig c2 = %v", got)
		}
	})

	t.Run("removal", func(t *testing.T) {
		ok(t, h, "container", "rm", "c2")
		if st := rcode(t, h, "c1", "c2"); st != "NXDOMAIN" {
			t.Errorf("c1: dig c2 after its removal: %s, want NXDOMAIN", st)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", h.ContainerNS("c2"))); !os.IsNotExist(err) {
			t.Errorf("/etc/netns/%s left after removal: %v", h.ContainerNS("c2"), err)
		}
		ok(t, h, "network", "disconnect", "back", "c1")
		if st := rcode(t, h, "c3", "db"); st != "NXDOMAIN" {
			t.Errorf("c3: dig db after c1 left back: %s, want NXDOMAIN", st)
		}
	})
}

// sendFrom sends each datagram to 127.0.0.11:53 from inside the namespace.
func sendFrom(t *testing.T, nsPath string, msgs [][]byte) {
	t.Helper()
	err := sandbox.DoPath(nsPath, func() error {
		c, err := net.Dial("udp4", "127.0.0.11:53")
		if err != nil {
			return err
		}
		defer c.Close()
		for _, m := range msgs {
			if _, err := c.Write(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send from %s: %v", nsPath, err)
	}
}

// flood sends msg to 127.0.0.11:53 from inside the namespace, at most max
// times or until stop, and returns how many it sent.
func flood(nsPath string, msg []byte, max int, stop chan struct{}) int {
	var c net.Conn
	if err := sandbox.DoPath(nsPath, func() (err error) { c, err = net.Dial("udp4", "127.0.0.11:53"); return }); err != nil {
		return 0
	}
	defer c.Close()
	n := 0
	for ; n < max; n++ {
		select {
		case <-stop:
			return n
		default:
		}
		if _, err := c.Write(msg); err != nil {
			// ECONNREFUSED from an earlier answer's ICMP, or a full buffer.
			time.Sleep(time.Millisecond)
		}
	}
	return n
}

func TestDNSAcrossHosts(t *testing.T) {
	requireDig(t)
	l := newLab(t)
	rc := writeResolvConf(t, l)
	c, err := l.Cluster(2, lab.ClusterOptions{Args: []string{"--dns-resolv-conf", rc}})
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	h1, h2 := c.Hosts[0], c.Hosts[1]
	ok(t, h1, "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.94.0.0/24", "ov")
	if _, err := c.WaitNetwork("ov", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	createCtr(t, h2, "b1", "--network", "ov")
	start := time.Now()
	// a1 joins ov with an alias, after a local network of h1 only.
	ok(t, h1, "network", "create", "--subnet", "10.95.0.0/24", "loc")
	createCtr(t, h1, "a1", "--network", "loc")
	ok(t, h1, "network", "connect", "--alias", "web", "ov", "a1")
	ipA := ctrIP(t, h1, "a1", "ov")

	resolves := func(name string) (string, bool) {
		out, code := dig(h2, "b1", "+short", name)
		return strings.TrimSpace(out), code == 0
	}
	var took time.Duration
	if !waitFor(20*time.Second, func() bool { got, _ := resolves("a1"); took = time.Since(start); return got == ipA }) {
		got, _ := resolves("a1")
		t.Fatalf("b1 on %s does not resolve a1 of %s: %q, want %s\n%s", h2.Node, h1.Node, got, ipA, h2.DaemonLog())
	}
	t.Logf("a1 created on %s resolved from %s after %v (create to answer, incl. dig runs)", h1.Node, h2.Node, took)
	if got, _ := resolves("web"); got != ipA {
		t.Errorf("b1: dig web (a1's alias) = %q, want %s", got, ipA)
	}
	if got := digShort(t, h2, "b1", "-x", ipA); len(got) != 1 || got[0] != "a1.ov." {
		t.Errorf("b1: dig -x %s = %v, want a1.ov.", ipA, got)
	}
	// h1's local network is h1's own: b1 never sees a1's name there.
	if st := rcode(t, h2, "b1", "a1.loc"); st == "NOERROR" {
		t.Errorf("b1 resolves a1.loc of h1's local network")
	}
	// And the other way round.
	ipB := ctrIP(t, h2, "b1", "ov")
	if got := digShort(t, h1, "a1", "b1"); len(got) != 1 || got[0] != ipB {
		t.Errorf("a1: dig b1 = %v, want %s", got, ipB)
	}

	ok(t, h1, "container", "rm", "a1")
	start = time.Now()
	gone := waitFor(20*time.Second, func() bool {
		out, _ := dig(h2, "b1", "a1")
		return strings.Contains(out, "status: NXDOMAIN")
	})
	if !gone {
		t.Fatalf("b1 still resolves a1 after its removal on %s", h1.Node)
	}
	t.Logf("a1's removal seen from %s after %v", h2.Node, time.Since(start))

	// A dead host's containers leave the answers with its endpoints.
	createCtr(t, h1, "a2", "--network", "ov")
	ipA2 := ctrIP(t, h1, "a2", "ov")
	if !waitFor(20*time.Second, func() bool { got, _ := resolves("a2"); return got == ipA2 }) {
		t.Fatalf("b1 does not resolve a2")
	}
	if err := h1.KillDaemon(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if !waitFor(60*time.Second, func() bool { out, _ := dig(h2, "b1", "a2"); return strings.Contains(out, "status: NXDOMAIN") }) {
		t.Fatalf("b1 still resolves a2 after its host's daemon was killed")
	}
	t.Logf("a2 gone from %s's answers %v after %s's daemon was killed", h2.Node, time.Since(start), h1.Node)
}
