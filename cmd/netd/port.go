package main

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/docker/go-connections/nat"
	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
)

// parsePublish turns -p options into Docker's PortBindings, with the
// Docker CLI's parser (ranges expand to one key per container port).
func parsePublish(specs []string) (api.PortMap, error) {
	_, bindings, err := nat.ParsePortSpecs(specs)
	if err != nil {
		return nil, badFlagValue("invalid argument %q for \"-p, --publish\" flag: %v", strings.Join(specs, ","), err)
	}
	out := api.PortMap{}
	for port, bs := range bindings {
		for _, b := range bs {
			out[string(port)] = append(out[string(port)], api.PortBinding{HostIP: b.HostIP, HostPort: b.HostPort})
		}
	}
	return out, nil
}

// printWarnings writes the daemon's warnings to stderr, as docker does.
func printWarnings(c *cli.Context, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(c.App.ErrWriter, "WARNING:", w)
	}
}

func containerPortCommand() *cli.Command {
	return &cli.Command{
		Name:      "port",
		Usage:     "List port mappings or a specific mapping for the container",
		ArgsUsage: "CONTAINER [PRIVATE_PORT[/PROTO]]",
		Action: argsAction(portArgs, func(c *cli.Context, cl *api.Client) error {
			ct, err := cl.ContainerInspect(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			lines, err := portLines(ct, c.Args().Get(1))
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintln(c.App.Writer, l)
			}
			return nil
		}),
	}
}

func portArgs(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return argsError(c, "requires at least 1 and at most 2 arguments", "See")
	}
	return nil
}

// portLines is docker port's output: every mapping as "80/tcp ->
// 0.0.0.0:8080", or the host bindings of one container port, in natural
// order.
func portLines(ct api.Container, want string) ([]string, error) {
	var out []string
	if want == "" {
		for port, bs := range ct.NetworkSettings.Ports {
			for _, b := range bs {
				out = append(out, port+" -> "+net.JoinHostPort(b.HostIP, b.HostPort))
			}
		}
	} else {
		port, proto, _ := strings.Cut(want, "/")
		if proto == "" {
			proto = "tcp"
		}
		if _, err := nat.ParsePort(port); err != nil || port == "" {
			return nil, fmt.Errorf("Error: invalid port (%s): %v", want, err)
		}
		key := port + "/" + strings.ToLower(proto)
		for _, b := range ct.NetworkSettings.Ports[key] {
			out = append(out, net.JoinHostPort(b.HostIP, b.HostPort))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("Error: No public port '%s' published for %s", key, ct.Name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return naturalLess(out[i], out[j]) })
	return out, nil
}
