//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// Setup is one way of connecting a client and a server namespace; the measurements only
// need the two namespace names and the server's address.
type Setup interface {
	Name() string
	// Up builds the setup; on error the caller still calls Down.
	Up(ctx context.Context) error
	// Down removes everything Up made; safe to call more than once and after a failed Up.
	Down()
	Pair() Pair
}

// ebpfSetup is a setup whose eBPF counters are read after the run: they
// tell whether the measured traffic really took the fast path.
type ebpfSetup interface {
	EBPF() bool
	DataplaneStatus() (*api.DataplaneStatus, error)
}

// Pair is what a measurement runs between: named netns under /run/netns.
type Pair struct {
	ClientNS string
	ServerNS string
	ServerIP string
	// CPUs to pin client and server processes to ("" = no pinning); separate cores keep
	// the sender's softirq work from competing with the receiver on a small machine.
	ClientCPU string
	ServerCPU string
}

// randomPrefix returns "ndb" plus 4 random hex digits, unique per bench run; with a
// one-letter suffix it still fits tools/lab's 8-character prefix limit.
func randomPrefix() string {
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("read random: %v", err))
	}
	return "ndb" + hex.EncodeToString(b)
}

// command builds a child process in its own process group, so a terminal's SIGINT reaches
// only the bench, which then tears things down in order.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, name, args...)
		cmd.WaitDelay = 2 * time.Second
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// nsCommand runs name inside the named netns; nsenter keeps the mount namespace shared.
func nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return command(ctx, "nsenter", append([]string{"--net=" + filepath.Join(lab.NetnsDir, ns), "--", name}, args...)...)
}

// pinned prefixes a command with taskset when a CPU is given.
func pinned(cpu, name string, args []string) (string, []string) {
	if cpu == "" {
		return name, args
	}
	return "taskset", append([]string{"-c", cpu, name}, args...)
}

// run executes a short command with a timeout and returns its stdout, or an error with stderr.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// waitPing checks the pair can talk before measuring, bounded by tries.
func waitPing(ctx context.Context, p Pair) error {
	var err error
	for try := 0; try < 10; try++ {
		if _, err = run(ctx, 3*time.Second, "nsenter", "--net="+filepath.Join(lab.NetnsDir, p.ClientNS), "--", "ping", "-c", "1", "-W", "1", p.ServerIP); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("ping %s from %s: %w", p.ServerIP, p.ClientNS, err)
}

// vethSetup is a bare veth pair between two lab hosts: the upper bound for any bridge.
// No daemon runs in it; the lab only provides the namespaces, the wire and the cleanup.
type vethSetup struct {
	prefix, netdBin string
	lab             *lab.Lab
	a, b            *lab.Host
}

func newVethSetup(prefix, netdBin string) *vethSetup {
	// Its own lab, so its Close cannot touch the netd setups' namespaces.
	return &vethSetup{prefix: prefix + "v", netdBin: netdBin}
}

func (s *vethSetup) Name() string { return setupVeth }

func (s *vethSetup) Pair() Pair {
	if s.b == nil {
		return Pair{}
	}
	return Pair{ClientNS: s.a.NS(), ServerNS: s.b.NS(), ServerIP: "10.200.0.2"}
}

func (s *vethSetup) Up(ctx context.Context) error {
	l, err := lab.New(nil, lab.Options{Prefix: s.prefix, NetdBin: s.netdBin})
	if err != nil {
		return fmt.Errorf("create lab: %w", err)
	}
	s.lab = l
	if s.a, err = l.Host("va"); err != nil {
		return fmt.Errorf("create lab host: %w", err)
	}
	if s.b, err = l.Host("vb"); err != nil {
		return fmt.Errorf("create lab host: %w", err)
	}
	if err := l.Wire(s.a, s.b, "eth0", "10.200.0.1/24", "10.200.0.2/24"); err != nil {
		return fmt.Errorf("set up veth: %w", err)
	}
	return waitPing(ctx, s.Pair())
}

func (s *vethSetup) Down() {
	if s.lab == nil {
		return
	}
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup veth: %v\n", err)
	}
}

// netdSetup is a lab host (tools/lab) running its own netd daemon with one bridge network
// on the given dataplane and two containers on it.
type netdSetup struct {
	dataplane string
	netdBin   string
	prefix    string // lab prefix; the lab removes everything named <prefix>-*
	subnet    string
	logPath   string // daemon log copied here before the lab is closed
	lab       *lab.Lab
	host      *lab.Host
	serverIP  string
}

func newNetdSetup(prefix, dataplane, netdBin, subnet, logDir string) *netdSetup {
	return &netdSetup{
		dataplane: dataplane,
		netdBin:   netdBin,
		// One lab per setup, so its Close cannot touch the other setups' namespaces.
		prefix:  prefix + dataplane[:1],
		subnet:  subnet,
		logPath: filepath.Join(logDir, "netd-"+dataplane+".log"),
	}
}

func (s *netdSetup) Name() string { return s.dataplane }

func (s *netdSetup) EBPF() bool { return s.dataplane == setupEBPF }

