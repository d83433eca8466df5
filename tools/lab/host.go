//go:build linux

package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// DaemonStartTimeout bounds how long StartDaemon waits for `netd version`.
var DaemonStartTimeout = 30 * time.Second

// Host is a lab host: a network namespace that runs (at most) one netd daemon.
type Host struct {
	Lab      *Lab
	Name     string // short name given to Lab.Host
	Node     string // <prefix>-<name>: netns name and --node-name
	Dir      string
	Socket   string
	StateDir string
	LogPath  string
	// IPNetnsExec starts the daemon with `ip netns exec`, which gives it a
	// private mount namespace as a user's shell would, instead of nsenter.
	IPNetnsExec bool

	daemon     *exec.Cmd
	daemonDone chan struct{}
	daemonErr  error
	lastArgs   []string
}

// NS is the name of the host's network namespace.
func (h *Host) NS() string { return h.Node }

// NSPath is the bind mount of the host's network namespace.
func (h *Host) NSPath() string { return filepath.Join(NetnsDir, h.Node) }

// HostURL is the value of -H / NETD_HOST for this host's daemon.
func (h *Host) HostURL() string { return "unix://" + h.Socket }

// BPFFSDir is where this host's daemon pins its eBPF objects.
func (h *Host) BPFFSDir() string { return filepath.Join(BPFFSDir, h.Node) }

// ContainerNS is the netns name the daemon gives container name.
func (h *Host) ContainerNS(name string) string { return h.Node + "-" + name }

// DaemonArgs is the argument list StartDaemon passes to `netd`, before extra.
func (h *Host) DaemonArgs(extra ...string) []string {
	args := []string{"daemon",
		"--socket", h.Socket,
		"--state-dir", h.StateDir,
		"--bpffs", BPFFSDir,
		"--node-name", h.Node,
		"--log-level", h.Lab.logLevel,
	}
	return append(args, extra...)
}

// Command prepares name args... to run inside the host's network namespace
// (nsenter keeps the mount namespace, so bpffs and /run/netns are shared).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	full := append([]string{"--net=" + h.NSPath(), "--", name}, args...)
	return exec.CommandContext(ctx, "nsenter", full...)
}

// StartDaemon starts `netd daemon` in the host namespace with the host's
// socket, state dir, pin dir and node name plus extra flags, and waits until
// `netd version` answers.
func (h *Host) StartDaemon(extra ...string) error {
	if h.Running() {
		return fmt.Errorf("daemon of %s already running", h.Node)
	}
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open daemon log: %w", err)
	}
	fmt.Fprintf(logf, "==== %s starting daemon %v\n", time.Now().Format(time.RFC3339Nano), extra)
	h.lastArgs = append([]string(nil), extra...)
	launcher := []string{"nsenter", "--net=" + h.NSPath(), "--"}
	if h.IPNetnsExec {
		launcher = []string{"ip", "netns", "exec", h.NS()}
	}
	full := append(append(launcher[1:], h.Lab.bin), h.DaemonArgs(extra...)...)
	cmd := exec.Command(launcher[0], full...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Ctrl-C of the demo reaches us, not the daemon,
	// so cleanup decides how it ends. Pdeathsig kills it if we die; that is
	// tied to the starting thread, which stays locked until the daemon ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		h.daemonErr = cmd.Wait()
		logf.Close()
		close(done)
	}()
	if err := <-started; err != nil {
		logf.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	h.daemon, h.daemonDone = cmd, done
	h.Lab.logf("[%s] started netd daemon (pid %d) %s\n", h.Node, cmd.Process.Pid, strings.Join(extra, " "))

	deadline := time.Now().Add(DaemonStartTimeout)
	var lastErr string
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("daemon of %s exited during start-up (%v):\n%s", h.Node, h.daemonErr, tail(h.LogPath, 30))
		default:
		}
		if _, err := os.Stat(h.Socket); err == nil {
			stdout, stderr, code := h.netd(5*time.Second, false, "version")
			if code == 0 {
				return nil
			}
			lastErr = strings.TrimSpace(stdout + stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.KillDaemon()
	return fmt.Errorf("daemon of %s did not answer `netd version` within %v (last: %s):\n%s",
		h.Node, DaemonStartTimeout, lastErr, tail(h.LogPath, 30))
}

// LastDaemonArgs are the extra flags of the last StartDaemon.
func (h *Host) LastDaemonArgs() []string { return append([]string(nil), h.lastArgs...) }

// RestartDaemon stops the daemon (SIGTERM) and starts it with the same flags.
func (h *Host) RestartDaemon() error {
	if err := h.StopDaemon(); err != nil {
		return err
	}
	return h.StartDaemon(h.lastArgs...)
}

// Running says whether this host's daemon process is alive.
func (h *Host) Running() bool {
	if h.daemonDone == nil {
		return false
	}
	select {
	case <-h.daemonDone:
		return false
	default:
		return true
	}
}

// StopDaemon sends SIGTERM and waits (bounded; SIGKILL after 15 s). It
// returns an error if the daemon did not exit cleanly on SIGTERM.
func (h *Host) StopDaemon() error {
	if !h.Running() {
		return nil
	}
	if err := h.daemon.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal daemon: %w", err)
	}
	select {
	case <-h.daemonDone:
	case <-time.After(15 * time.Second):
		h.daemon.Process.Kill()
		<-h.daemonDone
		return fmt.Errorf("daemon of %s ignored SIGTERM for 15s, killed", h.Node)
	}
	h.Lab.logf("[%s] daemon stopped (%v)\n", h.Node, h.daemonErr)
	if h.daemonErr != nil {
		return fmt.Errorf("daemon of %s exited after SIGTERM: %w", h.Node, h.daemonErr)
	}
	return nil
}

