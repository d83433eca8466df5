//go:build linux

package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/time/rate"

	"github.com/netd-dev/netd/dataplane/sandbox"
)

// Limits of one container's resolver, so that one container's flood or
// slow upstream cannot starve the others.
const (
	DefaultRate  = 1000 // queries per second
	DefaultBurst = 200
	// maxForwards bounds a container's queries waiting on upstream servers.
	maxForwards = 64
	// maxTCPConns bounds a container's open TCP connections.
	maxTCPConns = 16
	tcpIdle     = 10 * time.Second
)

// Sandbox is a container that gets a resolver.
type Sandbox struct {
	ID, Name string
	Path     string   // its network namespace
	Networks []string // IDs of its DNS networks, in interface order
}

// Counters of one container's resolver.
type Counters struct {
	Queries     uint64 // every message received
	Answered    uint64 // answered from the table (records or NODATA)
	NXDomain    uint64 // names of the resolver's that nothing has
	Forwarded   uint64 // answered by an upstream server
	ServFail    uint64 // forwarding failed: no upstream answered, or forwarding is off
	Refused     uint64 // not a standard query of one IN question
	Malformed   uint64 // did not parse: dropped
	RateLimited uint64 // over the rate limit or the forwarding bound: dropped
}

type counters struct {
	queries, answered, nxdomain, forwarded, servfail, refused, malformed, ratelimited atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Queries: c.queries.Load(), Answered: c.answered.Load(), NXDomain: c.nxdomain.Load(), Forwarded: c.forwarded.Load(),
		ServFail: c.servfail.Load(), Refused: c.refused.Load(), Malformed: c.malformed.Load(), RateLimited: c.ratelimited.Load(),
	}
}

// Config configures a Server.
type Config struct {
	Forwarder   Forwarder
	Rate, Burst int // 0: DefaultRate, DefaultBurst
	Logger      *slog.Logger
}

// Server runs one resolver per container: a UDP and a TCP socket bound to
// 127.0.0.11:53 in the container's namespace (a socket keeps the namespace
// it was made in), served from the daemon's goroutines.
type Server struct {
	cfg   Config
	log   *slog.Logger
	table atomic.Pointer[Table]

	mu     sync.Mutex
	ctrs   map[string]*instance // by container ID
	closed bool
}

// NewServer returns a server with an empty table and no containers.
func NewServer(cfg Config) *Server {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ctrs: map[string]*instance{}}
	s.table.Store(NewTable(nil, nil))
	return s
}

// Update installs the table and makes the set of served containers sboxes:
// new ones get their sockets, gone ones lose them. It returns one error
// per container whose sockets could not be opened (retried next Update).
func (s *Server) Update(t *Table, sboxes []Sandbox) []error {
	s.table.Store(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	want := map[string]Sandbox{}
	for _, sb := range sboxes {
		want[sb.ID] = sb
	}
	for id, in := range s.ctrs {
		if sb, ok := want[id]; ok && sb.Path == in.path {
			in.networks.Store(&sb.Networks)
			continue
		}
		in.close()
		delete(s.ctrs, id)
	}
	var errs []error
	for _, sb := range sboxes {
		if s.ctrs[sb.ID] != nil {
			continue
		}
		in, err := s.open(sb)
		if err != nil {
			errs = append(errs, fmt.Errorf("embedded DNS of container %s: %w", sb.Name, err))
			continue
		}
		s.ctrs[sb.ID] = in
	}
	return errs
}

// Serving says whether container id has its resolver.
func (s *Server) Serving(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctrs[id] != nil
}

// Counters returns container id's counters; ok is false if it has no resolver.
func (s *Server) Counters(id string) (c Counters, ok bool) {
	s.mu.Lock()
	in := s.ctrs[id]
	s.mu.Unlock()
	if in == nil {
		return Counters{}, false
	}
	return in.c.snapshot(), true
}

// Close closes every container's sockets and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ctrs := s.ctrs
	s.ctrs = map[string]*instance{}
	s.mu.Unlock()
	for _, in := range ctrs {
		in.close()
	}
	return nil
}

// instance is one container's resolver.
type instance struct {
	s        *Server
	name     string
	path     string
	networks atomic.Pointer[[]string]
	udp      *net.UDPConn
	tcp      *net.TCPListener
	lim      *rate.Limiter
	fwd      chan struct{} // forwarding slots
	c        counters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	connMu sync.Mutex
	conns  map[net.Conn]bool
}

