package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api/apitest"
)

// serve starts h on a fresh unix socket and returns a client for it.
func serve(t *testing.T, h http.Handler) *Client {
	t.Helper()
	c, err := NewClient(apitest.Serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type seen struct {
	method, path, query string
	body                []byte
}

func recorder(t *testing.T, status int, reply any, got *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.query = r.Method, r.URL.EscapedPath(), r.URL.RawQuery
		got.body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if reply != nil {
			if err := json.NewEncoder(w).Encode(reply); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestParseHost(t *testing.T) {
	for in, want := range map[string]string{
		"":                     DefaultSocket,
		"unix:///tmp/x.sock":   "/tmp/x.sock",
		"/var/run/netd/a.sock": "/var/run/netd/a.sock",
		"rel.sock":             "rel.sock",
	} {
		got, err := ParseHost(in)
		if err != nil || got != want {
			t.Errorf("ParseHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp://127.0.0.1:2375", "unix://"} {
		if _, err := ParseHost(bad); err == nil {
			t.Errorf("ParseHost(%q) succeeded", bad)
		}
	}
}

func TestNetworkListSendsFilters(t *testing.T) {
	var got seen
	want := []Network{{Name: "bridge", ID: "abc", Driver: "bridge", Scope: "local"}}
	c := serve(t, recorder(t, 200, want, &got))
	ns, err := c.NetworkList(context.Background(), map[string][]string{"driver": {"bridge"}, "name": {"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ns, want) {
		t.Errorf("got %+v", ns)
	}
	if got.method != "GET" || got.path != "/v1/networks" {
		t.Errorf("request %s %s", got.method, got.path)
	}
	if !strings.HasPrefix(got.query, "filters=") {
		t.Fatalf("query %q", got.query)
	}
	var f map[string][]string
	q, err := url.QueryUnescape(strings.TrimPrefix(got.query, "filters="))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(q), &f); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, map[string][]string{"driver": {"bridge"}, "name": {"a", "b"}}) {
		t.Errorf("filters %v", f)
	}

	// No filters: no query at all.
	if _, err := c.NetworkList(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got.query != "" {
		t.Errorf("query without filters: %q", got.query)
	}
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	var got seen
	tests := []struct {
		name         string
		call         func(c *Client) error
		method, path string
		query, body  string
	}{
		{"create", func(c *Client) error {
			r, err := c.NetworkCreate(ctx, NetworkCreateRequest{Name: "n1", Driver: "bridge"})
			if err == nil && r.ID != "id1" {
				return errors.New("wrong id " + r.ID)
			}
			return err
		}, "POST", "/v1/networks/create", "", `"Name":"n1"`},
		{"inspect", func(c *Client) error { _, err := c.NetworkInspect(ctx, "a b/c"); return err },
			"GET", "/v1/networks/a%20b%2Fc", "", ""},
		{"rm", func(c *Client) error { return c.NetworkRemove(ctx, "n1") }, "DELETE", "/v1/networks/n1", "", ""},
		{"prune", func(c *Client) error {
			_, err := c.NetworksPrune(ctx, map[string][]string{"label": {"a"}})
			return err
		}, "POST", "/v1/networks/prune", "filters=", ""},
		{"connect", func(c *Client) error {
			return c.NetworkConnect(ctx, "n1", "c1", &EndpointSettings{IPAMConfig: &EndpointIPAMConfig{IPv4Address: "10.0.0.5"}})
		}, "POST", "/v1/networks/n1/connect", "", `"IPv4Address":"10.0.0.5"`},
		{"disconnect", func(c *Client) error { return c.NetworkDisconnect(ctx, "n1", "c1", true) },
			"POST", "/v1/networks/n1/disconnect", "", `"Force":true`},
		{"ctr ls", func(c *Client) error { _, err := c.ContainerList(ctx); return err }, "GET", "/v1/containers", "", ""},
		{"ctr create", func(c *Client) error {
			_, err := c.ContainerCreate(ctx, ContainerCreateRequest{Name: "c1", Networks: []ContainerNetworkRequest{{Network: "n1"}}})
			return err
		}, "POST", "/v1/containers/create", "", `"Network":"n1"`},
		{"ctr inspect", func(c *Client) error { _, err := c.ContainerInspect(ctx, "c1"); return err }, "GET", "/v1/containers/c1", "", ""},
		{"ctr rm", func(c *Client) error { return c.ContainerRemove(ctx, "c1", false) }, "DELETE", "/v1/containers/c1", "", ""},
		{"ctr rm -f", func(c *Client) error { return c.ContainerRemove(ctx, "c1", true) }, "DELETE", "/v1/containers/c1", "force=1", ""},
		{"dataplane", func(c *Client) error { _, err := c.DataplaneStatus(ctx); return err }, "GET", "/v1/dataplane", "", ""},
		{"version", func(c *Client) error { _, err := c.Version(ctx); return err }, "GET", "/v1/version", "", ""},
	}
	obj := recorder(t, 200, map[string]string{"Id": "id1"}, &got)
	list := recorder(t, 200, []Container{}, &got)
	c := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/containers" {
			list.ServeHTTP(w, r)
			return
		}
		obj.ServeHTTP(w, r)
	}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = seen{}
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			if got.method != tt.method || got.path != tt.path {
				t.Errorf("sent %s %s, want %s %s", got.method, got.path, tt.method, tt.path)
			}
			if !strings.HasPrefix(got.query, tt.query) || (tt.query == "" && got.query != "") {
				t.Errorf("query %q, want prefix %q", got.query, tt.query)
			}
			if !strings.Contains(string(got.body), tt.body) {
				t.Errorf("body %s lacks %s", got.body, tt.body)
			}
		})
	}
}

func TestDaemonError(t *testing.T) {
	var got seen
	c := serve(t, recorder(t, 404, ErrorResponse{Message: "network foo not found"}, &got))
	_, err := c.NetworkInspect(context.Background(), "foo")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err %T %v", err, err)
	}
	if e.StatusCode != 404 || e.Message != "network foo not found" {
		t.Errorf("got %+v", e)
	}
	if err.Error() != "Error response from daemon: network foo not found" {
		t.Errorf("text %q", err.Error())
	}
	if !IsNotFound(err) {
		t.Error("IsNotFound false")
	}

	c = serve(t, recorder(t, 409, ErrorResponse{Message: "network with name x already exists"}, &got))
	_, err = c.NetworkCreate(context.Background(), NetworkCreateRequest{Name: "x"})
	if IsNotFound(err) || err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("409: %v", err)
	}

	// A body that is not JSON still gives its text.
	c = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	err = c.NetworkRemove(context.Background(), "x")
	if !errors.As(err, &e) || e.StatusCode != 500 || e.Message != "boom" {
		t.Errorf("plain body: %v", err)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	dir, err := os.MkdirTemp("", "ndc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "absent.sock")
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Version(context.Background())
	want := "Cannot connect to the netd daemon at unix://" + sock + ". Is the netd daemon running?"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Errorf("not a *ConnectError: %T", err)
	}
}
