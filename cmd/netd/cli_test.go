package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/apitest"
)

// fakeDaemon answers the API routes the CLI uses from memory and records
// what it was sent.
type fakeDaemon struct {
	mu         sync.Mutex
	host       string
	networks   map[string]api.Network
	containers map[string]api.Container
	requests   []string          // "METHOD path?query"
	bodies     map[string][]byte // last body per "METHOD path"
	status     api.DataplaneStatus
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{networks: map[string]api.Network{}, containers: map[string]api.Container{}, bodies: map[string][]byte{}}
	for _, n := range fixtureNetworks() {
		f.networks[n.Name] = n
	}
	f.host = apitest.Serve(t, f.mux())
	return f
}

func (f *fakeDaemon) mux() http.Handler {
	m := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	notFound := func(w http.ResponseWriter, kind, name string) {
		reply(w, 404, api.ErrorResponse{Message: kind + " " + name + " not found"})
	}
	m.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, api.VersionInfo{Version: "1.2.3", APIVersion: "v1", NodeName: "node1", Dataplane: "ebpf", GoVersion: "go1.26"})
	})
	m.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		var out []api.Network
		for _, n := range f.networks {
			out = append(out, n)
		}
		reply(w, 200, out)
	})
	m.HandleFunc("POST /v1/networks/create", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkCreateRequest
		_ = json.Unmarshal(f.body(r), &req)
		if _, ok := f.networks[req.Name]; ok {
			reply(w, 409, api.ErrorResponse{Message: "network with name " + req.Name + " already exists"})
			return
		}
		id := strings.Repeat("c", 64)
		f.networks[req.Name] = api.Network{Name: req.Name, ID: id, Driver: req.Driver}
		reply(w, 201, api.NetworkCreateResponse{ID: id})
	})
	m.HandleFunc("GET /v1/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, ok := f.networks[r.PathValue("id")]
		if !ok {
			notFound(w, "network", r.PathValue("id"))
			return
		}
		reply(w, 200, n)
	})
	m.HandleFunc("DELETE /v1/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch {
		case id == "bridge":
			reply(w, 403, api.ErrorResponse{Message: "bridge is a pre-defined network and cannot be removed"})
		case f.networks[id].Name == "":
			notFound(w, "network", id)
		default:
			delete(f.networks, id)
			reply(w, 204, nil)
		}
	})
	m.HandleFunc("POST /v1/networks/prune", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		reply(w, 200, api.NetworksPruneReport{NetworksDeleted: []string{"n10", "n2"}})
	})
	for _, verb := range []string{"connect", "disconnect"} {
		m.HandleFunc("POST /v1/networks/{id}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			f.body(r)
			if f.networks[r.PathValue("id")].Name == "" {
				notFound(w, "network", r.PathValue("id"))
				return
			}
			reply(w, 200, nil)
		})
	}
	m.HandleFunc("GET /v1/containers", func(w http.ResponseWriter, r *http.Request) {
		out := []api.Container{}
		for _, c := range f.containers {
			out = append(out, c)
		}
		reply(w, 200, out)
	})
	m.HandleFunc("POST /v1/containers/create", func(w http.ResponseWriter, r *http.Request) {
		var req api.ContainerCreateRequest
		_ = json.Unmarshal(f.body(r), &req)
		id := strings.Repeat("d", 64)
		f.containers[req.Name] = api.Container{ID: id, Name: req.Name}
		reply(w, 201, api.ContainerCreateResponse{ID: id})
	})
	m.HandleFunc("GET /v1/containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := f.containers[r.PathValue("id")]
		if !ok {
			notFound(w, "container", r.PathValue("id"))
			return
		}
		reply(w, 200, c)
	})
	m.HandleFunc("DELETE /v1/containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		if _, ok := f.containers[r.PathValue("id")]; !ok {
			notFound(w, "container", r.PathValue("id"))
			return
		}
		delete(f.containers, r.PathValue("id"))
		reply(w, 204, nil)
	})
	m.HandleFunc("GET /v1/dataplane", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, f.status)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		m.ServeHTTP(w, r)
	})
}

func (f *fakeDaemon) body(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	f.bodies[r.Method+" "+r.URL.Path] = b
	return b
}

func (f *fakeDaemon) record(r *http.Request) { f.body(r) }

