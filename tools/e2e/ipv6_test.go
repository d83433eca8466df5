//go:build linux

package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/tools/lab"
)

// TestIPv6OffOnIPv4Networks: as Docker does on IPv4-only networks, every
// container interface has IPv6 disabled (no link-local address, no DAD or
// MLD on the wire). On the ebpf dataplane a container that turns IPv6 back
// on still cannot send it: the frames die in eBPF, counted as IPV6, and the
// peer never sees them; IPv4 keeps working.
func TestIPv6OffOnIPv4Networks(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "v4", "--subnet", "10.218.1.0/24")
		createNet(t, h, dp, "v4b", "--subnet", "10.218.2.0/24")
		createCtr(t, h, "ca", "--network", "v4")
		createCtr(t, h, "cb", "--network", "v4")
		checkDataplane(t, h, dp, "ca", "v4")
		ok(t, h, "network", "connect", "v4b", "ca")

		for _, x := range []struct{ ctr, ifname string }{{"ca", "eth0"}, {"cb", "eth0"}, {"ca", "eth1"}} {
			if got := ctrIPv6Disabled(t, h, x.ctr, x.ifname); got != "1" {
				t.Errorf("%s %s: disable_ipv6 = %q, want 1 on an IPv4-only network", x.ctr, x.ifname, got)
			}
			if addrs := ctrIPv6Addrs(t, h, x.ctr, x.ifname); addrs != "" {
				t.Errorf("%s %s has IPv6 addresses on an IPv4-only network:\n%s", x.ctr, x.ifname, addrs)
			}
		}
		ipB := ctrIP(t, h, "cb", "v4")
		mustPing(t, h, "ca", ipB)
		if dp != api.DataplaneEBPF {
			return // the kernel dataplane relies on the container side alone
		}

		macA := inspectCtr(t, h, "ca").NetworkSettings.Networks["v4"].MacAddress
		aIf := hostIf(t, h, "ca", "v4")
		// cb listens, with IPv6 on so it would answer if anything reached it.
		capB := startCapture(t, h.ContainerNS("cb"), "eth0", macA)
		llB := enableIPv6(t, h, "cb", "eth0")
		before := epCounters(t, h, aIf)
		enableIPv6(t, h, "ca", "eth0") // DAD and MLD of ca are IPv6 frames too

		// -L: ca's own answer to all-nodes would otherwise count as one.
		for _, dst := range []string{"ff02::1", llB + "%eth0"} {
			out, errOut, code := h.Exec("ca", "ping", "-6", "-L", "-c", "3", "-i", "0.2", "-W", "1", "-I", "eth0", dst)
			if code == 0 {
				t.Errorf("ping -6 %s from ca got an answer, want IPv6 dropped:\n%s", dst, out)
			} else if code != 1 && code != 2 {
				t.Errorf("ping -6 %s from ca: exit %d, want ping's own failure: %s%s", dst, code, out, errOut)
			}
		}
		dropsMoved(t, h, aIf, "IPV6", before, 3)
		// Control for the capture: IPv4 from ca does reach cb.
		mustPing(t, h, "ca", ipB)
		got := capB.stop()
		if got.v6 != 0 {
			t.Errorf("cb received %d IPv6 frames from ca (%s), want none", got.v6, macA)
		}
		if got.v4 == 0 {
			t.Errorf("capture on cb saw no IPv4 from ca either: the capture is broken")
		}
	})
}

// ctrIPv6Disabled reads net.ipv6.conf.<ifname>.disable_ipv6 inside a container.
func ctrIPv6Disabled(t *testing.T, h *lab.Host, ctr, ifname string) string {
	t.Helper()
	out, errOut, code := h.Exec(ctr, "cat", "/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6")
	if code != 0 {
		t.Fatalf("read disable_ipv6 of %s in %s: exit %d: %s", ifname, ctr, code, errOut)
	}
	return strings.TrimSpace(out)
}

// ctrIPv6Addrs lists the IPv6 addresses of ifname in a container, one a line.
func ctrIPv6Addrs(t *testing.T, h *lab.Host, ctr, ifname string) string {
	t.Helper()
	out, errOut, code := h.Exec(ctr, "ip", "-6", "-o", "addr", "show", "dev", ifname)
	if code != 0 {
		t.Fatalf("ip -6 addr in %s: exit %d: %s", ctr, code, errOut)
	}
	return strings.TrimSpace(out)
}

var linkLocalRE = regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/64 scope link`)

// enableIPv6 turns IPv6 back on for ifname in a container, as its root may,
// and waits for the link-local address to leave DAD; it returns that address.
func enableIPv6(t *testing.T, h *lab.Host, ctr, ifname string) string {
	t.Helper()
	if _, errOut, code := h.Exec(ctr, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6"); code != 0 {
		t.Fatalf("enable IPv6 on %s in %s: exit %d: %s", ifname, ctr, code, errOut)
	}
	var addrs string
	if waitFor(10*time.Second, func() bool {
		addrs = ctrIPv6Addrs(t, h, ctr, ifname)
		return linkLocalRE.MatchString(addrs) && !strings.Contains(addrs, "tentative")
	}) {
		return linkLocalRE.FindStringSubmatch(addrs)[1]
	}
	t.Fatalf("%s %s: no usable link-local address after enabling IPv6:\n%s", ctr, ifname, addrs)
	return ""
}

// frameCounts are frames from one source MAC a capture saw, by ethertype.
type frameCounts struct{ v4, v6 int }

type capture struct {
	fd   int
	done chan struct{}
	res  chan frameCounts
	once sync.Once
	got  frameCounts
}

// startCapture counts the frames from srcMAC that ifname in the named netns
// receives, until stop (at most 60 s).
func startCapture(t *testing.T, netnsName, ifname, srcMAC string) *capture {
	t.Helper()
	mac, err := net.ParseMAC(srcMAC)
	if err != nil {
		t.Fatalf("parse MAC %q: %v", srcMAC, err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd := -1
	// A packet socket belongs to the netns it is opened in; reading it later works from any thread.
	err = sandbox.DoPath(sandbox.Path(netnsName), func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(s)
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		fd = s
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifname, netnsName, err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		t.Fatalf("set capture timeout: %v", err)
	}
	c := &capture{fd: fd, done: make(chan struct{}), res: make(chan frameCounts, 1)}
	go func() {
		var n frameCounts
		buf := make([]byte, 2048)
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
			select {
			case <-c.done:
				c.res <- n
				return
			default:
			}
			m, from, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				break
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if m < 14 || !bytes.Equal(buf[6:12], mac) {
				continue
			}
			switch binary.BigEndian.Uint16(buf[12:14]) {
			case unix.ETH_P_IP:
				n.v4++
			case unix.ETH_P_IPV6:
				n.v6++
			}
		}
		<-c.done
		c.res <- n
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// stop ends the capture (once) and returns what it counted.
func (c *capture) stop() frameCounts {
	c.once.Do(func() {
		close(c.done)
		c.got = <-c.res // the reader wakes within its 200 ms receive timeout
		unix.Close(c.fd)
	})
	return c.got
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
