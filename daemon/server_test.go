//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/netd-dev/netd/api"
)

type fakeStatus struct {
	st  api.DataplaneStatus
	err error
}

func (f fakeStatus) Status() (api.DataplaneStatus, error) { return f.st, f.err }

// call sends one request to h and returns status and body.
func call(t *testing.T, h http.Handler, method, path, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func wantStatus(t *testing.T, h http.Handler, method, path, body string, code int, msg string) []byte {
	t.Helper()
	got, data := call(t, h, method, path, body)
	if got != code {
		t.Errorf("%s %s: status %d, want %d (body %s)", method, path, got, code, data)
	}
	if msg != "" {
		var er api.ErrorResponse
		if err := json.Unmarshal(data, &er); err != nil {
			t.Errorf("%s %s: body %q is not an error JSON: %v", method, path, data, err)
		} else if er.Message != msg {
			t.Errorf("%s %s: message %q, want %q", method, path, er.Message, msg)
		}
	}
	return data
}

func TestServerStatusCodes(t *testing.T) {
	e := newTestEnv(t)
	h := NewHandler(e.m, nil)

	data := wantStatus(t, h, "GET", "/v1/version", "", 200, "")
	var v api.VersionInfo
	if err := json.Unmarshal(data, &v); err != nil || v.NodeName != "node1" || v.APIVersion != "v1" || v.Dataplane != "kernel" {
		t.Errorf("version = %+v, %v", v, err)
	}

	data = wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":"front","Labels":{"a":"b"}}`, 201, "")
	var cr api.NetworkCreateResponse
	if err := json.Unmarshal(data, &cr); err != nil || len(cr.ID) != 64 {
		t.Fatalf("create response %s: %v", data, err)
	}
	wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":"front"}`, 409, "network with name front already exists")
	wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"172.17.1.0/24"}]}}`, 403,
		"invalid pool request: Pool overlaps with other one on this address space")
	wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"10.0.0.0/33"}]}}`, 400, "")
	wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":"x","Driver":"macvlan"}`, 404, `plugin "macvlan" not found`)
	wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":`, 400, "")
	wantStatus(t, h, "POST", "/v1/networks/create", ``, 400, "request body must not be empty")

	data = wantStatus(t, h, "GET", "/v1/networks?filters="+url.QueryEscape(`{"label":["a=b"]}`), "", 200, "")
	var nets []api.Network
	if err := json.Unmarshal(data, &nets); err != nil || len(nets) != 1 || nets[0].Name != "front" {
		t.Errorf("filtered list = %s, %v", data, err)
	}
	wantStatus(t, h, "GET", "/v1/networks?filters="+url.QueryEscape(`{"color":["red"]}`), "", 400, "invalid filter 'color'")
	wantStatus(t, h, "GET", "/v1/networks?filters=notjson", "", 400, "invalid filter")

	data = wantStatus(t, h, "GET", "/v1/networks/front", "", 200, "")
	var n api.Network
	if err := json.Unmarshal(data, &n); err != nil || n.ID != cr.ID || n.Scope != "local" || n.IPAM.Driver != "default" {
		t.Errorf("inspect = %s, %v", data, err)
	}
	// Docker's inspect shape: empty maps, not null.
	for _, field := range []string{`"Containers":{}`, `"Options":{}`, `"ConfigFrom":{"Network":""}`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("inspect lacks %s: %s", field, data)
		}
	}
	wantStatus(t, h, "GET", "/v1/networks/nope", "", 404, "network nope not found")
	wantStatus(t, h, "DELETE", "/v1/networks/bridge", "", 403, "bridge is a pre-defined network and cannot be removed")

	data = wantStatus(t, h, "POST", "/v1/containers/create", `{"Name":"web","Networks":[{"Network":"front"}]}`, 201, "")
	var cc api.ContainerCreateResponse
	if err := json.Unmarshal(data, &cc); err != nil || len(cc.ID) != 64 {
		t.Fatalf("container create response %s: %v", data, err)
	}
	wantStatus(t, h, "POST", "/v1/containers/create", `{"Name":"web"}`, 409, "")
	wantStatus(t, h, "DELETE", "/v1/networks/front", "", 403,
		"error while removing network: network front id "+cr.ID+" has active endpoints")

	wantStatus(t, h, "POST", "/v1/networks/bridge/connect", `{"Container":"web"}`, 200, "")
	wantStatus(t, h, "POST", "/v1/networks/bridge/connect", `{"Container":"web"}`, 403,
		"endpoint with name web already exists in network bridge")
	wantStatus(t, h, "POST", "/v1/networks/host/connect", `{"Container":"web"}`, 400, errTextHostNetwork)
	wantStatus(t, h, "POST", "/v1/networks/bridge/connect",
		`{"Container":"web2","EndpointConfig":{"IPAMConfig":{"IPv4Address":"1.2.3.4"}}}`, 404, "No such container: web2")
	wantStatus(t, h, "POST", "/v1/networks/bridge/disconnect", `{"Container":"web"}`, 200, "")
	wantStatus(t, h, "POST", "/v1/networks/bridge/disconnect", `{"Container":"web"}`, 409,
		"container "+cc.ID+" is not connected to network bridge")

	data = wantStatus(t, h, "GET", "/v1/containers/web", "", 200, "")
	var c api.Container
	if err := json.Unmarshal(data, &c); err != nil || c.ID != cc.ID || c.NetworkSettings.Networks["front"].Interface != "eth0" {
		t.Errorf("container inspect = %s, %v", data, err)
	}
	data = wantStatus(t, h, "GET", "/v1/containers", "", 200, "")
	var cs []api.Container
	if err := json.Unmarshal(data, &cs); err != nil || len(cs) != 1 {
		t.Errorf("container list = %s, %v", data, err)
	}
	wantStatus(t, h, "DELETE", "/v1/containers/web?force=maybe", "", 400, "")
	wantStatus(t, h, "DELETE", "/v1/containers/"+cc.ID[:10]+"?force=1", "", 204, "")
	wantStatus(t, h, "GET", "/v1/containers/web", "", 404, "No such container: web")
	wantStatus(t, h, "DELETE", "/v1/networks/front", "", 204, "")

	data = wantStatus(t, h, "POST", "/v1/networks/prune", "", 200, "")
	if !strings.Contains(string(data), `"NetworksDeleted":[]`) {
		t.Errorf("prune with nothing to do = %s", data)
	}
	wantStatus(t, h, "POST", "/v1/networks/prune?filters="+url.QueryEscape(`{"driver":["bridge"]}`), "", 400, "invalid filter 'driver'")

	wantStatus(t, h, "GET", "/v1/dataplane", "", 501, "this daemon has no eBPF dataplane loaded")
	// Not netd's /v1: a Docker Engine API path, version 2.
	wantStatus(t, h, "GET", "/v2/networks", "", 400, "client version 2 is too new. Maximum supported API version is "+EngineMaxAPIVersion)
	wantStatus(t, h, "PUT", "/v1/networks/front", "", 405, "method PUT not allowed on /v1/networks/front")
}