// decodeSent decodes the last body sent to key ("METHOD path") into v.
func (f *fakeDaemon) decodeSent(t *testing.T, key string, v any) {
	t.Helper()
	if err := json.Unmarshal(f.sent(key), v); err != nil {
		t.Fatalf("body of %s: %v", key, err)
	}
}

func (f *fakeDaemon) sent(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[key]
}

func (f *fakeDaemon) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// netd runs the CLI in-process with the given stdin and returns its
// stdout, stderr and exit status.
func netd(t *testing.T, host, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp(strings.NewReader(stdin), &out, &errb)
	full := append([]string{"netd", "-H", host}, args...)
	code := run(app, full)
	return out.String(), errb.String(), code
}

func TestUsageErrors(t *testing.T) {
	f := newFakeDaemon(t)
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"network", "create"}, 1, "netd: 'netd network create' requires 1 argument\n\nUsage:  netd network create [OPTIONS] NETWORK\n\nRun 'netd network create --help' for more information\n"},
		{[]string{"network", "create", "a", "b"}, 1, "netd: 'netd network create' requires 1 argument\n"},
		{[]string{"network", "connect", "a"}, 1, "netd: 'netd network connect' requires 2 arguments\n"},
		{[]string{"network", "disconnect"}, 1, "netd: 'netd network disconnect' requires 2 arguments\n"},
		{[]string{"network", "inspect"}, 1, "netd: 'netd network inspect' requires at least 1 argument\n\nUsage:  netd network inspect [OPTIONS] NETWORK [NETWORK...]\n\nSee 'netd network inspect --help' for more information\n"},
		{[]string{"network", "rm"}, 1, "netd: 'netd network rm' requires at least 1 argument\n\nUsage:  netd network rm NETWORK [NETWORK...]\n"},
		{[]string{"network", "ls", "x"}, 1, "netd: 'netd network ls' accepts no arguments\n\nUsage:  netd network ls [OPTIONS]\n\nRun 'netd network ls --help' for more information\n"},
		{[]string{"network", "prune", "x"}, 1, "netd: 'netd network prune' accepts no arguments\n"},
		{[]string{"network", "ls", "--bogus"}, 125, "unknown flag: --bogus\n\nUsage:  netd network ls [OPTIONS]\n\nRun 'netd network ls --help' for more information\n"},
		{[]string{"network", "ls", "-z"}, 125, "unknown shorthand flag: 'z' in -z\n"},
		{[]string{"network", "ls", "--filter", "driver"}, 125, "bad format of filter (expected name=value)"},
		{[]string{"container", "create"}, 1, "netd: 'netd container create' requires 1 argument\n"},
		{[]string{"container", "exec", "c1"}, 1, "netd: 'netd container exec' requires at least 2 arguments\n"},
		{[]string{"container", "run", "c1", "--network", "n2"}, 1, "netd: 'netd container run' requires at least 2 arguments\n"},
		{[]string{"container", "inspect"}, 1, "netd: 'netd container inspect' requires at least 1 argument\n"},
		{[]string{"container", "create", "c1", "--ip", "300.1.1.1"}, 1, "invalid IPv4 address: 300.1.1.1"},
		{[]string{"container", "create", "c1", "--mac-address", "zz:00"}, 125, "zz:00 is not a valid mac address"},
		{[]string{"container", "create", "c1", "--label", "=x"}, 125, "invalid label '=x': empty name"},
		{[]string{"network", "connect", "--ip", "fe80::1", "n2", "c1"}, 1, "invalid IPv4 address: fe80::1"},
		// A value flag at the end must not eat the positional before it.
		{[]string{"network", "create", "x", "-o"}, 125, "flag needs an argument: 'o' in -o\n\nUsage:  netd network create [OPTIONS] NETWORK\n\nRun 'netd network create --help' for more information\n"},
		{[]string{"network", "create", "x", "--label"}, 125, "flag needs an argument: --label\n"},
		{[]string{"network", "ls", "--filter"}, 125, "flag needs an argument: --filter\n"},
		{[]string{"network", "create", "x", "--internal=maybe"}, 125, "invalid argument \"maybe\" for \"--internal\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n"},
		{[]string{"bogus"}, 1, "netd: unknown command: netd bogus\n\nRun 'netd --help' for more information\n"},
		{[]string{"network", "bogus"}, 1, "netd: unknown command: netd network bogus\n\nUsage:  netd network\n\nRun 'netd network --help' for more information\n"},
		{[]string{"container", "bogus", "x"}, 1, "netd: unknown command: netd container bogus\n"},
		{[]string{"daemon", "--dataplane", "xdp"}, 1, "invalid --dataplane \"xdp\""},
		{[]string{"daemon", "--log-level", "loud"}, 1, "invalid --log-level \"loud\""},
	}
	for _, tt := range tests {
		out, errs, code := netd(t, f.host, "", tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.err) {
			t.Errorf("netd %v: code %d stderr %q; want %d and %q", tt.args, code, errs, tt.code, tt.err)
		}
		if out != "" {
			t.Errorf("netd %v: unexpected stdout %q", tt.args, out)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("usage errors reached the daemon %d times: %v", n, f.requests)
	}
}

