//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// A --mac-address equal to the MAC a later address derives (02:42:a.b.c.d)
// must not block automatic allocation of that address; an explicit MAC in
// use is still refused.
func TestDefectMACCollision(t *testing.T) {
	forEachDataplane(t, func(t *testing.T, dp string) {
		h := dpHost(t, dp)
		createNet(t, h, dp, "n1", "--subnet", "10.216.0.0/24")
		// k1 gets .2 but takes the MAC that .3 would derive.
		createCtr(t, h, "k1", "--network", "n1", "--mac-address", "02:42:0a:d8:00:03")
		createCtr(t, h, "k2", "--network", "n1")
		createCtr(t, h, "k3", "--network", "n1")

		k1 := inspectCtr(t, h, "k1").NetworkSettings.Networks["n1"]
		k2 := inspectCtr(t, h, "k2").NetworkSettings.Networks["n1"]
		k3 := inspectCtr(t, h, "k3").NetworkSettings.Networks["n1"]
		if k1.IPAddress != "10.216.0.2" || k1.MacAddress != "02:42:0a:d8:00:03" {
			t.Errorf("k1: %s %s, want 10.216.0.2 02:42:0a:d8:00:03", k1.IPAddress, k1.MacAddress)
		}
		if k2.IPAddress != "10.216.0.3" {
			t.Errorf("k2 got %s, want 10.216.0.3 (the address whose MAC k1 took)", k2.IPAddress)
		}
		hw, err := net.ParseMAC(k2.MacAddress)
		switch {
		case err != nil || len(hw) != 6:
			t.Errorf("k2 MAC %q: %v", k2.MacAddress, err)
		case k2.MacAddress == k1.MacAddress:
			t.Errorf("k2 shares k1's MAC %s", k1.MacAddress)
		case hw[0]&1 != 0 || hw[0]&2 == 0:
			t.Errorf("k2 MAC %s is not a locally administered unicast address", hw)
		}
		// Addresses after the clash keep Docker's derived MAC.
		if k3.IPAddress != "10.216.0.4" || k3.MacAddress != "02:42:0a:d8:00:04" {
			t.Errorf("k3: %s %s, want 10.216.0.4 02:42:0a:d8:00:04", k3.IPAddress, k3.MacAddress)
		}
		// The kernel carries the MAC the daemon reports, and traffic flows.
		if out, _, _ := h.Exec("k2", "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "link/ether "+k2.MacAddress+" ") {
			t.Errorf("eth0 of k2 does not have the MAC inspect shows (%s):\n%s", k2.MacAddress, out)
		}
		mustPing(t, h, "k1", k2.IPAddress)
		mustPing(t, h, "k2", k1.IPAddress)
		mustPing(t, h, "k3", k2.IPAddress)
		checkDataplane(t, h, dp, "k2", "n1")

		ctrs := []string{"k1", "k2", "k3", "k4"}
		before := snapshot(t, h, ctrs...)
		fails(t, h, []string{"MAC address 02:42:0a:d8:00:03 is already in use on network n1"},
			"container", "create", "--network", "n1", "--mac-address", "02:42:0a:d8:00:03", "k4")
		fails(t, h, []string{"MAC address " + k2.MacAddress + " is already in use on network n1"},
			"container", "create", "--network", "n1", "--mac-address", k2.MacAddress, "k4")
		sameState(t, "refused MACs", before, snapshot(t, h, ctrs...))
	})
}

