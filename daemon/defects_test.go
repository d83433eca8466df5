//go:build linux

package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
)

func macNet(t *testing.T, e *testEnv, name, subnet string) {
	t.Helper()
	e.createNet(t, api.NetworkCreateRequest{Name: name, IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: subnet}}}})
}

func createWithMAC(e *testEnv, name, network, ip, mac string) error {
	s := api.EndpointSettings{MacAddress: mac}
	if ip != "" {
		s.IPAMConfig = &api.EndpointIPAMConfig{IPv4Address: ip}
	}
	_, err := e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: name,
		Networks: []api.ContainerNetworkRequest{{Network: network, Settings: s}}})
	return err
}

func endpointOf(t *testing.T, e *testEnv, ctr, network string) api.ContainerEndpoint {
	t.Helper()
	c, err := e.m.InspectContainer(ctr)
	if err != nil {
		t.Fatal(err)
	}
	return c.NetworkSettings.Networks[network]
}

// A user MAC equal to the MAC a later address derives leaves that address
// allocatable, with a random locally administered MAC.
func TestAutoMACAvoidsUserMAC(t *testing.T) {
	e := newTestEnv(t)
	macNet(t, e, "n1", "10.9.0.0/24")
	// .2's container takes the MACs of .3 and .5.
	if err := createWithMAC(e, "ka", "n1", "", "02:42:0a:09:00:03"); err != nil {
		t.Fatal(err)
	}
	if err := createWithMAC(e, "kb", "n1", "10.9.0.9", "02:42:0a:09:00:05"); err != nil {
		t.Fatal(err)
	}
	// Both automatic (.3) and a fixed --ip (.5) without --mac-address.
	e.createCtr(t, "kc", "n1")
	if err := createWithMAC(e, "kd", "n1", "10.9.0.5", ""); err != nil {
		t.Fatalf("fixed IP whose MAC is taken: %v", err)
	}
	e.createCtr(t, "kf", "n1")

	seen := map[string]string{}
	for _, want := range []struct{ ctr, ip, mac string }{
		{"ka", "10.9.0.2", "02:42:0a:09:00:03"},
		{"kb", "10.9.0.9", "02:42:0a:09:00:05"},
		{"kc", "10.9.0.3", ""},
		{"kd", "10.9.0.5", ""},
		{"kf", "10.9.0.4", "02:42:0a:09:00:04"},
	} {
		ep := endpointOf(t, e, want.ctr, "n1")
		if ep.IPAddress != want.ip || (want.mac != "" && ep.MacAddress != want.mac) {
			t.Errorf("%s: %s %s, want %s %s", want.ctr, ep.IPAddress, ep.MacAddress, want.ip, want.mac)
		}
		hw, err := net.ParseMAC(ep.MacAddress)
		if err != nil || hw[0]&1 != 0 || hw[0]&2 == 0 {
			t.Errorf("%s: MAC %q is not locally administered unicast (%v)", want.ctr, ep.MacAddress, err)
		}
		if want.mac == "" && hw[0] == 0x02 && hw[1] == 0x42 {
			t.Errorf("%s: random MAC %s is in Docker's derived 02:42 space", want.ctr, hw)
		}
		if o, dup := seen[ep.MacAddress]; dup {
			t.Errorf("%s and %s share MAC %s", o, want.ctr, ep.MacAddress)
		}
		seen[ep.MacAddress] = want.ctr
		// The driver got the same MAC the record holds.
		if j := e.bridge.joined[ep.EndpointID]; j == nil || j.MAC.String() != ep.MacAddress {
			t.Errorf("%s: driver endpoint MAC %v, record %s", want.ctr, j, ep.MacAddress)
		}
	}

	// An explicit MAC in use is still refused, automatic or user-chosen.
	before := e.stored(t)
	for _, mac := range []string{"02:42:0a:09:00:03", endpointOf(t, e, "kc", "n1").MacAddress, "02:42:0a:09:00:04"} {
		err := createWithMAC(e, "kg", "n1", "", mac)
		wantErr(t, err, IsConflict, "MAC address "+mac+" is already in use on network n1")
	}
	if st := e.stored(t); len(st.Containers) != len(before.Containers) || len(st.Endpoints) != len(before.Endpoints) {
		t.Errorf("refused MACs changed the store")
	}
	// The same MAC on another network is fine: uniqueness is per network.
	macNet(t, e, "n2", "10.9.1.0/24")
	if err := createWithMAC(e, "kg", "n2", "", "02:42:0a:09:00:03"); err != nil {
		t.Errorf("MAC of n1 on n2: %v", err)
	}
}

