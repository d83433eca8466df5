//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

// scaleOps is how many times each operation is timed at each network count.
const scaleOps = 10

// scalePool gives the daemon room for 32768 /24 networks (the default pools
// hold about 31).
const scalePool = "base=10.128.0.0/9,size=24"

// maxScale bounds --scale; the eBPF maps hold 1024 networks.
const maxScale = 1000

// parseScale parses --scale: ascending network counts, or "none".
func parseScale(s string) ([]int, error) {
	if s == "none" || s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxScale {
			return nil, fmt.Errorf("bad --scale %q: want ascending network counts 1..%d like 10,100,1000, or none", s, maxScale)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("bad --scale %q: counts must ascend", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// scaleRun times network create, rm and ls on one daemon as its number of
// networks grows through counts. It has a lab of its own, closed at the end.
type scaleRun struct {
	dataplane string
	netdBin   string
	prefix    string
	logPath   string
	prog      *progress

	lab    *lab.Lab
	host   *lab.Host
	client *api.Client
	stats  []ScaleStat
}

func newScaleRun(prefix, dataplane, netdBin, logDir string, prog *progress) *scaleRun {
	return &scaleRun{dataplane: dataplane, netdBin: netdBin, prefix: prefix, prog: prog,
		logPath: filepath.Join(logDir, "netd-scale-"+dataplane+".log")}
}

// run returns the stats measured so far even when it fails.
func (s *scaleRun) run(ctx context.Context, counts []int) ([]ScaleStat, error) {
	defer s.down()
	if err := s.up(); err != nil {
		return nil, err
	}
	have := 0
	for _, n := range counts {
		var fill []float64
		for ; have < n; have++ {
			if ctx.Err() != nil {
				return s.stats, ctx.Err()
			}
			if have%50 == 0 {
				s.prog.show("scale %-6s  creating networks %d/%d", s.dataplane, have, counts[len(counts)-1])
			}
			d, err := s.create(ctx, fmt.Sprintf("scale%04d", have), "")
			if err != nil {
				return s.stats, fmt.Errorf("at %d networks: %w%s", have, err, s.logTail())
			}
			fill = append(fill, ms(d))
		}
		s.stats = append(s.stats, scaleStat(s.dataplane, n, scaleFill, fill))
		s.prog.show("scale %-6s  timing create, ls, rm at %d networks", s.dataplane, n)
		if err := s.measureAt(ctx, n); err != nil {
			return s.stats, fmt.Errorf("at %d networks: %w%s", n, err, s.logTail())
		}
	}
	return s.stats, nil
}

func (s *scaleRun) up() error {
	var err error
	if s.lab, s.host, err = benchHost(s.netdBin, s.prefix, s.dataplane); err != nil {
		return err
	}
	if err := s.host.StartDaemon("--dataplane", s.dataplane, "--default-address-pool", scalePool); err != nil {
		return err
	}
	s.client, err = api.NewClient(s.host.HostURL())
	return err
}

// create makes one network, its subnet from the pool unless subnet is
// given, and returns how long the daemon took.
func (s *scaleRun) create(ctx context.Context, name, subnet string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, lab.CommandTimeout)
	defer cancel()
	req := api.NetworkCreateRequest{Name: name, Driver: "bridge", Options: map[string]string{api.OptDataplane: s.dataplane}}
	if subnet != "" {
		req.IPAM = &api.IPAM{Config: []api.IPAMConfig{{Subnet: subnet}}}
	}
	start := time.Now()
	_, err := s.client.NetworkCreate(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("create network %s: %w", name, err)
	}
	return time.Since(start), nil
}

// measureAt times scaleOps creates of extra networks (subnet from the pool,
// and given, which leaves the pool search out), lists through the API and
// the CLI, and removes of the extras, so the count stays about n.
func (s *scaleRun) measureAt(ctx context.Context, n int) error {
	var creates, createsSubnet, rms, lsAPI, lsCLI []float64
	var extras []string
	for i := 0; i < scaleOps; i++ {
		name := fmt.Sprintf("extra%02d", i)
		d, err := s.create(ctx, name, "")
		if err != nil {
			return err
		}
		creates = append(creates, ms(d))
		extras = append(extras, name)
		// Outside the pool, so the pool's networks never collide with these.
		name = fmt.Sprintf("extra%02ds", i)
		if d, err = s.create(ctx, name, fmt.Sprintf("10.64.%d.0/24", i)); err != nil {
			return err
		}
		createsSubnet = append(createsSubnet, ms(d))
		extras = append(extras, name)
	}
	want := n + len(extras) + 3 // with the built-in bridge, host and none
	for i := 0; i < scaleOps; i++ {
		cctx, cancel := context.WithTimeout(ctx, lab.CommandTimeout)
		start := time.Now()
		nets, err := s.client.NetworkList(cctx, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("list networks: %w", err)
		}
		lsAPI = append(lsAPI, ms(time.Since(start)))
		if len(nets) != want {
			return fmt.Errorf("network list has %d networks, want %d", len(nets), want)
		}
	}
	for i := 0; i < scaleOps; i++ {
		start := time.Now()
		out, stderr, code := s.host.Netd("network", "ls")
		if code != 0 {
			return fmt.Errorf("netd network ls: exit %d: %s", code, strings.TrimSpace(stderr))
		}
		lsCLI = append(lsCLI, ms(time.Since(start)))
		if rows := strings.Count(out, "\n") - 1; rows != want {
			return fmt.Errorf("netd network ls printed %d rows, want %d", rows, want)
		}
	}
	for _, name := range extras {
		cctx, cancel := context.WithTimeout(ctx, lab.CommandTimeout)
		start := time.Now()
		err := s.client.NetworkRemove(cctx, name)
		cancel()
		if err != nil {
			return fmt.Errorf("remove network %s: %w", name, err)
		}
		rms = append(rms, ms(time.Since(start)))
	}
	for _, o := range []struct {
		op  string
		val []float64
	}{{scaleCreate, creates}, {scaleCreateSubnet, createsSubnet}, {scaleRm, rms}, {scaleLsAPI, lsAPI}, {scaleLsCLI, lsCLI}} {
		s.stats = append(s.stats, scaleStat(s.dataplane, n, o.op, o.val))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// logTail is the end of the daemon log, to append to an error.
func (s *scaleRun) logTail() string {
	if s.host == nil {
		return ""
	}
	log := strings.TrimSpace(s.host.DaemonLog())
	if len(log) > 1500 {
		log = log[len(log)-1500:]
	}
	if log == "" {
		return ""
	}
	return "\n--- daemon log (tail) ---\n" + log
}

// down keeps the daemon log and removes the lab (daemon, netns, pins).
func (s *scaleRun) down() {
	if s.lab == nil {
		return
	}
	s.prog.show("scale %-6s  tearing down", s.dataplane)
	if s.host != nil {
		if log := s.host.DaemonLog(); log != "" {
			_ = os.MkdirAll(filepath.Dir(s.logPath), 0o755)
			_ = os.WriteFile(s.logPath, []byte(log), 0o644)
		}
	}
	if err := s.lab.Close(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "cleanup scale %s: %v\n", s.dataplane, err)
	}
	s.lab = nil
}
