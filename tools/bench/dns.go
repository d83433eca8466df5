//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/daemon/resolver"
	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/tools/lab"
)

// The DNS run: container c1 on a user-defined bridge network asks its
// embedded resolver (127.0.0.11:53) for c2's A record, one query at a time
// for the latency and with dnsOutstanding in flight for the rate; then the
// same for a name the daemon forwards to an upstream in its namespace.
// The daemon limits each container to resolver.DefaultRate queries a second,
// so the loaded rate from one container is that limit; the same server code
// without the limit, run in the bench process, gives the server's own rate.
const (
	dnsNetwork     = "dnsnet"
	dnsSubnet      = "10.207.0.0/24"
	dnsClient      = "c1"
	dnsTarget      = "c2"
	dnsFree        = "c3" // on the default bridge: no embedded DNS, 127.0.0.11 free for the unlimited server
	dnsOutstanding = 16
	// dnsPace spaces sequential queries: 500 a second stays under the limit.
	dnsPace = 2 * time.Millisecond
	// dnsSeqTimeout bounds one sequential query; a loss there is a failure.
	dnsSeqTimeout = 3 * time.Second
	// dnsLoadTimeout is when a loaded query counts as lost. Below
	// burst/rate (200 ms), so a worker waiting on a query the limit dropped
	// idles for less time than the bucket takes to refill.
	dnsLoadTimeout = 100 * time.Millisecond
	dnsFwdName     = "fwd.bench.example."
	dnsFwdAddr     = "192.0.2.53"
	maxDNS         = 5 * time.Minute
)

// Modes of the DNS table's rows.
const (
	dnsModeSeq       = "sequential"
	dnsModeLoad      = "load"
	dnsModeUnlimited = "load-unlimited"
)

// dnsLoadResult is the JSON line the dns-load sub-command prints.
type dnsLoadResult struct {
	Sent     uint64            `json:"sent"`
	OK       uint64            `json:"ok"`              // NOERROR with the right address and nothing else
	Wrong    uint64            `json:"wrong,omitempty"` // NOERROR with other or no A records
	Rcodes   map[string]uint64 `json:"rcodes,omitempty"`
	Lost     uint64            `json:"lost,omitempty"`   // no answer within the timeout
	Errors   uint64            `json:"errors,omitempty"` // send or receive failed
	LastErr  string            `json:"last_error,omitempty"`
	Seconds  float64           `json:"seconds"`
	QPS      float64           `json:"qps"` // OK answers per second
	P50US    float64           `json:"p50_us"`
	P99US    float64           `json:"p99_us"`
	MaxUS    float64           `json:"max_us"`
	Received uint64            `json:"-"`
}

// dnsLoadOpts is what the dns-load sub-command is asked to do.
type dnsLoadOpts struct {
	server      string // host:port
	name        string
	want        netip.Addr
	duration    time.Duration
	count       int // at most this many queries; 0: until duration
	outstanding int
	pace        time.Duration // a worker's pause after each answer
	timeout     time.Duration
}

func parseDNSLoad(args []string) (dnsLoadOpts, error) {
	fs := flag.NewFlagSet("dns-load", flag.ContinueOnError)
	o := dnsLoadOpts{}
	fs.StringVar(&o.server, "server", resolver.Address.String(), "DNS server")
	fs.StringVar(&o.name, "name", "", "name to ask A records of")
	want := fs.String("want", "", "the address every answer must hold")
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "how long to send")
	fs.IntVar(&o.count, "count", 0, "stop after this many queries (0: at --duration)")
	fs.IntVar(&o.outstanding, "outstanding", 1, "queries in flight")
	fs.DurationVar(&o.pace, "pace", 0, "pause after each answer")
	fs.DurationVar(&o.timeout, "timeout", time.Second, "a query without an answer by then is lost")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.want, err = netip.ParseAddr(*want); err != nil || !o.want.Is4() {
		return o, fmt.Errorf("bad --want %q: want an IPv4 address", *want)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.name == "":
		return o, errors.New("--name is required")
	case o.outstanding < 1 || o.outstanding > 256:
		return o, errors.New("--outstanding must be 1..256")
	case o.duration <= 0 || o.duration > maxDNS:
		return o, fmt.Errorf("--duration must be over 0 and at most %s", maxDNS)
	case o.timeout <= 0 || o.count < 0 || o.pace < 0:
		return o, errors.New("--timeout must be over 0, --count and --pace not negative")
	}
	return o, nil
}

