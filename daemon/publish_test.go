//go:build linux

package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
	"github.com/netd-dev/netd/daemon/portalloc"
)

// The host ports these tests hold are on 127.0.0.1 of the test's netns:
// loopback only, bound sockets that receive nothing.

// freePort is a TCP and UDP port on 127.0.0.1 nobody holds right now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if u, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// portHeld says a host program cannot bind 127.0.0.1:port/proto.
func portHeld(t *testing.T, proto string, port int) bool {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var err error
	if proto == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("bind %s/%s: %v", addr, proto, err)
	}
	return err != nil
}

func createWithPorts(e *testEnv, name string, pm api.PortMap, nets ...string) (api.ContainerCreateResponse, error) {
	req := api.ContainerCreateRequest{Name: name, PortBindings: pm}
	for _, n := range nets {
		req.Networks = append(req.Networks, api.ContainerNetworkRequest{Network: n})
	}
	return e.m.CreateContainer(context.Background(), req)
}

func TestPublishLifecycle(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createNet(t, api.NetworkCreateRequest{Name: "front"})
	web, udp := freePort(t), freePort(t)
	lo, hi := freePort(t), 0
	hi = lo
	pm := api.PortMap{
		"80/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(web)}},
		"53/udp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(udp)}},
		"8080":   {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(lo) + "-" + strconv.Itoa(hi)}},
	}
	resp, err := createWithPorts(e, "web", pm, "front")
	if err != nil {
		t.Fatal(err)
	}
	ct, err := e.m.InspectContainer("web")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"80/tcp":   "127.0.0.1:" + strconv.Itoa(web),
		"53/udp":   "127.0.0.1:" + strconv.Itoa(udp),
		"8080/tcp": "127.0.0.1:" + strconv.Itoa(lo),
	}
	if len(ct.NetworkSettings.Ports) != len(want) {
		t.Errorf("Ports = %v", ct.NetworkSettings.Ports)
	}
	for k, v := range want {
		b := ct.NetworkSettings.Ports[k]
		if len(b) != 1 || b[0].HostIP+":"+b[0].HostPort != v {
			t.Errorf("Ports[%s] = %v, want %s", k, b, v)
		}
	}
	if len(ct.HostConfig.PortBindings) != 3 || ct.HostConfig.PortBindings["8080"][0].HostPort != strconv.Itoa(lo)+"-"+strconv.Itoa(hi) {
		t.Errorf("HostConfig.PortBindings = %v", ct.HostConfig.PortBindings)
	}
	ep := ct.NetworkSettings.Networks["front"].EndpointID
	if got := e.bridge.published[ep]; len(got) != 3 {
		t.Fatalf("driver has %v published", got)
	}
	for _, p := range [][2]any{{"tcp", web}, {"udp", udp}, {"tcp", lo}} {
		if !portHeld(t, p[0].(string), p[1].(int)) {
			t.Errorf("host port %v/%s is not held", p[1], p[0])
		}
	}
	if st := e.stored(t); len(st.Containers[0].Ports) != 3 {
		t.Errorf("stored ports = %v", st.Containers[0].Ports)
	}

	// The same host port again: Docker's text, nothing changed.
	calls := len(e.bridge.calls)
	_, err = createWithPorts(e, "web2", api.PortMap{"81/tcp": {{HostIP: "0.0.0.0", HostPort: strconv.Itoa(web)}}}, "front")
	if err == nil || !errdefs.IsConflict(err) ||
		!strings.HasPrefix(err.Error(), "driver failed programming external connectivity on endpoint web2 (") ||
		!strings.HasSuffix(err.Error(), "): Bind for 0.0.0.0:"+strconv.Itoa(web)+" failed: port is already allocated") {
		t.Fatalf("second publish of %d: %v", web, err)
	}
	if len(e.bridge.calls) != calls || len(e.m.ListContainers()) != 1 || len(e.sb.ns) != 1 {
		t.Errorf("a refused publish changed something: calls %v", e.bridge.calls[calls:])
	}

	// Restart: the ports are held again and handed to the driver again.
	e.m.hostPorts.Close()
	e.store.Close()
	e.open(t)
	if _, err := e.m.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := e.bridge.published[ep]; len(got) != 3 {
		t.Errorf("after restart the driver has %v published", got)
	}
	if !portHeld(t, "udp", udp) {
		t.Error("after restart the UDP port is not held")
	}

	// Removal unpublishes and frees the host ports.
	if err := e.m.RemoveContainer(ctx, resp.ID, false); err != nil {
		t.Fatal(err)
	}
	if len(e.bridge.published) != 0 {
		t.Errorf("after rm the driver still publishes %v", e.bridge.published)
	}
	for _, p := range [][2]any{{"tcp", web}, {"udp", udp}, {"tcp", lo}} {
		if portHeld(t, p[0].(string), p[1].(int)) {
			t.Errorf("host port %v/%s still held after rm", p[1], p[0])
		}
	}
	if e.m.hostPorts.Held() != 0 {
		t.Errorf("%d ports still held", e.m.hostPorts.Held())
	}
}

