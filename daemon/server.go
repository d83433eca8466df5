//go:build linux

package daemon

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/buildinfo"
	"github.com/netd-dev/netd/api/errdefs"
)

// DefaultSocketGroup owns the API socket unless --group says otherwise,
// as the docker group does dockerd's; make install creates it.
const DefaultSocketGroup = "netd"

// setSocketGroup gives the socket at path to group (a name or a GID), as
// dockerd's --group does: a missing group is an error unless it is the
// default one, which is only warned about (the socket keeps the daemon's
// group). An empty group leaves the socket as it is.
func setSocketGroup(path, group string, log *slog.Logger) error {
	if group == "" {
		return nil
	}
	gid, err := lookupGID(group)
	if err != nil {
		if group != DefaultSocketGroup {
			return err
		}
		log.Warn(fmt.Sprintf("could not change group %s to %s: %v", path, group, err))
		return nil
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("chown socket %s to group %s: %w", path, group, err)
	}
	return nil
}

// lookupGID resolves a group name, or takes a number as the GID.
func lookupGID(name string) (int, error) {
	if g, err := user.LookupGroup(name); err == nil {
		return strconv.Atoi(g.Gid)
	}
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, nil
	}
	return -1, fmt.Errorf("group %s not found", name)
}

// maxBodyBytes bounds request bodies; every request we accept is tiny.
const maxBodyBytes = 1 << 20

// server holds the API handlers; it is stateless beyond the manager.
type server struct {
	m   *Manager
	log *slog.Logger
}

// NewHandler returns the HTTP handler of the /v1 API backed by m, and of
// the Docker Engine API's network calls on every other path (engineapi.go).
func NewHandler(m *Manager, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{m: m, log: log}
	mux := http.NewServeMux()
	v := "/" + api.Version
	mux.HandleFunc("GET "+v+"/version", s.version)
	mux.HandleFunc("GET "+v+"/networks", s.listNetworks)
	mux.HandleFunc("POST "+v+"/networks/create", s.createNetwork)
	mux.HandleFunc("POST "+v+"/networks/prune", s.pruneNetworks)
	mux.HandleFunc("GET "+v+"/networks/{id}", s.inspectNetwork)
	mux.HandleFunc("DELETE "+v+"/networks/{id}", s.removeNetwork)
	mux.HandleFunc("POST "+v+"/networks/{id}/connect", s.connect)
	mux.HandleFunc("POST "+v+"/networks/{id}/disconnect", s.disconnect)
	mux.HandleFunc("GET "+v+"/containers", s.listContainers)
	mux.HandleFunc("POST "+v+"/containers/create", s.createContainer)
	mux.HandleFunc("GET "+v+"/containers/{id}", s.inspectContainer)
	mux.HandleFunc("GET "+v+"/containers/{id}/netns", s.containerNetns)
	mux.HandleFunc("DELETE "+v+"/containers/{id}", s.removeContainer)
	mux.HandleFunc("GET "+v+"/dataplane", s.dataplane)
	mux.HandleFunc("GET "+v+"/system/check", s.systemCheck)
	mux.HandleFunc("POST "+v+"/system/prune", s.systemPrune)
	mux.HandleFunc("GET "+v+"/nodes", s.listNodes)
	mux.HandleFunc("GET "+v+"/nodes/keys", s.listKeys)
	mux.HandleFunc("POST "+v+"/nodes/keys/{op}", s.keyOp)
	mux.HandleFunc("GET "+v+"/nodes/{name}", s.inspectNode)
	return bodyDeadline(s.logged(splitAPIs(jsonMuxErrors(mux), newEngineAPI(s))))
}

// Timeouts of the API server. Hijacked connections (netns passing) are
// not subject to them once hijacked.
var (
	// headerReadTimeout bounds the wait for a request's headers.
	headerReadTimeout = 10 * time.Second
	// idleTimeout closes keep-alive connections idle between requests.
	idleTimeout = 30 * time.Second
)

