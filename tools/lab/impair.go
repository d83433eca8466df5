//go:build linux

package lab

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/dataplane/sandbox"
)

// Direction says which frames of a host's switch port an Impairment hits.
type Direction int

const (
	// ToHost impairs the frames the switch sends to the host: the port's
	// egress, where a netem qdisc on the port would sit.
	ToHost Direction = iota
	// FromHost impairs the frames the host sends into the switch.
	FromHost
	// BothWays impairs both, each direction drawn independently.
	BothWays
)

func (d Direction) String() string {
	switch d {
	case ToHost:
		return "to host"
	case FromHost:
		return "from host"
	case BothWays:
		return "both ways"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// DefaultImpairLimit is how many frames a direction holds at most while
// they wait out their delay (netem's default limit is 1,000 packets).
const DefaultImpairLimit = 10000

// impairMaxBytes bounds a direction's waiting frames in bytes too: a TSO
// segment is up to 64 KiB.
const impairMaxBytes = 64 << 20

// Impairment is what a bad link does to frames, as `tc netem` would: each
// frame is lost with probability Loss, otherwise sent Delay ± Jitter later
// (uniform; a delay below zero counts as zero), so frames get reordered
// when Jitter is larger than their spacing.
type Impairment struct {
	Loss      float64       // 0..1
	Delay     time.Duration // added to every frame kept
	Jitter    time.Duration // uniform spread around Delay
	Direction Direction     // ToHost unless set
	Limit     int           // frames waiting per direction, beyond dropped; 0 means DefaultImpairLimit
}

func (imp Impairment) validate() error {
	switch {
	case !(imp.Loss >= 0 && imp.Loss <= 1):
		return fmt.Errorf("invalid loss %v: want a probability between 0 and 1", imp.Loss)
	case imp.Delay < 0 || imp.Jitter < 0:
		return fmt.Errorf("invalid delay %v ± %v: neither may be negative", imp.Delay, imp.Jitter)
	case imp.Direction < ToHost || imp.Direction > BothWays:
		return fmt.Errorf("invalid direction %v", imp.Direction)
	case imp.Limit < 0:
		return fmt.Errorf("invalid limit %d: want 0 (default) or more frames", imp.Limit)
	}
	return nil
}

func (imp Impairment) String() string {
	return fmt.Sprintf("loss %g%%, delay %v ± %v, %v", imp.Loss*100, imp.Delay, imp.Jitter, imp.Direction)
}

// impairments are the underlay's relayed ports.
type impairments struct {
	mu     sync.Mutex // held across a whole Impair or ClearImpair
	relays map[*Host]*relay
	closed bool
}

func (u *Underlay) impairments() (*impairments, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.imp != nil {
		return u.imp, nil
	}
	imps := &impairments{relays: map[*Host]*relay{}}
	// The relay's sockets hold the switch namespace: they must go before
	// Close removes it, or it lives on unnamed.
	if err := u.l.onClose(imps.close); err != nil {
		return nil, err
	}
	u.imp = imps
	return imps, nil
}

func (imps *impairments) close() error {
	imps.mu.Lock()
	defer imps.mu.Unlock()
	imps.closed = true
	var errs []error
	for h, r := range imps.relays {
		if err := r.close(); err != nil {
			errs = append(errs, fmt.Errorf("impairment of %s: %w", h.Node, err))
		}
		delete(imps.relays, h)
	}
	return errors.Join(errs...)
}

// Impair makes h's switch port a bad link. The kernel has no netem here,
// so the port leaves the bridge and a relay in this process carries its
// frames to a veth pair q<N>a/q<N>b whose q<N>b end takes its place on
// the bridge, dropping and delaying them on the way. Impairing a port
// again replaces the impairment; Cut and Restore keep working.
func (u *Underlay) Impair(h *Host, imp Impairment) error {
	if err := imp.validate(); err != nil {
		return fmt.Errorf("impair the underlay port of %s: %w", h.Node, err)
	}
	port, err := u.port(h)
	if err != nil {
		return err
	}
	imps, err := u.impairments()
	if err != nil {
		return err
	}
	imps.mu.Lock()
	defer imps.mu.Unlock()
	if imps.closed {
		return errors.New("lab is closed")
	}
	if r, ok := imps.relays[h]; ok {
		r.set(imp)
		u.l.logf("[%s] underlay port %s: %v\n", h.Node, port, imp)
		return nil
	}
	tapA, tapB := tapNames(port)
	sw := u.Switch.Node
	fail := func(err error) error {
		// Back to the direct port, as before; the veth pair goes whole.
		_, _ = u.l.run("ip", "-n", sw, "link", "set", port, "master", "br0")
		_, _ = u.l.run("ip", "-n", sw, "link", "del", tapA)
		return fmt.Errorf("impair the underlay port of %s: %w", h.Node, err)
	}
	for _, s := range [][]string{
		{"ip", "-n", sw, "link", "add", tapA, "type", "veth", "peer", "name", tapB},
		{"ip", "-n", sw, "link", "set", tapB, "master", "br0"},
		{"ip", "-n", sw, "link", "set", tapA, "up"},
		{"ip", "-n", sw, "link", "set", tapB, "up"},
		// Off the bridge before the relay's sockets open: a frame is
		// either bridged or relayed, never both.
		{"ip", "-n", sw, "link", "set", port, "nomaster"},
	} {
		if _, err := u.l.run(s[0], s[1:]...); err != nil {
			return fail(err)
		}
	}
	r, err := newRelay(u.Switch.NSPath(), port, tapA, imp)
	if err != nil {
		return fail(err)
	}
	imps.relays[h] = r
	u.l.logf("[%s] underlay port %s relayed through %s: %v\n", h.Node, port, tapA, imp)
	return nil
}

// ClearImpair puts h's port straight on the bridge again; a port that is
// not impaired is left as it is.
func (u *Underlay) ClearImpair(h *Host) error {
	port, err := u.port(h)
	if err != nil {
		return err
	}
	imps, err := u.impairments()
	if err != nil {
		return err
	}
	imps.mu.Lock()
	defer imps.mu.Unlock()
	r, ok := imps.relays[h]
	if !ok {
		return nil
	}
	delete(imps.relays, h)
	errs := []error{r.close()}
	tapA, _ := tapNames(port)
	for _, s := range [][]string{
		{"ip", "-n", u.Switch.Node, "link", "set", port, "master", "br0"},
		{"ip", "-n", u.Switch.Node, "link", "del", tapA},
	} {
		_, err := u.l.run(s[0], s[1:]...)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clear the impairment of %s: %w", h.Node, err)
	}
	u.l.logf("[%s] underlay port %s direct again\n", h.Node, port)
	return nil
}

// impairStats are the relay's counters for h, one per direction.
func (u *Underlay) impairStats(h *Host) (toHost, fromHost laneStats, ok bool) {
	imps, err := u.impairments()
	if err != nil {
		return laneStats{}, laneStats{}, false
	}
	imps.mu.Lock()
	defer imps.mu.Unlock()
	r, ok := imps.relays[h]
	if !ok {
		return laneStats{}, laneStats{}, false
	}
	return r.toHost.stats(), r.fromHost.stats(), true
}

// tapNames are the veth pair that stands in for port p<N> on the bridge.
func tapNames(port string) (a, b string) {
	n := strings.TrimPrefix(port, "p")
	return "q" + n + "a", "q" + n + "b"
}

// relay copies frames between a port (towards the host) and a tap (towards
// the bridge), one lane each way.
type relay struct {
	imp              atomic.Pointer[Impairment]
	port, tap        *packetSock
	toHost, fromHost *lane
	stop             chan struct{}
	wg               sync.WaitGroup
	closeOnce        sync.Once
	closeErr         error
}

func newRelay(nsPath, port, tap string, imp Impairment) (*relay, error) {
	r := &relay{stop: make(chan struct{})}
	r.imp.Store(&imp)
	// Sockets belong to the namespace they are made in, so the relay's
	// goroutines can run on any thread afterwards.
	err := sandbox.DoPath(nsPath, func() error {
		var err error
		if r.port, err = openPacketSock(port); err != nil {
			return err
		}
		if r.tap, err = openPacketSock(tap); err != nil {
			r.port.f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.toHost = &lane{r: r, dir: ToHost, in: r.tap, out: r.port, kick: make(chan struct{}, 1)}
	r.fromHost = &lane{r: r, dir: FromHost, in: r.port, out: r.tap, kick: make(chan struct{}, 1)}
	for _, l := range []*lane{r.toHost, r.fromHost} {
		r.wg.Add(2)
		go l.receive()
		go l.send()
	}
	return r, nil
}

func (r *relay) set(imp Impairment) { r.imp.Store(&imp) }

// close stops the lanes and closes the sockets; frames still waiting are lost.
func (r *relay) close() error {
	r.closeOnce.Do(func() {
		close(r.stop)
		r.closeErr = errors.Join(r.port.f.Close(), r.tap.f.Close())
		r.wg.Wait()
		if err := r.toHost.err(); err != nil {
			r.closeErr = errors.Join(r.closeErr, err)
		}
		if err := r.fromHost.err(); err != nil {
			r.closeErr = errors.Join(r.closeErr, err)
		}
	})
	return r.closeErr
}

// packetSock is an AF_PACKET socket bound to one interface, on Go's poller.
type packetSock struct {
	name string
	f    *os.File
	rc   syscall.RawConn
}

// vnetHdrLen is the size of struct virtio_net_hdr that PACKET_VNET_HDR
// puts before every frame.
const vnetHdrLen = 10

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacketSock opens a raw packet socket on ifName in the calling
// thread's namespace. With PACKET_VNET_HDR each frame carries its offload
// state (checksum still to be filled in, TCP segmentation), passed on
// as it came: veths hand over frames with partial checksums and 64 KiB
// TSO segments, which raw frames alone would corrupt or not fit.
func openPacketSock(ifName string) (*packetSock, error) {
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", ifName, err)
	}
	// Protocol 0: nothing is received until bind names the interface.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open packet socket for %s: %w", ifName, err)
	}
	setup := func() error {
		for _, o := range []struct {
			name      string
			level, op int
			val       int
		}{
			{"PACKET_VNET_HDR", unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
			// Our own sends come back as PACKET_OUTGOING otherwise.
			{"PACKET_IGNORE_OUTGOING", unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
			{"SO_RCVBUFFORCE", unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4 << 20},
			{"SO_SNDBUFFORCE", unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4 << 20},
		} {
			if err := unix.SetsockoptInt(fd, o.level, o.op, o.val); err != nil {
				return fmt.Errorf("set %s: %w", o.name, err)
			}
		}
		mreq := &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("set promiscuous: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket on %s: %w", ifName, err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifName)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("packet socket on %s: %w", ifName, err)
	}
	return &packetSock{name: ifName, f: f, rc: rc}, nil
}

// lane carries the frames of one direction: receive decides each frame's
// fate, send holds the delayed ones in a heap until they are due.
type lane struct {
	r       *relay
	dir     Direction
	in, out *packetSock
	kick    chan struct{} // a new frame may be due first

	mu    sync.Mutex
	q     frameHeap
	bytes int // of the frames in q
	seq   uint64
	fatal error

	relayed, lost, overflow, failed atomic.Uint64
}

type laneStats struct{ Relayed, Lost, Overflow, Failed uint64 }

func (l *lane) stats() laneStats {
	return laneStats{l.relayed.Load(), l.lost.Load(), l.overflow.Load(), l.failed.Load()}
}

func (l *lane) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

// maxFrame holds a 64 KiB TSO segment with its headers.
const maxFrame = vnetHdrLen + 128<<10

func (l *lane) receive() {
	defer l.r.wg.Done()
	buf := make([]byte, maxFrame)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := l.in.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // socket closed: the relay stops
		}
		switch {
		case errors.Is(rerr, unix.EINTR):
			continue
		case errors.Is(rerr, unix.ENETDOWN):
			// The port was taken down (Cut) or is going away; the
			// kernel resumes delivery when it is up again.
			continue
		case rerr != nil:
			l.mu.Lock()
			l.fatal = fmt.Errorf("receive on %s: %w", l.in.name, rerr)
			l.mu.Unlock()
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n > len(buf) || n <= vnetHdrLen {
			l.failed.Add(1)
			continue
		}
		imp := l.r.imp.Load()
		var delay time.Duration
		if imp.Direction == BothWays || imp.Direction == l.dir {
			if imp.Loss > 0 && rand.Float64() < imp.Loss {
				l.lost.Add(1)
				continue
			}
			delay = imp.Delay
			if imp.Jitter > 0 {
				delay += time.Duration(rand.Int64N(2*int64(imp.Jitter)+1)) - imp.Jitter
			}
		}
		frame := append([]byte(nil), buf[:n]...)
		if delay <= 0 {
			l.write(frame)
			continue
		}
		limit := imp.Limit
		if limit == 0 {
			limit = DefaultImpairLimit
		}
		l.mu.Lock()
		if len(l.q) >= limit || l.bytes+len(frame) > impairMaxBytes {
			l.mu.Unlock()
			l.overflow.Add(1)
			continue
		}
		l.seq++
		l.bytes += len(frame)
		heap.Push(&l.q, queued{due: time.Now().Add(delay), seq: l.seq, frame: frame})
		l.mu.Unlock()
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *lane) send() {
	defer l.r.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due [][]byte
		wait := time.Duration(-1)
		l.mu.Lock()
		now := time.Now()
		for len(l.q) > 0 && !l.q[0].due.After(now) {
			f := heap.Pop(&l.q).(queued).frame
			l.bytes -= len(f)
			due = append(due, f)
		}
		if len(l.q) > 0 {
			wait = l.q[0].due.Sub(now)
		}
		l.mu.Unlock()
		for _, f := range due {
			l.write(f)
		}
		if len(due) > 0 {
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-l.r.stop:
			return
		case <-l.kick:
		case <-timer.C:
		}
	}
}

// write sends a frame without waiting: a full socket buffer or a port
// that is down (Cut) drops it, as a link would.
func (l *lane) write(frame []byte) {
	var werr error
	err := l.out.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return true
	})
	if err != nil || werr != nil {
		l.failed.Add(1)
		return
	}
	l.relayed.Add(1)
}

type queued struct {
	due   time.Time
	seq   uint64 // FIFO among frames due at the same instant
	frame []byte
}

// frameHeap orders frames by due time (container/heap).
type frameHeap []queued

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *frameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = queued{}
	*h = old[:len(old)-1]
	return x
}
