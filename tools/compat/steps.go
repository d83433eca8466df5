//go:build linux

package main

import (
	"context"
	"fmt"
	"strings"
)

// step is one command run on both sides, or a setup that brings both sides
// to the same state by their own means (containers are made differently).
type step struct {
	name  string
	args  []string
	stdin string
	setup func(ctx context.Context, docker, netd *side) error
}

// cmd is a compared step named after its arguments.
func cmd(args ...string) step { return step{name: strings.Join(args, " "), args: args} }

// withStdin is a compared step fed stdin (a prompt's answer).
func withStdin(stdin string, args ...string) step {
	s := cmd(args...)
	s.stdin, s.name = stdin, s.name+" <<< "+strings.TrimSpace(stdin)
	return s
}

// both runs a setup command on each side and fails unless both succeed.
func both(name string, docker, netd []string) step {
	return step{name: name, setup: func(ctx context.Context, d, n *side) error {
		for _, x := range []struct {
			s    *side
			args []string
		}{{d, docker}, {n, netd}} {
			if r := x.s.cmd(ctx, "", x.args...); r.exit != 0 {
				return fmt.Errorf("%s %s: exit %d: %s", x.s.name, strings.Join(x.args, " "), r.exit, r.stderr)
			}
		}
		return nil
	}}
}

