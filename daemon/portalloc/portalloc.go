//go:build linux

// Package portalloc holds the host ports of published container ports
// (Docker's -p): each one with a socket bound in the daemon's network
// namespace that receives nothing, so no host program can take the port
// while it is published, and an empty host port gets one from the
// ephemeral range (minus the reserved ports), as Docker does.
package portalloc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Key is one published host port.
type Key struct {
	Proto string     // tcp or udp
	IP    netip.Addr // 0.0.0.0 (or ::) for every address
	Port  uint16
}

func (k Key) String() string {
	return netip.AddrPortFrom(k.IP, k.Port).String()
}

// ErrAllocated is a host port another container already publishes.
var ErrAllocated = errors.New("port is already allocated")

// ErrInUse is a host port a host process holds.
var ErrInUse = errors.New("address already in use")

// Allocator holds host ports by owner (a container ID).
type Allocator struct {
	mu    sync.Mutex
	held  map[Key]held
	procs string // /proc/sys/net/ipv4, for the ephemeral range
}

type held struct {
	owner string
	fd    int
}

// New is an empty allocator reading the ephemeral range from procSysIPv4
// ("" is /proc/sys/net/ipv4, of the calling thread's netns).
func New(procSysIPv4 string) *Allocator {
	if procSysIPv4 == "" {
		procSysIPv4 = "/proc/sys/net/ipv4"
	}
	return &Allocator{held: map[Key]held{}, procs: procSysIPv4}
}

// Request is one host port wanted: Port 0 with First..Last a range to pick
// from (0, 0: the ephemeral range).
type Request struct {
	Proto       string
	IP          netip.Addr
	Port        uint16
	First, Last uint16
}

// Allocate holds every request for owner, all or nothing, and returns the
// keys in request order. A key owner already holds is kept (restart).
func (a *Allocator) Allocate(owner string, reqs []Request) ([]Key, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var got []Key
	fail := func(err error) ([]Key, error) {
		for _, k := range got {
			a.releaseLocked(owner, k)
		}
		return nil, err
	}
	for _, r := range reqs {
		if r.Port != 0 {
			k := Key{r.Proto, r.IP, r.Port}
			if h, ok := a.held[k]; ok && h.owner == owner {
				continue
			}
			if err := a.holdLocked(owner, k); err != nil {
				return fail(err)
			}
			got = append(got, k)
			continue
		}
		first, last := r.First, r.Last
		reserved := map[uint16]bool{}
		if first == 0 {
			var err error
			if first, last, err = a.ephemeral(); err != nil {
				return fail(err)
			}
			reserved = a.reserved()
		}
		n := int(last) - int(first) + 1
		start := rand.IntN(n)
		var k Key
		ok := false
		var lastErr error
		for i := 0; i < n; i++ {
			p := uint16(int(first) + (start+i)%n)
			if reserved[p] {
				continue
			}
			k = Key{r.Proto, r.IP, p}
			if lastErr = a.holdLocked(owner, k); lastErr == nil {
				ok = true
				break
			}
		}
		if !ok {
			if r.First != 0 {
				return fail(fmt.Errorf("Bind for %s:%d-%d failed: %w", r.IP, r.First, r.Last, ErrAllocated))
			}
			return fail(fmt.Errorf("no free host port in the ephemeral range %d-%d for %s: %w", first, last, r.Proto, lastErr))
		}
		got = append(got, k)
	}
	keys := make([]Key, 0, len(got))
	return append(keys, got...), nil
}

// conflict is the holder of a key overlapping k (0.0.0.0 overlaps every address).
func (a *Allocator) conflictLocked(k Key) (Key, bool) {
	for hk := range a.held {
		if hk.Proto != k.Proto || hk.Port != k.Port || hk.IP.Is4() != k.IP.Is4() {
			continue
		}
		if hk.IP == k.IP || hk.IP.IsUnspecified() || k.IP.IsUnspecified() {
			return hk, true
		}
	}
	return Key{}, false
}

func (a *Allocator) holdLocked(owner string, k Key) error {
	if _, busy := a.conflictLocked(k); busy {
		return fmt.Errorf("Bind for %s failed: %w", k, ErrAllocated)
	}
	fd, err := holdSocket(k)
	if err != nil {
		return err
	}
	a.held[k] = held{owner: owner, fd: fd}
	return nil
}

// holdSocket binds a socket to k that never receives: TCP bound without
// listen (a SYN that reaches it is refused), UDP with a filter dropping all.
func holdSocket(k Key) (int, error) {
	family, typ := unix.AF_INET, unix.SOCK_STREAM
	if k.IP.Is6() {
		family = unix.AF_INET6
	}
	if k.Proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("hold host port %s/%s: socket: %w", k, k.Proto, err)
	}
	if k.Proto == "udp" {
		drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		prog := unix.SockFprog{Len: 1, Filter: &drop[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("hold host port %s/%s: attach filter: %w", k, k.Proto, err)
		}
	}
	var sa unix.Sockaddr
	if k.IP.Is6() {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		sa = &unix.SockaddrInet6{Port: int(k.Port), Addr: k.IP.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(k.Port), Addr: k.IP.As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			// Docker's text, from its proxy's listen.
			return -1, fmt.Errorf("Error starting userland proxy: listen %s%s %s: bind: %w", k.Proto, map[bool]string{true: "6", false: "4"}[k.IP.Is6()], k, ErrInUse)
		}
		return -1, fmt.Errorf("hold host port %s/%s: bind: %w", k, k.Proto, err)
	}
	return fd, nil
}

// Release lets go of keys owner holds; unknown ones are skipped.
func (a *Allocator) Release(owner string, keys []Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range keys {
		a.releaseLocked(owner, k)
	}
}

func (a *Allocator) releaseLocked(owner string, k Key) {
	if h, ok := a.held[k]; ok && h.owner == owner {
		unix.Close(h.fd)
		delete(a.held, k)
	}
}

// Held counts the ports held.
func (a *Allocator) Held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.held)
}

func (a *Allocator) ephemeral() (uint16, uint16, error) {
	b, err := os.ReadFile(a.procs + "/ip_local_port_range")
	if err != nil {
		return 32768, 60999, nil // the kernel's default
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("read ephemeral port range: %q", b)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo > hi || lo == 0 {
		return 0, 0, fmt.Errorf("read ephemeral port range: %q", b)
	}
	return uint16(lo), uint16(hi), nil
}

// reserved reads ip_local_reserved_ports ("8080,9000-9010").
func (a *Allocator) reserved() map[uint16]bool {
	out := map[uint16]bool{}
	b, err := os.ReadFile(a.procs + "/ip_local_reserved_ports")
	if err != nil {
		return out
	}
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			continue
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil {
				continue
			}
		}
		for p := l; p <= h; p++ {
			out[uint16(p)] = true
		}
	}
	return out
}

// Close lets go of every port held (the daemon's exit does the same).
func (a *Allocator) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, h := range a.held {
		unix.Close(h.fd)
		delete(a.held, k)
	}
}
