//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netd-dev/netd/tools/dockerlab"
	"github.com/netd-dev/netd/tools/lab"
)

// Docker's side: the network and its subnet inside the engine's namespace.
const (
	dockerNetwork = "bench"
	dockerSubnet  = "10.203.0.0/24"
)

// dockerSetup is the real Docker engine (tools/dockerlab: dockerd, containerd, runc) in a
// lab namespace, with two containers on a user-defined bridge network, Docker's default
// for anything but the legacy docker0. The measuring tools are the same host binaries as
// for every setup, run inside the containers' network namespaces (named under /run/netns
// with `ip netns attach`).
type dockerSetup struct {
	prefix, netdBin, logDir string
	lab                     *lab.Lab
	host                    *lab.Host
	eng                     *dockerlab.Engine
	serverIP                string
}

func newDockerSetup(prefix, netdBin, logDir string) *dockerSetup {
	// Its own lab, so its Close cannot touch the other setups' namespaces.
	return &dockerSetup{prefix: prefix + "d", netdBin: netdBin, logDir: logDir}
}

func (s *dockerSetup) Name() string { return setupDocker }

func (s *dockerSetup) Pair() Pair {
	if s.serverIP == "" {
		return Pair{}
	}
	return Pair{ClientNS: s.host.ContainerNS("c1"), ServerNS: s.host.ContainerNS("c2"), ServerIP: s.serverIP}
}

func (s *dockerSetup) Up(ctx context.Context) error {
	l, err := lab.New(nil, lab.Options{Prefix: s.prefix, NetdBin: s.netdBin})
	if err != nil {
		return fmt.Errorf("create lab: %w", err)
	}
	s.lab = l
	if s.host, err = l.Host("docker"); err != nil {
		return fmt.Errorf("create lab host: %w", err)
	}
	if s.eng, err = dockerlab.Start(ctx, dockerlab.Options{NetNS: s.host.NS(), Dir: filepath.Join(l.Dir, "docker")}); err != nil {
		return err
	}
	img, err := s.eng.Image(ctx)
	if err != nil {
		return err
	}
	if _, err := s.eng.Docker(ctx, "network", "create", "--driver", "bridge", "--subnet", dockerSubnet, dockerNetwork); err != nil {
		return err
	}
	for _, c := range []string{"c1", "c2"} {
		// PID 1 only holds the namespace; a day outlasts any bench run.
		if _, err := s.eng.Docker(ctx, "run", "-d", "--name", c, "--network", dockerNetwork, img, "sleep", "86400"); err != nil {
			return fmt.Errorf("%w\n--- dockerd log (tail) ---\n%s", err, s.eng.LogTail(20))
		}
		if err := s.eng.AttachNetns(ctx, c, s.host.ContainerNS(c)); err != nil {
			return err
		}
	}
	if s.serverIP, err = s.eng.ContainerIP(ctx, "c2", dockerNetwork); err != nil {
		return err
	}
	return waitPing(ctx, s.Pair())
}

func (s *dockerSetup) Down() {
	if s.eng != nil {
		// The engine's work dir goes with it; its logs are kept in the out dir.
		for src, dst := range map[string]string{s.eng.DockerdLog: "docker-dockerd.log", s.eng.ContainerdLog: "docker-containerd.log"} {
			if b, err := os.ReadFile(src); err == nil {
				_ = os.MkdirAll(s.logDir, 0o755)
				_ = os.WriteFile(filepath.Join(s.logDir, dst), b, 0o644)
			}
		}
		if err := s.eng.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup docker: %v\n", err)
		}
		s.eng = nil
	}
	if s.lab != nil {
		if err := s.lab.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup docker lab: %v\n", err)
		}
	}
}
