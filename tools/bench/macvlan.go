//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netd-dev/netd/tools/lab"
)

const setupMacvlan = "macvlan"

// macvlanSetup is a netd macvlan container talking to a machine on the
// "physical" LAN (tools/lab External: a switch namespace with a host
// plugged in). Its path is container macvlan → parent veth → switch →
// the host: one bridge hop more than a container-to-container pair on one
// bridge, and what a macvlan user gets instead of a bridge plus NAT.
type macvlanSetup struct {
	netdBin, prefix, logPath string
	lab                      *lab.Lab
	host                     *lab.Host
	ext                      *lab.External
}

func newMacvlanSetup(prefix, netdBin, logDir string) *macvlanSetup {
	return &macvlanSetup{netdBin: netdBin, prefix: prefix + "m", logPath: filepath.Join(logDir, "netd-macvlan.log")}
}

func (s *macvlanSetup) Name() string { return setupMacvlan }

func (s *macvlanSetup) Pair() Pair {
	if s.ext == nil {
		return Pair{}
	}
	return Pair{ClientNS: s.host.ContainerNS("c1"), ServerNS: s.ext.Host.NS(), ServerIP: lab.ExtHost}
}

func (s *macvlanSetup) Up(ctx context.Context) error {
	var err error
	if s.lab, s.host, err = benchHost(s.netdBin, s.prefix, "mh"); err != nil {
		return err
	}
	if s.ext, err = s.lab.External(); err != nil {
		return fmt.Errorf("external network: %w", err)
	}
	if err := s.ext.Plug(s.host, "eth1"); err != nil {
		return err
	}
	if err := s.host.StartDaemon("--dataplane", "kernel"); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"network", "create", "-d", "macvlan", "--subnet", lab.ExtLAN, "--gateway", lab.ExtRouter, "--ip-range", "10.50.0.128/26", "-o", "parent=eth1", "bench"},
		{"container", "create", "--network", "bench", "c1"},
	} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if stdout, stderr, code := s.host.Netd(args...); code != 0 {
			return fmt.Errorf("netd %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr+stdout))
		}
	}
	return waitPing(ctx, s.Pair())
}

func (s *macvlanSetup) Down() {
	if s.lab == nil {
		return
	}
	if s.host != nil {
		if log := s.host.DaemonLog(); log != "" {
			_ = os.MkdirAll(filepath.Dir(s.logPath), 0o755)
			_ = os.WriteFile(s.logPath, []byte(log), 0o644)
		}
	}
	if err := s.lab.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup macvlan: %v\n", err)
	}
}
