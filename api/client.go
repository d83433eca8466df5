package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/netd/netd.sock"

// DefaultHost is DefaultSocket in the --host syntax.
const DefaultHost = "unix://" + DefaultSocket

// Error is a non-2xx answer of the daemon. Its text is Docker's
// "Error response from daemon: ..." so the CLI can print it as is.
type Error struct {
	StatusCode int
	Message    string
}

func (e *Error) Error() string {
	return "Error response from daemon: " + e.Message
}

// IsNotFound reports whether err is a daemon answer with status 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// ConnectError says the daemon's socket could not be reached at all.
type ConnectError struct {
	Host string
	Err  error
}

func (e *ConnectError) Error() string {
	if e.PermissionDenied() {
		// Docker's text: the daemon runs, this user may not use its socket.
		cause := error(e.Err)
		var op *net.OpError
		if errors.As(e.Err, &op) {
			cause = op
		}
		return fmt.Sprintf("permission denied while trying to connect to the netd daemon socket at %s: %v", e.Host, cause)
	}
	return fmt.Sprintf("Cannot connect to the netd daemon at %s. Is the netd daemon running?", e.Host)
}

// PermissionDenied says the socket (or a dir on its path) refused this
// user (EACCES, EPERM), rather than being absent or not listening.
func (e *ConnectError) PermissionDenied() bool { return errors.Is(e.Err, fs.ErrPermission) }

func (e *ConnectError) Unwrap() error { return e.Err }

// Client talks to one daemon over its unix socket. It is safe for
// concurrent use.
type Client struct {
	host   string // unix:///path form, for messages
	socket string
	http   *http.Client
}

// NewClient returns a client for host, which is "unix:///path", a bare
// path, or empty for DefaultHost.
func NewClient(host string) (*Client, error) {
	socket, err := ParseHost(host)
	if err != nil {
		return nil, err
	}
	c := &Client{host: "unix://" + socket, socket: socket}
	var d net.Dialer
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}}
	return c, nil
}

// ParseHost turns a --host value into a socket path.
func ParseHost(host string) (string, error) {
	switch {
	case host == "":
		return DefaultSocket, nil
	case strings.HasPrefix(host, "unix://"):
		p := strings.TrimPrefix(host, "unix://")
		if p == "" {
			return "", fmt.Errorf("invalid host %q: empty socket path", host)
		}
		return p, nil
	case strings.Contains(host, "://"):
		return "", fmt.Errorf("invalid host %q: only unix:// sockets are supported", host)
	default:
		return host, nil
	}
}

// Host is the daemon address in unix:///path form.
func (c *Client) Host() string { return c.host }

// call is do for a request whose 2xx answer is a T.
func call[T any](ctx context.Context, c *Client, method, path string, query url.Values, body any) (T, error) {
	var out T
	err := c.do(ctx, method, path, query, body, &out)
	return out, err
}

// do sends one request; body (if any) is JSON-encoded and a 2xx answer is
// decoded into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := "http://netd/" + Version + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return &ConnectError{Host: c.host, Err: err}
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp.StatusCode, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// responseError is the *Error of a non-2xx answer with body data: its
// JSON message, else the body's text, else the status text.
func responseError(code int, data []byte) error {
	var er ErrorResponse
	if json.Unmarshal(data, &er) != nil || er.Message == "" {
		er.Message = strings.TrimSpace(string(data))
		if er.Message == "" {
			er.Message = http.StatusText(code)
		}
	}
	return &Error{StatusCode: code, Message: er.Message}
}

func filterQuery(filters map[string][]string) (url.Values, error) {
	if len(filters) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(filters)
	if err != nil {
		return nil, fmt.Errorf("encode filters: %w", err)
	}
	return url.Values{"filters": {string(b)}}, nil
}

func objPath(kind, idOrName string) string {
	seg := url.PathEscape(idOrName)
	if idOrName == "." || idOrName == ".." {
		// PathEscape keeps dots; escaped, the daemon sees the name, not a dot segment.
		seg = strings.ReplaceAll(idOrName, ".", "%2E")
	}
	return "/" + kind + "/" + seg
}

// Version asks the daemon who it is.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	return call[VersionInfo](ctx, c, http.MethodGet, "/version", nil, nil)
}

// NodeList lists the cluster's members as the daemon sees them.
func (c *Client) NodeList(ctx context.Context) ([]Node, error) {
	return call[[]Node](ctx, c, http.MethodGet, "/nodes", nil, nil)
}

// NodeInspect returns one member, with its endpoints.
func (c *Client) NodeInspect(ctx context.Context, name string) (Node, error) {
	return call[Node](ctx, c, http.MethodGet, "/nodes/"+url.PathEscape(name), nil, nil)
}

