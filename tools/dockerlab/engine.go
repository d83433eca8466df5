//go:build linux

// Package dockerlab runs the real Docker engine (dockerd, containerd, runc) inside a
// network namespace it is given, for the benchmark and the Docker comparison tests.
//
// The engine gets its own data root, exec root, pidfile, API socket, cgroup parent and
// containerd, all under one work directory, and is started with `nsenter --net=...`, so
// its bridges, veths, routes, sysctls and iptables/nftables rules live in that namespace.
// It never talks to, or reuses anything of, an engine the machine itself runs. Close stops
// it and removes what it leaves outside its namespace: container cgroups under its cgroup
// parent, the shared /run/containerd and /run/docker directories when only it used them,
// and the mounts under its work directory.
package dockerlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NetnsDir is where `ip netns` keeps named network namespaces.
const NetnsDir = "/run/netns"

// Timeouts of the engine's life cycle; variables so a slow CI machine can raise them.
var (
	// StartTimeout bounds containerd and dockerd each until they answer.
	StartTimeout = 60 * time.Second
	// StopTimeout bounds each daemon's exit after SIGTERM, before SIGKILL.
	StopTimeout = 30 * time.Second
	// CommandTimeout bounds every docker CLI call the package makes itself.
	CommandTimeout = 60 * time.Second
)

// maxSocketPath is the room for a unix socket path (sun_path is 108 bytes with the NUL).
const maxSocketPath = 107

// Options configure an engine. NetNS and Dir are required.
type Options struct {
	// NetNS is the network namespace the daemons run in: a name under /run/netns or the
	// absolute path of a namespace file.
	NetNS string
	// Dir is the engine's own work directory (created if missing, removed by Close):
	// data root, exec root, sockets, configs and logs. Keep it short: socket paths under
	// it must fit 107 bytes.
	Dir string
	// CgroupParent is dockerd's --cgroup-parent, an absolute cgroupfs path that must not
	// exist yet; empty means "/" plus the namespace's name.
	CgroupParent string
	// Dockerd, Containerd and CLI override the binaries; empty means the distribution's
	// (see FindBinaries).
	Dockerd, Containerd, CLI string
	// Busybox is the static busybox the image is built from; empty means /bin/busybox.
	Busybox string
	// LogLevel of both daemons (default "warn": at info dockerd logs every gRPC state change).
	LogLevel string
	// DockerdArgs are appended to dockerd's flags (e.g. "--iptables=false").
	DockerdArgs []string
}

// Engine is a running dockerd with its own containerd.
type Engine struct {
	NetNS        string // path of the namespace file the daemons run in
	Dir          string
	Socket       string // dockerd's API socket
	DataRoot     string
	ExecRoot     string
	CgroupParent string
	// Binaries in use.
	Dockerd, Containerd, CLI string
	// Daemon logs (stdout and stderr of each).
	DockerdLog, ContainerdLog string

	containerdSock string
	busybox        string
	dockerd        *proc
	containerd     *proc

	mu       sync.Mutex
	image    string
	attached []string // netns names made by AttachNetns
	closed   bool
	closeErr error
}

// Host is the value of docker's -H / DOCKER_HOST for this engine.
func (e *Engine) Host() string { return "unix://" + e.Socket }

// Binaries are the programs an engine runs.
type Binaries struct {
	Dockerd, Containerd, CLI string
}

// FindBinaries picks dockerd, containerd and the docker CLI: Debian's docker.io puts
// dockerd in /usr/sbin, docker-ce in /usr/bin; the CLI preferred is the one in /usr/bin
// (the same package as the daemon) before any other docker on PATH.
func FindBinaries() (Binaries, error) {
	var b Binaries
	var errs []error
	find := func(what, hint string, candidates ...string) string {
		for _, c := range candidates {
			if filepath.IsAbs(c) {
				if isExecutable(c) {
					return c
				}
				continue
			}
			if p, err := exec.LookPath(c); err == nil {
				return p
			}
		}
		errs = append(errs, fmt.Errorf("%s not found (looked for %s): %s", what, strings.Join(candidates, ", "), hint))
		return ""
	}
	const hint = "install Debian's docker.io (apt-get install docker.io, or make deps)"
	b.Dockerd = find("dockerd", hint, "/usr/sbin/dockerd", "/usr/bin/dockerd", "dockerd")
	b.Containerd = find("containerd", hint, "/usr/bin/containerd", "/usr/sbin/containerd", "containerd")
	b.CLI = find("docker CLI", hint, "/usr/bin/docker", "docker")
	return b, errors.Join(errs...)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts containerd and dockerd in opts.NetNS and waits until dockerd answers
// /_ping. On error nothing it started is left behind.
func Start(ctx context.Context, opts Options) (*Engine, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("dockerlab: the Docker engine needs root")
	}
	e, err := newEngine(opts)
	if err != nil {
		return nil, err
	}
	if err := e.start(ctx, opts); err != nil {
		if cerr := e.Close(); cerr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
		}
		return nil, err
	}
	return e, nil
}

