//go:build linux

package daemon

import (
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"golang.org/x/sys/unix"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/buildinfo"
)

// The Docker Engine API versions the engine routes answer. 1.40 (Docker
// 19.03) is the oldest whose network calls have today's shapes (list without
// containers, filters as a JSON map); 1.51 is Docker 28.3-28.5's, the newest
// whose network calls netd knows. Unversioned requests get the maximum.
const (
	EngineMinAPIVersion = "1.40"
	EngineMaxAPIVersion = "1.51"
)

// isNetdPath says whether p belongs to netd's own API (/v1/...), which a
// Docker Engine path never does: Docker's versions have a minor part.
func isNetdPath(p string) bool {
	return p == "/"+api.Version || strings.HasPrefix(p, "/"+api.Version+"/")
}

// splitAPIs hands netd's /v1 paths to netd and all others to engine.
func splitAPIs(netd, engine http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isNetdPath(r.URL.Path) {
			netd.ServeHTTP(w, r)
			return
		}
		engine.ServeHTTP(w, r)
	})
}

// engineVersionPrefix is Docker's optional /v<version> path prefix.
var engineVersionPrefix = regexp.MustCompile(`^/v([0-9.]+)(/.*)$`)

// engineAPI serves the Docker Engine API calls of `docker network` (and the
// /_ping and /version every docker client sends first) by translating them
// to the manager; anything else is answered as not served.
type engineAPI struct {
	s   *server
	mux *http.ServeMux
}

func newEngineAPI(s *server) http.Handler {
	e := &engineAPI{s: s, mux: http.NewServeMux()}
	e.mux.HandleFunc("GET /_ping", e.ping)
	e.mux.HandleFunc("HEAD /_ping", e.ping)
	e.mux.HandleFunc("GET /version", e.version)
	e.mux.HandleFunc("GET /networks", e.listNetworks)
	e.mux.HandleFunc("GET /networks/{$}", e.listNetworks)
	e.mux.HandleFunc("POST /networks/create", e.createNetwork)
	e.mux.HandleFunc("POST /networks/prune", e.pruneNetworks)
	e.mux.HandleFunc("GET /networks/{id}", e.inspectNetwork)
	e.mux.HandleFunc("DELETE /networks/{id}", e.removeNetwork)
	e.mux.HandleFunc("POST /networks/{id}/connect", e.connect)
	e.mux.HandleFunc("POST /networks/{id}/disconnect", e.disconnect)
	return e
}

func (e *engineAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Docker's version middleware sets these on every answer.
	h := w.Header()
	h.Set("Server", "netd/"+buildinfo.Version+" ("+runtime.GOOS+")")
	h.Set("Api-Version", EngineMaxAPIVersion)
	h.Set("Ostype", runtime.GOOS)
	h.Set("Docker-Experimental", "false")

	p := r.URL.EscapedPath()
	if p != cleanPath(p) {
		writeError(w, http.StatusBadRequest,
			fmt.Sprintf(`invalid request path %q: it must not contain empty, "." or ".." segments`, p))
		return
	}
	inner := r
	if m := engineVersionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		if err := checkEngineVersion(m[1]); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		inner = withPath(r, m[2], len(m[0])-len(m[2]))
	}
	if _, pattern := e.mux.Handler(inner); pattern == "" {
		writeError(w, http.StatusNotImplemented, fmt.Sprintf(
			"netd does not serve %s %s: of the Docker Engine API it serves /_ping, /version and the network calls (docker network ...)",
			r.Method, r.URL.Path))
		return
	}
	e.mux.ServeHTTP(w, inner)
}

// checkEngineVersion refuses a version outside the range with Docker's texts.
func checkEngineVersion(v string) error {
	if versions.LessThan(v, EngineMinAPIVersion) {
		return errInvalid("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, EngineMinAPIVersion)
	}
	if versions.GreaterThan(v, EngineMaxAPIVersion) {
		return errInvalid("client version %s is too new. Maximum supported API version is %s", v, EngineMaxAPIVersion)
	}
	return nil
}

// withPath is r with its path replaced by rest, the version prefix of
// prefixLen bytes cut off (the prefix has no escapes, so the same length
// comes off the raw path).
func withPath(r *http.Request, rest string, prefixLen int) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path = rest
	if u.RawPath != "" {
		u.RawPath = u.RawPath[prefixLen:]
	}
	r2.URL = &u
	return r2
}

func (e *engineAPI) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = w.Write([]byte("OK"))
}

