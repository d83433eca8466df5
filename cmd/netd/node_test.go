package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/apitest"
)

func fakeNodes(t *testing.T) (host string, keyBodies *[]string) {
	t.Helper()
	nodes := []api.Node{
		{Name: "n10", Addr: "10.0.0.10", Port: 7946, State: "dead", Version: "v1", StateChanged: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Name: "n2", Addr: "10.0.0.2", Port: 7946, State: "alive", Self: true, Endpoints: 3, Version: "v1"},
		{Name: "n3", Addr: "10.0.0.3", Port: 7946, State: "suspect", Endpoints: 1, Version: "v1"},
	}
	var bodies []string
	m := http.NewServeMux()
	write := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	m.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) { write(w, 200, nodes) })
	m.HandleFunc("GET /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, n := range nodes {
			if n.Name == r.PathValue("name") {
				write(w, 200, n)
				return
			}
		}
		write(w, 404, api.ErrorResponse{Message: "node " + r.PathValue("name") + " not found: `netd node ls` lists the members"})
	})
	m.HandleFunc("GET /v1/nodes/keys", func(w http.ResponseWriter, r *http.Request) {
		write(w, 200, api.NodeKeyResponse{Op: "list", Members: 3, Keys: map[string]int{"K1": 3, "K2": 2}, Primary: map[string]int{"K1": 3},
			Nodes: []api.NodeKeyReply{{Node: "n2"}, {Node: "n3"}, {Node: "n10", Error: "no answer within 5s"}}})
	})
	m.HandleFunc("POST /v1/nodes/keys/{op}", func(w http.ResponseWriter, r *http.Request) {
		var req api.NodeKeyRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		bodies = append(bodies, r.PathValue("op")+" "+req.Key)
		write(w, 200, api.NodeKeyResponse{Op: r.PathValue("op"), Members: 3, Nodes: []api.NodeKeyReply{{Node: "n2"}, {Node: "n3"}, {Node: "n10"}}})
	})
	return apitest.Serve(t, m), &bodies
}

func TestNodeLs(t *testing.T) {
	host, _ := fakeNodes(t)
	out, errs, code := netd(t, host, "", "node", "ls")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "NAME ADDRESS STATE ENDPOINTS VERSION" {
		t.Fatalf("table:\n%s", out)
	}
	// Natural order, this node marked.
	for i, want := range []string{"n2 * 10.0.0.2:7946 alive 3 v1", "n3 10.0.0.3:7946 suspect 1 v1", "n10 10.0.0.10:7946 dead 0 v1"} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	if out, _, _ := netd(t, host, "", "node", "ls", "-q"); out != "n2\nn3\nn10\n" {
		t.Errorf("-q: %q", out)
	}
	out, _, _ = netd(t, host, "", "node", "ls", "--format", "json")
	var row map[string]any
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &row); err != nil || row["Name"] != "n2" || row["Self"] != true {
		t.Errorf("json: %q (%v)", out, err)
	}
	if out, _, _ := netd(t, host, "", "node", "ls", "--format", "{{.Name}} {{.Since}}"); !strings.Contains(out, "n10 2026-01-02T03:04:05Z") {
		t.Errorf("template: %q", out)
	}
}

func TestNodeInspectAndKeys(t *testing.T) {
	host, bodies := fakeNodes(t)
	out, errs, code := netd(t, host, "", "node", "inspect", "n3", "nosuch")
	if code != 1 || !strings.Contains(errs, "node nosuch not found") {
		t.Fatalf("inspect: exit %d stderr %q", code, errs)
	}
	var got []api.Node
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || got[0].Name != "n3" {
		t.Fatalf("inspect output %q: %v", out, err)
	}
	out, errs, code = netd(t, host, "", "node", "key", "list")
	if code != 1 || !strings.Contains(errs, "n10: no answer within 5s") {
		t.Fatalf("key list: exit %d stderr %q", code, errs)
	}
	if f := strings.Join(strings.Fields(out), " "); f != "KEY NODES PRIMARY ON K1 3/3 3/3 K2 2/3 0/3" {
		t.Errorf("key list: %q", f)
	}
	if out, _, code := netd(t, host, "", "node", "key", "install", " NEWKEY "); code != 0 || out != "install: done on 3 of 3 nodes\n" {
		t.Errorf("install: %d %q", code, out)
	}
	if _, errs, code := netd(t, host, "", "node", "key", "use"); code == 0 || len(*bodies) != 1 {
		t.Errorf("use without a key: exit %d %q, requests %v", code, errs, *bodies)
	}
	if (*bodies)[0] != "install NEWKEY" {
		t.Errorf("request body %q", (*bodies)[0])
	}
}