// open makes the sockets inside the container's namespace, with lo up
// (bind to 127.0.0.11 needs the loopback route).
func (s *Server) open(sb Sandbox) (*instance, error) {
	if err := loUp(sb.Path); err != nil {
		return nil, err
	}
	in := &instance{s: s, name: sb.Name, path: sb.Path, lim: rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst),
		fwd: make(chan struct{}, maxForwards), conns: map[net.Conn]bool{}}
	in.networks.Store(&sb.Networks)
	err := sandbox.DoPath(sb.Path, func() error {
		udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(Address))
		if err != nil {
			return fmt.Errorf("listen on udp %s: %w", Address, err)
		}
		tcp, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(Address))
		if err != nil {
			udp.Close()
			return fmt.Errorf("listen on tcp %s: %w", Address, err)
		}
		in.udp, in.tcp = udp, tcp
		return nil
	})
	if err != nil {
		return nil, err
	}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	in.wg.Add(2)
	go in.serveUDP()
	go in.serveTCP()
	return in, nil
}

func loUp(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", path, err)
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", path, err)
	}
	return nil
}

func (in *instance) close() {
	in.cancel()
	in.udp.Close()
	in.tcp.Close()
	in.connMu.Lock()
	for c := range in.conns {
		c.Close()
	}
	in.connMu.Unlock()
	in.wg.Wait()
}

func (in *instance) serveUDP() {
	defer in.wg.Done()
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := in.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			in.s.log.Debug("embedded DNS: read", "container", in.name, "err", err)
			continue
		}
		req, ok := in.admit(buf[:n])
		if !ok {
			continue
		}
		in.handle(req, func(resp *dns.Msg) {
			resp.Truncate(udpSize(req))
			if b, err := resp.Pack(); err == nil {
				_, _ = in.udp.WriteToUDPAddrPort(b, from)
			}
		})
	}
}

// udpSize is the largest answer the client takes over UDP.
func udpSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > dns.MinMsgSize {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}

// admit counts a message, parses it and applies the rate limit.
func (in *instance) admit(b []byte) (*dns.Msg, bool) {
	in.c.queries.Add(1)
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil || req.Response {
		in.c.malformed.Add(1)
		return nil, false
	}
	if !in.lim.Allow() {
		in.c.ratelimited.Add(1)
		return nil, false
	}
	return req, true
}

// handle answers req through reply: at once from the table, or from a
// goroutine that forwards it.
func (in *instance) handle(req *dns.Msg, reply func(*dns.Msg)) {
	nets := *in.networks.Load()
	t := in.s.table.Load()
	resp, v := t.Answer(nets, req)
	switch v {
	case Answered:
		in.c.answered.Add(1)
		reply(resp)
		return
	case NXDomain:
		in.c.nxdomain.Add(1)
		reply(resp)
		return
	case Refused:
		in.c.refused.Add(1)
		reply(resp)
		return
	}
	if !t.Forwards(nets) {
		in.c.servfail.Add(1)
		reply(servfail(req))
		return
	}
	select {
	case in.fwd <- struct{}{}:
	default:
		in.c.ratelimited.Add(1)
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer func() { <-in.fwd }()
		resp, err := in.s.cfg.Forwarder.Exchange(in.ctx, req)
		if err != nil {
			if in.ctx.Err() != nil {
				return
			}
			in.s.log.Debug("embedded DNS: forward", "container", in.name, "question", req.Question[0].String(), "err", err)
			in.c.servfail.Add(1)
			reply(servfail(req))
			return
		}
		resp.Id = req.Id
		in.c.forwarded.Add(1)
		reply(resp)
	}()
}

func servfail(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

func (in *instance) serveTCP() {
	defer in.wg.Done()
	for {
		c, err := in.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			in.s.log.Debug("embedded DNS: accept", "container", in.name, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		in.connMu.Lock()
		if len(in.conns) >= maxTCPConns {
			in.connMu.Unlock()
			in.c.ratelimited.Add(1)
			c.Close()
			continue
		}
		in.conns[c] = true
		in.connMu.Unlock()
		in.wg.Add(1)
		go in.serveConn(c)
	}
}

// serveConn answers the length-prefixed messages of one TCP connection in
// order until the client closes it or stays idle.
func (in *instance) serveConn(c net.Conn) {
	defer in.wg.Done()
	defer func() {
		in.connMu.Lock()
		delete(in.conns, c)
		in.connMu.Unlock()
		c.Close()
	}()
	var wmu sync.Mutex
	for {
		_ = c.SetReadDeadline(time.Now().Add(tcpIdle))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		req, ok := in.admit(b)
		if !ok {
			continue
		}
		in.handle(req, func(resp *dns.Msg) {
			out, err := resp.Pack()
			if err != nil {
				return
			}
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.SetWriteDeadline(time.Now().Add(tcpIdle))
			_, _ = c.Write(slices.Concat(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out))
		})
	}
}