func TestRandomMAC(t *testing.T) {
	inUse := map[string]bool{}
	for range 200 {
		hw, err := randomMAC(inUse)
		if err != nil {
			t.Fatal(err)
		}
		if len(hw) != 6 || hw[0]&1 != 0 || hw[0]&2 == 0 || (hw[0] == 2 && hw[1] == 0x42) || inUse[hw.String()] {
			t.Fatalf("randomMAC = %s", hw)
		}
		inUse[hw.String()] = true
	}
}

func TestReservedSubnets(t *testing.T) {
	e := newTestEnv(t)
	for subnet, want := range map[string]string{
		"127.0.0.0/8":      "invalid subnet 127.0.0.0/8: it overlaps 127.0.0.0/8 (loopback addresses), which cannot be used for a network",
		"127.1.2.0/24":     "invalid subnet 127.1.2.0/24: it overlaps 127.0.0.0/8 (loopback addresses), which cannot be used for a network",
		"126.0.0.0/7":      "invalid subnet 126.0.0.0/7: it overlaps 127.0.0.0/8 (loopback addresses), which cannot be used for a network",
		"224.0.0.0/24":     "invalid subnet 224.0.0.0/24: it overlaps 224.0.0.0/4 (multicast addresses), which cannot be used for a network",
		"239.255.255.0/24": "invalid subnet 239.255.255.0/24: it overlaps 224.0.0.0/4 (multicast addresses), which cannot be used for a network",
		"255.255.255.0/24": "invalid subnet 255.255.255.0/24: it overlaps 255.255.255.255/32 (the limited broadcast address), which cannot be used for a network",
		"0.0.0.0/8":        `invalid subnet 0.0.0.0/8: it overlaps 0.0.0.0/8 ("this network" addresses), which cannot be used for a network`,
		"0.1.0.0/16":       `invalid subnet 0.1.0.0/16: it overlaps 0.0.0.0/8 ("this network" addresses), which cannot be used for a network`,
		"0.0.0.0/0":        `invalid subnet 0.0.0.0/0: it overlaps 0.0.0.0/8 ("this network" addresses), which cannot be used for a network`,
	} {
		_, err := ParsePoolSpec(api.IPAMConfig{Subnet: subnet})
		wantErr(t, err, IsInvalidParameter, want)
		before := e.stored(t)
		_, err = e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: "n",
			IPAM: &api.IPAM{Config: []api.IPAMConfig{{Subnet: subnet}}}})
		wantErr(t, err, IsInvalidParameter, want)
		if st := e.stored(t); len(st.Networks) != len(before.Networks) || len(e.bridge.nets) != 1 {
			t.Errorf("refused %s left a network: %d stored, %d in the driver", subnet, len(st.Networks), len(e.bridge.nets))
		}
	}
	// Their neighbours are ordinary subnets.
	for _, subnet := range []string{"1.0.0.0/8", "126.255.255.0/24", "128.0.0.0/24", "223.255.255.0/24", "240.0.0.0/5", "255.255.254.0/24", "169.254.0.0/16"} {
		if _, err := ParsePoolSpec(api.IPAMConfig{Subnet: subnet}); err != nil {
			t.Errorf("%s refused: %v", subnet, err)
		}
	}
	for pool, want := range map[string]string{
		"base=127.0.0.0/16,size=24": `invalid base pool "127.0.0.0/16": it overlaps 127.0.0.0/8 (loopback addresses), which cannot be used for a network`,
		"base=224.0.0.0/8,size=24":  `invalid base pool "224.0.0.0/8": it overlaps 224.0.0.0/4 (multicast addresses), which cannot be used for a network`,
		"base=0.0.0.0/0,size=24":    `invalid base pool "0.0.0.0/0": it overlaps 0.0.0.0/8 ("this network" addresses), which cannot be used for a network`,
	} {
		_, err := ParseAddressPool(pool)
		wantErr(t, err, IsInvalidParameter, want)
	}
	if _, err := ParseAddressPool("base=10.10.0.0/16,size=24"); err != nil {
		t.Error(err)
	}
}

