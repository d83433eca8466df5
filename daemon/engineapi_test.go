//go:build linux

package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/network"

	"github.com/netd-dev/netd/api"
)

// engineCall sends one Engine API request and returns the recorder.
func engineCall(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

// decodeAs fails the test unless data is JSON of type T.
func decodeAs[T any](t *testing.T, what string, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %q is not a %T: %v", what, data, v, err)
	}
	return v
}

func TestEnginePing(t *testing.T) {
	h := NewHandler(newTestEnv(t).m, nil)
	for _, tc := range []struct{ method, path, body string }{
		{"HEAD", "/_ping", ""},
		{"GET", "/_ping", "OK"},
		{"GET", "/v1.41/_ping", "OK"},
		{"HEAD", "/v1.51/_ping", ""},
	} {
		rec := engineCall(t, h, tc.method, tc.path, "")
		if rec.Code != 200 || rec.Body.String() != tc.body {
			t.Errorf("%s %s: %d %q, want 200 %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.body)
		}
		for k, want := range map[string]string{
			"Api-Version": EngineMaxAPIVersion, "Ostype": "linux", "Docker-Experimental": "false",
			"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache, no-store, must-revalidate",
		} {
			if got := rec.Header().Get(k); got != want {
				t.Errorf("%s %s: header %s = %q, want %q", tc.method, tc.path, k, got, want)
			}
		}
	}
}

func TestEngineVersionDecodesWithSDK(t *testing.T) {
	h := NewHandler(newTestEnv(t).m, nil)
	for _, path := range []string{"/version", "/v1.40/version"} {
		rec := engineCall(t, h, "GET", path, "")
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		v := decodeAs[types.Version](t, path, rec.Body.Bytes())
		if v.Platform.Name != "netd" || v.APIVersion != EngineMaxAPIVersion || v.MinAPIVersion != EngineMinAPIVersion ||
			v.Os != "linux" || v.GoVersion == "" || len(v.Components) != 1 ||
			v.Components[0].Name != "netd" || v.Components[0].Details["NodeName"] != "node1" {
			t.Errorf("GET %s = %+v", path, v)
		}
	}
}

func TestEngineVersionRange(t *testing.T) {
	h := NewHandler(newTestEnv(t).m, nil)
	wantStatus(t, h, "GET", "/v1.39/networks", "", 400,
		"client version 1.39 is too old. Minimum supported API version is 1.40, please upgrade your client to a newer version")
	wantStatus(t, h, "GET", "/v1.0/networks", "", 400,
		"client version 1.0 is too old. Minimum supported API version is 1.40, please upgrade your client to a newer version")
	wantStatus(t, h, "GET", "/v1.52/networks", "", 400, "client version 1.52 is too new. Maximum supported API version is 1.51")
	for _, p := range []string{"/networks", "/v1.40/networks", "/v1.41/networks", "/v1.51/networks"} {
		wantStatus(t, h, "GET", p, "", 200, "")
	}
}

func TestEngineNotServed(t *testing.T) {
	h := NewHandler(newTestEnv(t).m, nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1.51/containers/json"},
		{"GET", "/info"},
		{"PUT", "/v1.41/networks/bridge"},
		{"GET", "/v1.41/networks/bridge/connect"},
		{"GET", "/v1.4x/networks"},
	} {
		wantStatus(t, h, tc.method, tc.path, "", 501, "netd does not serve "+tc.method+" "+tc.path+
			": of the Docker Engine API it serves /_ping, /version and the network calls (docker network ...)")
	}
	wantStatus(t, h, "GET", "/v1.41/networks/../containers/json", "", 400, "")
	// netd's own API keeps its answers.
	wantStatus(t, h, "GET", "/v1/nosuch", "", 404, "page not found: GET /v1/nosuch")
}

func TestEngineNetworkLifecycle(t *testing.T) {
	e := newTestEnv(t)
	h := NewHandler(e.m, nil)

	// The body docker 28's CLI sends for `network create --subnet ... --label a=b front`.
	body := `{"Name":"front","Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.99.0.0/24","Gateway":"10.99.0.1"}]},` +
		`"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{"a":"b"}}`
	rec := engineCall(t, h, "POST", "/v1.50/networks/create", body)
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"Warning":""`) {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	created := decodeAs[network.CreateResponse](t, "create", rec.Body.Bytes())
	if len(created.ID) != 64 {
		t.Fatalf("create answered ID %q", created.ID)
	}
	// Docker 20.10's CLI sends CheckDuplicate and a plain EnableIPv6.
	wantStatus(t, h, "POST", "/v1.41/networks/create", `{"Name":"front","CheckDuplicate":true,"EnableIPv6":false}`, 409,
		"network with name front already exists")
	wantStatus(t, h, "POST", "/networks/create", `{"Name":"v6","EnableIPv6":true}`, 400, "IPv6 networks are not supported yet")
	wantStatus(t, h, "POST", "/networks/create", `{"Name":"v6","EnableIPv4":false}`, 400,
		"IPv4 cannot be disabled: netd networks are IPv4 networks")
	wantStatus(t, h, "POST", "/networks/create", `{"Name":"sw","Scope":"swarm"}`, 400,
		`scope "swarm" is not supported: netd creates local networks only`)
	wantStatus(t, h, "POST", "/networks/create", `{"Name":"c","ConfigOnly":true}`, 400,
		"config-only networks (--config-only, --config-from) are not supported by netd")

	rec = engineCall(t, h, "GET", "/v1.41/networks/front", "")
	n := decodeAs[network.Inspect](t, "inspect", rec.Body.Bytes())
	if rec.Code != 200 || n.ID != created.ID || n.Labels["a"] != "b" || len(n.IPAM.Config) != 1 ||
		n.IPAM.Config[0].Subnet != "10.99.0.0/24" || n.IPAM.Config[0].Gateway != "10.99.0.1" || n.Scope != "local" {
		t.Errorf("inspect: %d %+v", rec.Code, n)
	}
	wantStatus(t, h, "GET", "/networks/"+created.ID[:12]+"?scope=local", "", 200, "")
	wantStatus(t, h, "GET", "/networks/front?scope=swarm", "", 404, "network front not found")
	wantStatus(t, h, "GET", "/networks/front?verbose=maybe", "", 400, "invalid value for verbose: maybe")
	wantStatus(t, h, "GET", "/networks/nosuch", "", 404, "network nosuch not found")

	ctr := e.createCtr(t, "web")
	// docker's CLI always sends IPAMConfig, empty without --ip.
	wantStatus(t, h, "POST", "/v1.51/networks/front/connect",
		`{"Container":"web","EndpointConfig":{"IPAMConfig":{},"Links":null,"Aliases":["www"],"DriverOpts":{}}}`, 200, "")
	wantStatus(t, h, "POST", "/v1.51/networks/bridge/connect",
		`{"Container":"web","EndpointConfig":{"IPAMConfig":{"IPv6Address":"fd00::5"},"Links":["db"]}}`, 400,
		"netd does not support an IPv6 address (--ip6), links (--link) on an endpoint")
	wantStatus(t, h, "POST", "/networks/front/connect", `{"Container":"nosuch"}`, 404, "No such container: nosuch")

	// Inspect shows the container; the list leaves containers out, as Docker's does.
	rec = engineCall(t, h, "GET", "/networks/front", "")
	if n := decodeAs[network.Inspect](t, "inspect", rec.Body.Bytes()); n.Containers[ctr].Name != "web" {
		t.Errorf("inspect after connect: containers %+v", n.Containers)
	}
	rec = engineCall(t, h, "GET", "/v1.41/networks?filters="+url.QueryEscape(`{"label":{"a=b":true}}`), "")
	list := decodeAs[[]network.Summary](t, "list", rec.Body.Bytes())
	if rec.Code != 200 || len(list) != 1 || list[0].Name != "front" || list[0].Containers == nil || len(list[0].Containers) != 0 {
		t.Errorf("list with a label filter: %d %s", rec.Code, rec.Body)
	}
	// netd's own list still shows them.
	data := wantStatus(t, h, "GET", "/v1/networks?filters="+url.QueryEscape(`{"name":["front"]}`), "", 200, "")
	if own := decodeAs[[]api.Network](t, "netd list", data); len(own) != 1 || own[0].Containers[ctr].Name != "web" {
		t.Errorf("netd's /v1 list lost the containers: %s", data)
	}
	wantStatus(t, h, "GET", "/networks?filters="+url.QueryEscape(`{"color":["red"]}`), "", 400, "invalid filter 'color'")

	wantStatus(t, h, "DELETE", "/v1.51/networks/front", "", 403,
		"error while removing network: network front id "+created.ID+" has active endpoints")
	wantStatus(t, h, "POST", "/v1.51/networks/front/disconnect", `{"Container":"web","Force":false}`, 200, "")

	rec = engineCall(t, h, "POST", "/v1.51/networks/prune?filters="+url.QueryEscape(`{"label":["a=b"]}`), "")
	if rep := decodeAs[network.PruneReport](t, "prune", rec.Body.Bytes()); rec.Code != 200 || len(rep.NetworksDeleted) != 1 || rep.NetworksDeleted[0] != "front" {
		t.Errorf("prune: %d %s", rec.Code, rec.Body)
	}
	wantStatus(t, h, "DELETE", "/networks/front", "", 404, "network front not found")
	wantStatus(t, h, "POST", "/networks/create", `{"Name":"gone"}`, 201, "")
	wantStatus(t, h, "DELETE", "/networks/gone", "", 204, "")
}