// runDNSLoad is the `dns-load` sub-command, run in a container's netns.
func runDNSLoad(args []string) int {
	o, err := parseDNSLoad(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dns-load:", err)
		return 2
	}
	r, err := dnsLoad(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dns-load:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "dns-load: encode result:", err)
		return 1
	}
	return 0
}

// dnsLoad runs o.outstanding workers, each one query at a time on its own
// socket, until the duration or the count is reached.
func dnsLoad(o dnsLoadOpts) (dnsLoadResult, error) {
	conns := make([]*dns.Conn, o.outstanding)
	for i := range conns {
		c, err := net.Dial("udp4", o.server)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return dnsLoadResult{}, fmt.Errorf("open a UDP socket to %s: %w", o.server, err)
		}
		conns[i] = &dns.Conn{Conn: c}
	}
	var (
		issued atomic.Int64
		mu     sync.Mutex
		total  = dnsLoadResult{Rcodes: map[string]uint64{}}
		lat    []float64
		wg     sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(o.duration)
	for _, co := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer co.Close()
			w := dnsWorker{o: o, co: co, r: dnsLoadResult{Rcodes: map[string]uint64{}}}
			for time.Now().Before(end) && (o.count == 0 || issued.Add(1) <= int64(o.count)) {
				w.query()
				if o.pace > 0 {
					time.Sleep(o.pace)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total.add(w.r)
			lat = append(lat, w.lat...)
		}()
	}
	wg.Wait()
	total.Seconds = time.Since(start).Seconds()
	total.finish(lat)
	return total, nil
}

type dnsWorker struct {
	o   dnsLoadOpts
	co  *dns.Conn
	r   dnsLoadResult
	lat []float64 // µs, of OK answers
}

// query sends one query and classifies its answer.
func (w *dnsWorker) query() {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(w.o.name), dns.TypeA)
	w.r.Sent++
	sent := time.Now()
	_ = w.co.SetDeadline(sent.Add(w.o.timeout))
	if err := w.co.WriteMsg(m); err != nil {
		w.fail(err)
		return
	}
	for {
		resp, err := w.co.ReadMsg()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			w.r.Lost++
			return
		case err != nil:
			w.fail(err)
			return
		case resp.Id != m.Id:
			continue // the late answer of a query already counted lost
		}
		d := time.Since(sent)
		if !w.r.classify(resp, w.o.want) {
			return
		}
		w.lat = append(w.lat, float64(d.Nanoseconds())/1e3)
		return
	}
}

func (w *dnsWorker) fail(err error) {
	w.r.Errors++
	w.r.LastErr = err.Error()
	// A refused socket fails at once: do not spin on it.
	time.Sleep(time.Millisecond)
}

// classify counts one answer; true when it is NOERROR with exactly want.
func (r *dnsLoadResult) classify(resp *dns.Msg, want netip.Addr) bool {
	r.Received++
	if resp.Rcode != dns.RcodeSuccess {
		r.Rcodes[dns.RcodeToString[resp.Rcode]]++
		return false
	}
	var got []netip.Addr
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			got = append(got, ip)
		}
	}
	if len(got) != 1 || got[0] != want {
		r.Wrong++
		return false
	}
	r.OK++
	return true
}

func (r *dnsLoadResult) add(o dnsLoadResult) {
	r.Sent += o.Sent
	r.OK += o.OK
	r.Wrong += o.Wrong
	r.Lost += o.Lost
	r.Errors += o.Errors
	r.Received += o.Received
	if o.LastErr != "" {
		r.LastErr = o.LastErr
	}
	for k, v := range o.Rcodes {
		r.Rcodes[k] += v
	}
}

// finish derives the rate and the percentiles (µs) of the OK answers.
func (r *dnsLoadResult) finish(latUS []float64) {
	if r.Seconds > 0 {
		r.QPS = float64(r.OK) / r.Seconds
	}
	if len(latUS) > 0 {
		sort.Float64s(latUS)
		r.P50US, r.P99US, r.MaxUS = percentile(latUS, 50), percentile(latUS, 99), latUS[len(latUS)-1]
	}
	if len(r.Rcodes) == 0 {
		r.Rcodes = nil
	}
}