func TestPublishHostProcessHoldsPort(t *testing.T) {
	e := newTestEnv(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = createWithPorts(e, "web", api.PortMap{"80/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}}})
	if err == nil || !strings.HasSuffix(err.Error(), "Error starting userland proxy: listen tcp4 127.0.0.1:"+strconv.Itoa(port)+": bind: address already in use") {
		t.Fatalf("publish of a port a host program listens on: %v", err)
	}
	if len(e.m.ListContainers()) != 0 || len(e.sb.ns) != 0 {
		t.Error("refused publish left a container")
	}
}

func TestPublishAllOrNothing(t *testing.T) {
	e := newTestEnv(t)
	free := freePort(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	_, err = createWithPorts(e, "web", api.PortMap{
		"1/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(free)}},
		"2/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(busy)}},
	})
	if err == nil {
		t.Fatal("no error")
	}
	if portHeld(t, "tcp", free) || e.m.hostPorts.Held() != 0 {
		t.Error("the free port stayed held after the busy one failed")
	}
}

func TestPublishDriverFailureRollsBack(t *testing.T) {
	e := newTestEnv(t)
	port := freePort(t)
	e.bridge.fail["PublishPorts"] = errors.New("nft says no")
	_, err := createWithPorts(e, "web", api.PortMap{"80/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}}})
	if err == nil || !strings.Contains(err.Error(), "nft says no") {
		t.Fatalf("err = %v", err)
	}
	if len(e.m.ListContainers()) != 0 || len(e.sb.ns) != 0 || len(e.bridge.eps) != 0 || portHeld(t, "tcp", port) {
		t.Error("failed publish left state behind")
	}
}

func TestPublishEphemeralAndDefaultHostIP(t *testing.T) {
	dir := t.TempDir()
	base := freePort(t)
	// A range of four ports, two of them reserved.
	os.WriteFile(filepath.Join(dir, "ip_local_port_range"), []byte(strconv.Itoa(base)+"\t"+strconv.Itoa(base+3)+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "ip_local_reserved_ports"), []byte(strconv.Itoa(base)+","+strconv.Itoa(base+2)+"-"+strconv.Itoa(base+3)+"\n"), 0o644)
	e := newTestEnv(t)
	e.m.hostPorts = portalloc.New(dir)
	e.createNet(t, api.NetworkCreateRequest{Name: "lo-only", Options: map[string]string{"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}})
	if _, err := createWithPorts(e, "web", api.PortMap{"80/tcp": nil}, "lo-only"); err != nil {
		t.Fatal(err)
	}
	ct, _ := e.m.InspectContainer("web")
	b := ct.NetworkSettings.Ports["80/tcp"]
	if len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != strconv.Itoa(base+1) {
		t.Errorf("ephemeral binding = %v, want 127.0.0.1:%d (the only unreserved port)", b, base+1)
	}
	_, err := createWithPorts(e, "web2", api.PortMap{"80/tcp": nil}, "lo-only")
	if err == nil || !strings.Contains(err.Error(), "no free host port in the ephemeral range") {
		t.Errorf("exhausted range: %v", err)
	}
}

func TestPublishBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.createNet(t, api.NetworkCreateRequest{Name: "inner", Internal: true})
	for _, tc := range []struct {
		pm   api.PortMap
		nets []string
		want string
	}{
		{api.PortMap{"80/sctp": nil}, nil, `invalid port "80/sctp": sctp is not supported by netd, only tcp and udp`},
		{api.PortMap{"80/icmp": nil}, nil, "invalid proto: icmp"},
		{api.PortMap{"http/tcp": nil}, nil, "invalid containerPort: http"},
		{api.PortMap{"0/tcp": nil}, nil, "invalid containerPort: 0"},
		{api.PortMap{"80/tcp": {{HostIP: "1.2.3"}}}, nil, "invalid IP address: 1.2.3"},
		{api.PortMap{"80/tcp": {{HostPort: "9-1"}}}, nil, "invalid hostPort: 9-1"},
		{api.PortMap{"80/tcp": {{HostPort: "70000"}}}, nil, "invalid hostPort: 70000"},
		{api.PortMap{"80/tcp": {{HostIP: "::"}}}, nil, "cannot publish 80/tcp on host address ::: netd publishes on IPv4 host addresses only"},
		{api.PortMap{"80/tcp": {{HostIP: "[::1]"}}}, nil, "cannot publish 80/tcp on host address ::1: netd publishes on IPv4 host addresses only"},
		{api.PortMap{"80/tcp": nil}, []string{"none"}, "cannot publish ports of container ctr: none of its networks has a gateway (none and internal networks cannot publish): connect it to a bridge network"},
		{api.PortMap{"80/tcp": nil}, []string{"inner"}, "cannot publish ports of container ctr: none of its networks has a gateway (none and internal networks cannot publish): connect it to a bridge network"},
	} {
		_, err := createWithPorts(e, "ctr", tc.pm, tc.nets...)
		wantErr(t, err, errdefs.IsInvalidParameter, tc.want)
	}
	if len(e.m.ListContainers()) != 0 || len(e.sb.ns) != 0 || e.m.hostPorts.Held() != 0 {
		t.Error("bad input changed state")
	}
}

func TestPublishHostNetworkWarns(t *testing.T) {
	e := newTestEnv(t)
	resp, err := createWithPorts(e, "hostc", api.PortMap{"80/tcp": nil}, "host")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Warnings) != 1 || resp.Warnings[0] != warnHostPorts || e.m.hostPorts.Held() != 0 {
		t.Errorf("warnings %v, held %d", resp.Warnings, e.m.hostPorts.Held())
	}
}

func TestPublishDisconnectDropsPorts(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.createNet(t, api.NetworkCreateRequest{Name: "a"})
	e.createNet(t, api.NetworkCreateRequest{Name: "b"})
	port := freePort(t)
	if _, err := createWithPorts(e, "web", api.PortMap{"80/tcp": {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}}}, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Disconnect(ctx, "a", api.NetworkDisconnectRequest{Container: "web"}); err != nil {
		t.Fatal(err)
	}
	ct, _ := e.m.InspectContainer("web")
	if len(ct.NetworkSettings.Ports["80/tcp"]) != 0 || portHeld(t, "tcp", port) || len(e.bridge.published) != 0 {
		t.Errorf("after the publishing network left: Ports %v, published %v", ct.NetworkSettings.Ports, e.bridge.published)
	}
	if len(ct.HostConfig.PortBindings) != 1 {
		t.Errorf("the request is kept: %v", ct.HostConfig.PortBindings)
	}
}