func TestServerDataplaneStatus(t *testing.T) {
	e := newTestEnv(t)
	e.m.status = fakeStatus{st: api.DataplaneStatus{Default: "ebpf", PinDir: "/sys/fs/bpf/netd/node1"}}
	data := wantStatus(t, NewHandler(e.m, nil), "GET", "/v1/dataplane", "", 200, "")
	var st api.DataplaneStatus
	if err := json.Unmarshal(data, &st); err != nil || st.PinDir != "/sys/fs/bpf/netd/node1" {
		t.Errorf("status = %s, %v", data, err)
	}
	e.m.status = fakeStatus{err: errors.New("map read failed")}
	wantStatus(t, NewHandler(e.m, nil), "GET", "/v1/dataplane", "", 500, "read dataplane status: map read failed")
}

// serveSocket serves e's API on sock until the test ends.
func serveSocket(t *testing.T, e *testEnv, sock string) {
	t.Helper()
	ln, err := listenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(e.m, nil)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestServerOverSocket drives the handler through the real client on a
// unix socket made by listenSocket.
func TestServerOverSocket(t *testing.T) {
	e := newTestEnv(t)
	sock := filepath.Join(t.TempDir(), "run", "netd.sock")
	serveSocket(t, e, sock)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want 0660 socket", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o755 {
		t.Errorf("socket dir mode %v, want 0755", di.Mode().Perm())
	}
	if _, err := listenSocket(sock); err == nil || !strings.Contains(err.Error(), "another daemon is listening") {
		t.Errorf("second listen on a live socket: %v", err)
	}

	cl, err := api.NewClient("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cl.NetworkCreate(ctx, api.NetworkCreateRequest{Name: "front"}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.NetworkCreate(ctx, api.NetworkCreateRequest{Name: "front"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 409 || ae.Message != "network with name front already exists" {
		t.Errorf("duplicate over the socket: %#v", err)
	}
	nets, err := cl.NetworkList(ctx, map[string][]string{"type": {"custom"}})
	if err != nil || len(nets) != 1 || nets[0].Name != "front" {
		t.Errorf("list custom = %v, %v", nets, err)
	}
}