// newAPIServer is the http.Server of the API. No ReadTimeout (it would
// cancel slow handlers, see bodyDeadline) and no WriteTimeout (answers are
// small, and it would cut off any long answer).
func newAPIServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerReadTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// bodyReadTimeout bounds how long a request body may take to arrive once
// its headers have: bodies are small JSON documents on a local socket.
var bodyReadTimeout = 10 * time.Second

// bodyDeadline gives a request with a body bodyReadTimeout to send all of
// it, and lifts the deadline at its end: a read deadline still set while
// the handler runs would cancel the request's context when it fires (the
// server's ReadTimeout does that, which is why it is not used). A handler
// that hijacks before reading its body to the end must clear the deadline.
func bodyDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			// Not supported (test recorders): no deadline to lift either.
			if rc.SetReadDeadline(time.Now().Add(bodyReadTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the connection's read deadline once the body is read.
type deadlineBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// jsonMuxErrors turns the mux's plain-text 404 and 405 answers into JSON
// error bodies, keeping the status and the Allow header. Paths the mux
// would clean and redirect are refused: a client following the redirect
// would act on another object than the one it named.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if p != cleanPath(p) {
			writeError(w, http.StatusBadRequest,
				fmt.Sprintf(`invalid request path %q: it must not contain empty, "." or ".." segments`, p))
			return
		}
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// /v1/networks/ and /v1/containers/: an object route with an empty name.
		if kind, ok := emptyRefKinds[p]; ok {
			writeError(w, http.StatusBadRequest, kind+" name or ID must not be empty")
			return
		}
		cw := &codeWriter{header: http.Header{}}
		mux.ServeHTTP(cw, r)
		if allow := cw.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		msg := fmt.Sprintf("page not found: %s %s", r.Method, r.URL.Path)
		if cw.code == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)
		}
		writeError(w, cmp.Or(cw.code, http.StatusNotFound), msg)
	})
}

// emptyRefKinds maps the paths of object routes with an empty {id} to the
// kind of object, for the error text.
var emptyRefKinds = map[string]string{
	"/" + api.Version + "/networks/":   "network",
	"/" + api.Version + "/containers/": "container",
}

// cleanPath is the path ServeMux would redirect p to: no empty, "." or
// ".." segments, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// codeWriter only keeps the status code and headers of a response.
type codeWriter struct {
	header http.Header
	code   int
}

func (c *codeWriter) Header() http.Header { return c.header }
func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *codeWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// statusRecorder remembers the status code for the access log.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", rec.code, "took", time.Since(start))
	})
}

// statusOf maps an error kind to Docker's status code.
func statusOf(err error) int {
	if errors.As(err, new(errBodyTooLarge)) {
		return http.StatusRequestEntityTooLarge
	}
	if errors.As(err, new(errBodyTimeout)) {
		return http.StatusRequestTimeout
	}
	return errdefs.HTTPStatus(err)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// The client may be gone; nothing useful to do with the error.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.ErrorResponse{Message: msg})
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, err.Error())
}

// errBodyTooLarge answers a body over maxBodyBytes with 413, not a
// misleading "unexpected EOF" from a silently truncated read.
type errBodyTooLarge struct{ limit int64 }

func (e errBodyTooLarge) Error() string {
	return fmt.Sprintf("request body too large: the limit is %d bytes", e.limit)
}

// errBodyTimeout answers 408 to a body that did not arrive within
// bodyReadTimeout.
type errBodyTimeout struct{ limit time.Duration }

func (e errBodyTimeout) Error() string {
	return fmt.Sprintf("request body not received within %v of the request headers", e.limit)
}

// decode reads a JSON body into v; an empty body is a bad request. Unknown
// fields are ignored, as Docker's API does, so newer clients keep working.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	// Read to the end, which lifts the body deadline (see bodyDeadline).
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return errBodyTooLarge{limit: tooLarge.Limit}
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The rest of the body may still come: never parse it as a request.
			w.Header().Set("Connection", "close")
			return errBodyTimeout{limit: bodyReadTimeout}
		}
		return errInvalid("read request body: %v", err)
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errInvalid("request body must not be empty")
		}
		return errInvalid("invalid JSON body: %v", err)
	}
	return nil
}