// steps cover every `network` subcommand and flag netd has, the templates,
// the filters and the bad-input cases. image is the engine's local image.
func steps(image string) []step {
	net := func(args ...string) step { return cmd(append([]string{"network"}, args...)...) }
	return []step{
		// ls on the built-in networks.
		net("ls"),
		net("list"),
		net("ls", "--no-trunc"),
		net("ls", "-q"),
		net("ls", "--quiet", "--no-trunc"),
		net("ls", "--format", "table"),
		net("ls", "--format", "{{.Name}}"),
		net("ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.Scope}}"),
		net("ls", "--format", "json"),
		net("ls", "--format", "{{json .}}"),
		net("ls", "--format", "{{.ID}} {{.IPv4}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.CreatedAt}}"),
		net("ls", "--format", "{{.Name}} {{.Nope}}"),
		net("ls", "--format", "{{.Name"),
		net("ls", "-f", "driver=bridge"),
		net("ls", "--filter", "type=builtin"),
		net("ls", "--filter", "type=custom"),
		net("ls", "--filter", "name=br"),
		net("ls", "--filter", "scope=local", "--filter", "driver=null"),
		net("ls", "--filter", "dangling=true"),
		net("ls", "--filter", "color=red"),
		net("ls", "--filter", "type=bogus"),
		net("ls", "--filter", "dangling=maybe"),
		net("ls", "--filter", "driver"),
		net("ls", "extra"),
		net("ls", "--bogus"),

		// create with every flag, and what it refuses.
		net("create"),
		net("create", "a", "b"),
		net("create", "--subnet", "10.90.0.0/24", "--gateway", "10.90.0.254", "--ip-range", "10.90.0.128/25",
			"--aux-address", "printer=10.90.0.5", "--label", "team=db", "-o", "com.docker.network.bridge.enable_icc=false",
			"--attachable", "c1"),
		net("create", "--internal", "c2"),
		net("create", "--subnet", "10.91.0.0/24", "--opt", "com.docker.network.driver.mtu=1400", "c3"),
		// One label per network in steps showing .Labels: docker joins them in map order.
		net("create", "-d", "bridge", "--label", "tier", "c4"),
		net("create", "c1"),
		net("create", "--subnet", "10.90.0.0/16", "overlap"),
		net("create", "--subnet", "bogus", "x1"),
		net("create", "--subnet", "10.92.0.0/33", "x1"),
		net("create", "--gateway", "10.1.1.1", "x1"),
		net("create", "--subnet", "10.93.0.0/24", "--gateway", "10.94.0.1", "x1"),
		net("create", "--subnet", "10.93.0.0/24", "--ip-range", "10.93.1.0/25", "x1"),
		net("create", "--subnet", "10.93.0.0/24", "--gateway", "bogus", "x1"),
		net("create", "--subnet", "10.93.0.0/24", "--aux-address", "printer", "x1"),
		net("create", "--subnet", "10.93.0.0/24", "--subnet", "10.93.0.0/25", "x1"),
		net("create", "--ipv6", "x1"),
		net("create", "-d", "host", "x1"),
		net("create", "-d", "null", "x1"),
		net("create", "-d", "nosuch", "x1"),
		net("create", "bridge"),
		net("create", "host"),
		net("create", "none"),
		net("create", "default"),
		net("create", "--label", "=x", "x1"),
		net("create", "--internal=maybe", "x1"),
		net("create", "--bogus", "x1"),

		// inspect.
		net("inspect", "c1"),
		net("inspect", "c1", "c2"),
		net("inspect", "c2"),
		net("inspect", "c3"),
		net("inspect", "-f", "{{.Name}} {{.Driver}} {{.Internal}} {{.Attachable}} {{.Scope}}", "c1", "c2"),
		net("inspect", "-f", "json", "c1"),
		net("inspect", "-f", "json", "c1", "c2"),
		net("inspect", "-f", "json", "nosuch"),
		net("inspect", "-f", "{{.Name}}", "nosuch"),
		net("inspect", "--format", "{{json .IPAM}}", "c1"),
		net("inspect", "--format", "{{json .IPAM.Config}}", "c2"),
		net("inspect", "--format", "{{json .Labels}} {{json .Options}}", "c4"),
		net("inspect", "--format", "{{.Id}}", "c1"),
		net("inspect", "--format", "{{.Nope}}", "c1"),
		net("inspect", "--format", "{{.Name", "c1"),
		net("inspect", "nosuch"),
		net("inspect", "c1", "nosuch"),
		net("inspect"),
		net("inspect", "bridge"),
		net("inspect", "host"),
		net("inspect", "none"),

		// ls with custom networks.
		net("ls"),
		net("ls", "--filter", "type=custom"),
		net("ls", "--filter", "label=team=db"),
		net("ls", "--filter", "label=team"),
		net("ls", "--filter", "name=c"),
		net("ls", "--filter", "dangling=true"),
		net("ls", "--format", "{{.Name}} {{.Labels}} {{.Label \"team\"}} {{.Internal}}"),

		// connect and disconnect.
		both("container web on c1",
			[]string{"run", "-d", "--name", "web", "--network", "c1", image, "sleep", "3600"},
			[]string{"container", "create", "--network", "c1", "web"}),
		net("inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "c1"),
		net("ls", "--filter", "dangling=false"),
		net("connect", "--ip", "10.91.0.50", "--alias", "www", "c3", "web"),
		net("inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "c3"),
		net("connect", "c3", "web"),
		net("connect", "c2", "ghost"),
		net("connect", "nosuch", "web"),
		net("connect", "--ip", "bogus", "c2", "web"),
		net("connect", "--ip", "10.99.0.5", "c2", "web"),
		net("connect", "c2"),
		net("connect", "host", "web"),
		net("connect", "none", "web"),
		net("disconnect", "c3", "web"),
		net("disconnect", "c3", "web"),
		net("disconnect", "-f", "c3", "web"),
		net("disconnect", "nosuch", "web"),
		net("disconnect", "c3", "ghost"),
		net("disconnect", "c3"),
		net("rm", "c1"),
		both("remove container web",
			[]string{"rm", "-f", "web"},
			[]string{"container", "rm", "-f", "web"}),

		// rm.
		net("rm"),
		net("rm", "nosuch"),
		net("rm", "-f", "nosuch"),
		net("rm", "bridge"),
		net("rm", "host"),
		net("rm", "c1", "c2"),
		net("rm", "c3", "nosuch"),
		net("remove", "c4"),

		// prune.
		net("create", "--label", "keep=1", "p1"),
		net("create", "--label", "keep=2", "p2"),
		net("create", "p3"),
		net("prune", "-f", "--filter", "label=keep=1"),
		net("prune", "-f", "--filter", "label!=keep"),
		net("prune", "--force", "--filter", "until=1h"),
		net("prune", "-f", "--filter", "bogus=1"),
		net("prune", "-f", "--filter", "until=bogus"),
		withStdin("n\n", "network", "prune"),
		net("prune", "extra"),
		withStdin("y\n", "network", "prune"),
		net("ls"),

		// the group itself.
		net("bogus"),
	}
}
