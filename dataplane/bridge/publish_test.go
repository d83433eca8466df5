//go:build linux

package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/dataplane"
	"github.com/netd-dev/netd/dataplane/internal/nstest"
	"github.com/netd-dev/netd/dataplane/publish"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// peerServer listens on port (TCP and UDP) in the netns at path and answers
// every connection or datagram with the peer address it sees and a tag.
func peerServer(t *testing.T, path, tag string, port int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := sandbox.DoPath(path, func() (err error) {
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", tag, c.RemoteAddr())
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(tag+" "+from.String()), from)
		}
	}()
}

// ask connects from the netns at path to addr over proto and returns the
// answer of a peerServer. wait bounds how long a lost packet is waited for.
func ask(path, proto string, addr netip.AddrPort, wait time.Duration) (string, error) {
	var c net.Conn
	err := sandbox.DoPath(path, func() (err error) {
		c, err = net.DialTimeout(proto+"4", addr.String(), wait)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if proto == "udp" {
		if _, err := c.Write([]byte("?")); err != nil {
			return "", err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// reaches asserts that a connection from the netns at path to addr gets
// the server tagged tag, which sees the peer address from (any port).
func reaches(t *testing.T, what, path, proto string, addr netip.AddrPort, tag string, from netip.Addr) {
	t.Helper()
	got, err := ask(path, proto, addr, 3*time.Second)
	if err != nil {
		t.Errorf("%s: %s to %s: %v", what, proto, addr, err)
		return
	}
	tg, peer, _ := strings.Cut(got, " ")
	ap, err := netip.ParseAddrPort(peer)
	if tg != tag || err != nil || ap.Addr() != from {
		t.Errorf("%s: %s to %s answered %q, want %s seeing %s", what, proto, addr, got, tag, from)
	}
}

// blocked asserts that nothing answers.
func blocked(t *testing.T, what, path, proto string, addr netip.AddrPort) {
	t.Helper()
	if got, err := ask(path, proto, addr, time.Second); err == nil {
		t.Errorf("%s: %s to %s answered %q, want no answer", what, proto, addr, got)
	}
}

func mapping(proto, hostIP string, hostPort, port uint16) dataplane.PortMapping {
	return dataplane.PortMapping{Proto: proto, HostIP: netip.MustParseAddr(hostIP), HostPort: hostPort, ContainerPort: port}
}

func (l *lab) publish(n *testNet, ep *dataplane.EndpointConfig, ports ...dataplane.PortMapping) {
	l.t.Helper()
	l.do(func() error { return l.d.PublishPorts(context.Background(), n.NetworkConfig, ep, ports) })
}

func (l *lab) unpublish(n *testNet, ep *dataplane.EndpointConfig, ports ...dataplane.PortMapping) {
	l.t.Helper()
	l.do(func() error { return l.d.UnpublishPorts(context.Background(), n.NetworkConfig, ep, ports) })
}

// readSysctl reads a file of /proc/sys/net in the netns at path ("" if
// the kernel has no such file).
func readSysctl(t *testing.T, path, file string) string {
	t.Helper()
	var v []byte
	if err := sandbox.DoPath(path, func() (err error) {
		v, err = os.ReadFile("/proc/sys/net/" + file)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(v))
}

func writeSysctl(t *testing.T, path, file, value string) {
	t.Helper()
	if err := sandbox.DoPath(path, func() error {
		return os.WriteFile("/proc/sys/net/"+file, []byte(value+"\n"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPublishKernel: -p on a kernel network, every path Docker's DNAT
// serves (userland-proxy=false), and the holes it must not have.
func TestPublishKernel(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	n := testNetwork("10.250.20.0/24", nil)
	other := testNetwork("10.250.21.0/24", nil) // another network: isolation must not stop a published port
	l.createNetwork(n)
	l.createNetwork(other)
	_, ep1 := l.attach(n, 2)
	_, ep2 := l.attach(n, 3)
	c3, ep3 := l.attach(other, 2)
	c1, c2, c3path := ep1.SandboxPath, ep2.SandboxPath, ep3.SandboxPath
	peerServer(t, ep1.SandboxPath, "c1", 80)
	peerServer(t, ep1.SandboxPath, "c1-hidden", 81) // listening, never published
	peerServer(t, ep2.SandboxPath, "c2", 80)
	ext, extAddr := outside(t, l)
	extPath := sandbox.Path(ext)
	hostIP := netip.MustParseAddr("10.250.9.1")
	at := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	loopback := netip.MustParseAddr("127.0.0.1")

	blocked(t, "before publishing", extPath, "tcp", at(hostIP, 8080))
	ports := []dataplane.PortMapping{
		mapping("tcp", "0.0.0.0", 8080, 80),
		mapping("udp", "0.0.0.0", 8080, 80),
		mapping("tcp", "127.0.0.1", 8081, 80),
		mapping("tcp", hostIP.String(), 8082, 80),
	}
	l.publish(n, ep1, ports...)
	l.publish(n, ep1, ports...) // idempotent
	l.publish(n, ep2, mapping("tcp", "0.0.0.0", 9090, 80))

	// From outside: the container sees the client's own address.
	reaches(t, "external", extPath, "tcp", at(hostIP, 8080), "c1", extAddr)
	reaches(t, "external", extPath, "udp", at(hostIP, 8080), "c1", extAddr)
	reaches(t, "external, host address", extPath, "tcp", at(hostIP, 8082), "c1", extAddr)
	reaches(t, "external, second endpoint", extPath, "tcp", at(hostIP, 9090), "c2", extAddr)
	// Unpublished: another container port, the container port itself on the host.
	blocked(t, "unpublished port", extPath, "tcp", at(hostIP, 81))
	blocked(t, "container port on the host", extPath, "tcp", at(hostIP, 80))
	blocked(t, "127.0.0.1-bound, by its host address", extPath, "tcp", at(hostIP, 8081))

	// From the host itself, to its address and to loopback.
	reaches(t, "host", l.path, "tcp", at(hostIP, 8080), "c1", hostIP)
	reaches(t, "host", l.path, "udp", at(hostIP, 8080), "c1", hostIP)
	reaches(t, "host to 127.0.0.1", l.path, "tcp", at(loopback, 8081), "c1", n.Gateway)
	reaches(t, "host to 127.0.0.1 of a 0.0.0.0 port", l.path, "tcp", at(loopback, 8080), "c1", n.Gateway)
	if got := readSysctl(t, l.path, "ipv4/conf/"+n.BridgeName+"/route_localnet"); got != "1" {
		t.Errorf("route_localnet on %s = %s", n.BridgeName, got)
	}

	// Hairpin: the container to its own published port, a neighbour, a
	// container of another network. With br_netfilter a packet DNATed back
	// onto its bridge is bridged, and conntrack alone translates a
	// neighbour's replies; without, it is routed, and masqueraded.
	const brnf = "bridge/bridge-nf-call-iptables"
	brnfWas := readSysctl(t, l.path, brnf)
	for _, bridged := range []bool{true, false} {
		if brnfWas == "" && bridged {
			continue // no br_netfilter in this kernel
		}
		if brnfWas != "" {
			writeSysctl(t, l.path, brnf, map[bool]string{true: "1", false: "0"}[bridged])
		}
		what := map[bool]string{true: " (bridged)", false: " (routed)"}[bridged]
		neighbour := n.Gateway
		if bridged {
			neighbour = ep2.Addr.Addr()
		}
		reaches(t, "hairpin"+what, c1, "tcp", at(hostIP, 8080), "c1", n.Gateway)
		reaches(t, "hairpin"+what, c1, "udp", at(hostIP, 8080), "c1", n.Gateway)
		reaches(t, "same network"+what, c2, "tcp", at(hostIP, 8080), "c1", neighbour)
		reaches(t, "same network"+what, c2, "udp", at(hostIP, 8080), "c1", neighbour)
	}
	if brnfWas != "" {
		writeSysctl(t, l.path, brnf, brnfWas)
	}
	reaches(t, "another network", c3path, "tcp", at(hostIP, 8080), "c1", n.Gateway)
	reaches(t, "another network, by the gateway", c3path, "tcp", at(other.Gateway, 9090), "c2", n.Gateway)
	// Control: without the published port the networks stay isolated.
	if err := ping(c3, ep1.Addr.Addr()); err == nil {
		t.Errorf("%s reached %s of another network directly", ep3.Addr.Addr(), ep1.Addr.Addr())
	}

	// moby#45610: a neighbour sending to 127.0.0.1 through the host. ext
	// routes loopback to the lab and accepts answers from it.
	nstest.Run(t, ext, "ip", "addr", "flush", "dev", "lo")
	nstest.Run(t, ext, "ip", "route", "add", "127.0.0.0/8", "via", hostIP.String())
	nstest.Run(t, ext, "sysctl", "-qw", "net.ipv4.conf.ext0.route_localnet=1")
	blocked(t, "127.0.0.1-bound from outside", extPath, "tcp", at(loopback, 8081))
	blocked(t, "127.0.0.1 of a 0.0.0.0 port from outside", extPath, "tcp", at(loopback, 8080))
	// Control: only the raw drop stops it.
	table := NftTableName(l.node)
	l.sh("nft", "flush", "chain", "inet", table, nftRawPre)
	if _, err := ask(extPath, "tcp", at(loopback, 8081), 3*time.Second); err != nil {
		t.Errorf("control: without the raw drop 127.0.0.1:8081 from outside failed (%v): the test proves nothing", err)
	}

	// A reconcile (daemon start) rewrites the table: the ports stay, the drop is back.
	nets := []*dataplane.NetworkConfig{n.NetworkConfig, other.NetworkConfig}
	eps := []*dataplane.EndpointConfig{ep1, ep2, ep3}
	l.do(func() error { _, err := l.d.Reconcile(ctx, nets, eps, false); return err })
	reaches(t, "after reconcile", extPath, "tcp", at(hostIP, 8080), "c1", extAddr)
	blocked(t, "127.0.0.1-bound from outside, after reconcile", extPath, "tcp", at(loopback, 8081))

	// Another endpoint cannot take a host port in use.
	err := sandbox.DoPath(l.path, func() error {
		return l.d.PublishPorts(ctx, n.NetworkConfig, ep2, []dataplane.PortMapping{mapping("tcp", "0.0.0.0", 8080, 80)})
	})
	if !errdefs.IsConflict(err) || err.Error() != "Bind for 0.0.0.0:8080 failed: port is already allocated" {
		t.Errorf("second publish of 0.0.0.0:8080: %v", err)
	}
	reaches(t, "after a refused publish", extPath, "tcp", at(hostIP, 8080), "c1", extAddr)

	// Unpublish takes exactly that port, and again is a no-op.
	l.unpublish(n, ep1, ports[0])
	l.unpublish(n, ep1, ports[0])
	blocked(t, "unpublished", extPath, "tcp", at(hostIP, 8080))
	reaches(t, "udp stays", extPath, "udp", at(hostIP, 8080), "c1", extAddr)

	// A restarted daemon: a new driver adopts what is in the kernel maps,
	// whether or not PublishPorts is called again before its reconcile.
	l.d = l.newDriver()
	l.createNetwork(n)
	l.createNetwork(other)
	for _, ep := range []*dataplane.EndpointConfig{ep1, ep2} {
		l.join(n, ep)
	}
	l.join(other, ep3)
	l.do(func() error { _, err := l.d.Reconcile(ctx, nets, eps, false); return err })
	reaches(t, "after restart", extPath, "udp", at(hostIP, 8080), "c1", extAddr)
	reaches(t, "after restart", extPath, "tcp", at(hostIP, 9090), "c2", extAddr)
	pe1, pe2 := l.d.pub[ep1.ID], l.d.pub[ep2.ID]
	if pe1 == nil || pe2 == nil || len(pe1.ports) != 3 || !pe2.ports[mapping("tcp", "0.0.0.0", 9090, 80)] {
		t.Errorf("adopted state: %v %v", pe1, pe2)
	}
	l.publish(n, ep1, ports[1:]...)
	// A UDP stream going on when its port is unpublished stops too.
	var stream net.Conn
	if err := sandbox.DoPath(extPath, func() (err error) {
		stream, err = net.Dial("udp4", at(hostIP, 8080).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	say := func() error {
		stream.SetDeadline(time.Now().Add(time.Second))
		if _, err := stream.Write([]byte("?")); err != nil {
			return err
		}
		_, err := stream.Read(make([]byte, 64))
		return err
	}
	if err := say(); err != nil {
		t.Errorf("udp stream before unpublishing: %v", err)
	}
	l.unpublish(n, ep1, ports[1])
	blocked(t, "unpublished after restart", extPath, "udp", at(hostIP, 8080))
	if err := say(); err == nil {
		t.Error("a udp stream still reaches the container after its port was unpublished")
	}

	// Removing the endpoint removes its ports; the maps end empty.
	l.do(func() error {
		if err := l.d.Leave(ctx, n.NetworkConfig, ep1); err != nil {
			return err
		}
		return l.d.DeleteEndpoint(ctx, n.NetworkConfig, ep2)
	})
	for _, m := range []string{nftPubAddr, nftPubAny} {
		if out := l.sh("nft", "list", "map", "inet", table, m); strings.Contains(out, "elements") {
			t.Errorf("map %s after the endpoints went:\n%s", m, out)
		}
	}
	if len(l.d.pub) != 0 {
		t.Errorf("published state left: %v", l.d.pub)
	}
}

// TestPublishKernelNetworkGone: deleting a network takes its ports along,
// and publishing on an internal network does nothing, as Docker.
func TestPublishKernelNetworkGone(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	a := testNetwork("10.250.22.0/24", nil)
	b := testNetwork("10.250.23.0/24", nil)
	internal := testNetwork("10.250.24.0/24", func(n *testNet) { n.Internal = true })
	for _, n := range []*testNet{a, b, internal} {
		l.createNetwork(n)
	}
	_, epA := l.attach(a, 2)
	_, epB := l.attach(b, 2)
	_, epI := l.attach(internal, 2)
	l.publish(a, epA, mapping("tcp", "0.0.0.0", 7001, 80))
	l.publish(b, epB, mapping("tcp", "0.0.0.0", 7002, 80))
	l.publish(internal, epI, mapping("tcp", "0.0.0.0", 7003, 80))
	table := NftTableName(l.node)
	if out := l.sh("nft", "list", "map", "inet", table, nftPubAny); !strings.Contains(out, "7001") || !strings.Contains(out, "7002") || strings.Contains(out, "7003") {
		t.Errorf("map %s:\n%s", nftPubAny, out)
	}
	l.do(func() error { return l.d.DeleteNetwork(ctx, a.NetworkConfig) })
	if out := l.sh("nft", "list", "map", "inet", table, nftPubAny); strings.Contains(out, "7001") || !strings.Contains(out, "7002") {
		t.Errorf("map %s after network %s went:\n%s", nftPubAny, a.Name, out)
	}
	if _, ok := l.d.pub[epA.ID]; ok {
		t.Errorf("published state of a deleted network's endpoint left")
	}

	// Check reports a lost element; reconcile puts it back, and removes
	// elements of endpoints it does not know.
	l.sh("nft", "delete", "element", "inet", table, nftPubAny, "{ tcp . 7002 }")
	var drifts []dataplane.Drift
	l.do(func() (err error) {
		drifts, err = l.d.Check(ctx, []*dataplane.NetworkConfig{b.NetworkConfig}, []*dataplane.EndpointConfig{epB})
		return err
	})
	wantDrift := fmt.Sprintf("nftables published port 0.0.0.0:7002/tcp -> %s:80 missing", epB.Addr.Addr())
	if !slices.ContainsFunc(drifts, func(d dataplane.Drift) bool { return d.Problem == wantDrift }) {
		t.Errorf("check: %+v, want %q", drifts, wantDrift)
	}
	l.sh("nft", "add", "element", "inet", table, nftPubAny, `{ udp . 7004 comment "gone" : 10.250.23.9 . 80 }`)
	l.sh("nft", "add", "element", "inet", table, nftPubHairpin, `{ 10.250.23.9 . 10.250.23.9 . udp . 80 }`)
	l.do(func() error {
		_, err := l.d.Reconcile(ctx, []*dataplane.NetworkConfig{b.NetworkConfig, internal.NetworkConfig}, []*dataplane.EndpointConfig{epB, epI}, false)
		return err
	})
	if out := l.sh("nft", "list", "ruleset"); strings.Contains(out, "7004") || strings.Contains(out, "10.250.23.9") || !strings.Contains(out, "7002") {
		t.Errorf("ruleset after reconcile:\n%s", out)
	}
}

// TestPublishRefused: what the driver refuses before changing anything.
func TestPublishRefused(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	n := testNetwork("10.250.25.0/24", nil)
	l.createNetwork(n)
	_, ep := l.attach(n, 2)
	for _, tc := range []struct {
		m    dataplane.PortMapping
		want string
	}{
		{mapping("sctp", "0.0.0.0", 8080, 80), `invalid proto "sctp": must be tcp or udp`},
		{mapping("tcp", "0.0.0.0", 0, 80), "invalid port mapping 0:80/tcp: port 0"},
		{mapping("tcp", "fd00::1", 8080, 80), "publish [fd00::1]:8080/tcp: the kernel dataplane publishes on IPv4 host addresses only"},
	} {
		err := sandbox.DoPath(l.path, func() error {
			return l.d.PublishPorts(ctx, n.NetworkConfig, ep, []dataplane.PortMapping{mapping("udp", "0.0.0.0", 5353, 53), tc.m})
		})
		if !errdefs.IsInvalidParameter(err) || err.Error() != tc.want {
			t.Errorf("publish %+v: %v, want %q", tc.m, err, tc.want)
		}
	}
	if len(l.d.pub) != 0 || strings.Contains(l.sh("nft", "list", "map", "inet", NftTableName(l.node), nftPubAny), "5353") {
		t.Error("a refused publish left a port behind")
	}
	// [::] is every address, as 0.0.0.0: one element serves both.
	l.publish(n, ep, mapping("tcp", "0.0.0.0", 8080, 80), mapping("tcp", "::", 8080, 80))
	l.unpublish(n, ep, mapping("tcp", "::", 8080, 80))
	if !strings.Contains(l.sh("nft", "list", "map", "inet", NftTableName(l.node), nftPubAny), "8080") {
		t.Error("unpublishing [::]:8080 removed the element 0.0.0.0:8080 still needs")
	}
}

// fakePublisher records what the driver asks of the eBPF publisher.
type fakePublisher struct {
	calls   []string
	targets []publish.Target
}

func (p *fakePublisher) Publish(t publish.Target, ports []dataplane.PortMapping) error {
	p.calls = append(p.calls, fmt.Sprintf("Publish %v", ports))
	p.targets = append(p.targets, t)
	return nil
}

func (p *fakePublisher) Unpublish(t publish.Target, ports []dataplane.PortMapping) error {
	p.calls = append(p.calls, fmt.Sprintf("Unpublish %v", ports))
	p.targets = append(p.targets, t)
	return nil
}

// TestPublishEBPF: on an ebpf network the driver describes the endpoint to
// the eBPF publisher and leaves nftables alone.
func TestPublishEBPF(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	pub := &fakePublisher{}
	l.do(func() (err error) {
		l.d, err = New(Config{NodeName: l.node, Accelerator: &recordingAccel{}, Publisher: pub})
		return err
	})
	t.Cleanup(func() { l.d.Close() })
	n := testNetwork("10.250.26.0/24", func(n *testNet) { n.Dataplane = DataplaneEBPF })
	l.createNetwork(n)
	_, ep := l.attach(n, 2)
	h := handleAt(t, l.path)
	want := publish.Target{
		NetworkID:   n.ID,
		EndpointID:  ep.ID,
		Addr:        ep.Addr.Addr(),
		MAC:         ep.MAC,
		HostIfindex: mustLink(t, h, ep.HostIfName).Attrs().Index,
		BridgeMAC:   mustLink(t, h, n.BridgeName).Attrs().HardwareAddr,
		Gateway:     n.Gateway,
		SandboxPath: ep.SandboxPath,
		IfName:      "eth0",
	}
	m := mapping("tcp", "0.0.0.0", 8080, 80)
	l.publish(n, ep, m, dataplane.PortMapping{Proto: "udp", HostPort: 53, ContainerPort: 53})
	l.do(func() error { return l.d.Leave(ctx, n.NetworkConfig, ep) })
	wantCalls := []string{
		"Publish [{tcp 0.0.0.0 8080 80} {udp 0.0.0.0 53 53}]",
		// Leave unpublishes what the daemon did not.
		"Unpublish [{tcp 0.0.0.0 8080 80} {udp 0.0.0.0 53 53}]",
	}
	if !slices.Equal(pub.calls, wantCalls) {
		t.Errorf("publisher calls:\n%q\nwant\n%q", pub.calls, wantCalls)
	}
	for i, got := range pub.targets {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("target of call %d:\n%+v\nwant\n%+v", i, got, want)
		}
	}
	if strings.Contains(l.sh("nft", "list", "map", "inet", NftTableName(l.node), nftPubAny), "8080") {
		t.Error("an ebpf network's port went into nftables")
	}

	// No publisher: the error says why and what to do.
	why := errors.New("port publishing on the eBPF dataplane is unavailable: no BTF")
	l.do(func() (err error) {
		l.d, err = New(Config{NodeName: l.node, Accelerator: &recordingAccel{}, PublisherError: why})
		return err
	})
	t.Cleanup(func() { l.d.Close() })
	l.createNetwork(n)
	_, ep2 := l.attach(n, 3)
	err := sandbox.DoPath(l.path, func() error {
		return l.d.PublishPorts(ctx, n.NetworkConfig, ep2, []dataplane.PortMapping{m})
	})
	if !errdefs.IsUnavailable(err) || !errors.Is(err, why) {
		t.Errorf("publish without a publisher: %v", err)
	}
}

func TestHostBindingIPv4(t *testing.T) {
	for v, want := range map[string]string{"": "0.0.0.0", "127.0.0.1": "127.0.0.1", "10.1.2.3": "10.1.2.3"} {
		n := &dataplane.NetworkConfig{ID: strings.Repeat("a", 64), Name: "n", Options: map[string]string{}}
		if v != "" {
			n.Options[optHostBindingIPv4] = v
		}
		s, err := Validate("kernel", n, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.DriverState = s.Map()
		if got, err := (&Driver{}).DefaultHostIP(n); err != nil || got.String() != want {
			t.Errorf("host_binding_ipv4=%q: default host IP %v (%v), want %s", v, got, err, want)
		}
	}
	// A network of an older build has no such state: 0.0.0.0.
	n := testNetwork("10.250.27.0/24", nil)
	delete(n.DriverState, stateHostIPv4)
	if got, err := (&Driver{}).DefaultHostIP(n.NetworkConfig); err != nil || got != netip.IPv4Unspecified() {
		t.Errorf("older network: %v (%v)", got, err)
	}
	for _, bad := range []string{"localhost", "::1", "10.1.2", ""} {
		_, err := ParseOptions(map[string]string{optHostBindingIPv4: bad, api.OptDataplane: "kernel"}, "")
		want := fmt.Sprintf("failed to parse com.docker.network.bridge.host_binding_ipv4 value: %s (not an IPv4 address)", bad)
		if !errdefs.IsInvalidParameter(err) || err.Error() != want {
			t.Errorf("host_binding_ipv4=%q: %v", bad, err)
		}
	}
}

// TestPublishKernelScale: 10,000 ports in one call, and 1,000 calls of one
// port each, are map elements: the chains do not grow.
func TestPublishKernelScale(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	l := newLab(t)
	n := testNetwork("10.250.28.0/24", nil)
	l.createNetwork(n)
	_, ep1 := l.attach(n, 2)
	_, ep2 := l.attach(n, 3)
	peerServer(t, ep1.SandboxPath, "c1", 80)
	var many []dataplane.PortMapping
	for p := range 10000 {
		many = append(many, mapping("tcp", "0.0.0.0", uint16(20000+p), 80))
	}
	table := NftTableName(l.node)
	start := time.Now()
	l.publish(n, ep1, many...)
	t.Logf("publish 10000 ports in one call: %v", time.Since(start))
	start = time.Now()
	for p := range 1000 {
		l.publish(n, ep2, mapping("udp", "0.0.0.0", uint16(40000+p), 53))
	}
	t.Logf("publish 1000 ports one call each: %v", time.Since(start))
	out := l.sh("nft", "list", "map", "inet", table, nftPubAny)
	if got := strings.Count(out, " comment "); got != 11000 {
		t.Errorf("%d elements in %s, want 11000", got, nftPubAny)
	}
	chains := l.sh("nft", "list", "chain", "inet", table, nftPrerouting)
	if strings.Count(chains, "dnat") != 2 {
		t.Errorf("prerouting grew with the ports:\n%s", chains)
	}
	reaches(t, "port 29999", l.path, "tcp", netip.MustParseAddrPort("127.0.0.1:29999"), "c1", n.Gateway)
	start = time.Now()
	l.unpublish(n, ep1, many...)
	t.Logf("unpublish 10000 ports in one call: %v", time.Since(start))
	if out := l.sh("nft", "list", "map", "inet", table, nftPubAny); strings.Count(out, " comment ") != 1000 {
		t.Errorf("after unpublishing 10000, %d elements left, want 1000", strings.Count(out, " comment "))
	}
}