func TestNetworkCreateFlags(t *testing.T) {
	f := newFakeDaemon(t)
	// Flags after the name work as in docker.
	out, errs, code := netd(t, f.host, "", "network", "create", "lab",
		"--subnet", "10.20.0.0/16", "--gateway=10.20.0.1", "--ip-range", "10.20.5.0/24",
		"--aux-address", "router=10.20.0.2", "--aux-address", "sw=10.20.0.3",
		"--internal", "--attachable", "-d", "bridge",
		"--label", "team=net", "--label", "flag", "--label", "list=a,b",
		"-o", "com.docker.network.bridge.name=br-lab", "--opt", "netd.dataplane=kernel")
	if code != 0 || errs != "" {
		t.Fatalf("code %d stderr %q", code, errs)
	}
	if out != strings.Repeat("c", 64)+"\n" {
		t.Errorf("stdout %q, want the full ID", out)
	}
	var req api.NetworkCreateRequest
	f.decodeSent(t, "POST /v1/networks/create", &req)
	want := api.NetworkCreateRequest{
		Name: "lab", Driver: "bridge", Internal: true, Attachable: true,
		IPAM: &api.IPAM{Driver: "default", Config: []api.IPAMConfig{{
			Subnet: "10.20.0.0/16", IPRange: "10.20.5.0/24", Gateway: "10.20.0.1",
			AuxiliaryAddresses: map[string]string{"router": "10.20.0.2", "sw": "10.20.0.3"},
		}}},
		Options: map[string]string{"com.docker.network.bridge.name": "br-lab", "netd.dataplane": "kernel"},
		Labels:  map[string]string{"team": "net", "flag": "", "list": "a,b"},
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("request\n%+v\nwant\n%+v", req, want)
	}

	// The daemon's error comes out as docker's.
	_, errs, code = netd(t, f.host, "", "network", "create", "lab")
	if code != 1 || errs != "Error response from daemon: network with name lab already exists\n" {
		t.Errorf("duplicate: %d %q", code, errs)
	}
}

func TestNetworkCreateBadInput(t *testing.T) {
	f := newFakeDaemon(t)
	// Refused flag values are usage errors (125), inconsistent ones 1.
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"--subnet", "10.0.0.0/33"}, "invalid subnet 10.0.0.0/33"},
		{[]string{"--subnet", "nonsense"}, "invalid CIDR address: nonsense"},
		{[]string{"--subnet", "10.1.0.0/16", "--gateway", "10.2.0.1"}, "no matching subnet for gateway 10.2.0.1"},
		{[]string{"--gateway", "10.2.0.1"}, "every ip-range or gateway must have a corresponding subnet"},
		{[]string{"--subnet", "10.1.0.0/16", "--ip-range", "10.9.0.0/24"}, "no matching subnet for range 10.9.0.0/24"},
		{[]string{"--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24"}, "multiple overlapping subnet configuration is not supported"},
		{[]string{"--subnet", "10.1.0.0/16", "--gateway", "10.1.0.1", "--subnet", "10.2.0.0/16", "--gateway", "10.1.0.2"}, "cannot configure multiple gateways (10.1.0.2, 10.1.0.1) for the same subnet (10.1.0.0/16)"},
		{[]string{"--subnet", "10.1.0.0/16", "--aux-address", "a=10.3.0.1"}, "no matching subnet for aux-address 10.3.0.1"},
		{[]string{"--subnet", "10.1.0.0/16", "--aux-address", "10.1.0.5"}, "\"--aux-address\" flag: expected host=ip"},
		{[]string{"--subnet", "10.1.0.0/16", "--aux-address", "a=bogus"}, "invalid aux-address bogus"},
		{[]string{"--subnet", "10.1.0.0/16", "--aux-address", "=10.1.0.5"}, "\"--aux-address\" flag: empty name"},
		{[]string{"-o", "=1"}, "invalid argument \"=1\" for \"--opt\" flag: empty name"},
		{[]string{"--label", "=v"}, "\"--label\" flag: invalid label '=v': empty name"},
		{[]string{"--ipv6"}, "IPv6 networks are not supported yet"},
		{[]string{"--subnet", "fd00::/64"}, "IPv6 networks are not supported yet"},
	}
	for _, tt := range tests {
		args := append([]string{"network", "create", "x"}, tt.args...)
		_, errs, code := netd(t, f.host, "", args...)
		want := 1
		if strings.Contains(tt.err, "flag: ") {
			want = 125
		}
		if code != want || !strings.Contains(errs, tt.err) {
			t.Errorf("%v: code %d stderr %q, want %q", tt.args, code, errs, tt.err)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("bad input reached the daemon: %v", f.requests)
	}
}

