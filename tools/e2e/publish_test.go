//go:build linux

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/tools/lab"
)

// Port publishing (-p) end to end: a lab host running the daemon, a client
// namespace wired to the host's uplink eth0, containers with a small
// server that answers with the peer address it sees.
const (
	pubHostAddr   = "10.221.0.1"
	pubClientAddr = "10.221.0.2"
)

// inNS runs fn with sockets created in the named netns (a socket stays
// in the namespace it was made in, whatever thread uses it later).
func inNS(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	h, err := netns.GetFromPath(filepath.Join(lab.NetnsDir, ns))
	if err != nil {
		t.Fatalf("open netns %s: %v", ns, err)
	}
	defer h.Close()
	return sandbox.Do(h, fn)
}

// peerServer serves TCP and UDP on port in ns: a TCP connection gets its
// peer address and a newline; a UDP datagram gets "<bytes> <peer>".
func peerServer(t *testing.T, ns string, port int) {
	t.Helper()
	var l net.Listener
	var pc net.PacketConn
	err := inNS(t, ns, func() error {
		var err error
		if l, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("peer server in %s: %v", ns, err)
	}
	t.Cleanup(func() { l.Close(); pc.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, c.RemoteAddr())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(fmt.Sprintf("%d %s", n, from)), from)
		}
	}()
}

// askTCP connects from ns to addr and returns the peer address the server
// saw (its host part), or the error.
func askTCP(t *testing.T, ns, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	if err := inNS(t, ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read answer of %s: %w", addr, err)
	}
	host, _, _ := net.SplitHostPort(strings.TrimSpace(line))
	return host, nil
}

// askUDP sends size bytes from ns to addr and returns "<bytes> <peer host>".
func askUDP(t *testing.T, ns, addr string, size int) (string, error) {
	t.Helper()
	var c net.Conn
	if err := inNS(t, ns, func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 65536)
	for try := 0; try < 3; try++ {
		if _, err := c.Write(make([]byte, size)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		count, peer, _ := strings.Cut(string(buf[:n]), " ")
		host, _, _ := net.SplitHostPort(peer)
		return count + " " + host, nil
	}
	return "", fmt.Errorf("no UDP answer from %s", addr)
}

// mustAnswer asks addr over TCP from ns and checks the peer the server saw
// (wantPeer "" accepts any).
func mustAnswer(t *testing.T, ns, addr, wantPeer string) {
	t.Helper()
	var peer string
	var err error
	for try := 0; try < 3; try++ {
		if peer, err = askTCP(t, ns, addr); err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("from %s to %s: %v", ns, addr, err)
	}
	if wantPeer != "" && peer != wantPeer {
		t.Errorf("from %s to %s: the server saw %s, want %s", ns, addr, peer, wantPeer)
	}
}

func mustNotAnswer(t *testing.T, ns, addr string) {
	t.Helper()
	if peer, err := askTCP(t, ns, addr); err == nil {
		t.Errorf("from %s to %s: answered (peer %s), want no connection", ns, addr, peer)
	}
}

// holdsPort says whether a host program in ns cannot bind 0.0.0.0:port/tcp.
func holdsPort(t *testing.T, ns string, port int) bool {
	t.Helper()
	err := inNS(t, ns, func() error {
		l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err == nil {
			l.Close()
		}
		return err
	})
	if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind %d in %s: %v", port, ns, err)
	}
	return err != nil
}

// pubLab is a host with its daemon and a client wired to its eth0.
func pubLab(t *testing.T, extra ...string) (*lab.Lab, *lab.Host, *lab.Host) {
	t.Helper()
	l := newLab(t)
	h, cl := l.MustHost("h"), l.MustHost("cl")
	if err := l.Wire(cl, h, "eth0", pubClientAddr+"/24", pubHostAddr+"/24"); err != nil {
		t.Fatal(err)
	}
	if err := h.StartDaemon(append([]string{"--publish-ifaces", "eth0"}, extra...)...); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	return l, h, cl
}