func TestCheckNetworkName(t *testing.T) {
	e := newTestEnv(t)
	for name, want := range map[string]string{
		strings.Repeat("x", 256):     "network name is too long: 256 bytes, the limit is 255",
		strings.Repeat("x", 900<<10): "network name is too long: 921600 bytes, the limit is 255",
		".":                          `invalid network name "."`,
		"..":                         `invalid network name ".."`,
		"a\nb":                       `invalid network name "a\nb": it contains control characters`,
		"a\tb":                       `invalid network name "a\tb": it contains control characters`,
		"\x1b[31mred":                `invalid network name "\x1b[31mred": it contains control characters`,
		"del\x7f":                    `invalid network name "del\x7f": it contains control characters`,
		"c1\u0085":                   `invalid network name "c1\u0085": it contains control characters`,
		"a\xffb":                     `invalid network name "a\xffb": it is not valid UTF-8`,
	} {
		before := e.stored(t)
		_, err := e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: name})
		wantErr(t, err, IsInvalidParameter, want)
		if st := e.stored(t); len(st.Networks) != len(before.Networks) {
			t.Errorf("refused name %.20q was stored", name)
		}
	}
	// Up to the limit, any printable text is a name, as in Docker.
	for _, name := range []string{strings.Repeat("é", 127), "a b", "a/b", "ümlaut-ネット", "x.y_z-1", "..a"} {
		if _, err := e.m.CreateNetwork(context.Background(), api.NetworkCreateRequest{Name: name}); err != nil {
			t.Errorf("name %q refused: %v", name, err)
		}
	}
}