func TestNetworkLsCommand(t *testing.T) {
	f := newFakeDaemon(t)
	out, errs, code := netd(t, f.host, "", "network", "ls", "-f", "driver=bridge", "--filter", "Name = n2 ", "-f", "driver=null", "-q")
	if code != 0 || errs != "" {
		t.Fatalf("code %d stderr %q", code, errs)
	}
	if !strings.HasPrefix(out, "f2de39df4171\n") || strings.Count(out, "\n") != 6 {
		t.Errorf("stdout %q", out)
	}
	got := f.requests[0]
	if !strings.HasPrefix(got, "GET /v1/networks?filters=") {
		t.Fatalf("request %q", got)
	}
	q, err := urlQueryFilters(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{"driver": {"bridge", "null"}, "name": {"n2"}}; !reflect.DeepEqual(q, want) {
		t.Errorf("filters %v, want %v", q, want)
	}
	out, _, _ = netd(t, f.host, "", "network", "list", "--format", "{{.Name}}", "--no-trunc")
	if !strings.HasPrefix(out, "bridge\nhost\nn2\nn10\n") {
		t.Errorf("list alias + format: %q", out)
	}
}

func TestNetworkInspectCommand(t *testing.T) {
	f := newFakeDaemon(t)
	out, errs, code := netd(t, f.host, "", "network", "inspect", "bridge", "nope", "host")
	if code != 1 || errs != "Error response from daemon: network nope not found\n" {
		t.Errorf("code %d stderr %q", code, errs)
	}
	var got []api.Network
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || got[0].Name != "bridge" || got[1].Name != "host" {
		t.Errorf("stdout %q (%v)", out, err)
	}
	out, _, code = netd(t, f.host, "", "network", "inspect", "-f", "{{.Name}} {{.Driver}}", "host", "none")
	if code != 0 || out != "host host\nnone null\n" {
		t.Errorf("-f: %d %q", code, out)
	}
	out, errs, code = netd(t, f.host, "", "network", "inspect", "nope")
	if code != 1 || out != "[]\n" || errs != "Error response from daemon: network nope not found\n" {
		t.Errorf("only missing: %d %q %q", code, out, errs)
	}
	// docker's inspect exits 64 on a template that does not parse.
	_, errs, code = netd(t, f.host, "", "network", "inspect", "--format", "{{.Name", "host")
	if code != 64 || !strings.Contains(errs, "template parsing error") {
		t.Errorf("bad template: %d %q", code, errs)
	}
	// One that fails on an item: the others are printed, the error after them;
	// nothing rendered prints one empty line, as docker.
	out, errs, code = netd(t, f.host, "", "network", "inspect", "--format", "{{.Nope}}", "host")
	if code != 1 || out != "\n" || !strings.Contains(errs, `map has no entry for key "Nope"`) {
		t.Errorf("template failing on an item: %d %q %q", code, out, errs)
	}
	out, _, code = netd(t, f.host, "", "network", "inspect", "-f", "json", "host", "none")
	if code != 0 || !strings.HasPrefix(out, `[{"Name":"host",`) || strings.Count(out, "\n") != 1 {
		t.Errorf("-f json: want one line holding the array: %d %q", code, out)
	}
}

func TestNetworkRmCommand(t *testing.T) {
	f := newFakeDaemon(t)
	out, errs, code := netd(t, f.host, "", "network", "rm", "n2", "nope", "bridge", "n10")
	if code != 1 || out != "n2\nn10\n" {
		t.Errorf("code %d stdout %q", code, out)
	}
	wantErr := "Error response from daemon: network nope not found\nError response from daemon: bridge is a pre-defined network and cannot be removed\n"
	if errs != wantErr {
		t.Errorf("stderr %q", errs)
	}
	out, errs, code = netd(t, f.host, "", "network", "remove", "-f", "nope", "web")
	if code != 0 || out != "web\n" || errs != "" {
		t.Errorf("rm -f: %d %q %q", code, out, errs)
	}
}

func TestNetworkPruneCommand(t *testing.T) {
	f := newFakeDaemon(t)
	out, _, code := netd(t, f.host, "n\n", "network", "prune")
	if code != 0 || out != pruneWarning+" [y/N] " {
		t.Errorf("declined: %d %q", code, out)
	}
	if f.count() != 0 {
		t.Errorf("declined prune reached the daemon: %v", f.requests)
	}
	out, _, code = netd(t, f.host, "y\n", "network", "prune", "--filter", "until=24h", "--filter", "label=a=b")
	if code != 0 || out != pruneWarning+" [y/N] Deleted Networks:\nn10\nn2\n\n" {
		t.Errorf("accepted: %d %q", code, out)
	}
	q, err := urlQueryFilters(f.requests[0])
	if err != nil || !reflect.DeepEqual(q, map[string][]string{"until": {"24h"}, "label": {"a=b"}}) {
		t.Errorf("filters %v %v", q, err)
	}
	out, _, code = netd(t, f.host, "", "network", "prune", "-f")
	if code != 0 || out != "Deleted Networks:\nn10\nn2\n\n" {
		t.Errorf("-f: %d %q", code, out)
	}
}

func TestNetworkConnectDisconnect(t *testing.T) {
	f := newFakeDaemon(t)
	_, errs, code := netd(t, f.host, "", "network", "connect", "n2", "c1", "--ip", "10.0.0.9", "--alias", "db", "--alias", "pg")
	if code != 0 || errs != "" {
		t.Fatalf("connect: %d %q", code, errs)
	}
	var cr api.NetworkConnectRequest
	f.decodeSent(t, "POST /v1/networks/n2/connect", &cr)
	want := api.NetworkConnectRequest{Container: "c1", EndpointConfig: &api.EndpointSettings{
		IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: "10.0.0.9"}, Aliases: []string{"db", "pg"}}}
	if !reflect.DeepEqual(cr, want) {
		t.Errorf("connect body %+v", cr)
	}
	_, errs, code = netd(t, f.host, "", "network", "disconnect", "-f", "n2", "c1")
	if code != 0 || errs != "" {
		t.Fatalf("disconnect: %d %q", code, errs)
	}
	var dr api.NetworkDisconnectRequest
	if err := json.Unmarshal(f.sent("POST /v1/networks/n2/disconnect"), &dr); err != nil || dr != (api.NetworkDisconnectRequest{Container: "c1", Force: true}) {
		t.Errorf("disconnect body %+v %v", dr, err)
	}
	_, errs, code = netd(t, f.host, "", "network", "connect", "nope", "c1")
	if code != 1 || errs != "Error response from daemon: network nope not found\n" {
		t.Errorf("connect missing: %d %q", code, errs)
	}
}

