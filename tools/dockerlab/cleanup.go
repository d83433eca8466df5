//go:build linux

package dockerlab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Shared runtime dirs containerd and dockerd create whatever their flags say: containerd
// 1.6 puts every shim's socket in /run/containerd/s, dockerd makes /run/docker/plugins.
// Each pair is removed when the child is empty and the parent holds nothing else, so a
// machine's own engine (whose socket or exec root lives there) is never touched.
var sharedRunDirs = [][2]string{
	{"/run/containerd", "s"},
	{"/run/docker", "plugins"},
}

// removeLeftovers removes what the daemons left outside the namespace: stray shims and
// container processes, mounts under the work dir, the container cgroups, the shared run
// dirs, then the work dir itself.
func (e *Engine) removeLeftovers() []error {
	var errs []error
	if err := e.killStrays(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, unmountUnder(e.Dir)...)
	errs = append(errs, removeCgroups(e.CgroupParent)...)
	for _, d := range sharedRunDirs {
		if err := removeIfOnly(d[0], d[1]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove work dir: %w", err))
	}
	return errs
}

// killStrays SIGKILLs what outlived the daemons, which only happens when one was killed:
// shims serving this engine's containerd and processes in its container cgroups.
func (e *Engine) killStrays() error {
	pids := map[int]bool{}
	var sockets []string
	for _, sh := range shims(e.containerdSock) {
		pids[sh.pid] = true
		sockets = append(sockets, sh.socket)
	}
	// A killed shim leaves its socket behind; the dir would stay for ever.
	defer func() {
		for _, s := range sockets {
			if fi, err := os.Lstat(s); err == nil && fi.Mode()&fs.ModeSocket != 0 {
				_ = os.Remove(s)
			}
		}
	}()
	for _, pid := range cgroupPIDs(e.CgroupParent) {
		pids[pid] = true
	}
	if len(pids) == 0 {
		return nil
	}
	for pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		alive := 0
		for pid := range pids {
			if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%d process(es) of the engine survived SIGKILL for 10s", len(pids))
}

// shimPIDs finds containerd shims whose -address is sock.
func shimPIDs(sock string) []int {
	var out []int
	for _, sh := range shims(sock) {
		out = append(out, sh.pid)
	}
	return out
}

// shim is a containerd-shim-runc-v2 process and the socket it serves.
type shim struct {
	pid    int
	socket string
}

// shims finds the shims whose -address is sock. Their socket is where containerd 1.6
// puts it: /run/containerd/s/<sha256 of address/namespace/id>.
func shims(sock string) []shim {
	entries, _ := os.ReadDir("/proc")
	var out []shim
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		flags := map[string]string{}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if strings.HasPrefix(args[i], "-") {
				flags[args[i]] = args[i+1]
			}
		}
		if flags["-address"] != sock {
			continue
		}
		sum := sha256.Sum256([]byte(filepath.Join(sock, flags["-namespace"], flags["-id"])))
		out = append(out, shim{pid: pid, socket: filepath.Join(shimSocketDir, hex.EncodeToString(sum[:]))})
	}
	return out
}

// shimSocketDir is where containerd 1.6 shims put their sockets, whatever its flags.
const shimSocketDir = "/run/containerd/s"

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	Point  string
	FSType string
}

// mounts parses /proc/self/mountinfo.
func mounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		out = append(out, mount{Point: unescapeMount(f[4]), FSType: g[0]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) []error {
	ms, err := mounts()
	if err != nil {
		return []error{err}
	}
	var points []string
	for _, m := range ms {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			points = append(points, m.Point)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errs
}

// cgroupRoots are the mount points of every cgroup hierarchy (v1 controllers, the
// named systemd one, and cgroup2).
func cgroupRoots() []string {
	ms, err := mounts()
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.Point)
		}
	}
	return out
}

// existingCgroups lists parent's directory in each hierarchy where it exists.
func existingCgroups(parent string) []string {
	var out []string
	for _, root := range cgroupRoots() {
		p := filepath.Join(root, parent)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// cgroupPIDs lists the processes in parent and below, in any hierarchy.
func cgroupPIDs(parent string) []int {
	seen := map[int]bool{}
	var out []int
	for _, dir := range existingCgroups(parent) {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// removeCgroups removes parent and every cgroup below it in each hierarchy, leaves first.
func removeCgroups(parent string) []error {
	var errs []error
	for _, dir := range existingCgroups(parent) {
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errs
}

// removeIfOnly removes parent/child and parent when child is an empty directory and
// parent holds nothing else.
func removeIfOnly(parent, child string) error {
	entries, err := os.ReadDir(parent)
	if err != nil || len(entries) != 1 || entries[0].Name() != child || !entries[0].IsDir() {
		return nil
	}
	sub := filepath.Join(parent, child)
	if inner, err := os.ReadDir(sub); err != nil || len(inner) > 0 {
		return nil
	}
	if err := os.Remove(sub); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", sub, err)
	}
	// Another engine may have put something there meanwhile: then it stays.
	if err := os.Remove(parent); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("remove %s: %w", parent, err)
	}
	return nil
}

// deleteNetns removes a named namespace made by AttachNetns, if it is still there.
func deleteNetns(name string) error {
	if _, err := os.Lstat(filepath.Join(NetnsDir, name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
