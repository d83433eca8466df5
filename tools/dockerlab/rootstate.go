//go:build linux

package dockerlab

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// RootState is what an engine must leave as it found it, outside its namespace: the
// root namespace's links, addresses, routes, rules, nftables and iptables rulesets and
// sysctls, the machine's mounts and cgroups, and the directories daemons like to write.
// Capture it in the root namespace before and after; Diff says what changed.
type RootState map[string][]string

// stateDirs are listed (one level) because dockerd, containerd or the docker CLI write
// there when not told otherwise.
var stateDirs = []string{"/run", "/run/containerd", "/run/docker", "/var/lib", "/var/lib/docker",
	"/var/lib/containerd", "/etc", "/etc/docker", "/etc/containerd", "/opt", "/root/.docker"}

// stateSysctls are the sysctls outside /proc/sys/net (all of which are read) that a
// container engine has been known to set.
var stateSysctls = []string{"kernel/keys/maxkeys", "kernel/keys/root_maxkeys", "kernel/pid_max",
	"kernel/threads-max", "fs/inotify/max_user_instances", "fs/inotify/max_user_watches",
	"fs/may_detach_mounts", "vm/overcommit_memory", "vm/max_map_count", "user/max_net_namespaces"}

// volatile strips what changes on its own: address and route lifetimes, rule counters,
// iptables-save's timestamps.
var volatile = []*regexp.Regexp{
	regexp.MustCompile(`\s+valid_lft \S+ preferred_lft \S+`),
	regexp.MustCompile(`\s+expires \S+`),
	regexp.MustCompile(`^# (Generated|Completed) .*`),
	regexp.MustCompile(`\[\d+:\d+\]`),
}

// CaptureRootState reads the state of the calling process's namespaces (call it from
// the root network namespace). Tools that are not installed are skipped.
func CaptureRootState(ctx context.Context) (RootState, error) {
	st := RootState{}
	cmds := map[string][]string{
		"links":        {"ip", "-d", "-o", "link", "show"},
		"addresses":    {"ip", "-o", "addr", "show"},
		"routes4":      {"ip", "-4", "route", "show", "table", "all"},
		"routes6":      {"ip", "-6", "route", "show", "table", "all"},
		"rules4":       {"ip", "-4", "rule", "show"},
		"rules6":       {"ip", "-6", "rule", "show"},
		"neigh-proxy":  {"ip", "neigh", "show", "proxy"},
		"nft":          {"nft", "list", "ruleset"},
		"iptables":     {"iptables-save"},
		"ip6tables":    {"ip6tables-save"},
		"iptables-leg": {"iptables-legacy-save"},
	}
	for name, argv := range cmds {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		out, err := runOut(ctx, argv[0], argv[1:]...)
		if err != nil {
			return nil, err
		}
		st[name] = cleanLines(out)
	}
	st["sysctls"] = readSysctls()
	ms, err := mounts()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		st["mounts"] = append(st["mounts"], m.FSType+" "+m.Point)
	}
	sort.Strings(st["mounts"])
	for _, d := range stateDirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			st["dirs"] = append(st["dirs"], filepath.Join(d, e.Name()))
		}
	}
	for _, root := range cgroupRoots() {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.IsDir() {
				st["cgroups"] = append(st["cgroups"], filepath.Join(root, e.Name()))
			}
		}
	}
	return st, nil
}

func runOut(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func cleanLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, re := range volatile {
			l = re.ReplaceAllString(l, "")
		}
		if l = strings.TrimRight(l, " \t"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// readSysctls reads every sysctl under /proc/sys/net (but the conntrack counter) and
// stateSysctls, as path=value lines.
func readSysctls() []string {
	var out []string
	add := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			return // write-only or absent on this kernel
		}
		out = append(out, strings.TrimPrefix(p, "/proc/sys/")+"="+strings.Join(strings.Fields(string(b)), " "))
	}
	_ = filepath.WalkDir("/proc/sys/net", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "nf_conntrack_count" {
			add(p)
		}
		return nil
	})
	for _, s := range stateSysctls {
		add("/proc/sys/" + s)
	}
	return out
}

// Diff lists, per section, the lines only in a ("-") and only in b ("+"), skipping the
// lines ignore (if not nil) matches; empty means identical.
func (a RootState) Diff(b RootState, ignore func(line string) bool) string {
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	var keys []string
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out strings.Builder
	for _, k := range keys {
		in := func(lines []string) map[string]int {
			m := map[string]int{}
			for _, l := range lines {
				if ignore == nil || !ignore(l) {
					m[l]++
				}
			}
			return m
		}
		ma, mb := in(a[k]), in(b[k])
		var lines []string
		for l, n := range ma {
			if mb[l] < n {
				lines = append(lines, "- "+l)
			}
		}
		for l, n := range mb {
			if ma[l] < n {
				lines = append(lines, "+ "+l)
			}
		}
		if len(lines) == 0 {
			continue
		}
		sort.Strings(lines)
		fmt.Fprintf(&out, "%s:\n  %s\n", k, strings.Join(lines, "\n  "))
	}
	return out.String()
}