func TestContainerCommands(t *testing.T) {
	f := newFakeDaemon(t)
	out, errs, code := netd(t, f.host, "", "container", "create", "web1", "--network", "n2", "--network", "n10",
		"--ip", "10.0.0.5", "--mac-address", "02:42:AC:11:00:02", "--label", "app=web")
	if code != 0 || errs != "" || out != strings.Repeat("d", 64)+"\n" {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	var req api.ContainerCreateRequest
	f.decodeSent(t, "POST /v1/containers/create", &req)
	want := api.ContainerCreateRequest{Name: "web1", Labels: map[string]string{"app": "web"}, Networks: []api.ContainerNetworkRequest{
		{Network: "n2", Settings: api.EndpointSettings{IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: "10.0.0.5"}, MacAddress: "02:42:ac:11:00:02"}},
		{Network: "n10"},
	}}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("create body\n%+v\nwant\n%+v", req, want)
	}

	// No --network: the daemon picks the default bridge.
	if _, errs, code := netd(t, f.host, "", "container", "create", "plain"); code != 0 {
		t.Fatalf("plain: %q", errs)
	}
	req = api.ContainerCreateRequest{}
	if err := json.Unmarshal(f.sent("POST /v1/containers/create"), &req); err != nil || len(req.Networks) != 0 {
		t.Errorf("plain body %+v %v", req, err)
	}

	out, _, code = netd(t, f.host, "", "container", "ls", "-q")
	if code != 0 || out != "dddddddddddd\ndddddddddddd\n" {
		t.Errorf("ls -q: %d %q", code, out)
	}
	out, errs, code = netd(t, f.host, "", "container", "inspect", "-f", "{{.Name}}", "web1", "ghost")
	if code != 1 || out != "web1\n" || errs != "Error response from daemon: container ghost not found\n" {
		t.Errorf("inspect: %d %q %q", code, out, errs)
	}
	out, errs, code = netd(t, f.host, "", "container", "rm", "web1", "ghost")
	if code != 1 || out != "web1\n" || errs != "Error response from daemon: container ghost not found\n" {
		t.Errorf("rm: %d %q %q", code, out, errs)
	}
	_, _, code = netd(t, f.host, "", "container", "rm", "-f", "plain", "ghost")
	if code != 0 {
		t.Errorf("rm -f: %d", code)
	}
	if !strings.Contains(strings.Join(f.requests, "\n"), "DELETE /v1/containers/plain?force=1") {
		t.Errorf("rm -f did not send force: %v", f.requests)
	}
	_, errs, code = netd(t, f.host, "", "container", "exec", "ghost", "--", "true")
	if code != 1 || errs != "Error response from daemon: container ghost not found\n" {
		t.Errorf("exec missing: %d %q", code, errs)
	}
}

