package resolver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// ForwardTimeout bounds one exchange with one upstream server.
const ForwardTimeout = 2 * time.Second

// Forwarder asks the host's resolvers, in order: UDP first, TCP when the
// UDP answer is truncated. It runs in the daemon's network namespace, so
// the resolvers of the daemon's resolv.conf (loopback ones too) are
// reachable exactly as they are for the daemon.
type Forwarder struct {
	Upstreams []string // host:port
	Timeout   time.Duration
}

// ErrNoUpstream says no upstream server answered.
var ErrNoUpstream = errors.New("no upstream DNS server answered")

// Exchange forwards req and returns the first answer of a server (any
// rcode: an NXDOMAIN is an answer).
func (f Forwarder) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if len(f.Upstreams) == 0 {
		return nil, fmt.Errorf("%w: the resolver configuration lists no nameserver", ErrNoUpstream)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = ForwardTimeout
	}
	var errs []error
	for _, up := range f.Upstreams {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := exchange(ctx, "udp", up, req, timeout)
		if err == nil && resp.Truncated {
			resp, err = exchange(ctx, "tcp", up, req, timeout)
		}
		if err == nil {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrNoUpstream, errors.Join(errs...))
}

func exchange(ctx context.Context, network, addr string, req *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: timeout}
	if network == "udp" {
		// Take what the upstream sends: the client's own limit is applied
		// when the answer goes back to it.
		c.UDPSize = dns.MaxMsgSize
	}
	resp, _, err := c.ExchangeContext(ctx, req, addr)
	return resp, err
}
