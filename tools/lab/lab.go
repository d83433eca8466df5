//go:build linux

// Package lab runs several netd daemons on one machine, each in its own
// network namespace (a "lab host"), for the end-to-end tests, the demo and
// the benchmark. Everything a Lab creates carries its random prefix, so
// labs never collide and Close removes exactly what the lab made.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/dataplane/bpffs"
)

const (
	// NetnsDir is where `ip netns` bind-mounts named namespaces.
	NetnsDir = "/run/netns"
	// NetnsEtcDir holds per-namespace /etc files (`ip netns exec`'s /etc/netns).
	NetnsEtcDir = "/etc/netns"
	// BPFFSRoot is the bpffs mount point; BPFFSDir is what daemons get as --bpffs.
	BPFFSRoot = "/sys/fs/bpf"
	BPFFSDir  = "/sys/fs/bpf/netd"
	// DefaultPrefix starts every random lab prefix.
	DefaultPrefix = "ndl"
)

// CommandTimeout bounds every CLI call and helper command the lab runs.
var CommandTimeout = 60 * time.Second

// Options configure a Lab.
type Options struct {
	// Prefix names everything the lab creates; empty means DefaultPrefix
	// plus 4 random hex digits.
	Prefix string
	// NetdBin is the netd binary; empty means $NETD_BIN or a fresh build.
	NetdBin string
	// Trace, if set, receives every command the lab runs and its output,
	// like a terminal session (the demo points it at stdout).
	Trace io.Writer
	// LogLevel is passed to every daemon as --log-level (default debug).
	LogLevel string
}

// Lab is a set of lab hosts sharing one prefix and one work directory.
type Lab struct {
	Prefix string
	Dir    string // temp work dir: one sub-directory per host

	t        testing.TB
	bin      string
	trace    io.Writer
	logLevel string

	mu        sync.Mutex
	hosts     []*Host
	closers   []func() error // run by Close after the daemons, before the namespaces
	closed    bool
	closeDone chan struct{} // closed when the first Close has finished
	closeErr  error
}

// openLabs are the labs not closed yet, for CloseOnSignal.
var (
	openMu   sync.Mutex
	openLabs = map[*Lab]bool{}
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// New creates a lab. With a non-nil t, failures are fatal to the test, the
// lab is closed in t.Cleanup and daemon logs are dumped if the test failed.
func New(t testing.TB, opts Options) (*Lab, error) {
	if t != nil {
		t.Helper()
	}
	l, err := newLab(t, opts)
	if err != nil {
		if t != nil {
			t.Fatalf("lab: %v", err)
		}
		return nil, err
	}
	if t != nil {
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Errorf("lab close: %v", err)
			}
		})
	}
	return l, nil
}

// NewLab creates a lab outside of a test (demo, benchmark); the caller
// must Close it. An empty prefix gets a random one.
func NewLab(prefix string) (*Lab, error) {
	return New(nil, Options{Prefix: prefix})
}

func newLab(t testing.TB, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (network namespaces, bpffs)")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix + stringid.RandomHex(4)
	}
	// Node names, netns names and bridge-less device names derive from it.
	if !validName.MatchString(prefix) || len(prefix) > 8 {
		return nil, fmt.Errorf("invalid lab prefix %q: want [a-z0-9-], at most 8 characters", prefix)
	}
	if err := bpffs.Ensure(BPFFSDir); err != nil {
		return nil, err
	}
	bin := opts.NetdBin
	if bin == "" {
		var err error
		if bin, err = NetdBinary(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return nil, fmt.Errorf("create lab dir: %w", err)
	}
	level := opts.LogLevel
	if level == "" {
		level = "debug"
	}
	l := &Lab{Prefix: prefix, Dir: dir, t: t, bin: bin, trace: opts.Trace, logLevel: level, closeDone: make(chan struct{})}
	openMu.Lock()
	openLabs[l] = true
	openMu.Unlock()
	return l, nil
}

// CloseOnSignal makes SIGINT, SIGTERM and SIGHUP close every open lab of
// this process before it exits with status 130, so a Ctrl-C'd test run
// leaves no namespace, pin or daemon behind. Call it once from TestMain
// or main; stop undoes it.
func CloseOnSignal() (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	quit := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			openMu.Lock()
			labs := make([]*Lab, 0, len(openLabs))
			for l := range openLabs {
				labs = append(labs, l)
			}
			openMu.Unlock()
			fmt.Fprintf(os.Stderr, "\nlab: %v: removing %d open lab(s)\n", s, len(labs))
			for _, l := range labs {
				if err := l.Close(); err != nil {
					fmt.Fprintf(os.Stderr, "lab %s: close: %v\n", l.Prefix, err)
				}
			}
			os.Exit(130)
		case <-quit:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(quit)
	}
}

// NetdBin is the path of the netd binary the lab runs.
func (l *Lab) NetdBin() string { return l.bin }

// Hosts returns the hosts created so far.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Host creates a lab host: network namespace <prefix>-<name> with lo up and
// a work dir for its daemon. It does not start the daemon.
func (l *Lab) Host(name string) (*Host, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("invalid host name %q", name)
	}
	node := l.Prefix + "-" + name
	dir := filepath.Join(l.Dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, fmt.Errorf("create host dir: %w", err)
	}
	h := &Host{
		Lab:      l,
		Name:     name,
		Node:     node,
		Dir:      dir,
		Socket:   filepath.Join(dir, "netd.sock"),
		StateDir: filepath.Join(dir, "state"),
		LogPath:  filepath.Join(dir, "daemon.log"),
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab is closed")
	}
	// Registered before the netns exists so Close removes it even half-made.
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if _, err := l.run("ip", "netns", "add", node); err != nil {
		return nil, fmt.Errorf("create host netns: %w", err)
	}
	if _, err := l.run("ip", "-n", node, "link", "set", "lo", "up"); err != nil {
		return nil, fmt.Errorf("set lo up in %s: %w", node, err)
	}
	return h, nil
}