func TestContainerLsFormat(t *testing.T) {
	cts := []api.Container{
		{ID: strings.Repeat("b", 64), Name: "web2", NetworkSettings: api.NetworkSettings{SandboxKey: "/run/netns/n1-web2"}},
		{ID: strings.Repeat("a", 64), Name: "web1", Labels: map[string]string{"app": "web"}, NetworkSettings: api.NetworkSettings{
			SandboxKey: "/run/netns/n1-web1",
			Networks: map[string]api.ContainerEndpoint{
				"zeta":  {Interface: "eth0", IPAddress: "10.1.0.2", IPPrefixLen: 24},
				"alpha": {Interface: "eth1", IPAddress: "10.2.0.2", IPPrefixLen: 24},
			},
			Ports: api.PortMap{
				"80/tcp": {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "::", HostPort: "8080"}},
				"90/udp": {{HostIP: "0.0.0.0", HostPort: "9000"}},
			}}},
	}
	var b bytes.Buffer
	if err := writeContainers(&b, cts, "", false, false); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"CONTAINER ID   NAME      NETWORKS     IP ADDRESSES        PORTS\n" +
		"aaaaaaaaaaaa   web1      zeta,alpha   10.1.0.2,10.2.0.2   0.0.0.0:8080->80/tcp, 0.0.0.0:9000->90/udp, [::]:8080->80/tcp\n" +
		"bbbbbbbbbbbb   web2                                       \n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if err := writeContainers(&b, cts, "{{.Name}} {{.SandboxKey}} {{.Label \"app\"}}", false, false); err != nil {
		t.Fatal(err)
	}
	if b.String() != "web1 /run/netns/n1-web1 web\nweb2 /run/netns/n1-web2 \n" {
		t.Errorf("template: %q", b.String())
	}
	b.Reset()
	if err := writeContainers(&b, cts[1:], "json", false, true); err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["ID"] != strings.Repeat("a", 64) || m["Networks"] != "zeta,alpha" {
		t.Errorf("json: %q %v", b.String(), err)
	}
}