// KillDaemon sends SIGKILL and waits for the process to go away.
func (h *Host) KillDaemon() error {
	if !h.Running() {
		return nil
	}
	if err := h.daemon.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill daemon: %w", err)
	}
	<-h.daemonDone
	h.Lab.logf("[%s] daemon killed\n", h.Node)
	return nil
}

// DaemonPID is the daemon's process id, or 0 when it is not running.
func (h *Host) DaemonPID() int {
	if !h.Running() {
		return 0
	}
	return h.daemon.Process.Pid
}

// DaemonLog returns the daemon's log so far.
func (h *Host) DaemonLog() string {
	b, _ := os.ReadFile(h.LogPath)
	return string(b)
}

// Netd runs the netd CLI against this host's daemon, inside the host's
// namespace, and returns its stdout, stderr and exit code (-1: not run).
func (h *Host) Netd(args ...string) (stdout, stderr string, exit int) {
	return h.netd(CommandTimeout, true, args...)
}

// NetdStdin is Netd with input on stdin (e.g. answering prune's question).
func (h *Host) NetdStdin(stdin string, args ...string) (stdout, stderr string, exit int) {
	full := append([]string{"-H", h.HostURL()}, args...)
	return h.runIn(CommandTimeout, true, stdin, h.Lab.bin, full...)
}

func (h *Host) netd(timeout time.Duration, trace bool, args ...string) (string, string, int) {
	full := append([]string{"-H", h.HostURL()}, args...)
	return h.runIn(timeout, trace, "", h.Lab.bin, full...)
}

// Exec runs cmd inside a container with `netd container exec`.
func (h *Host) Exec(container string, cmd ...string) (stdout, stderr string, exit int) {
	return h.Netd(append([]string{"container", "exec", container, "--"}, cmd...)...)
}

// PingAttempts bounds how often Ping and PingFromHost try before giving up.
var PingAttempts = 3

// pingArgs is one attempt: 3 echo requests, each answer awaited up to 2 s
// (a loaded CI machine can be slow to schedule the replying namespace).
var pingArgs = []string{"ping", "-c", "3", "-W", "2", "-i", "0.2"}

// Ping checks that addr answers a container's pings: nil once an attempt
// gets an answer (ping exits 0), an error with every attempt's output when
// none of PingAttempts attempts does. A fresh link may lose its first
// packets to ARP or a busy CPU; retrying, bounded, keeps that from flaking.
func (h *Host) Ping(container, addr string) error {
	return h.pingRetry(fmt.Sprintf("ping %s from container %s", addr, container), func() (string, string, int) {
		return h.Exec(container, append(append([]string(nil), pingArgs...), addr)...)
	})
}

// PingFromHost is Ping from the lab host's own namespace.
func (h *Host) PingFromHost(addr string) error {
	return h.pingRetry(fmt.Sprintf("ping %s from host %s", addr, h.Node), func() (string, string, int) {
		return h.Run(pingArgs[0], append(append([]string(nil), pingArgs[1:]...), addr)...)
	})
}

func (h *Host) pingRetry(what string, attempt func() (string, string, int)) error {
	var report strings.Builder
	for i := 1; i <= PingAttempts; i++ {
		out, errOut, code := attempt()
		if code == 0 {
			if i > 1 {
				h.Lab.logf("[%s] %s answered on attempt %d of %d\n", h.Node, what, i, PingAttempts)
			}
			return nil
		}
		fmt.Fprintf(&report, "attempt %d: exit %d: %s%s\n", i, code, out, errOut)
		if code < 0 || code > 2 {
			break // not ping's own "no answer" (1) or error (2): netd or nsenter failed
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%s: no answer:\n%s", what, strings.TrimRight(report.String(), "\n"))
}

// Run runs a command in the host's namespace (not in a container).
func (h *Host) Run(name string, args ...string) (stdout, stderr string, exit int) {
	return h.runIn(CommandTimeout, true, "", name, args...)
}

func (h *Host) runIn(timeout time.Duration, trace bool, stdin, name string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := h.Command(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() >= 0 {
			code = ee.ExitCode()
		} else {
			code = -1
			fmt.Fprintf(&errb, "lab: %v", err)
		}
		if ctx.Err() != nil {
			code = -1
			fmt.Fprintf(&errb, "lab: timed out after %v", timeout)
		}
	}
	if trace {
		shown := name
		if name == h.Lab.bin {
			shown = "netd"
			if len(args) >= 2 && args[0] == "-H" {
				args = args[2:]
			}
		}
		h.Lab.logf("[%s] $ %s %s\n%s%s(exit %d)\n", h.Node, shown, ShellJoin(args), out.String(), errb.String(), code)
	}
	return out.String(), errb.String(), code
}

// ShellJoin joins args into one shell command line, quoting those the shell
// would split or expand.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'{}$|&;<>*") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