// Node names become netns prefixes, nftables table names and bpffs dirs:
// the daemon refuses bad ones before it touches anything.
func TestDefectNodeName(t *testing.T) {
	l := newLab(t)
	h := l.MustHost("h1")
	// ".." must not escape this dir: the lab removes <prefix>-* under BPFFSDir.
	bpffs := filepath.Join(lab.BPFFSDir, l.Prefix+"-nn", "sub")
	long := strings.Repeat("n", 65)
	cases := []struct {
		flags []string
		want  string
	}{
		{[]string{"--node-name", ".."}, `invalid config: --node-name ".."`},
		{[]string{"--node-name", "."}, `invalid config: --node-name "."`},
		{[]string{"--node-name", "-x"}, `invalid config: --node-name "-x"`},
		{[]string{"--node-name", "a b"}, `invalid config: --node-name "a b"`},
		{[]string{"--node-name", "a\x1bb"}, `invalid config: --node-name "a\x1bb"`},
		{[]string{"--node-name", "nö"}, `invalid config: --node-name "nö"`},
		{[]string{"--node-name", long}, fmt.Sprintf("invalid config: --node-name %q", long)},
		{[]string{"--node-name", "ok1", "--default-address-pool", "base=127.0.0.0/16,size=24"}, "127.0.0.0/8"},
		{[]string{"--node-name", "ok2", "--default-address-pool", "base=224.0.0.0/8,size=24"}, "224.0.0.0/4"},
	}
	for _, c := range cases {
		sock := filepath.Join(h.Dir, "nn.sock")
		state := filepath.Join(h.Dir, "nn-state")
		args := append([]string{"daemon", "--socket", sock, "--state-dir", state, "--bpffs", bpffs,
			"--dataplane", "kernel"}, c.flags...)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := h.Command(ctx, l.NetdBin(), args...).CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case timedOut:
			t.Errorf("daemon %v kept running, want a refusal", c.flags)
		case err == nil:
			t.Errorf("daemon %v exited 0, want a refusal:\n%s", c.flags, out)
		case !strings.Contains(string(out), c.want):
			t.Errorf("daemon %v: output does not contain %q:\n%s", c.flags, c.want, out)
		}
		for _, p := range []string{sock, state, filepath.Dir(bpffs)} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("refused daemon %v left %s behind", c.flags, p)
				os.RemoveAll(p)
			}
		}
	}
}

// Network names are bounded and printable; reserved subnets are refused.
func TestDefectNetworkInput(t *testing.T) {
	h := dpHost(t, api.DataplaneKernel)
	createNet(t, h, api.DataplaneKernel, "n1", "--subnet", "10.216.1.0/24")
	createCtr(t, h, "k1", "--network", "n1")
	ctrs := []string{"k1"}
	o := "-o=netd.dataplane=" + api.DataplaneKernel
	refuseAll(t, h, ctrs, nil, []refusal{
		{"name of 100 KB", []string{"network name is too long", "102400", "255"},
			[]string{"network", "create", o, strings.Repeat("x", 100<<10)}},
		{"name of 256 bytes", []string{"network name is too long", "256", "255"},
			[]string{"network", "create", o, strings.Repeat("y", 256)}},
		{"newline in name", []string{`invalid network name "bad\nname": it contains control characters`},
			[]string{"network", "create", o, "bad\nname"}},
		{"escape in name", []string{`invalid network name "\x1b[31mred": it contains control characters`},
			[]string{"network", "create", o, "\x1b[31mred"}},
		{"loopback", []string{"invalid subnet 127.0.0.0/8", "127.0.0.0/8", "loopback"},
			[]string{"network", "create", o, "--subnet", "127.0.0.0/8", "n2"}},
		{"loopback part", []string{"invalid subnet 127.5.0.0/24", "loopback"},
			[]string{"network", "create", o, "--subnet", "127.5.0.0/24", "n2"}},
		{"link-local multicast", []string{"invalid subnet 224.0.0.0/24", "224.0.0.0/4", "multicast"},
			[]string{"network", "create", o, "--subnet", "224.0.0.0/24", "n2"}},
		{"multicast", []string{"invalid subnet 239.1.0.0/16", "multicast"},
			[]string{"network", "create", o, "--subnet", "239.1.0.0/16", "n2"}},
		{"limited broadcast", []string{"invalid subnet 255.255.255.0/24", "255.255.255.255", "broadcast"},
			[]string{"network", "create", o, "--subnet", "255.255.255.0/24", "n2"}},
		{"this network", []string{"invalid subnet 0.0.0.0/8", "0.0.0.0/8"},
			[]string{"network", "create", o, "--subnet", "0.0.0.0/8", "n2"}},
		{"everything", []string{"invalid subnet 0.0.0.0/0"},
			[]string{"network", "create", o, "--subnet", "0.0.0.0/0", "n2"}},
	})
	// The limit itself is fine, and such a network is listed and removed.
	name := strings.Repeat("z", 255)
	createNet(t, h, api.DataplaneKernel, name)
	if names := lsNames(t, h); !contains(names, name) {
		t.Errorf("network ls does not list the 255-byte name: %d names", len(names))
	}
	ok(t, h, "network", "rm", name)
	// Neighbours of the reserved blocks stay usable, with real containers.
	for i, subnet := range []string{"126.255.255.0/24", "128.0.0.0/24", "223.255.255.0/24", "240.0.0.0/24"} {
		nn := fmt.Sprintf("edge%d", i)
		createNet(t, h, api.DataplaneKernel, nn, "--subnet", subnet)
		createCtr(t, h, "e"+nn, "--network", nn)
		p := netip.MustParsePrefix(subnet)
		if ip := ctrIP(t, h, "e"+nn, nn); !inPrefix(t, ip, subnet) {
			t.Errorf("container on %s got %s", subnet, ip)
		}
		mustPing(t, h, "e"+nn, p.Addr().Next().String())
	}
}