func newEngine(opts Options) (*Engine, error) {
	if opts.NetNS == "" || opts.Dir == "" {
		return nil, errors.New("dockerlab: Options.NetNS and Options.Dir are required")
	}
	nsPath := opts.NetNS
	if !filepath.IsAbs(nsPath) {
		nsPath = filepath.Join(NetnsDir, opts.NetNS)
	}
	if _, err := os.Stat(nsPath); err != nil {
		return nil, fmt.Errorf("dockerlab: network namespace %s: %w (create it first, e.g. ip netns add)", opts.NetNS, err)
	}
	parent := opts.CgroupParent
	if parent == "" {
		parent = "/" + filepath.Base(nsPath)
	}
	if !filepath.IsAbs(parent) || filepath.Clean(parent) == "/" {
		return nil, fmt.Errorf("dockerlab: cgroup parent %q: want an absolute cgroupfs path below the root, like /mylab", parent)
	}
	if existing := existingCgroups(parent); len(existing) > 0 {
		return nil, fmt.Errorf("dockerlab: cgroup parent %s already exists (%s): another engine uses it or a killed run left it; remove it (rmdir) or pick another", parent, existing[0])
	}
	bins, ferr := FindBinaries()
	pick := func(given, found string) string {
		if given != "" {
			return given
		}
		return found
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: resolve %s: %w", opts.Dir, err)
	}
	e := &Engine{
		NetNS:          nsPath,
		Dir:            dir,
		Socket:         filepath.Join(dir, "docker.sock"),
		DataRoot:       filepath.Join(dir, "data"),
		ExecRoot:       filepath.Join(dir, "exec"),
		CgroupParent:   filepath.Clean(parent),
		Dockerd:        pick(opts.Dockerd, bins.Dockerd),
		Containerd:     pick(opts.Containerd, bins.Containerd),
		CLI:            pick(opts.CLI, bins.CLI),
		DockerdLog:     filepath.Join(dir, "dockerd.log"),
		ContainerdLog:  filepath.Join(dir, "containerd.log"),
		containerdSock: filepath.Join(dir, "containerd", "containerd.sock"),
		busybox:        pick(opts.Busybox, "/bin/busybox"),
	}
	if e.Dockerd == "" || e.Containerd == "" || e.CLI == "" {
		return nil, fmt.Errorf("dockerlab: %w", ferr)
	}
	for _, sock := range []string{e.Socket, e.containerdSock + ".ttrpc"} {
		if len(sock) > maxSocketPath {
			return nil, fmt.Errorf("dockerlab: socket path %s is %d bytes, over the %d a unix socket allows: use a shorter Dir", sock, len(sock), maxSocketPath)
		}
	}
	return e, nil
}

// dockerdMajor returns the major version `dockerd --version` prints (20 for 20.10.24).
func dockerdMajor(ctx context.Context, bin string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", bin, err)
	}
	// "Docker version 20.10.24+dfsg1, build 5d6db84"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0, fmt.Errorf("%s --version: unexpected output %q", bin, out)
	}
	major, _, _ := strings.Cut(f[2], ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("%s --version: unexpected version %q", bin, f[2])
	}
	return n, nil
}