// engineVersion is the body of GET /version: the JSON shape of the SDK's
// types.Version (api/types is not imported: it would bring the image and
// swarm types into the daemon). A test decodes it with the SDK.
type engineVersion struct {
	Platform      enginePlatform    `json:"Platform"`
	Components    []engineComponent `json:"Components"`
	Version       string            `json:"Version"`
	APIVersion    string            `json:"ApiVersion"`
	MinAPIVersion string            `json:"MinAPIVersion,omitempty"`
	GitCommit     string            `json:"GitCommit"`
	GoVersion     string            `json:"GoVersion"`
	Os            string            `json:"Os"`
	Arch          string            `json:"Arch"`
	KernelVersion string            `json:"KernelVersion,omitempty"`
}

type enginePlatform struct {
	Name string `json:"Name"`
}

type engineComponent struct {
	Name    string            `json:"Name"`
	Version string            `json:"Version"`
	Details map[string]string `json:"Details,omitempty"`
}

func (e *engineAPI) version(w http.ResponseWriter, _ *http.Request) {
	kernel := ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	v := engineVersion{
		Platform:      enginePlatform{Name: "netd"},
		Version:       buildinfo.Version,
		APIVersion:    EngineMaxAPIVersion,
		MinAPIVersion: EngineMinAPIVersion,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
	}
	v.Components = []engineComponent{{
		Name:    "netd",
		Version: buildinfo.Version,
		// The CLI prints an "Engine" block from the fields above itself.
		Details: map[string]string{
			"KernelVersion": kernel,
			"NodeName":      e.s.m.NodeName(),
			"Dataplane":     e.s.m.DefaultDataplane(),
		},
	}}
	writeJSON(w, http.StatusOK, v)
}

func (e *engineAPI) listNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filtersOf(r)
	if !e.s.ok(w, r, err) {
		return
	}
	nets, err := e.s.m.ListNetworks(f)
	if !e.s.ok(w, r, err) {
		return
	}
	out := make([]network.Summary, len(nets))
	for i, n := range nets {
		out[i] = engineNetwork(n)
		// Docker's list leaves the attached containers out (API 1.28+).
		out[i].Containers = map[string]network.EndpointResource{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *engineAPI) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	verbose := false
	if v := q.Get("verbose"); v != "" {
		// Verbose adds, for a cluster-wide network, its endpoints on every host.
		var err error
		if verbose, err = strconv.ParseBool(v); err != nil {
			e.s.fail(w, r, errInvalid("invalid value for verbose: %s", v))
			return
		}
	}
	ref := r.PathValue("id")
	n, err := e.s.m.InspectNetworkVerbose(ref, verbose)
	if err == nil && q.Get("scope") != "" && q.Get("scope") != n.Scope {
		err = errNotFound("network %s not found", ref)
	}
	if e.s.ok(w, r, err) {
		writeJSON(w, http.StatusOK, engineNetwork(n))
	}
}

func (e *engineAPI) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req network.CreateRequest
	if !e.s.ok(w, r, decode(w, r, &req)) {
		return
	}
	own, err := netdCreateRequest(req)
	if !e.s.ok(w, r, err) {
		return
	}
	resp, err := e.s.m.CreateNetwork(r.Context(), own)
	if e.s.ok(w, r, err) {
		writeJSON(w, http.StatusCreated, network.CreateResponse{ID: resp.ID, Warning: resp.Warning})
	}
}

func (e *engineAPI) removeNetwork(w http.ResponseWriter, r *http.Request) {
	e.s.reply(w, r, http.StatusNoContent, nil, e.s.m.RemoveNetwork(r.Context(), r.PathValue("id")))
}

func (e *engineAPI) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filtersOf(r)
	if !e.s.ok(w, r, err) {
		return
	}
	rep, err := e.s.m.PruneNetworks(r.Context(), f)
	if e.s.ok(w, r, err) {
		writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: rep.NetworksDeleted})
	}
}

func (e *engineAPI) connect(w http.ResponseWriter, r *http.Request) {
	var req network.ConnectOptions
	if !e.s.ok(w, r, decode(w, r, &req)) {
		return
	}
	settings, err := netdEndpointSettings(req.EndpointConfig)
	if !e.s.ok(w, r, err) {
		return
	}
	err = e.s.m.Connect(r.Context(), r.PathValue("id"), api.NetworkConnectRequest{Container: req.Container, EndpointConfig: settings})
	e.s.reply(w, r, http.StatusOK, nil, err)
}

func (e *engineAPI) disconnect(w http.ResponseWriter, r *http.Request) {
	var req network.DisconnectOptions
	if !e.s.ok(w, r, decode(w, r, &req)) {
		return
	}
	err := e.s.m.Disconnect(r.Context(), r.PathValue("id"), api.NetworkDisconnectRequest{Container: req.Container, Force: req.Force})
	e.s.reply(w, r, http.StatusOK, nil, err)
}
