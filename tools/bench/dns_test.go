//go:build linux

package main

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNSServer serves handler on a loopback UDP port and returns its address.
func testDNSServer(t *testing.T, handler dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	s := &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return pc.LocalAddr().String()
}

// answerA answers every A question with addrs, rcode when it is not success.
func answerA(rcode int, addrs ...string) dns.HandlerFunc {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(req, rcode)
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.ParseIP(a).To4()})
		}
		_ = w.WriteMsg(m)
	}
}

func loadOpts(server string, count, outstanding int) dnsLoadOpts {
	return dnsLoadOpts{server: server, name: "c2", want: netip.MustParseAddr("10.0.0.2"), duration: time.Minute,
		count: count, outstanding: outstanding, timeout: 5 * time.Second}
}

func TestDNSLoadCountsAnswers(t *testing.T) {
	cases := []struct {
		name    string
		handler dns.HandlerFunc
		check   func(dnsLoadResult) bool
		wantErr string
	}{
		{"right address", answerA(dns.RcodeSuccess, "10.0.0.2"), func(r dnsLoadResult) bool { return r.OK == 200 && r.Wrong == 0 }, ""},
		{"other address", answerA(dns.RcodeSuccess, "10.0.0.9"), func(r dnsLoadResult) bool { return r.OK == 0 && r.Wrong == 200 }, "200 answers without"},
		{"extra address", answerA(dns.RcodeSuccess, "10.0.0.2", "10.0.0.3"), func(r dnsLoadResult) bool { return r.Wrong == 200 }, "200 answers without"},
		{"nxdomain", answerA(dns.RcodeNameError), func(r dnsLoadResult) bool { return r.Rcodes["NXDOMAIN"] == 200 }, "200 answers NXDOMAIN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := dnsLoad(loadOpts(testDNSServer(t, c.handler), 200, 4))
			if err != nil {
				t.Fatal(err)
			}
			if r.Sent != 200 || r.Lost != 0 || r.Errors != 0 || !c.check(r) {
				t.Fatalf("result %+v", r)
			}
			err = r.check(false)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("check() = %v, want %q", err, c.wantErr)
			}
			if c.wantErr == "" && (r.P50US <= 0 || r.P99US < r.P50US || r.MaxUS < r.P99US || r.QPS <= 0) {
				t.Fatalf("percentiles/rate not derived: %+v", r)
			}
		})
	}
}

// A server that answers every other query: the others are lost, and a loss
// fails a sequential row only.
func TestDNSLoadCountsLost(t *testing.T) {
	var n atomic.Int32
	right := answerA(dns.RcodeSuccess, "10.0.0.2")
	addr := testDNSServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		if n.Add(1)%2 == 0 {
			right(w, req)
		}
	})
	o := loadOpts(addr, 6, 1)
	o.timeout = 50 * time.Millisecond
	r, err := dnsLoad(o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 6 || r.OK != 3 || r.Lost != 3 {
		t.Fatalf("result %+v, want 3 answered and 3 lost of 6", r)
	}
	if err := r.check(true); err != nil {
		t.Errorf("check(lossAllowed) = %v", err)
	}
	if err := r.check(false); err == nil || !strings.Contains(err.Error(), "3 queries unanswered") {
		t.Errorf("check() = %v, want the losses", err)
	}
}

func TestParseDNSLoad(t *testing.T) {
	o, err := parseDNSLoad([]string{"--name", "c2", "--want", "10.0.0.2", "--outstanding", "16", "--duration", "2s", "--timeout", "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	if o.server != "127.0.0.11:53" || o.name != "c2" || o.want != netip.MustParseAddr("10.0.0.2") || o.outstanding != 16 ||
		o.duration != 2*time.Second || o.timeout != 100*time.Millisecond {
		t.Fatalf("parsed %+v", o)
	}
	for _, bad := range [][]string{
		{"--name", "c2"},
		{"--name", "c2", "--want", "fe80::1"},
		{"--want", "10.0.0.2"},
		{"--name", "c2", "--want", "10.0.0.2", "--outstanding", "0"},
		{"--name", "c2", "--want", "10.0.0.2", "--duration", "0s"},
		{"--name", "c2", "--want", "10.0.0.2", "extra"},
	} {
		if _, err := parseDNSLoad(bad); err == nil {
			t.Errorf("parseDNSLoad(%q) succeeded", bad)
		}
	}
}

func TestWriteDNSTable(t *testing.T) {
	st := &DNSStat{Dataplane: "ebpf", Client: "c1", Server: "127.0.0.11:53", LimitQPS: 1000, LimitBurst: 200, Seconds: 2,
		Rows: []DNSRow{
			{Query: "c2 (container table)", Mode: dnsModeSeq, Outstanding: 1, RateLimited: 0,
				dnsLoadResult: dnsLoadResult{Sent: 900, OK: 900, QPS: 450, P50US: 61, P99US: 140, MaxUS: 900}},
			{Query: "c2 (container table)", Mode: dnsModeLoad, Outstanding: 16, RateLimited: 5000,
				dnsLoadResult: dnsLoadResult{Sent: 7000, OK: 2000, Lost: 5000, QPS: 1000, P50US: 40, P99US: 90, MaxUS: 300}},
			{Query: "c2 (container table)", Mode: dnsModeUnlimited, Outstanding: 16, RateLimited: -1, Error: "c2: boom"},
		}}
	var b bytes.Buffer
	if err := writeDNSTable(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"one at a time, paced 2ms", "16 outstanding  ", "16 outstanding, no limit*", "1000 queries/s (burst 200)",
		"5000", "FAILED: c2: boom", "ebpf dataplane"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := writeDNSTable(&b, nil); err != nil || b.Len() != 0 {
		t.Errorf("nil stat wrote %q, %v", b.String(), err)
	}
}