func (e *Engine) start(ctx context.Context, opts Options) error {
	major, err := dockerdMajor(ctx, e.Dockerd)
	if err != nil {
		return fmt.Errorf("dockerlab: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(e.containerdSock), 0o711); err != nil {
		return fmt.Errorf("dockerlab: create work dir: %w", err)
	}
	level := opts.LogLevel
	if level == "" {
		level = "warn"
	}
	cdir := filepath.Dir(e.containerdSock)
	// A containerd of its own: dockerd 20.10 would otherwise take the machine's if
	// /run/containerd/containerd.sock exists, and the one it supervises itself writes
	// /opt/containerd. The opt plugin is pointed into the work dir for the same reason.
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[debug]
  level = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(cdir, "root"), filepath.Join(cdir, "state"), e.containerdSock, level, filepath.Join(cdir, "opt"))
	cfgPath := filepath.Join(cdir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("dockerlab: write containerd config: %w", err)
	}
	e.containerd, err = startProc(e.NetNS, e.ContainerdLog, e.Containerd, "--config", cfgPath)
	if err != nil {
		return fmt.Errorf("dockerlab: start containerd: %w", err)
	}
	if err := e.containerd.waitUntil(ctx, "containerd", e.ContainerdLog, func() bool { return canDial(e.containerdSock) }); err != nil {
		return err
	}

	// Its own daemon.json, so the machine's /etc/docker/daemon.json is never read; before
	// 23.0 dockerd writes its identity key to /etc/docker/key.json unless told otherwise.
	daemonCfg := "{}\n"
	if major < 23 {
		daemonCfg = fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(e.Dir, "key.json"))
	}
	daemonCfgPath := filepath.Join(e.Dir, "daemon.json")
	if err := os.WriteFile(daemonCfgPath, []byte(daemonCfg), 0o600); err != nil {
		return fmt.Errorf("dockerlab: write daemon.json: %w", err)
	}
	args := []string{
		"--config-file", daemonCfgPath,
		"--containerd", e.containerdSock,
		"--data-root", e.DataRoot,
		"--exec-root", e.ExecRoot,
		"--pidfile", filepath.Join(e.Dir, "dockerd.pid"),
		"-H", e.Host(),
		"--cgroup-parent", e.CgroupParent,
		// cgroupfs, never the systemd driver (20.10's default on cgroup v2 systemd hosts),
		// which would ask the machine's systemd for scopes.
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--log-level", level,
	}
	args = append(args, opts.DockerdArgs...)
	e.dockerd, err = startProc(e.NetNS, e.DockerdLog, e.Dockerd, args...)
	if err != nil {
		return fmt.Errorf("dockerlab: start dockerd: %w", err)
	}
	return e.dockerd.waitUntil(ctx, "dockerd", e.DockerdLog, e.ping)
}

// ping asks dockerd's API for /_ping.
func (e *Engine) ping() bool {
	c := http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.Socket)
		}},
	}
	resp, err := c.Get("http://docker/_ping")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return resp.StatusCode == http.StatusOK && string(b) == "OK"
}

func canDial(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Command prepares the docker CLI with -H of this engine. Its environment has no DOCKER_*
// variables of the caller and a config dir of its own, so the user's contexts, hosts and
// credential helpers play no part.
func (e *Engine) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.CLI, append([]string{"-H", e.Host()}, args...)...)
	cmd.Env = append(cleanEnv(), "DOCKER_CONFIG="+filepath.Join(e.Dir, "cli"))
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return env
}

// DockerCLI runs the docker CLI against the engine and returns what it printed and its
// exit code; err is set only when it could not run or was cut off by ctx or
// CommandTimeout.
func (e *Engine) DockerCLI(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := e.Command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return out.String(), errb.String(), exit.ExitCode(), nil
	}
	if err != nil {
		return out.String(), errb.String(), -1, fmt.Errorf("docker %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), 0, nil
}

// Docker runs the docker CLI and returns its trimmed stdout; a non-zero exit is an error
// carrying stderr.
func (e *Engine) Docker(ctx context.Context, args ...string) (string, error) {
	return e.dockerIn(ctx, nil, args...)
}

func (e *Engine) dockerIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	stdout, stderr, code, err := e.DockerCLI(ctx, stdin, args...)
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("docker %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr))
	}
	return strings.TrimSpace(stdout), nil
}

// ContainerPID is the host pid of a running container's first process.
func (e *Engine) ContainerPID(ctx context.Context, container string) (int, error) {
	out, err := e.Docker(ctx, "inspect", "--format", "{{.State.Pid}}", container)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("container %s is not running (pid %q)", container, out)
	}
	return pid, nil
}

// ContainerIP is a container's IPv4 address on network.
func (e *Engine) ContainerIP(ctx context.Context, container, network string) (string, error) {
	out, err := e.Docker(ctx, "inspect", "--format", fmt.Sprintf("{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}", network), container)
	if err != nil {
		return "", err
	}
	if net.ParseIP(out) == nil {
		return "", fmt.Errorf("container %s has no IPv4 address on network %s (got %q)", container, network, out)
	}
	return out, nil
}

