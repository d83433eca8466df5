//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// TestExecFromAnyMountNamespace starts the daemon the way a user would with
// `ip netns exec HOST netd daemon`: it gets a private mount namespace, so the
// bind mounts of its containers' namespaces under /run/netns exist only
// there. `netd container exec` must work anyway, from another `ip netns exec`
// (a second private mount namespace) and from the machine's own one.
func TestExecFromAnyMountNamespace(t *testing.T) {
	l := newLab(t)
	h := l.MustHost("h1")
	h.IPNetnsExec = true
	if err := h.StartDaemon(); err != nil {
		t.Fatalf("start daemon under ip netns exec: %v", err)
	}
	createNet(t, h, api.DataplaneEBPF, "n1", "--subnet", "10.207.0.0/24")
	createCtr(t, h, "c1", "--network", "n1", "--ip", "10.207.0.11")
	createCtr(t, h, "c2", "--network", "n1", "--ip", "10.207.0.12")

	// The set-up reproduces the problem: outside the daemon's mount
	// namespace the container's netns path is an empty file, not a netns.
	if _, errOut, code := h.Run("ip", "netns", "exec", h.ContainerNS("c1"), "true"); code == 0 {
		t.Fatalf("ip netns exec %s worked outside the daemon's mount namespace: the test does not test anything", h.ContainerNS("c1"))
	} else {
		t.Logf("as expected, ip netns exec %s from outside fails: %s", h.ContainerNS("c1"), strings.TrimSpace(errOut))
	}
	// The daemon said so at start; one started with nsenter (sharing the
	// machine's mount namespace) does not.
	if log := h.DaemonLog(); !strings.Contains(log, "private mount namespace") || !strings.Contains(log, "netd container exec") {
		t.Errorf("daemon log has no warning about its private mount namespace:\n%s", log)
	}
	if log := startHost(t, l, "h2").DaemonLog(); strings.Contains(log, "private mount namespace") {
		t.Errorf("daemon started with nsenter warns about a private mount namespace:\n%s", log)
	}

	// From a second private mount namespace, the CLI under ip netns exec.
	var report strings.Builder
	pinged := false
	for attempt := 1; attempt <= lab.PingAttempts && !pinged; attempt++ {
		out, errOut, code := netdViaIPNetnsExec(t, h, "", "container", "exec", "c1", "--", "ping", "-c", "1", "-W", "2", "10.207.0.12")
		pinged = code == 0
		report.WriteString(out + errOut)
		if !strings.Contains(out, "packets transmitted") {
			break // netd failed before ping ran: retrying will not help
		}
	}
	if !pinged {
		t.Errorf("ip netns exec %s netd container exec c1 -- ping 10.207.0.12 failed:\n%s", h.NS(), report.String())
	}

	// stdin, stdout, stderr and the exit code pass through; it runs in c1.
	out, errOut, code := netdViaIPNetnsExec(t, h, "hello\n", "container", "exec", "c1", "--",
		"sh", "-c", "cat; ip -o -4 addr show dev eth0; echo oops >&2; exit 7")
	if code != 7 || !strings.HasPrefix(out, "hello\n") || !strings.Contains(out, "10.207.0.11/24") || errOut != "oops\n" {
		t.Errorf("exec passthrough: exit %d (want 7), stdout %q (want hello and c1's 10.207.0.11/24), stderr %q (want oops)", code, out, errOut)
	}
	if _, errOut, code := netdViaIPNetnsExec(t, h, "", "container", "exec", "c1", "--", "/no/such/binary"); code != 127 || !strings.Contains(errOut, "/no/such/binary") {
		t.Errorf("exec of a missing binary: exit %d (want 127), stderr %q", code, errOut)
	}
	if _, errOut, code := netdViaIPNetnsExec(t, h, "", "container", "exec", "ghost", "--", "true"); code == 0 || !strings.Contains(errOut, "No such container: ghost") {
		t.Errorf("exec in a missing container: exit %d, stderr %q", code, errOut)
	}

	// run (create, then exec) from there too.
	out, errOut, code = netdViaIPNetnsExec(t, h, "", "container", "run", "--network", "n1", "--ip", "10.207.0.13", "c3", "--",
		"ip", "-o", "-4", "addr", "show", "dev", "eth0")
	if code != 0 || !strings.Contains(out, "10.207.0.13/24") {
		t.Errorf("container run from ip netns exec: exit %d stdout %q stderr %q", code, out, errOut)
	}

	// From the machine's own mount namespace (the lab's nsenter).
	if err := h.Ping("c2", "10.207.0.11"); err != nil {
		t.Errorf("exec from the root mount namespace: %v", err)
	}
}

// netdViaIPNetnsExec runs the netd CLI under `ip netns exec <host>`, in a
// mount namespace of its own, and returns stdout, stderr and the exit code.
func netdViaIPNetnsExec(t *testing.T, h *lab.Host, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lab.CommandTimeout)
	defer cancel()
	full := append([]string{"netns", "exec", h.NS(), h.Lab.NetdBin(), "-H", h.HostURL()}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("ip netns exec %s netd %s: timed out after %v", h.NS(), strings.Join(args, " "), lab.CommandTimeout)
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ip netns exec %s netd %s: %v", h.NS(), strings.Join(args, " "), err)
	}
	t.Logf("$ ip netns exec %s netd %s\n%s%s(exit %d)", h.NS(), strings.Join(args, " "), out.String(), errb.String(), code)
	return out.String(), errb.String(), code
}
