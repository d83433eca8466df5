//go:build linux

package daemon

import (
	"net/http"

	"github.com/netd-dev/netd/api"
)

// Cluster membership and the gossip keyring (`netd node ...`).

func (s *server) listNodes(w http.ResponseWriter, r *http.Request) {
	c, err := s.m.Cluster()
	if s.ok(w, r, err) {
		writeJSON(w, http.StatusOK, c.Nodes())
	}
}

func (s *server) inspectNode(w http.ResponseWriter, r *http.Request) {
	c, err := s.m.Cluster()
	if s.ok(w, r, err) {
		n, err := c.Node(r.PathValue("name"))
		s.reply(w, r, http.StatusOK, n, err)
	}
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request) {
	c, err := s.m.Cluster()
	if s.ok(w, r, err) {
		res, err := c.Key(r.Context(), "list", "")
		s.reply(w, r, http.StatusOK, res, err)
	}
}

func (s *server) keyOp(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	switch op {
	case "install", "use", "remove":
	default:
		s.fail(w, r, errNotFound("unknown key operation %q: want install, use or remove", op))
		return
	}
	var req api.NodeKeyRequest
	if !s.ok(w, r, decode(w, r, &req)) {
		return
	}
	c, err := s.m.Cluster()
	if s.ok(w, r, err) {
		res, err := c.Key(r.Context(), op, req.Key)
		if err != nil {
			// The per-node replies say where it failed: send them along.
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}