// AttachNetns names a running container's network namespace /run/netns/<name> (`ip netns
// attach`), so tools can enter it with nsenter --net or ip -n. Close deletes the name.
func (e *Engine) AttachNetns(ctx context.Context, container, name string) error {
	pid, err := e.ContainerPID(ctx, container)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.attached = append(e.attached, name)
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "attach", name, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns attach %s %d (container %s): %w: %s", name, pid, container, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Running reports whether dockerd is still alive.
func (e *Engine) Running() bool { return e.dockerd != nil && e.dockerd.running() }

// LogTail returns the last n lines of dockerd's log, for error reports.
func (e *Engine) LogTail(n int) string { return tail(e.DockerdLog, n) }

// Close removes every container, stops dockerd and containerd and removes what they left
// outside the namespace and the work dir. It keeps going after errors and returns them
// all; later calls return the first call's result.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return e.closeErr
	}
	e.closed = true
	var errs []error
	for _, name := range e.attached {
		if err := deleteNetns(name); err != nil {
			errs = append(errs, err)
		}
	}
	if e.dockerd != nil && e.dockerd.running() {
		// Containers killed first: stopping them in dockerd's shutdown would wait for
		// a PID 1 that ignores SIGTERM.
		ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
		if ids, err := e.Docker(ctx, "ps", "-aq"); err != nil {
			errs = append(errs, fmt.Errorf("list containers: %w", err))
		} else if ids != "" {
			if _, err := e.Docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...); err != nil {
				errs = append(errs, fmt.Errorf("remove containers: %w", err))
			}
		}
		// Networks too, so the namespace is as the caller gave it.
		if _, err := e.Docker(ctx, "network", "prune", "-f"); err != nil {
			errs = append(errs, fmt.Errorf("remove networks: %w", err))
		}
		cancel()
	}
	if e.dockerd != nil {
		if err := e.dockerd.stop("dockerd"); err != nil {
			errs = append(errs, err)
		}
	}
	if e.containerd != nil {
		if err := e.containerd.stop("containerd"); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.removeLeftovers()...)
	e.closeErr = errors.Join(errs...)
	if e.closeErr != nil {
		e.closeErr = fmt.Errorf("dockerlab: close engine in %s: %w", e.Dir, e.closeErr)
	}
	return e.closeErr
}

// proc is a daemon started in the namespace.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

// startProc runs bin in the namespace through nsenter (which execs it: the pid is the
// daemon's), in its own process group, output to logPath.
func startProc(nsPath, logPath, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsPath, "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(cleanEnv(), "PATH="+daemonPath(bin))
	// Own process group: a terminal's Ctrl-C reaches the caller, which stops the engine
	// in order. SIGTERM if the caller dies: both daemons then shut down as they would
	// on `systemctl stop`. Pdeathsig follows the starting thread, kept locked below.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logf}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		started <- nil
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		logf.Close()
		return nil, err
	}
	return p, nil
}

// daemonPath is the daemons' PATH: the binary's own directory first (runc, the shims,
// docker-proxy and docker-init come from the same packages), then the usual ones.
func daemonPath(bin string) string {
	dirs := []string{filepath.Dir(bin), "/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"}
	if p := os.Getenv("PATH"); p != "" {
		dirs = append(dirs, p)
	}
	return strings.Join(dirs, ":")
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitUntil polls ready until it holds, the process exits, ctx ends or StartTimeout passes.
func (p *proc) waitUntil(ctx context.Context, name, logPath string, ready func() bool) error {
	deadline := time.Now().Add(StartTimeout)
	for !ready() {
		select {
		case <-p.done:
			return fmt.Errorf("dockerlab: %s exited during start-up (%v):\n%s", name, p.err, tail(logPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("dockerlab: waiting for %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerlab: %s did not answer within %v:\n%s", name, StartTimeout, tail(logPath, 30))
		}
	}
	return nil
}

// stop sends SIGTERM, waits StopTimeout, then SIGKILL. An exit status after SIGTERM is
// not an error: dockerd and containerd both exit non-zero on some clean shutdowns.
func (p *proc) stop(name string) error {
	if !p.running() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(StopTimeout):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 10s", name, p.cmd.Process.Pid)
	}
	return fmt.Errorf("%s ignored SIGTERM for %v and was killed", name, StopTimeout)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