func filtersOf(r *http.Request) (Filters, error) {
	return ParseFilters(r.URL.Query().Get("filters"))
}

// ok reports whether err is nil; when it is not, it answers err.
func (s *server) ok(w http.ResponseWriter, r *http.Request, err error) bool {
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	return true
}

// reply answers err if there is one, else code with v as the JSON body (no
// body where v is nil).
func (s *server) reply(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	switch {
	case !s.ok(w, r, err):
	case v == nil:
		w.WriteHeader(code)
	default:
		writeJSON(w, code, v)
	}
}

func (s *server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.VersionInfo{
		Version:    buildinfo.Version,
		APIVersion: api.Version,
		NodeName:   s.m.NodeName(),
		Dataplane:  s.m.DefaultDataplane(),
		GoVersion:  runtime.Version(),
	})
}

func (s *server) listNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filtersOf(r)
	if s.ok(w, r, err) {
		nets, err := s.m.ListNetworks(f)
		s.reply(w, r, http.StatusOK, nets, err)
	}
}

func (s *server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreateRequest
	if s.ok(w, r, decode(w, r, &req)) {
		resp, err := s.m.CreateNetwork(r.Context(), req)
		s.reply(w, r, http.StatusCreated, resp, err)
	}
}

func (s *server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filtersOf(r)
	if s.ok(w, r, err) {
		rep, err := s.m.PruneNetworks(r.Context(), f)
		s.reply(w, r, http.StatusOK, rep, err)
	}
}

func (s *server) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	n, err := s.m.InspectNetworkVerbose(r.PathValue("id"), r.URL.Query().Get("verbose") == "true")
	s.reply(w, r, http.StatusOK, n, err)
}

func (s *server) removeNetwork(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, http.StatusNoContent, nil, s.m.RemoveNetwork(r.Context(), r.PathValue("id")))
}

func (s *server) connect(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkConnectRequest
	if s.ok(w, r, decode(w, r, &req)) {
		s.reply(w, r, http.StatusOK, nil, s.m.Connect(r.Context(), r.PathValue("id"), req))
	}
}

func (s *server) disconnect(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkDisconnectRequest
	if s.ok(w, r, decode(w, r, &req)) {
		s.reply(w, r, http.StatusOK, nil, s.m.Disconnect(r.Context(), r.PathValue("id"), req))
	}
}

func (s *server) listContainers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.m.ListContainers())
}

func (s *server) createContainer(w http.ResponseWriter, r *http.Request) {
	var req api.ContainerCreateRequest
	if s.ok(w, r, decode(w, r, &req)) {
		resp, err := s.m.CreateContainer(r.Context(), req)
		s.reply(w, r, http.StatusCreated, resp, err)
	}
}

func (s *server) inspectContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.m.InspectContainer(r.PathValue("id"))
	s.reply(w, r, http.StatusOK, c, err)
}

func (s *server) removeContainer(w http.ResponseWriter, r *http.Request) {
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			s.fail(w, r, errInvalid("invalid value for force: %q", v))
			return
		}
	}
	s.reply(w, r, http.StatusNoContent, nil, s.m.RemoveContainer(r.Context(), r.PathValue("id"), force))
}

func (s *server) dataplane(w http.ResponseWriter, r *http.Request) {
	st, ok, err := s.m.DataplaneStatus()
	if !ok {
		writeError(w, http.StatusNotImplemented, "this daemon has no eBPF dataplane loaded")
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("read dataplane status: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) systemCheck(w http.ResponseWriter, r *http.Request) {
	rep, err := s.m.Check(r.Context())
	if err != nil {
		s.fail(w, r, fmt.Errorf("check system: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *server) systemPrune(w http.ResponseWriter, r *http.Request) {
	rep, err := s.m.PruneOrphans(r.Context())
	if err != nil {
		s.fail(w, r, fmt.Errorf("prune orphans: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
