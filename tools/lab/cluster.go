//go:build linux

package lab

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ClusterTimeout bounds how long Cluster waits for every host to list
// every other one alive, unless ClusterOptions.Timeout says otherwise.
var ClusterTimeout = 60 * time.Second

// ClusterOptions configure Lab.Cluster.
type ClusterOptions struct {
	// Args are extra daemon flags of every host (e.g. --dataplane kernel).
	Args []string
	// HostArgs, if set, gives host i (0 for h1) extra flags after Args,
	// e.g. a dataplane per host for a mixed cluster.
	HostArgs func(i int) []string
	// DeriveAddr, if set and true for host i, starts that host without
	// --advertise-addr: it must find its underlay address itself (from the
	// route to the host it joins). Host 0 joins no one, so it always has one.
	DeriveAddr func(i int) bool
	// Prepare, if set, runs on each host after it is plugged into the
	// underlay and before its daemon starts (a second interface, a route,
	// an impairment of its port on c.Underlay).
	Prepare func(c *Cluster, h *Host) error
	// Timeout bounds the wait for agreement; 0 means ClusterTimeout.
	Timeout time.Duration
}

// Cluster is lab hosts h1..hn on one underlay, their daemons joined into
// one gossip cluster through h1 with a shared key. It goes with its lab.
type Cluster struct {
	Hosts    []*Host
	Underlay *Underlay
	KeyFile  string // base64 gossip key, given to every daemon as --gossip-key-file

	opts ClusterOptions
}

// Cluster builds n hosts named h1..hn on a new underlay (one per lab),
// writes a gossip key and starts every daemon with its underlay address
// as --advertise-addr, --join h1 (but h1 itself) and the key, then waits
// until every host's `netd node ls` lists all n alive. On error the hosts
// made so far stay in the lab, which removes them on Close.
func (l *Lab) Cluster(n int, opts ClusterOptions) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("cluster of %d hosts: want at least one", n)
	}
	ul, err := l.Underlay()
	if err != nil {
		return nil, err
	}
	key, err := writeGossipKey(filepath.Join(l.Dir, "gossip.key"))
	if err != nil {
		return nil, err
	}
	c := &Cluster{Underlay: ul, KeyFile: key, opts: opts}
	for i := 1; i <= n; i++ {
		h, err := l.Host(fmt.Sprintf("h%d", i))
		if err != nil {
			return nil, err
		}
		if _, err := ul.Attach(h); err != nil {
			return nil, err
		}
		c.Hosts = append(c.Hosts, h)
		if opts.Prepare != nil {
			if err := opts.Prepare(c, h); err != nil {
				return nil, fmt.Errorf("prepare %s: %w", h.Node, err)
			}
		}
	}
	// h1 first: the others join it, and may start together.
	if err := c.Hosts[0].StartDaemon(c.DaemonArgs(0)...); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = c.Hosts[i].StartDaemon(c.DaemonArgs(i)...)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = ClusterTimeout
	}
	if _, err := c.WaitAlive(c.Hosts, timeout); err != nil {
		return nil, err
	}
	return c, nil
}

// writeGossipKey writes a random 32-byte key, base64, as `netd daemon
// --gossip-key-file` reads it.
func writeGossipKey(path string) (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("make gossip key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write gossip key: %w", err)
	}
	return path, nil
}

// DaemonArgs are the daemon flags of host i (0 for h1): underlay address,
// join, key, then ClusterOptions.Args and HostArgs(i). Restarting a host
// with them (or RestartDaemon, which reuses them) rejoins it.
func (c *Cluster) DaemonArgs(i int) []string {
	args := []string{"--gossip-key-file", c.KeyFile}
	if i == 0 || c.opts.DeriveAddr == nil || !c.opts.DeriveAddr(i) {
		args = append(args, "--advertise-addr", c.Addr(c.Hosts[i]).String())
	}
	if i != 0 {
		args = append(args, "--join", c.Addr(c.Hosts[0]).String())
	}
	args = append(args, c.opts.Args...)
	if c.opts.HostArgs != nil {
		args = append(args, c.opts.HostArgs(i)...)
	}
	return args
}

// Addr is h's underlay address (its VTEP and gossip address).
func (c *Cluster) Addr(h *Host) netip.Addr { return c.Underlay.Addr(h) }

// Members is `netd node ls` of h as node name → state; an error when
// the command fails.
func (c *Cluster) Members(h *Host) (map[string]string, error) {
	out, errOut, code := h.netd(10*time.Second, false, "node", "ls", "--format", "{{.Name}} {{.State}}")
	if code != 0 {
		return nil, fmt.Errorf("netd node ls on %s: exit %d: %s", h.Node, code, strings.TrimSpace(errOut+out))
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m, nil
}

// WaitAlive waits until every host of on lists every host of on as alive
// (others may be listed in any state) and returns how long that took; after
// timeout, an error with what each host listed last.
func (c *Cluster) WaitAlive(on []*Host, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	last := map[string]string{}
	for {
		agreed := true
		for _, h := range on {
			got, err := c.Members(h)
			if err != nil {
				last[h.Node] = err.Error()
				agreed = false
				continue
			}
			last[h.Node] = fmt.Sprint(got)
			for _, o := range on {
				if got[o.Node] != "alive" {
					agreed = false
				}
			}
		}
		if agreed {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			var b strings.Builder
			for _, h := range on {
				fmt.Fprintf(&b, "\n  %s lists %s", h.Node, last[h.Node])
			}
			return 0, fmt.Errorf("cluster of %d hosts did not agree that all are alive within %v; last seen:%s", len(on), timeout, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitNetwork waits until every host lists network name (a cluster-wide
// network created on one of them) and returns how long that took.
func (c *Cluster) WaitNetwork(name string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	missing := ""
	for {
		missing = ""
		for _, h := range c.Hosts {
			out, _, code := h.netd(10*time.Second, false, "network", "ls", "--filter", "name="+name, "--format", "{{.Name}}")
			if code != 0 || !containsLine(out, name) {
				missing += " " + h.Node
			}
		}
		if missing == "" {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("network %s not listed within %v on:%s", name, timeout, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