// A user without access to the socket is told so, not that the daemon is down.
func TestDefectSocketPermission(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1", "--dataplane", "kernel")
	// Only the socket's own mode (0660 root) may stand in the way: the lab's
	// dirs are 0700, so let others through them.
	for _, d := range []string{l.Dir, h.Dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	// nobody must be able to run the binary: copy it out of 0700 build dirs.
	binDir, err := os.MkdirTemp("", "netd-e2e-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "netd")
	if out, err := exec.Command("cp", l.NetdBin(), bin).CombinedOutput(); err != nil {
		t.Fatalf("copy netd: %v: %s", err, out)
	}
	asNobody := func(host string, args ...string) (string, int) {
		full := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin, "-H", host}, args...)
		ctx, cancel := context.WithTimeout(context.Background(), lab.CommandTimeout)
		defer cancel()
		out, err := h.Command(ctx, "setpriv", full...).CombinedOutput()
		code := 0
		if ee, isExit := err.(*exec.ExitError); isExit {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("setpriv netd %v: %v\n%s", args, err, out)
		}
		return string(out), code
	}
	out, code := asNobody(h.HostURL(), "network", "ls")
	want := "permission denied while trying to connect to the netd daemon socket at " + h.HostURL()
	if code == 0 || !strings.Contains(out, want) || !strings.Contains(out, "connect: permission denied") {
		t.Errorf("network ls as nobody: exit %d\n%s\nwant %q", code, out, want)
	}
	if strings.Contains(out, "Is the netd daemon running?") {
		t.Errorf("permission problem reported as a daemon that is not running:\n%s", out)
	}
	// A socket that is not there still says the daemon is not running.
	absent := "unix://" + filepath.Join(h.Dir, "absent.sock")
	out, code = asNobody(absent, "network", "ls")
	if want := "Cannot connect to the netd daemon at " + absent + ". Is the netd daemon running?"; code == 0 || !strings.Contains(out, want) {
		t.Errorf("network ls as nobody on a missing socket: exit %d\n%s\nwant %q", code, out, want)
	}
	// root still gets through.
	if names := lsNames(t, h); !equal(names, sorted("bridge", "host", "none")) {
		t.Errorf("network ls as root: %v", names)
	}
}

// rawHTTP sends one request to the daemon's socket and returns the answer.
func rawHTTP(t *testing.T, h *lab.Host, method, path string) (*http.Response, api.ErrorResponse) {
	t.Helper()
	conn, err := net.DialTimeout("unix", h.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: netd\r\nConnection: close\r\n\r\n", method, path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var er api.ErrorResponse
	if err := json.Unmarshal(body, &er); err != nil {
		t.Errorf("%s %s: body %q is not a JSON error: %v", method, path, body, err)
	}
	return resp, er
}

// Empty names and dot segments get clear JSON errors, not the mux's
// plain 404 or a redirect without a Location.
func TestDefectAPIPaths(t *testing.T) {
	h := dpHost(t, api.DataplaneKernel)
	createNet(t, h, api.DataplaneKernel, "x", "--subnet", "10.216.2.0/24")
	createCtr(t, h, "k1", "--network", "x")
	before := snapshot(t, h, "k1")

	fails(t, h, []string{"network name or ID must not be empty"}, "network", "rm", "")
	fails(t, h, []string{"container name or ID must not be empty"}, "container", "rm", "")
	fails(t, h, []string{"network .. not found"}, "network", "inspect", "..")
	fails(t, h, []string{"network . not found"}, "network", "rm", ".")

	cases := []struct {
		method, path string
		code         int
		msg          string
	}{
		{"DELETE", "/v1/networks/", 400, "network name or ID must not be empty"},
		{"GET", "/v1/networks/", 400, "network name or ID must not be empty"},
		{"DELETE", "/v1/containers/", 400, "container name or ID must not be empty"},
		{"GET", "/v1/networks/../x", 400, `invalid request path "/v1/networks/../x": it must not contain empty, "." or ".." segments`},
		{"DELETE", "/v1/networks/../networks/x", 400, `invalid request path "/v1/networks/../networks/x": it must not contain empty, "." or ".." segments`},
		{"GET", "/v1/networks/./x", 400, `invalid request path "/v1/networks/./x": it must not contain empty, "." or ".." segments`},
		{"POST", "/v1/networks//connect", 400, `invalid request path "/v1/networks//connect": it must not contain empty, "." or ".." segments`},
		{"GET", "/v1/networks/%2E%2E", 404, "network .. not found"},
	}
	for _, c := range cases {
		resp, er := rawHTTP(t, h, c.method, c.path)
		if resp.StatusCode != c.code || er.Message != c.msg {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, resp.StatusCode, er.Message, c.code, c.msg)
		}
		if loc := resp.Header.Get("Location"); loc != "" || resp.StatusCode/100 == 3 {
			t.Errorf("%s %s: redirect %d to %q", c.method, c.path, resp.StatusCode, loc)
		}
	}
	sameState(t, "refused paths", before, snapshot(t, h, "k1"))
}