// MustHost is Host for tests: it fails the test on error.
func (l *Lab) MustHost(name string) *Host {
	if l.t == nil {
		panic("lab: MustHost needs a lab created with a testing.TB")
	}
	l.t.Helper()
	h, err := l.Host(name)
	if err != nil {
		l.t.Fatalf("lab host %s: %v", name, err)
	}
	return h
}

// Wire joins two lab hosts with a veth pair named ifName on both ends and
// gives a the address aAddr and b bAddr (CIDR form). Deleting either
// namespace deletes the pair, so Close needs no record of it.
func (l *Lab) Wire(a, b *Host, ifName, aAddr, bAddr string) error {
	tmpA, tmpB := "ndw"+stringid.RandomHex(8), "ndw"+stringid.RandomHex(8)
	// Created directly inside a so the root namespace never holds either end.
	if _, err := l.run("ip", "-n", a.Node, "link", "add", tmpA, "type", "veth", "peer", "name", tmpB, "netns", b.Node); err != nil {
		return fmt.Errorf("create wire: %w", err)
	}
	steps := [][]string{
		{"ip", "-n", a.Node, "link", "set", tmpA, "name", ifName},
		{"ip", "-n", b.Node, "link", "set", tmpB, "name", ifName},
		{"ip", "-n", a.Node, "addr", "add", aAddr, "dev", ifName},
		{"ip", "-n", b.Node, "addr", "add", bAddr, "dev", ifName},
		{"ip", "-n", a.Node, "link", "set", ifName, "up"},
		{"ip", "-n", b.Node, "link", "set", ifName, "up"},
	}
	for _, s := range steps {
		if _, err := l.run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("configure wire: %w", err)
		}
	}
	return nil
}

// Close stops every daemon and removes every namespace, pin and file the lab
// (and its daemons) created. It keeps going after errors and reports them all.
// A second call, also a concurrent one (a signal handler racing the normal
// end), waits for the first to finish and returns its result.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.closeDone
		return l.closeErr
	}
	l.closed = true
	hosts := append([]*Host(nil), l.hosts...)
	closers := l.closers
	l.mu.Unlock()
	defer func() {
		openMu.Lock()
		delete(openLabs, l)
		openMu.Unlock()
		close(l.closeDone)
	}()

	var errs []error
	if l.t != nil && l.t.Failed() {
		for _, h := range hosts {
			l.t.Logf("---- daemon log of %s (%s) ----\n%s", h.Node, h.LogPath, tail(h.LogPath, 120))
		}
	}
	for _, h := range hosts {
		if err := h.StopDaemon(); err != nil {
			errs = append(errs, fmt.Errorf("stop daemon %s: %w", h.Node, err))
		}
	}
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, l.removeNetns()...)
	errs = append(errs, l.removePins()...)
	errs = append(errs, l.removeNetnsEtc()...)
	if os.Getenv("NETD_LAB_KEEP") == "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab dir: %w", err))
		}
	}
	l.closeErr = errors.Join(errs...)
	return l.closeErr
}

// onClose makes Close run fn after stopping the daemons and before removing
// the namespaces (what holds a namespace, a socket say, must go first).
func (l *Lab) onClose(fn func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("lab is closed")
	}
	l.closers = append(l.closers, fn)
	return nil
}

// Namespaces lists the named network namespaces belonging to this lab:
// its hosts and every container namespace their daemons made.
func (l *Lab) Namespaces() ([]string, error) {
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", NetnsDir, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), l.Prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (l *Lab) removeNetns() []error {
	var errs []error
	// Containers first, hosts last; a few rounds in case a daemon was still
	// creating one while we listed.
	for round := 0; round < 3; round++ {
		names, err := l.Namespaces()
		if err != nil {
			return append(errs, err)
		}
		if len(names) == 0 {
			return errs
		}
		for i := len(names) - 1; i >= 0; i-- {
			if _, err := l.run("ip", "netns", "del", names[i]); err != nil && round == 2 {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// removeNetnsEtc removes the /etc/netns/<netns> directories the daemons
// wrote for their containers (the embedded DNS's resolv.conf).
func (l *Lab) removeNetnsEtc() []error {
	matches, err := filepath.Glob(filepath.Join(NetnsEtcDir, l.Prefix+"-*"))
	if err != nil {
		return []error{fmt.Errorf("glob %s: %w", NetnsEtcDir, err)}
	}
	var errs []error
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", m, err))
		}
	}
	return errs
}

func (l *Lab) removePins() []error {
	matches, err := filepath.Glob(filepath.Join(BPFFSDir, l.Prefix+"-*"))
	if err != nil {
		return []error{fmt.Errorf("glob pins: %w", err)}
	}
	var errs []error
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			errs = append(errs, fmt.Errorf("remove pins %s: %w", m, err))
		}
	}
	// The shared root goes with the last lab; another one running keeps it non-empty.
	_ = os.Remove(BPFFSDir)
	return errs
}

// run runs a helper command in the current (root) namespace, bounded.
func (l *Lab) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (l *Lab) logf(format string, args ...any) {
	if l.trace != nil {
		fmt.Fprintf(l.trace, format, args...)
	}
	if l.t != nil {
		l.t.Helper()
		l.t.Logf(format, args...)
	}
}

// tail returns the last n lines of a file, for failure reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines skipped)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
