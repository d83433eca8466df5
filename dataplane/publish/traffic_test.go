//go:build linux

package publish

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/fastpath"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
)

// A host with an uplink to a client and one container behind a host veth
// carrying from_container, published with real sockets on both ends. The
// host veth has the gateway address itself (no bridge: the driver's bridge
// is not what is tested here).
type trafficLab struct {
	host, client, ctr   netns.NsHandle
	ctrPath, clientName string
	pub                 *Publisher
}

const (
	tlHost   = "192.0.2.10"
	tlClient = "192.0.2.20"
	tlCtr    = "10.1.0.2"
	tlGW     = "10.1.0.1"
)

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newTrafficLab(t *testing.T, xdp bool) *trafficLab {
	t.Helper()
	nstest.RequireTools(t, "ip")
	var l trafficLab
	var hostName, ctrName string
	l.host, hostName = nstest.NetNS(t)
	l.client, l.clientName = nstest.NetNS(t)
	l.ctr, ctrName = nstest.NetNS(t)
	l.ctrPath = "/run/netns/" + ctrName
	sh(t, "ip", "-n", hostName, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", l.clientName)
	sh(t, "ip", "-n", hostName, "addr", "add", tlHost+"/24", "dev", "up0")
	sh(t, "ip", "-n", hostName, "link", "set", "up0", "up")
	sh(t, "ip", "-n", l.clientName, "addr", "add", tlClient+"/24", "dev", "eth0")
	sh(t, "ip", "-n", l.clientName, "link", "set", "eth0", "up")
	if xdp {
		// A NIC hands XDP whole checksums; a veth peer offloading them
		// hands it partial ones, which XDP cannot tell apart. The client's
		// side computes them, as a real wire would carry them.
		nstest.RequireTools(t, "ethtool")
		sh(t, "ip", "netns", "exec", l.clientName, "ethtool", "-K", "eth0", "tx", "off")
	}
	sh(t, "ip", "-n", hostName, "link", "add", "ndctr", "type", "veth", "peer", "name", "eth0", "netns", ctrName)
	sh(t, "ip", "-n", hostName, "addr", "add", tlGW+"/24", "dev", "ndctr")
	sh(t, "ip", "-n", hostName, "link", "set", "ndctr", "up")
	sh(t, "ip", "-n", ctrName, "addr", "add", tlCtr+"/24", "dev", "eth0")
	sh(t, "ip", "-n", ctrName, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", ctrName, "route", "add", "default", "via", tlGW)

	nstest.In(t, l.host, func() {
		dir := nstest.PinDir(t)
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		e, err := fastpath.NewEBPF(dir, logger)
		if errors.Is(err, fastpath.ErrEBPFUnsupported) || errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("eBPF not supported: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Forget() })
		hv, err := netlink.LinkByName("ndctr")
		if err != nil {
			t.Fatal(err)
		}
		mac := ctrMAC(t, l.ctr)
		n := &fastpath.Network{Index: 1, Name: "n1", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr(tlGW), ICC: true}
		if err := e.NetworkUp(n); err != nil {
			t.Fatal(err)
		}
		ep := &fastpath.Endpoint{ID: "ep1", ContainerID: "c1", HostIfName: "ndctr", MAC: mac, Addr: netip.MustParsePrefix(tlCtr + "/24")}
		if err := e.EndpointUp(n, ep, hv.Attrs().Index); err != nil {
			t.Fatal(err)
		}
		p, err := New(Config{PinDir: dir, Ifaces: []string{"up0"}, XDP: xdp, Logger: logger})
		if err != nil {
			t.Fatalf("New: %+v", err)
		}
		t.Cleanup(func() { _ = p.Forget() })
		l.pub = p
		target := Target{NetworkID: "n1", EndpointID: "ep1", Addr: netip.MustParseAddr(tlCtr), MAC: mac,
			HostIfindex: hv.Attrs().Index, BridgeMAC: hv.Attrs().HardwareAddr, Gateway: netip.MustParseAddr(tlGW),
			SandboxPath: l.ctrPath, IfName: "eth0"}
		ports := []dataplane.PortMapping{
			{Proto: "tcp", HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerPort: 80},
			{Proto: "udp", HostIP: netip.IPv4Unspecified(), HostPort: 5353, ContainerPort: 53},
			{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9090, ContainerPort: 80},
		}
		if err := p.Publish(target, ports); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	})
	return &l
}

func ctrMAC(t *testing.T, ns netns.NsHandle) net.HardwareAddr {
	var mac net.HardwareAddr
	nstest.In(t, ns, func() {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		mac = l.Attrs().HardwareAddr
	})
	return mac
}

// serveTCP answers each connection with the peer address it sees.
func serveTCP(t *testing.T, ns netns.NsHandle, addr string) {
	var ln net.Listener
	nstest.In(t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp4", addr); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprintf(c, "%s %s", c.RemoteAddr(), line)
			}()
		}
	}()
}

func serveUDP(t *testing.T, ns netns.NsHandle, addr string) {
	var pc net.PacketConn
	nstest.In(t, ns, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", addr); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := append([]byte(from.String()+" "), buf[:n]...)
			_, _ = pc.WriteTo(reply, from)
		}
	}()
}