// Slow request bodies and idle keep-alive connections are closed in
// bounded time while the daemon keeps answering.
func TestDefectSlowBodies(t *testing.T) {
	const (
		conns       = 50
		bodyLimit   = 10 * time.Second // the daemon's body read timeout
		idleLimit   = 30 * time.Second // the daemon's idle timeout
		slack       = 5 * time.Second
		maxTestTime = idleLimit + 2*slack
	)
	h := dpHost(t, api.DataplaneKernel)
	type result struct {
		held  time.Duration
		reply string
		err   error
	}
	results := make(chan result, conns+1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()

	// waitClosed reads until the daemon closes conn (or the test gives up),
	// returning what the daemon sent.
	waitClosed := func(conn net.Conn, start time.Time, limit time.Duration) result {
		conn.SetReadDeadline(start.Add(limit))
		data, err := io.ReadAll(conn)
		first, _, _ := strings.Cut(string(data), "\r\n")
		return result{held: time.Since(start), reply: first, err: err}
	}
	for i := range conns {
		conn, err := net.DialTimeout("unix", h.Socket, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		start := time.Now()
		body := `{"Name":"slow` + fmt.Sprint(i) + `"}`
		if _, err := fmt.Fprintf(conn, "POST /v1/networks/create HTTP/1.1\r\nHost: netd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)+4096); err != nil {
			t.Fatalf("send headers %d: %v", i, err)
		}
		wg.Add(2)
		go func() { // dribble one byte a second, never finishing the body
			defer wg.Done()
			for j := 0; j < len(body) && j < int(maxTestTime/time.Second); j++ {
				if _, err := conn.Write([]byte{body[j]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
			}
		}()
		go func() {
			defer wg.Done()
			results <- waitClosed(conn, start, bodyLimit+slack)
		}()
	}
	// A keep-alive connection left idle after a complete request.
	idle, err := net.DialTimeout("unix", h.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Close() })
	idleStart := time.Now()
	fmt.Fprintf(idle, "GET /v1/version HTTP/1.1\r\nHost: netd\r\n\r\n")
	br := bufio.NewReader(idle)
	idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("version on the keep-alive connection: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		idle.SetReadDeadline(idleStart.Add(idleLimit + slack))
		_, err := br.ReadByte()
		r := result{held: time.Since(idleStart), reply: "idle", err: err}
		if err == io.EOF {
			r.err = nil
		}
		results <- r
	}()

	// The daemon answers others while the slow ones hang on.
	for i := range 3 {
		start := time.Now()
		if names := lsNames(t, h); !contains(names, "bridge") {
			t.Errorf("network ls %d during slow bodies: %v", i, names)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("network ls %d took %v during slow bodies", i, d)
		}
		time.Sleep(time.Second)
	}

	for range conns + 1 {
		r := <-results
		limit := bodyLimit + slack
		if r.reply == "idle" {
			limit = idleLimit + slack
		}
		if r.err != nil || r.held >= limit {
			t.Errorf("connection (%s) held %v, want closed by the daemon within %v: %v", r.reply, r.held.Round(time.Millisecond), limit, r.err)
			continue
		}
		if r.reply != "idle" && !strings.HasPrefix(r.reply, "HTTP/1.1 408") {
			t.Errorf("slow body answered %q, want 408 Request Timeout", r.reply)
		}
	}
	// Nothing of the slow requests was created.
	if names := lsNames(t, h); !equal(names, sorted("bridge", "host", "none")) {
		t.Errorf("networks after the slow bodies: %v", names)
	}
}
