//go:build linux

package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// NetnsUpgrade is the Upgrade token of GET /v1/containers/{id}/netns: the
// daemon answers 101 Switching Protocols and passes the container's network
// namespace as a file descriptor (SCM_RIGHTS) with the bytes of that answer.
// Its error answers carry the token in an Upgrade header too (RFC 9110
// lets a server advertise an upgrade it supports), which tells them apart
// from the 404 of a daemon without the route.
const NetnsUpgrade = "netd-netns-fd"

// ErrNetnsUnsupported says the daemon does not offer GET
// /v1/containers/{id}/netns (it predates the route); callers fall back to
// opening the container's SandboxKey path themselves.
var ErrNetnsUnsupported = errors.New("the daemon does not pass network namespaces over its socket")

// netnsTimeout bounds the whole exchange: the daemon answers at once.
const netnsTimeout = 30 * time.Second

// ContainerNetns returns an open handle on the network namespace of a
// container, opened by the daemon in its own mount namespace and passed over
// the unix socket, so it works wherever the caller runs (e.g. under `ip
// netns exec`, where the daemon's bind mounts under /run/netns are not
// visible). The caller closes the file. A daemon without the route gives
// ErrNetnsUnsupported (wrapping its *Error); any other failure is the
// daemon's *Error, e.g. 404 "No such container".
func (c *Client) ContainerNetns(ctx context.Context, idOrName string) (*os.File, error) {
	path := objPath("containers", idOrName) + "/netns"
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, &ConnectError{Host: c.host, Err: err}
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("GET %s: %s is not a unix socket", path, c.host)
	}
	deadline := time.Now().Add(netnsTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = uc.SetDeadline(deadline)
	// Cancelling ctx unblocks a read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Now()) })
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://netd/"+Version+path, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", NetnsUpgrade)
	if err := req.Write(uc); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, ctxErr(ctx, err))
	}
	// The descriptor travels with the first bytes of the answer: read them
	// with recvmsg, as a plain read would drop it.
	first := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4)) // one fd; the kernel closes any more
	n, oobn, _, _, err := uc.ReadMsgUnix(first, oob)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read answer: %w", path, ctxErr(ctx, err))
	}
	fd, err := unixRight(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	var ns *os.File
	if fd >= 0 {
		ns = os.NewFile(uintptr(fd), "netns of container "+idOrName)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(first[:n]), uc)), req)
	if err != nil {
		closeFile(ns)
		return nil, fmt.Errorf("GET %s: read answer: %w", path, ctxErr(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if ns == nil {
			return nil, fmt.Errorf("GET %s: the daemon answered without a namespace descriptor", path)
		}
		return ns, nil
	}
	closeFile(ns)
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read answer: %w", path, ctxErr(ctx, err))
	}
	apiErr := responseError(resp.StatusCode, data)
	routeMissing := resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed
	if routeMissing && !strings.EqualFold(resp.Header.Get("Upgrade"), NetnsUpgrade) {
		return nil, fmt.Errorf("%w: %w", ErrNetnsUnsupported, apiErr)
	}
	return nil, apiErr
}

// unixRight is the one descriptor in the control messages oob, or -1 if
// there is none; any extra descriptors are closed.
func unixRight(oob []byte) (int, error) {
	if len(oob) == 0 {
		return -1, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, fmt.Errorf("parse control message: %w", err)
	}
	fd := -1
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue // not SCM_RIGHTS
		}
		for _, f := range fds {
			if fd < 0 {
				fd = f
			} else {
				syscall.Close(f)
			}
		}
	}
	return fd, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// ctxErr prefers the context's error to the timeout it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