func TestListenSocketRemovesStale(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "netd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the file behind as a crashed daemon would.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	}
	ln, err = listenSocket(sock)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestLockStateDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockStateDir(dir)
	want := "another netd daemon is using state dir " + dir + " (lock held): stop it or pass a different --state-dir"
	if err == nil || err.Error() != want {
		t.Errorf("second lock: %v", err)
	}
	unlock()
	unlock2, err := lockStateDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Socket: "/s", StateDir: "/d", BPFFS: "/b", NodeName: "n1", Dataplane: "kernel"}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	if ok.PinDir() != "/b/n1" {
		t.Errorf("PinDir = %s", ok.PinDir())
	}
	for _, bad := range []Config{
		{StateDir: "/d", BPFFS: "/b", NodeName: "n1", Dataplane: "kernel"},
		{Socket: "/s", StateDir: "/d", BPFFS: "/b", NodeName: "a/b", Dataplane: "kernel"},
		{Socket: "/s", StateDir: "/d", BPFFS: "/b", NodeName: "n1", Dataplane: "xdp"},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
	err := Run(context.Background(), Config{Socket: "/s", StateDir: t.TempDir(), BPFFS: "/b", NodeName: "n1",
		AddressPools: []string{"base=10.0.0.0/8"}})
	if err == nil || !strings.Contains(err.Error(), "--default-address-pool") {
		t.Errorf("Run with a bad pool: %v", err)
	}
}

// A body over the limit is 413 with a JSON error, not a truncated-JSON 400.
func TestServerBodyLimit(t *testing.T) {
	e := newTestEnv(t)
	h := NewHandler(e.m, nil)
	big := `{"Name":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	wantStatus(t, h, "POST", "/v1/networks/create", big, http.StatusRequestEntityTooLarge,
		"request body too large: the limit is 1048576 bytes")
	// Unknown fields are ignored, as Docker's API does.
	wantStatus(t, h, "POST", "/v1/networks/create", `{"Name":"front","CheckDuplicate":true,"Future":1}`, 201, "")
}

// Names with characters special in URLs reach the right network through
// the real client: it escapes, the mux unescapes.
func TestServerPathEscaping(t *testing.T) {
	e := newTestEnv(t)
	sock := filepath.Join(t.TempDir(), "netd.sock")
	serveSocket(t, e, sock)
	cl, err := api.NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"a/b", "a b", "a%2Fb", "a?b#c", "a/../b", "create", "prune"} {
		if _, err := cl.NetworkCreate(ctx, api.NetworkCreateRequest{Name: name}); err != nil {
			t.Fatalf("create %q: %v", name, err)
		}
		if n, err := cl.NetworkInspect(ctx, name); err != nil || n.Name != name {
			t.Errorf("inspect %q = %q, %v", name, n.Name, err)
		}
		if err := cl.NetworkRemove(ctx, name); err != nil {
			t.Errorf("remove %q: %v", name, err)
		}
	}
}

// Parallel API calls share one manager; run with -race.
func TestServerConcurrentRequests(t *testing.T) {
	e := newTestEnv(t)
	h := NewHandler(e.m, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d", i)
			body := fmt.Sprintf(`{"Name":%q}`, name)
			if code, data := call(t, h, "POST", "/v1/networks/create", body); code != 201 {
				t.Errorf("create %s: %d %s", name, code, data)
				return
			}
			ctr := fmt.Sprintf(`{"Name":"c%d","Networks":[{"Network":%q}]}`, i, name)
			if code, data := call(t, h, "POST", "/v1/containers/create", ctr); code != 201 {
				t.Errorf("create c%d: %d %s", i, code, data)
			}
			call(t, h, "GET", "/v1/networks", "")
			call(t, h, "GET", "/v1/containers", "")
			if code, data := call(t, h, "DELETE", fmt.Sprintf("/v1/containers/c%d", i), ""); code != 204 {
				t.Errorf("rm c%d: %d %s", i, code, data)
			}
			if code, data := call(t, h, "DELETE", "/v1/networks/"+name, ""); code != 204 {
				t.Errorf("rm %s: %d %s", name, code, data)
			}
		}()
	}
	wg.Wait()
	st := e.stored(t)
	if len(st.Containers) != 0 || len(st.Endpoints) != 0 || len(st.Networks) != 3 {
		t.Errorf("left over: %d containers, %d endpoints, %d networks", len(st.Containers), len(st.Endpoints), len(st.Networks))
	}
}