func TestDataplaneShow(t *testing.T) {
	f := newFakeDaemon(t)
	f.status = api.DataplaneStatus{
		Default: "ebpf", PinDir: "/sys/fs/bpf/netd/node1",
		Programs: []api.ProgramAttachment{
			{Interface: "nd2222", Hook: "tcx-ingress", Program: "from_container", ProgramID: 42, Pinned: "/sys/fs/bpf/netd/node1/links/nd2222"},
			{Interface: "nd1111", Hook: "tcx-ingress", Program: "from_container", ProgramID: 41},
		},
		Endpoints: []api.EndpointCounters{
			{Network: "lab", Container: strings.Repeat("2", 64), Interface: "nd2222", FastPackets: 10, FastBytes: 980, SlowPackets: 3,
				Drops: map[string]uint64{"spoof_ip": 2, "spoof_mac": 1, "icc": 0}},
			{Network: "lab", Container: strings.Repeat("1", 64), Interface: "nd1111"},
			{Network: "lab", Container: strings.Repeat("9", 64), Interface: "nd9999"}, // removed meanwhile
		},
	}
	// The status names containers by ID; the table shows their names.
	f.containers["web1"] = api.Container{ID: strings.Repeat("1", 64), Name: "web1"}
	f.containers["web2"] = api.Container{ID: strings.Repeat("2", 64), Name: "web2"}
	out, errs, code := netd(t, f.host, "", "dataplane")
	if code != 0 || errs != "" {
		t.Fatalf("%d %q", code, errs)
	}
	want := "" +
		"Default dataplane: ebpf\nPin directory:     /sys/fs/bpf/netd/node1\n\n" +
		"INTERFACE   HOOK          PROGRAM          PROG-ID   PINNED\n" +
		"nd1111      tcx-ingress   from_container   41        \n" +
		"nd2222      tcx-ingress   from_container   42        /sys/fs/bpf/netd/node1/links/nd2222\n" +
		"\n" +
		"NETWORK   CONTAINER      INTERFACE   FAST-PKTS   FAST-BYTES   SLOW-PKTS   DROPS\n" +
		"lab       999999999999   nd9999      0           0            0           0\n" +
		"lab       web1           nd1111      0           0            0           0\n" +
		"lab       web2           nd2222      10          980          3           spoof_ip=2,spoof_mac=1\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	out, _, code = netd(t, f.host, "", "dataplane", "show", "--format", "json")
	var st api.DataplaneStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || !reflect.DeepEqual(st, f.status) {
		t.Errorf("json: %d %v %q", code, err, out)
	}
	out, _, _ = netd(t, f.host, "", "dataplane", "show", "--format", "{{range .Programs}}{{.ProgramID}} {{end}}")
	if out != "42 41 \n" {
		t.Errorf("template: %q", out)
	}
}