func TestCheckNodeName(t *testing.T) {
	for _, good := range []string{"n1", "host-1.example.com", "A_b", strings.Repeat("n", 64), "1"} {
		if err := checkNodeName(good); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	for _, bad := range []string{".", "..", "-x", "_x", ".x", "a/b", "a b", "a\nb", "nö", "a:b", strings.Repeat("n", 65)} {
		err := checkNodeName(bad)
		want := fmt.Sprintf("invalid config: --node-name %q: use 1 to 64 characters of [a-zA-Z0-9_.-], starting with a letter or digit", bad)
		if err == nil || err.Error() != want {
			t.Errorf("checkNodeName(%q) = %v, want %q", bad, err, want)
		}
		cfg := Config{Socket: "/s", StateDir: "/d", BPFFS: "/b", NodeName: bad, Dataplane: "kernel"}
		if err := cfg.validate(); err == nil || err.Error() != want {
			t.Errorf("validate with node %q = %v", bad, err)
		}
	}
}

// Empty names and unclean paths get JSON errors, never a redirect.
func TestServerPaths(t *testing.T) {
	e := newTestEnv(t)
	h := NewHandler(e.m, nil)
	e.createNet(t, api.NetworkCreateRequest{Name: "x"})
	unclean := func(p string) string {
		return fmt.Sprintf(`invalid request path %q: it must not contain empty, "." or ".." segments`, p)
	}
	for _, c := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"DELETE", "/v1/networks/", 400, "network name or ID must not be empty"},
		{"GET", "/v1/networks/", 400, "network name or ID must not be empty"},
		{"GET", "/v1/containers/", 400, "container name or ID must not be empty"},
		{"DELETE", "/v1/containers/", 400, "container name or ID must not be empty"},
		{"GET", "/v1/networks/../x", 400, unclean("/v1/networks/../x")},
		{"GET", "/v1/networks/./x", 400, unclean("/v1/networks/./x")},
		{"GET", "/v1/networks/..", 400, unclean("/v1/networks/..")},
		{"DELETE", "/v1/networks/../networks/x", 400, unclean("/v1/networks/../networks/x")},
		{"POST", "/v1/networks//connect", 400, unclean("/v1/networks//connect")},
		{"GET", "//v1/networks", 400, unclean("//v1/networks")},
		{"GET", "/v1/networks/%2E%2E", 404, "network .. not found"},
		{"GET", "/v1/networks/x%2F..%2Fy", 404, "network x/../y not found"},
		{"GET", "/v1/networks/x", 200, ""},
		{"GET", "/v1/networks", 200, ""},
		{"GET", "/v1/nosuch", 404, "page not found: GET /v1/nosuch"},
		{"PUT", "/v1/networks", 405, "method PUT not allowed on /v1/networks"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		var er api.ErrorResponse
		_ = json.Unmarshal(rec.Body.Bytes(), &er)
		if rec.Code != c.code || er.Message != c.msg {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, rec.Code, er.Message, c.code, c.msg)
		}
		if loc := rec.Header().Get("Location"); loc != "" {
			t.Errorf("%s %s: Location %q", c.method, c.path, loc)
		}
	}
	if n, err := e.m.InspectNetwork("x"); err != nil || n.Name != "x" {
		t.Errorf("network x after the refused paths: %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/networks": "/v1/networks", "/v1/networks/": "/v1/networks/", "/a//b": "/a/b",
		"/a/./b": "/a/b", "/a/../b": "/b", "/a/%2E%2E/b": "/a/%2E%2E/b", "": "/", "/": "/",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// serveAPISocket serves e's API with the daemon's server settings.
func serveAPISocket(t *testing.T, e *testEnv) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "netd.sock")
	ln, err := listenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := newAPIServer(NewHandler(e.m, nil), e.m.log)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// setTimeouts shortens the API timeouts for one test.
func setTimeouts(t *testing.T, body, idle time.Duration) {
	oldBody, oldIdle := bodyReadTimeout, idleTimeout
	bodyReadTimeout, idleTimeout = body, idle
	t.Cleanup(func() { bodyReadTimeout, idleTimeout = oldBody, oldIdle })
}

// readUntilClosed returns what the server sent until it closed conn, and
// how long that took; an error if it kept conn open past limit.
func readUntilClosed(conn net.Conn, limit time.Duration) (string, time.Duration, error) {
	start := time.Now()
	conn.SetReadDeadline(start.Add(limit))
	data, err := io.ReadAll(conn)
	return string(data), time.Since(start), err
}

// A body that trickles in is cut off with 408 after bodyReadTimeout; a
// slow handler after a complete body is not (its context stays alive).
func TestServerBodyDeadline(t *testing.T) {
	setTimeouts(t, 500*time.Millisecond, time.Minute)
	e := newTestEnv(t)
	sock := serveAPISocket(t, e)

	conns := make([]net.Conn, 5)
	for i := range conns {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/networks/create HTTP/1.1\r\nHost: netd\r\nContent-Length: 100\r\n\r\n{\"Na")
		conns[i] = c
	}
	for i, c := range conns {
		out, took, err := readUntilClosed(c, 5*time.Second)
		if err != nil {
			t.Fatalf("conn %d still open after %v: %v", i, took, err)
		}
		if !strings.HasPrefix(out, "HTTP/1.1 408 ") || !strings.Contains(out, "request body not received within 500ms of the request headers") {
			t.Errorf("conn %d got %q", i, out)
		}
		if took > 3*time.Second {
			t.Errorf("conn %d closed after %v", i, took)
		}
	}

	// A complete body lifts the deadline: a keep-alive connection serves a
	// second request long after the first one's deadline passed.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	send := func(name string) *http.Response {
		body := fmt.Sprintf(`{"Name":%q}`, name)
		fmt.Fprintf(c, "POST /v1/networks/create HTTP/1.1\r\nHost: netd\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := send("first"); resp.StatusCode != 201 {
		t.Fatalf("first: %s", resp.Status)
	}
	time.Sleep(time.Second)
	if resp := send("second"); resp.StatusCode != 201 {
		t.Fatalf("second: %s", resp.Status)
	}
}

// A handler still running when the body deadline passes keeps its
// context: the deadline is lifted once the body is read.
func TestServerBodyDeadlineSpareSlowHandler(t *testing.T) {
	setTimeouts(t, 300*time.Millisecond, time.Minute)
	h := bodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-time.After(3 * bodyReadTimeout):
			w.WriteHeader(http.StatusOK)
		}
	}))
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := newAPIServer(h, slog.New(slog.DiscardHandler))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := cl.Post("http://netd/x", "application/json", strings.NewReader(`{"Name":"n"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("slow handler after a complete body: %s, want 200 (context cancelled?)", resp.Status)
	}
}

// Idle keep-alive connections are closed after idleTimeout; fresh ones
// that never send a request after headerReadTimeout.
func TestServerIdleTimeout(t *testing.T) {
	setTimeouts(t, time.Second, 500*time.Millisecond)
	oldHeader := headerReadTimeout
	headerReadTimeout = 700 * time.Millisecond
	t.Cleanup(func() { headerReadTimeout = oldHeader })
	e := newTestEnv(t)
	sock := serveAPISocket(t, e)

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/version HTTP/1.1\r\nHost: netd\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	c.SetReadDeadline(start.Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive connection: %v, want EOF", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("idle connection closed after %v", took)
	}

	silent, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if _, took, err := readUntilClosed(silent, 5*time.Second); err != nil || took > 3*time.Second {
		t.Errorf("silent connection: closed after %v: %v", took, err)
	}
}

// A container's netns is the file /run/netns/<node>-<name>: a name that
// would make it longer than a file name may be is refused up front.
func TestContainerNameFitsNetnsName(t *testing.T) {
	e := newTestEnv(t)
	long := strings.Repeat("a", 256-len("node1-"))
	_, err := e.m.CreateContainer(context.Background(), api.ContainerCreateRequest{Name: long})
	wantErr(t, err, IsInvalidParameter, "invalid container name: 250 characters, at most 249 on node node1")
	if len(e.sb.ns) != 0 {
		t.Errorf("a refused create made namespaces: %v", e.sb.ns)
	}
	e.createCtr(t, strings.Repeat("b", 249))
}