// check says what is wrong with a row's answers: any wrong answer, error
// code or send error; a lost query only where nothing should be dropped.
func (r dnsLoadResult) check(lossAllowed bool) error {
	var bad []string
	if r.Wrong > 0 {
		bad = append(bad, fmt.Sprintf("%d answers without exactly the expected address", r.Wrong))
	}
	for _, k := range sortedKeys(r.Rcodes) {
		bad = append(bad, fmt.Sprintf("%d answers %s", r.Rcodes[k], k))
	}
	if r.Errors > 0 {
		bad = append(bad, fmt.Sprintf("%d send/receive errors (last: %s)", r.Errors, r.LastErr))
	}
	if r.Lost > 0 && !lossAllowed {
		bad = append(bad, fmt.Sprintf("%d queries unanswered", r.Lost))
	}
	if r.OK == 0 && len(bad) == 0 {
		bad = append(bad, "no answer at all")
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%d queries: %s", r.Sent, strings.Join(bad, ", "))
}

func sortedKeys(m map[string]uint64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// DNSStat is the DNS run's figures (results.json "dns").
type DNSStat struct {
	Dataplane  string   `json:"dataplane"`
	Client     string   `json:"client"` // the asking container
	Server     string   `json:"server"`
	LimitQPS   int      `json:"limit_qps"` // the daemon's per-container limit
	LimitBurst int      `json:"limit_burst"`
	Seconds    float64  `json:"seconds_per_row"`
	Rows       []DNSRow `json:"rows"`
}

// DNSRow is one measurement of the DNS run.
type DNSRow struct {
	Query       string `json:"query"`
	Mode        string `json:"mode"` // sequential, load, load-unlimited
	Outstanding int    `json:"outstanding"`
	dnsLoadResult
	// RateLimited is the queries the resolver dropped for the limit during
	// the row (its counter in `container inspect`); -1: not known.
	RateLimited int64  `json:"rate_limited"`
	Error       string `json:"error,omitempty"`
}

// dnsRun is the DNS figure, in a lab of its own, closed at the end.
type dnsRun struct {
	self, netdBin, prefix, logDir string
	prog                          *progress
	lab                           *lab.Lab
	host                          *lab.Host
	client                        *api.Client
	upstream                      []*dns.Server
	unlimited                     *resolver.Server
}

func newDNSRun(self, prefix, netdBin, logDir string, prog *progress) *dnsRun {
	return &dnsRun{self: self, netdBin: netdBin, prefix: prefix + "n", logDir: logDir, prog: prog}
}

func (r *dnsRun) name() string { return "dns" }

// run measures each row for d; it returns what it measured also when it
// fails part-way.
func (r *dnsRun) run(ctx context.Context, d time.Duration) (*DNSStat, error) {
	defer r.down()
	r.prog.show("dns  setting up")
	st := &DNSStat{Client: dnsClient, Server: resolver.Address.String(), LimitQPS: resolver.DefaultRate,
		LimitBurst: resolver.DefaultBurst, Seconds: d.Seconds()}
	ip2, err := r.up(ctx, st)
	if err != nil {
		return nil, err
	}
	rows := []struct {
		query, mode, ctr, name, want string
		outstanding                  int
	}{
		{dnsTarget + " (container table)", dnsModeSeq, dnsClient, dnsTarget, ip2, 1},
		{strings.TrimSuffix(dnsFwdName, ".") + " (forwarded)", dnsModeSeq, dnsClient, dnsFwdName, dnsFwdAddr, 1},
		{dnsTarget + " (container table)", dnsModeLoad, dnsClient, dnsTarget, ip2, dnsOutstanding},
		{dnsTarget + " (container table)", dnsModeUnlimited, dnsFree, dnsTarget, ip2, dnsOutstanding},
	}
	var errs []error
	for _, row := range rows {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		r.prog.show("dns  %s, %s", row.query, row.mode)
		if row.mode == dnsModeUnlimited {
			if err := r.startUnlimited(ip2); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		args := []string{"dns-load", "--name", row.name, "--want", row.want, "--duration", d.String(),
			"--outstanding", fmt.Sprint(row.outstanding)}
		if row.mode == dnsModeSeq {
			args = append(args, "--pace", dnsPace.String(), "--timeout", dnsSeqTimeout.String())
		} else {
			args = append(args, "--timeout", dnsLoadTimeout.String())
		}
		before := r.rateLimited(row.ctr, row.mode)
		out, err := run(ctx, d+dnsSeqTimeout+30*time.Second, "nsenter", append([]string{"--net=" + filepath.Join(lab.NetnsDir, r.host.ContainerNS(row.ctr)), "--", r.self}, args...)...)
		dr := DNSRow{Query: row.query, Mode: row.mode, Outstanding: row.outstanding, RateLimited: -1}
		if err == nil {
			err = json.Unmarshal([]byte(out), &dr.dnsLoadResult)
		}
		if err == nil {
			if after := r.rateLimited(row.ctr, row.mode); before >= 0 && after >= 0 {
				dr.RateLimited = after - before
			}
			err = dr.check(row.mode != dnsModeSeq)
		}
		if err != nil {
			err = fmt.Errorf("%s, %s from %s: %w", row.query, row.mode, row.ctr, err)
			dr.Error = err.Error()
			errs = append(errs, err)
		}
		st.Rows = append(st.Rows, dr)
	}
	return st, errors.Join(errs...)
}

// up starts the daemon with an upstream for the forwarded name, makes the
// network and the containers, and returns c2's address once c1's resolver
// serves.
func (r *dnsRun) up(ctx context.Context, st *DNSStat) (string, error) {
	var err error
	if r.lab, r.host, err = benchHost(r.netdBin, r.prefix, "dns"); err != nil {
		return "", err
	}
	if err := r.startUpstream(); err != nil {
		return "", err
	}
	conf := filepath.Join(r.lab.Dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return "", fmt.Errorf("write the daemon's resolv.conf: %w", err)
	}
	if err := r.host.StartDaemon("--dns-resolv-conf", conf); err != nil {
		return "", err
	}
	if r.client, err = api.NewClient(r.host.HostURL()); err != nil {
		return "", err
	}
	for _, args := range [][]string{
		{"network", "create", "--subnet", dnsSubnet, dnsNetwork},
		{"container", "create", "--network", dnsNetwork, dnsClient},
		{"container", "create", "--network", dnsNetwork, dnsTarget},
		{"container", "create", dnsFree},
	} {
		if err := netdOn(r.host, args...); err != nil {
			return "", fmt.Errorf("%w%s", err, logTail(r.host))
		}
	}
	vctx, cancel := context.WithTimeout(ctx, lab.CommandTimeout)
	v, err := r.client.Version(vctx)
	cancel()
	if err != nil {
		return "", fmt.Errorf("daemon version: %w", err)
	}
	st.Dataplane = v.Dataplane
	c2, err := r.inspect(ctx, dnsTarget)
	if err != nil {
		return "", err
	}
	ip2 := c2.NetworkSettings.Networks[dnsNetwork].IPAddress
	if ip2 == "" {
		return "", fmt.Errorf("%s has no address on %s", dnsTarget, dnsNetwork)
	}
	// The resolver comes up after `container create` returns.
	for try := 0; ; try++ {
		c1, err := r.inspect(ctx, dnsClient)
		if err != nil {
			return "", err
		}
		if c1.DNS != nil {
			return ip2, nil
		}
		if try == 100 || ctx.Err() != nil {
			return "", fmt.Errorf("%s has no embedded DNS 10 s after create%s", dnsClient, logTail(r.host))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *dnsRun) inspect(ctx context.Context, name string) (api.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, lab.CommandTimeout)
	defer cancel()
	c, err := r.client.ContainerInspect(ctx, name)
	if err != nil {
		return c, fmt.Errorf("inspect %s: %w", name, err)
	}
	return c, nil
}

// rateLimited is the resolver's rate-limited counter of container ctr; -1
// when unknown.
func (r *dnsRun) rateLimited(ctr, mode string) int64 {
	if mode == dnsModeUnlimited {
		c, ok := r.unlimited.Counters(dnsFree)
		if !ok {
			return -1
		}
		return int64(c.RateLimited)
	}
	c, err := r.inspect(context.Background(), ctr)
	if err != nil || c.DNS == nil {
		return -1
	}
	return int64(c.DNS.RateLimited)
}

// startUpstream serves the forwarded name on 127.0.0.1:53 in the daemon's
// namespace, from the bench process.
func (r *dnsRun) startUpstream() error {
	var pc net.PacketConn
	err := sandbox.DoPath(r.host.NSPath(), func() error {
		var err error
		pc, err = net.ListenPacket("udp4", "127.0.0.1:53")
		return err
	})
	if err != nil {
		return fmt.Errorf("start the upstream DNS server in %s: %w", r.host.NSPath(), err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answerFwd)}
	r.upstream = append(r.upstream, s)
	go func() { _ = s.ActivateAndServe() }()
	return nil
}

// answerFwd answers dnsFwdName's A record, NXDOMAIN to anything else.
func answerFwd(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	if len(req.Question) == 1 && strings.EqualFold(req.Question[0].Name, dnsFwdName) && req.Question[0].Qtype == dns.TypeA {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.ParseIP(dnsFwdAddr).To4()})
	} else {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// startUnlimited serves c3's 127.0.0.11 from the bench process with the
// daemon's server code and a table like the daemon's, the limit set beyond
// reach: the rate the server itself sustains.
func (r *dnsRun) startUnlimited(ip2 string) error {
	addr, err := netip.ParseAddr(ip2)
	if err != nil {
		return fmt.Errorf("unlimited server: %s's address %q: %w", dnsTarget, ip2, err)
	}
	n, err := r.client.NetworkInspect(context.Background(), dnsNetwork)
	if err != nil {
		return fmt.Errorf("unlimited server: inspect %s: %w", dnsNetwork, err)
	}
	t := resolver.NewTable([]resolver.Network{{ID: n.ID, Name: n.Name, Subnet: netip.MustParsePrefix(dnsSubnet)}},
		[]resolver.Entry{{NetworkID: n.ID, Container: dnsTarget, IPv4: addr}})
	r.unlimited = resolver.NewServer(resolver.Config{Rate: 1 << 30, Burst: 1 << 30})
	sb := resolver.Sandbox{ID: dnsFree, Name: dnsFree, Path: filepath.Join(lab.NetnsDir, r.host.ContainerNS(dnsFree)), Networks: []string{n.ID}}
	if errs := r.unlimited.Update(t, []resolver.Sandbox{sb}); len(errs) > 0 {
		return fmt.Errorf("unlimited server: %w", errors.Join(errs...))
	}
	return nil
}

func (r *dnsRun) down() {
	if r.unlimited != nil {
		_ = r.unlimited.Close()
		r.unlimited = nil
	}
	for _, s := range r.upstream {
		_ = s.Shutdown()
	}
	r.upstream = nil
	if r.lab == nil {
		return
	}
	r.prog.show("dns  tearing down")
	if r.host != nil {
		keepLogs(r.logDir, r.name(), []*lab.Host{r.host})
	}
	if err := r.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup %s: %v\n", r.name(), err)
	}
	r.lab, r.host = nil, nil
}

// writeDNSTable renders the DNS figures.
func writeDNSTable(w io.Writer, st *DNSStat) error {
	if st == nil || len(st.Rows) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nDNS: container %s asks the embedded resolver %s for A records, %s per row, every answer checked;\n"+
		"%s dataplane; latencies in µs of the answered queries\n", st.Client, st.Server, time.Duration(st.Seconds*float64(time.Second)), st.Dataplane)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUERY\tMODE\tQUERIES\tANSWERED/S\tP50\tP99\tMAX\tLOST\tRATE-LIMITED\t")
	for _, r := range st.Rows {
		mode := fmt.Sprintf("one at a time, paced %s", dnsPace)
		switch r.Mode {
		case dnsModeLoad:
			mode = fmt.Sprintf("%d outstanding", r.Outstanding)
		case dnsModeUnlimited:
			mode = fmt.Sprintf("%d outstanding, no limit*", r.Outstanding)
		}
		limited := "-"
		if r.RateLimited >= 0 {
			limited = fmt.Sprint(r.RateLimited)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t\n", r.Query, mode, r.Sent, formatValue(r.QPS),
			formatValue(r.P50US), formatValue(r.P99US), formatValue(r.MaxUS), r.Lost, limited)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write DNS table: %w", err)
	}
	fmt.Fprintf(w, "The daemon limits each container to %d queries/s (burst %d): the loaded rate from a container is that limit\n"+
		"(lost = dropped by it). * The same server code without the limit, served from the bench process, not the daemon.\n",
		st.LimitQPS, st.LimitBurst)
	for _, r := range st.Rows {
		if r.Error != "" {
			fmt.Fprintf(w, "FAILED: %s\n", oneLine(r.Error, 300))
		}
	}
	return nil
}