func TestPublish(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		_, h, cl := pubLab(t)
		createNet(t, h, dp, "pub", "--subnet", "10.222.0.0/24")
		createCtr(t, h, "srv", "--network", "pub", "-p", "8080:80", "-p", "8053:80/udp", "-p", "127.0.0.1:9090:80")
		createCtr(t, h, "other", "--network", "pub")
		srvNS := h.ContainerNS("srv")
		peerServer(t, srvNS, 80)
		up := pubHostAddr + ":8080"

		t.Run("from outside: the client's own address", func(t *testing.T) {
			mustAnswer(t, cl.NS(), up, pubClientAddr)
			got, err := askUDP(t, cl.NS(), pubHostAddr+":8053", 64)
			if err != nil || got != "64 "+pubClientAddr {
				t.Errorf("UDP from outside: %q, %v", got, err)
			}
			// 8 KB datagrams cross as fragments, both ways.
			got, err = askUDP(t, cl.NS(), pubHostAddr+":8053", 8000)
			if err != nil || got != "8000 "+pubClientAddr {
				t.Errorf("fragmented UDP from outside: %q, %v", got, err)
			}
		})
		t.Run("from the host", func(t *testing.T) {
			mustAnswer(t, h.NS(), "127.0.0.1:8080", "")
			mustAnswer(t, h.NS(), up, "")
			mustAnswer(t, h.NS(), "127.0.0.1:9090", "")
			if got, err := askUDP(t, h.NS(), "127.0.0.1:8053", 64); err != nil || !strings.HasPrefix(got, "64 ") {
				t.Errorf("UDP from the host: %q, %v", got, err)
			}
		})
		t.Run("from another container and hairpin", func(t *testing.T) {
			mustAnswer(t, h.ContainerNS("other"), up, "")
			mustAnswer(t, srvNS, up, "")
		})
		t.Run("not published is not reachable", func(t *testing.T) {
			mustNotAnswer(t, cl.NS(), pubHostAddr+":80")
			mustNotAnswer(t, cl.NS(), pubHostAddr+":9090")
		})
		t.Run("127.0.0.1 binding refuses frames from other hosts", func(t *testing.T) {
			// The client routes 127.0.0.1 to the host's uplink, as an
			// attacker on the host's LAN can (moby#45610).
			for _, s := range [][]string{
				{"sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"},
				{"sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"},
				{"ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"},
				{"ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"},
				{"ip", "route", "add", "127.0.0.1/32", "via", pubHostAddr, "dev", "eth0"},
			} {
				if out, errOut, code := cl.Run(s[0], s[1:]...); code != 0 {
					t.Fatalf("%s: %s%s", strings.Join(s, " "), out, errOut)
				}
			}
			before := rxPackets(t, h, "eth0")
			mustNotAnswer(t, cl.NS(), "127.0.0.1:9090")
			if after := rxPackets(t, h, "eth0"); after == before {
				t.Error("no frame reached the host's eth0: the test proves nothing")
			}
			mustAnswer(t, h.NS(), "127.0.0.1:9090", "")
		})
		t.Run("port and inspect", func(t *testing.T) {
			out := ok(t, h, "container", "port", "srv")
			want := "80/tcp -> 0.0.0.0:8080\n80/tcp -> 127.0.0.1:9090\n80/udp -> 0.0.0.0:8053\n"
			if out != want {
				t.Errorf("container port srv:\n%s\nwant\n%s", out, want)
			}
			if out := ok(t, h, "container", "port", "srv", "80/udp"); out != "0.0.0.0:8053\n" {
				t.Errorf("container port srv 80/udp = %q", out)
			}
			fails(t, h, []string{"Error: No public port '81/tcp' published for srv"}, "container", "port", "srv", "81")
			ct := inspectCtr(t, h, "srv")
			if b := ct.NetworkSettings.Ports["80/tcp"]; len(b) != 2 {
				t.Errorf("inspect Ports = %v", ct.NetworkSettings.Ports)
			}
			if b := ct.HostConfig.PortBindings["80/udp"]; len(b) != 1 || b[0].HostPort != "8053" {
				t.Errorf("inspect HostConfig.PortBindings = %v", ct.HostConfig.PortBindings)
			}
		})
		t.Run("conflicts change nothing", func(t *testing.T) {
			if !holdsPort(t, h.NS(), 8080) {
				t.Error("the daemon does not hold host port 8080")
			}
			var l net.Listener
			if err := inNS(t, h.NS(), func() error {
				var err error
				l, err = net.Listen("tcp4", "0.0.0.0:7070")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			refuseAll(t, h, []string{"srv", "other"}, nil, []refusal{
				{"published port", []string{"Bind for 0.0.0.0:8080 failed: port is already allocated"},
					[]string{"container", "create", "--network", "pub", "-p", "8080:81", "dup"}},
				{"specific address of a published any", []string{"Bind for 127.0.0.1:8080 failed: port is already allocated"},
					[]string{"container", "create", "--network", "pub", "-p", "127.0.0.1:8080:81", "dup"}},
				{"host program", []string{"listen tcp4 0.0.0.0:7070: bind: address already in use"},
					[]string{"container", "create", "--network", "pub", "-p", "7070:81", "dup"}},
				{"bad spec", []string{"invalid"},
					[]string{"container", "create", "--network", "pub", "-p", "80:81:82:83x", "dup"}},
			})
			if lsHas(t, h, "dup") {
				t.Error("a refused create left container dup")
			}
		})
		t.Run("ranges", func(t *testing.T) {
			createCtr(t, h, "rng", "--network", "pub", "-p", "8100-8102:80-82", "-p", "8200-8210:90")
			out := ok(t, h, "container", "port", "rng")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 4 || lines[0] != "80/tcp -> 0.0.0.0:8100" || lines[2] != "82/tcp -> 0.0.0.0:8102" || !strings.HasPrefix(lines[3], "90/tcp -> 0.0.0.0:82") {
				t.Errorf("container port rng:\n%s", out)
			}
			peerServer(t, h.ContainerNS("rng"), 81)
			mustAnswer(t, cl.NS(), pubHostAddr+":8101", pubClientAddr)
			ok(t, h, "container", "rm", "rng")
			for _, p := range []int{8100, 8101, 8102} {
				if holdsPort(t, h.NS(), p) {
					t.Errorf("port %d still held after rm", p)
				}
			}
		})
		t.Run("daemon restart keeps the mappings", func(t *testing.T) {
			if err := h.StopDaemon(); err != nil {
				t.Fatal(err)
			}
			// Forwarding lives in the kernel while the daemon is down.
			mustAnswer(t, cl.NS(), up, pubClientAddr)
			if err := h.StartDaemon(h.LastDaemonArgs()...); err != nil {
				t.Fatal(err)
			}
			mustAnswer(t, cl.NS(), up, pubClientAddr)
			if !holdsPort(t, h.NS(), 8080) {
				t.Error("after restart the daemon does not hold 8080")
			}
			if out := ok(t, h, "container", "port", "srv", "80"); out != "0.0.0.0:8080\n127.0.0.1:9090\n" {
				t.Errorf("after restart: port srv 80 = %q", out)
			}
		})
		t.Run("rm removes the mappings", func(t *testing.T) {
			ok(t, h, "container", "rm", "srv")
			mustNotAnswer(t, cl.NS(), up)
			if holdsPort(t, h.NS(), 8080) {
				t.Error("port 8080 still held after rm")
			}
			createCtr(t, h, "srv2", "--network", "pub", "-p", "8080:80")
		})
	})
}

// lsHas says whether container ls lists name.
func lsHas(t *testing.T, h *lab.Host, name string) bool {
	t.Helper()
	for _, n := range strings.Fields(ok(t, h, "container", "ls", "--format", "{{.Name}}")) {
		if n == name {
			return true
		}
	}
	return false
}

// rxPackets is the receive counter of dev in h's namespace.
func rxPackets(t *testing.T, h *lab.Host, dev string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(h.DaemonPID()), "net", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && name == dev {
			f := strings.Fields(rest)
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in %s's /proc/net/dev", dev, h.NS())
	return 0
}
