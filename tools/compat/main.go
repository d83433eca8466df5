//go:build linux

// Command compat runs the same `network` steps with the real docker CLI
// against a real dockerd and with netd's CLI against a netd daemon, each in
// a namespace of its own, normalises what differs by nature (IDs, times,
// MAC addresses, the program's name) and compares stdout, stderr and the
// exit code of every step. Steps listed in deliberate.go may differ, for the
// reason given there; any other difference makes it exit 1.
//
//	sudo go run ./tools/compat [--netd bin/netd] [--docker-cli PATH] [--out DIR] [-v]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netd-dev/netd/api/stringid"
	"github.com/netd-dev/netd/tools/dockerlab"
	"github.com/netd-dev/netd/tools/lab"
)

func main() {
	netdBin := flag.String("netd", "", "netd binary (default: $NETD_BIN, else a fresh build)")
	dockerCLI := flag.String("docker-cli", "", "docker CLI (default: the newest of /usr/local/bin/docker and the engine's own)")
	out := flag.String("out", "", "directory for report.txt (default: none)")
	verbose := flag.Bool("v", false, "print every step's outputs, not only the differences")
	flag.Parse()
	err := run(*netdBin, *dockerCLI, *out, *verbose)
	switch {
	case errors.Is(err, errStillDifferent):
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "compat:", err)
		os.Exit(2)
	}
}

// errStillDifferent says some step differs without being listed as deliberate.
var errStillDifferent = errors.New("steps differ")

// side is one of the two programs the steps run against.
type side struct {
	name string
	// cmd runs the CLI with args (and stdin) against its daemon.
	cmd func(ctx context.Context, stdin string, args ...string) result
	ids idMap
}

// result is what one command did.
type result struct {
	stdout, stderr string
	exit           int
}

func run(netdBin, dockerCLI, outDir string, verbose bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, dockerd)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	if dockerCLI == "" {
		dockerCLI = newestDockerCLI()
	}
	l, err := lab.New(nil, lab.Options{Prefix: "ndc" + stringid.RandomHex(4), NetdBin: netdBin, LogLevel: "info"})
	if err != nil {
		return err
	}
	defer l.Close()
	nh, err := l.Host("netd")
	if err != nil {
		return err
	}
	if err := nh.StartDaemon("--dataplane", "kernel"); err != nil {
		return err
	}
	dh, err := l.Host("docker")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", l.Prefix+"-d")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "compat: starting dockerd in netns %s ...\n", dh.NS())
	eng, err := dockerlab.Start(ctx, dockerlab.Options{NetNS: dh.NS(), Dir: dir, CLI: dockerCLI})
	if err != nil {
		return err
	}
	defer func() {
		if err := eng.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "compat:", err)
		}
	}()
	image, err := eng.Image(ctx)
	if err != nil {
		return err
	}
	engineVersion, _ := eng.Docker(ctx, "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
	cliVersion := dockerVersion(dockerCLI)

	docker := &side{name: "docker", ids: idMap{}}
	docker.cmd = func(ctx context.Context, stdin string, args ...string) result {
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		o, e, code, err := eng.DockerCLI(ctx, in, args...)
		if err != nil {
			e += "compat: " + err.Error()
		}
		return result{o, e, code}
	}
	netd := &side{name: "netd", ids: idMap{}}
	netd.cmd = func(_ context.Context, stdin string, args ...string) result {
		o, e, code := nh.NetdStdin(stdin, args...)
		return result{o, e, code}
	}

	var report strings.Builder
	w := io.MultiWriter(os.Stdout, &report)
	fmt.Fprintf(w, "docker CLI %s (%s), dockerd %s; netd %s\n\n", cliVersion, dockerCLI, engineVersion, l.NetdBin())
	major := cliMajor(cliVersion)
	var counts [3]int
	var stale []string
	for _, st := range steps(image) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if st.setup != nil {
			if err := st.setup(ctx, docker, netd); err != nil {
				return fmt.Errorf("setup %q: %w", st.name, err)
			}
			continue
		}
		d := docker.cmd(ctx, st.stdin, st.args...)
		n := netd.cmd(ctx, st.stdin, st.args...)
		docker.ids.learn(ctx, docker, true)
		netd.ids.learn(ctx, netd, false)
		dn, nn := normalise(d, docker.ids, true), normalise(n, netd.ids, false)
		reason := deliberateReason(st.name, major)
		if reason == whyEnableIPv4 && st.args[1] == "inspect" && withoutEnableIPv4(nn) != dn {
			reason = "" // differs in more than EnableIPv4
		}
		switch {
		case dn == nn && reason != "":
			counts[0]++
			stale = append(stale, st.name)
			fmt.Fprintf(w, "[same, listed as deliberate] %s\n", st.name)
		case dn == nn:
			counts[0]++
			fmt.Fprintf(w, "[same] %s\n", st.name)
			if verbose {
				fmt.Fprint(w, indent(dn.String()))
			}
		case reason != "":
			counts[1]++
			fmt.Fprintf(w, "[deliberate] %s: %s\n", st.name, reason)
			if verbose {
				fmt.Fprint(w, diff(dn, nn))
			}
		default:
			counts[2]++
			fmt.Fprintf(w, "[DIFFERENT] %s\n%s", st.name, diff(dn, nn))
		}
	}
	fmt.Fprintf(w, "\n%d steps: %d identical, %d deliberately different, %d still different\n",
		counts[0]+counts[1]+counts[2], counts[0], counts[1], counts[2])
	if len(stale) > 0 {
		fmt.Fprintf(w, "listed as deliberate but identical now (remove from deliberate.go): %s\n", strings.Join(stale, "; "))
	}
	if outDir != "" {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, "report.txt"), []byte(report.String()), 0o644); err != nil {
			return err
		}
	}
	if counts[2] > 0 {
		return errStillDifferent
	}
	return nil
}

// newestDockerCLI prefers a current docker-ce CLI (its texts are current
// Docker's) over the engine's own, Debian's 20.10.
func newestDockerCLI() string {
	best, bestMajor := "", -1
	bins, _ := dockerlab.FindBinaries()
	for _, p := range []string{"/usr/local/bin/docker", bins.CLI} {
		if p == "" {
			continue
		}
		if m := cliMajor(dockerVersion(p)); m > bestMajor {
			best, bestMajor = p, m
		}
	}
	return best
}

var versionRE = regexp.MustCompile(`Docker version ([0-9][^ ,]*)`)

func dockerVersion(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if m := versionRE.FindSubmatch(out); err == nil && m != nil {
		return string(m[1])
	}
	return "unknown"
}

func cliMajor(v string) int {
	n, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return -1
	}
	return n
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}
