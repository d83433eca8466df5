//go:build linux

package daemon

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/errdefs"
)

// Version is netd's version, set at link time with -X.
var Version = "dev"

// maxBodyBytes bounds request bodies; every request we accept is tiny.
const maxBodyBytes = 1 << 20

// server holds the API handlers; it is stateless beyond the manager.
type server struct {
	m   *Manager
	log *slog.Logger
}

// NewHandler returns the HTTP handler of the /v1 API backed by m.
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
	mux.HandleFunc("DELETE "+v+"/containers/{id}", s.removeContainer)
	mux.HandleFunc("GET "+v+"/dataplane", s.dataplane)
	return s.logged(jsonMuxErrors(mux))
}

// jsonMuxErrors turns the mux's plain-text 404 and 405 answers into JSON
// error bodies, keeping the status and the Allow header.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
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

// decode reads a JSON body into v; an empty body is a bad request. Unknown
// fields are ignored, as Docker's API does, so newer clients keep working.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return errBodyTooLarge{limit: tooLarge.Limit}
		case errors.Is(err, io.EOF):
			return errInvalid("request body must not be empty")
		}
		return errInvalid("invalid JSON body: %v", err)
	}
	return nil
}

func filtersOf(r *http.Request) (Filters, error) {
	return ParseFilters(r.URL.Query().Get("filters"))
}

func (s *server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.VersionInfo{
		Version:    Version,
		APIVersion: api.Version,
		NodeName:   s.m.NodeName(),
		Dataplane:  s.m.DefaultDataplane(),
		GoVersion:  runtime.Version(),
	})
}

func (s *server) listNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filtersOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	nets, err := s.m.ListNetworks(f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, nets)
}

func (s *server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreateRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.m.CreateNetwork(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filtersOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.m.PruneNetworks(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *server) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	n, err := s.m.InspectNetwork(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *server) removeNetwork(w http.ResponseWriter, r *http.Request) {
	if err := s.m.RemoveNetwork(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) connect(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkConnectRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.m.Connect(r.Context(), r.PathValue("id"), req); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *server) disconnect(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkDisconnectRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.m.Disconnect(r.Context(), r.PathValue("id"), req); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *server) listContainers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.m.ListContainers())
}

func (s *server) createContainer(w http.ResponseWriter, r *http.Request) {
	var req api.ContainerCreateRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := s.m.CreateContainer(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *server) inspectContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.m.InspectContainer(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
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
	if err := s.m.RemoveContainer(r.Context(), r.PathValue("id"), force); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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