func (s *netdSetup) Pair() Pair {
	if s.host == nil {
		return Pair{}
	}
	return Pair{ClientNS: s.host.ContainerNS("c1"), ServerNS: s.host.ContainerNS("c2"), ServerIP: s.serverIP}
}

// netd runs one CLI command against the setup's daemon.
func (s *netdSetup) netd(args ...string) error {
	stdout, stderr, code := s.host.Netd(args...)
	if code != 0 {
		return fmt.Errorf("netd %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr+stdout))
	}
	return nil
}

func (s *netdSetup) Up(ctx context.Context) error {
	var err error
	if s.lab, s.host, err = benchHost(s.netdBin, s.prefix, s.dataplane); err != nil {
		return err
	}
	if err := s.host.StartDaemon("--dataplane", s.dataplane); err != nil {
		return err
	}
	if err := s.netd("network", "create", "-o", "netd.dataplane="+s.dataplane, "--subnet", s.subnet, "bench"); err != nil {
		return fmt.Errorf("create network: %w%s", err, s.logTail())
	}
	for _, c := range []string{"c1", "c2"} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.netd("container", "create", "--network", "bench", c); err != nil {
			return fmt.Errorf("create container %s: %w%s", c, err, s.logTail())
		}
	}
	if s.dataplane == "ebpf" {
		// Without this the "ebpf" numbers would silently be the kernel bridge's.
		st, err := s.DataplaneStatus()
		if err != nil {
			return fmt.Errorf("ebpf dataplane not active: %w", err)
		}
		if len(st.Programs) < 2 {
			return fmt.Errorf("ebpf dataplane not active: %d program attachment(s), want one per container veth", len(st.Programs))
		}
	}
	ipAddr, err := netnsIPv4(ctx, s.host.ContainerNS("c2"))
	if err != nil {
		return err
	}
	s.serverIP = ipAddr
	if err := waitPing(ctx, s.Pair()); err != nil {
		return fmt.Errorf("%w%s", err, s.logTail())
	}
	return nil
}

// DataplaneStatus asks the daemon for its attached programs and endpoint counters.
func (s *netdSetup) DataplaneStatus() (*api.DataplaneStatus, error) {
	stdout, stderr, code := s.host.Netd("dataplane", "show", "--format", "json")
	if code != 0 {
		return nil, fmt.Errorf("netd dataplane show: exit %d: %s", code, strings.TrimSpace(stderr))
	}
	var st api.DataplaneStatus
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		return nil, fmt.Errorf("parse netd dataplane show: %w", err)
	}
	return &st, nil
}

// logTail returns the end of the daemon log to append to an error.
func (s *netdSetup) logTail() string {
	if s.host == nil {
		return ""
	}
	log := strings.TrimSpace(s.host.DaemonLog())
	if log == "" {
		return ""
	}
	const n = 1500
	if len(log) > n {
		log = log[len(log)-n:]
	}
	return "\n--- daemon log (tail) ---\n" + log
}

// netnsIPv4 returns the first global IPv4 address inside a named netns.
func netnsIPv4(ctx context.Context, ns string) (string, error) {
	out, err := run(ctx, 10*time.Second, "ip", "-n", ns, "-j", "-4", "addr", "show", "scope", "global")
	if err != nil {
		return "", fmt.Errorf("read address of %s: %w", ns, err)
	}
	var links []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return "", fmt.Errorf("parse addresses of %s: %w", ns, err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Local != "" {
				return a.Local, nil
			}
		}
	}
	return "", fmt.Errorf("no IPv4 address in %s", ns)
}

func (s *netdSetup) Down() {
	if s.lab == nil {
		return
	}
	if s.host != nil && s.host.Running() {
		// Programs and counters after the run show whether traffic took the fast path.
		stdout, stderr, code := s.host.Netd("dataplane", "show")
		if code != 0 {
			stdout += fmt.Sprintf("(netd dataplane show: exit %d) %s", code, stderr)
		}
		_ = os.WriteFile(filepath.Join(filepath.Dir(s.logPath), "dataplane-"+s.dataplane+".txt"), []byte(stdout), 0o644)
	}
	if s.host != nil {
		if log := s.host.DaemonLog(); log != "" {
			_ = os.MkdirAll(filepath.Dir(s.logPath), 0o755)
			_ = os.WriteFile(s.logPath, []byte(log), 0o644)
		}
	}
	// Stops the daemon, removes <prefix>-* namespaces, pins and the work dir.
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup %s: %v\n", s.dataplane, err)
	}
}

// benchHost makes a lab with one host named after the dataplane, for a
// daemon the caller starts.
func benchHost(netdBin, prefix, dataplane string) (*lab.Lab, *lab.Host, error) {
	if _, err := os.Stat(netdBin); err != nil {
		return nil, nil, fmt.Errorf("find netd binary (--netd or NETD_BIN): %w", err)
	}
	l, err := lab.New(nil, lab.Options{Prefix: prefix, NetdBin: netdBin, LogLevel: "info"})
	if err != nil {
		return nil, nil, fmt.Errorf("create lab: %w", err)
	}
	h, err := l.Host(dataplane)
	if err != nil {
		return l, nil, fmt.Errorf("create lab host: %w", err)
	}
	return l, h, nil
}