// NodeKeys lists the gossip keys of every live member.
func (c *Client) NodeKeys(ctx context.Context) (NodeKeyResponse, error) {
	return call[NodeKeyResponse](ctx, c, http.MethodGet, "/nodes/keys", nil, nil)
}

// NodeKeyOp installs, uses or removes a gossip key on every live member.
func (c *Client) NodeKeyOp(ctx context.Context, op, key string) (NodeKeyResponse, error) {
	return call[NodeKeyResponse](ctx, c, http.MethodPost, "/nodes/keys/"+url.PathEscape(op), nil, NodeKeyRequest{Key: key})
}

// NetworkList lists networks matching filters (same key ORed, keys ANDed).
func (c *Client) NetworkList(ctx context.Context, filters map[string][]string) ([]Network, error) {
	q, err := filterQuery(filters)
	if err != nil {
		return nil, err
	}
	return call[[]Network](ctx, c, http.MethodGet, "/networks", q, nil)
}

// NetworkCreate creates a network and returns its full ID.
func (c *Client) NetworkCreate(ctx context.Context, req NetworkCreateRequest) (NetworkCreateResponse, error) {
	return call[NetworkCreateResponse](ctx, c, http.MethodPost, "/networks/create", nil, req)
}

// NetworkInspect returns one network by ID, ID prefix or name.
func (c *Client) NetworkInspect(ctx context.Context, idOrName string) (Network, error) {
	return call[Network](ctx, c, http.MethodGet, objPath("networks", idOrName), nil, nil)
}

// NetworkInspectVerbose is NetworkInspect with, for a cluster-wide
// network, the endpoints of every host (Services).
func (c *Client) NetworkInspectVerbose(ctx context.Context, idOrName string) (Network, error) {
	return call[Network](ctx, c, http.MethodGet, objPath("networks", idOrName), url.Values{"verbose": {"true"}}, nil)
}

// NetworkRemove deletes a network.
func (c *Client) NetworkRemove(ctx context.Context, idOrName string) error {
	return c.do(ctx, http.MethodDelete, objPath("networks", idOrName), nil, nil, nil)
}

// NetworksPrune removes unused custom networks matching filters.
func (c *Client) NetworksPrune(ctx context.Context, filters map[string][]string) (NetworksPruneReport, error) {
	q, err := filterQuery(filters)
	if err != nil {
		return NetworksPruneReport{}, err
	}
	return call[NetworksPruneReport](ctx, c, http.MethodPost, "/networks/prune", q, nil)
}

// NetworkConnect attaches a container to a network.
func (c *Client) NetworkConnect(ctx context.Context, network, container string, settings *EndpointSettings) error {
	req := NetworkConnectRequest{Container: container, EndpointConfig: settings}
	return c.do(ctx, http.MethodPost, objPath("networks", network)+"/connect", nil, req, nil)
}

// NetworkDisconnect detaches a container from a network.
func (c *Client) NetworkDisconnect(ctx context.Context, network, container string, force bool) error {
	req := NetworkDisconnectRequest{Container: container, Force: force}
	return c.do(ctx, http.MethodPost, objPath("networks", network)+"/disconnect", nil, req, nil)
}

// ContainerList lists all containers.
func (c *Client) ContainerList(ctx context.Context) ([]Container, error) {
	return call[[]Container](ctx, c, http.MethodGet, "/containers", nil, nil)
}

// ContainerCreate creates a container (a named netns) and attaches it.
func (c *Client) ContainerCreate(ctx context.Context, req ContainerCreateRequest) (ContainerCreateResponse, error) {
	return call[ContainerCreateResponse](ctx, c, http.MethodPost, "/containers/create", nil, req)
}

// ContainerInspect returns one container by ID, ID prefix or name.
func (c *Client) ContainerInspect(ctx context.Context, idOrName string) (Container, error) {
	return call[Container](ctx, c, http.MethodGet, objPath("containers", idOrName), nil, nil)
}

// ContainerRemove deletes a container, its endpoints and its netns.
func (c *Client) ContainerRemove(ctx context.Context, idOrName string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"1"}}
	}
	return c.do(ctx, http.MethodDelete, objPath("containers", idOrName), q, nil, nil)
}

// DataplaneStatus returns attached eBPF programs and endpoint counters.
func (c *Client) DataplaneStatus(ctx context.Context) (DataplaneStatus, error) {
	return call[DataplaneStatus](ctx, c, http.MethodGet, "/dataplane", nil, nil)
}

// SystemCheck compares the daemon's records with the kernel.
func (c *Client) SystemCheck(ctx context.Context) (SystemCheck, error) {
	return call[SystemCheck](ctx, c, http.MethodGet, "/system/check", nil, nil)
}

// SystemPrune removes the node's kernel objects that have no record.
func (c *Client) SystemPrune(ctx context.Context) (SystemPruneReport, error) {
	return call[SystemPruneReport](ctx, c, http.MethodPost, "/system/prune", nil, nil)
}