// dialTCP connects from ns and returns what the server saw and the peer
// address the client's socket reports.
func dialTCP(t *testing.T, ns netns.NsHandle, addr, msg string) (seen, peer string) {
	t.Helper()
	var c net.Conn
	nstest.In(t, ns, func() {
		var err error
		if c, err = net.DialTimeout("tcp4", addr, 5*time.Second); err != nil {
			t.Fatalf("connect to %s: %v", addr, err)
		}
	})
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%s\n", msg)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return strings.Fields(line)[0], c.RemoteAddr().String()
}

func exchangeUDP(t *testing.T, ns netns.NsHandle, addr string, payload []byte) (seen string, reply []byte) {
	t.Helper()
	var c net.Conn
	nstest.In(t, ns, func() {
		var err error
		if c, err = net.Dial("udp4", addr); err != nil {
			t.Fatal(err)
		}
	})
	defer c.Close()
	buf := make([]byte, 65536)
	for try := 0; try < 3; try++ {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err == nil {
			f := strings.SplitN(string(buf[:n]), " ", 2)
			return f[0], []byte(f[1])
		}
	}
	t.Fatalf("no UDP answer from %s", addr)
	return "", nil
}

func TestTrafficFromOutside(t *testing.T) {
	for _, xdp := range []bool{false, true} {
		t.Run(map[bool]string{false: "tc", true: "xdp"}[xdp], func(t *testing.T) {
			l := newTrafficLab(t, xdp)
			serveTCP(t, l.ctr, ":80")
			serveUDP(t, l.ctr, ":53")
			t.Cleanup(func() {
				if t.Failed() {
					st, _ := l.pub.Stats()
					t.Logf("publishing counters: %+v", st)
				}
			})
			for i := 0; i < 3; i++ {
				seen, peer := dialTCP(t, l.client, tlHost+":8080", "hello")
				if host, _, _ := net.SplitHostPort(seen); host != tlClient {
					t.Fatalf("container saw the client as %s, want its real address %s", seen, tlClient)
				}
				if peer != tlHost+":8080" {
					t.Fatalf("client's peer is %s, want the published address", peer)
				}
			}
			// An 8 KB datagram goes as fragments both ways.
			big := make([]byte, 8000)
			for i := range big {
				big[i] = byte(i)
			}
			seen, reply := exchangeUDP(t, l.client, tlHost+":5353", big)
			if host, _, _ := net.SplitHostPort(seen); host != tlClient || string(reply) != string(big) {
				t.Fatalf("UDP: container saw %s, reply %d bytes; want %s and the 8000 bytes back", seen, len(reply), tlClient)
			}
			st, err := l.pub.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.FragPkts == 0 || st.ReplyPkts == 0 {
				t.Fatalf("counters %+v: want translated fragments and replies", st)
			}
			if xdp && st.XdpPkts == 0 {
				t.Fatalf("counters %+v: --xdp-publish translated nothing at XDP", st)
			}
			// Unpublished ports stay closed from outside; 127.0.0.1 bindings too.
			nstest.In(t, l.client, func() {
				if c, err := net.DialTimeout("tcp4", tlHost+":80", time.Second); err == nil {
					c.Close()
					t.Fatal("the container's unpublished port 80 is reachable at the host's address")
				}
				if c, err := net.DialTimeout("tcp4", tlHost+":9090", time.Second); err == nil {
					c.Close()
					t.Fatal("a 127.0.0.1 binding is reachable from outside")
				}
			})
		})
	}
}

func TestTrafficFromHostSockets(t *testing.T) {
	l := newTrafficLab(t, false)
	serveTCP(t, l.ctr, ":80")
	serveUDP(t, l.ctr, ":53")
	for _, addr := range []string{"127.0.0.1:8080", tlHost + ":8080", "127.0.0.1:9090"} {
		seen, peer := dialTCP(t, l.host, addr, "hi")
		if host, _, _ := net.SplitHostPort(seen); host != tlGW {
			t.Fatalf("%s: container saw %s, want the host's gateway address %s", addr, seen, tlGW)
		}
		if peer != addr {
			t.Fatalf("%s: getpeername says %s, want the address connected to", addr, peer)
		}
	}
	// Connected UDP (connect4) and unconnected (sendmsg4/recvmsg4).
	seen, _ := exchangeUDP(t, l.host, "127.0.0.1:5353", []byte("q"))
	if host, _, _ := net.SplitHostPort(seen); host != tlGW {
		t.Fatalf("UDP from the host: container saw %s", seen)
	}
	var pc net.PacketConn
	nstest.In(t, l.host, func() {
		var err error
		if pc, err = net.ListenPacket("udp4", ":0"); err != nil {
			t.Fatal(err)
		}
	})
	defer pc.Close()
	dst := &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5353}
	_ = pc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := pc.WriteTo([]byte("q2"), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("unconnected UDP to 127.0.0.1:5353: %v", err)
	}
	if from.String() != dst.String() {
		t.Fatalf("recvfrom says the answer came from %s, want %s", from, dst)
	}
	// Another network namespace's sockets are left alone.
	nstest.In(t, l.client, func() {
		if c, err := net.DialTimeout("tcp4", "127.0.0.1:8080", time.Second); err == nil {
			c.Close()
			t.Fatal("a socket of another netns was sent to the container")
		}
	})
}