func TestVersionAndDaemonDown(t *testing.T) {
	f := newFakeDaemon(t)
	out, _, code := netd(t, f.host, "", "version")
	if code != 0 || !strings.Contains(out, "Client:\n Version:     dev\n API version: v1\n") ||
		!strings.Contains(out, "Server:\n Version:     1.2.3\n") || !strings.Contains(out, " Node name:   node1\n") {
		t.Errorf("version: %d\n%s", code, out)
	}
	// docker --version / -v: the client's version, no daemon needed.
	for _, flag := range []string{"--version", "-v"} {
		if out, _, code := netd(t, "/nonexistent.sock", "", flag); code != 0 || out != "netd version dev\n" {
			t.Errorf("%s: %d %q", flag, code, out)
		}
	}
	out, _, _ = netd(t, f.host, "", "version", "-f", "{{.Server.NodeName}} {{.Client.APIVersion}}")
	if out != "node1 v1\n" {
		t.Errorf("version -f: %q", out)
	}

	dir, err := os.MkdirTemp("", "ndt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	down := filepath.Join(dir, "no.sock")
	msg := "Cannot connect to the netd daemon at unix://" + down + ". Is the netd daemon running?\n"
	for _, args := range [][]string{{"network", "ls"}, {"network", "rm", "a", "b"}, {"network", "inspect", "a"}, {"container", "ls"}} {
		out, errs, code := netd(t, down, "", args...)
		if code != 1 || errs != msg || out != "" {
			t.Errorf("%v with daemon down: %d %q %q", args, code, out, errs)
		}
	}
	out, errs, code := netd(t, down, "", "version")
	if code != 1 || errs != msg || !strings.HasPrefix(out, "Client:\n") || strings.Contains(out, "Server") {
		t.Errorf("version with daemon down: %d %q %q", code, out, errs)
	}
	t.Setenv("NETD_HOST", f.host)
	var o, e bytes.Buffer
	if code := run(newApp(strings.NewReader(""), &o, &e), []string{"netd", "network", "ls", "-q"}); code != 0 || o.Len() == 0 {
		t.Errorf("NETD_HOST ignored: %d %q", code, e.String())
	}
}

func urlQueryFilters(reqURI string) (map[string][]string, error) {
	_, q, _ := strings.Cut(reqURI, "?")
	vals, err := parseQuery(q)
	if err != nil {
		return nil, err
	}
	var f map[string][]string
	err = json.Unmarshal([]byte(vals.Get("filters")), &f)
	return f, err
}

func TestParsePublishAndPortLines(t *testing.T) {
	pm, err := parsePublish([]string{"8080:80", "127.0.0.1:9000-9001:90-91/udp", "53/udp", "[::1]:7000-7010:70"})
	if err != nil {
		t.Fatal(err)
	}
	want := api.PortMap{
		"80/tcp": {{HostPort: "8080"}},
		"90/udp": {{HostIP: "127.0.0.1", HostPort: "9000"}},
		"91/udp": {{HostIP: "127.0.0.1", HostPort: "9001"}},
		"53/udp": {{}},
		"70/tcp": {{HostIP: "::1", HostPort: "7000-7010"}},
	}
	if !reflect.DeepEqual(pm, want) {
		t.Errorf("parsePublish = %v, want %v", pm, want)
	}
	for _, bad := range []string{"80/sctpx", "x:80", "1.2.3:80:80", "8080-8081:80-82", "70000:80"} {
		if _, err := parsePublish([]string{bad}); err == nil {
			t.Errorf("parsePublish(%q): no error", bad)
		}
	}
	ct := api.Container{Name: "web", NetworkSettings: api.NetworkSettings{Ports: api.PortMap{
		"443/tcp": {{HostIP: "0.0.0.0", HostPort: "8443"}},
		"80/tcp":  {{HostIP: "::", HostPort: "8080"}, {HostIP: "0.0.0.0", HostPort: "8080"}},
		"53/udp":  {{HostIP: "127.0.0.1", HostPort: "5353"}},
		"81/tcp":  nil,
	}}}
	lines, err := portLines(ct, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n"); got != "53/udp -> 127.0.0.1:5353\n80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n443/tcp -> 0.0.0.0:8443" {
		t.Errorf("port lines:\n%s", got)
	}
	if lines, err := portLines(ct, "80"); err != nil || strings.Join(lines, ",") != "0.0.0.0:8080,[::]:8080" {
		t.Errorf("port 80 = %v, %v", lines, err)
	}
	if _, err := portLines(ct, "81/tcp"); err == nil || err.Error() != "Error: No public port '81/tcp' published for web" {
		t.Errorf("port 81: %v", err)
	}
}

func TestBashCompletion(t *testing.T) {
	// urfave/cli reads the word before the flag from os.Args.
	netd := func(t *testing.T, host, stdin string, args ...string) (string, string, int) {
		saved := os.Args
		defer func() { os.Args = saved }()
		os.Args = append([]string{"netd", "-H", host}, args...)
		return netd(t, host, stdin, args...)
	}
	out, _, code := netd(t, "unix:///nonexistent", "", "completion", "bash")
	if code != 0 || !strings.Contains(out, "complete -o bashdefault -o default -F _netd_complete netd") {
		t.Fatalf("completion bash: exit %d\n%s", code, out)
	}
	out, _, code = netd(t, "unix:///nonexistent", "", "network", "--generate-bash-completion")
	if code != 0 || !strings.Contains(out, "create\n") || !strings.Contains(out, "prune\n") {
		t.Errorf("network completions: exit %d %q", code, out)
	}
	out, _, code = netd(t, "unix:///nonexistent", "", "container", "create", "--pu", "--generate-bash-completion")
	if code != 0 || !strings.Contains(out, "--publish") {
		t.Errorf("flag completions: exit %d %q", code, out)
	}
	if _, errOut, code := netd(t, "unix:///nonexistent", "", "completion", "fish"); code == 0 || !strings.Contains(errOut, `unsupported shell "fish"`) {
		t.Errorf("completion fish: exit %d %q", code, errOut)
	}
}
