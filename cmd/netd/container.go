package main

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
)

const defaultContainerTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Networks}}\t{{.IPAddresses}}\t{{.Ports}}"

var containerHeader = map[string]string{
	"ID":          "CONTAINER ID",
	"Name":        "NAME",
	"Networks":    "NETWORKS",
	"IPAddresses": "IP ADDRESSES",
	"Ports":       "PORTS",
	"SandboxKey":  "SANDBOX",
	"Labels":      "LABELS",
	"CreatedAt":   "CREATED AT",
}

func containerCommand() *cli.Command {
	return groupCommand("container", "Manage containers (network namespaces)",
		containerCreateCommand(),
		containerRunCommand(),
		containerExecCommand(),
		containerLsCommand(),
		containerInspectCommand(),
		containerPortCommand(),
		containerRmCommand(),
	)
}

// containerCreateFlags are shared by create and run.
func containerCreateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "network", Usage: "Connect a container to a network (repeatable; the first gets eth0 and the default route)"},
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address on the first network (e.g., 172.30.100.104)"},
		&cli.StringFlag{Name: "mac-address", Usage: "Container MAC address on the first network (e.g., 92:d0:c6:0a:29:33)"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "Set meta data on a container"},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "Publish a container's port(s) to the host: [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/tcp|/udp] (repeatable)"},
	}
}

// containerCreateRequest builds the request from create/run flags; --ip and
// --mac-address go to the first network (the default bridge if none given).
func containerCreateRequest(c *cli.Context, name string) (api.ContainerCreateRequest, error) {
	req := api.ContainerCreateRequest{Name: name}
	labels, err := parseLabels(c.StringSlice("label"))
	if err != nil {
		return req, err
	}
	req.Labels = labels
	if specs := c.StringSlice("publish"); len(specs) > 0 {
		if req.PortBindings, err = parsePublish(specs); err != nil {
			return req, err
		}
	}
	mac := c.String("mac-address")
	if mac != "" {
		hw, err := net.ParseMAC(strings.TrimSpace(mac))
		if err != nil || len(hw) != 6 {
			return req, badFlagValue("invalid argument %q for \"--mac-address\" flag: %s is not a valid mac address", mac, mac)
		}
		mac = hw.String()
	}
	settings, err := endpointSettings(c.String("ip"), mac, nil)
	if err != nil {
		return req, err
	}
	nets := c.StringSlice("network")
	if len(nets) == 0 && settings != nil {
		nets = []string{"bridge"}
	}
	for i, n := range nets {
		r := api.ContainerNetworkRequest{Network: n}
		if i == 0 && settings != nil {
			r.Settings = *settings
		}
		req.Networks = append(req.Networks, r)
	}
	return req, nil
}

// checkCreate is the check of create and run: the argument count, then
// the create flags of the container named by the first argument.
func checkCreate(count func(*cli.Context) error) func(*cli.Context) (api.ContainerCreateRequest, error) {
	return func(c *cli.Context) (api.ContainerCreateRequest, error) {
		if err := count(c); err != nil {
			return api.ContainerCreateRequest{}, err
		}
		return containerCreateRequest(c, c.Args().First())
	}
}

func containerCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a new container",
		ArgsUsage: "NAME",
		Flags:     containerCreateFlags(),
		Action: daemonAction(checkCreate(exactArgs(1)), func(c *cli.Context, cl *api.Client, req api.ContainerCreateRequest) error {
			resp, err := cl.ContainerCreate(c.Context, req)
			if err != nil {
				return err
			}
			printWarnings(c, resp.Warnings)
			fmt.Fprintln(c.App.Writer, resp.ID)
			return nil
		}),
	}
}

// commandArgs is the check of run and exec: NAME, then a command to run.
func commandArgs(c *cli.Context) error {
	if _, argv := splitCommand(c.Args().Slice()); len(argv) == 0 {
		return argsError(c, "requires at least 2 arguments", "See")
	}
	return nil
}

func containerRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "Create a new container and run a command in it (the container is kept)",
		ArgsUsage: "NAME -- COMMAND [ARG...]",
		Flags:     containerCreateFlags(),
		Action: daemonAction(checkCreate(commandArgs), func(c *cli.Context, cl *api.Client, req api.ContainerCreateRequest) error {
			resp, err := cl.ContainerCreate(c.Context, req)
			if err != nil {
				return err
			}
			printWarnings(c, resp.Warnings)
			return execIn(c, cl)
		}),
	}
}

func containerExecCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "Run a command in a container's network namespace",
		ArgsUsage: "CONTAINER -- COMMAND [ARG...]",
		Action:    argsAction(commandArgs, execIn),
	}
}

func containerLsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list", "ps"},
		Usage:   "List containers",
		Flags:   lsFlags("container"),
		Action: argsAction(noArgs, func(c *cli.Context, cl *api.Client) error {
			cts, err := cl.ContainerList(c.Context)
			if err != nil {
				return err
			}
			return writeContainers(c.App.Writer, cts, c.String("format"), c.Bool("quiet"), c.Bool("no-trunc"))
		}),
	}
}

// containerRow is what container ls templates see.
type containerRow struct {
	trunc bool
	c     api.Container
}

func (r containerRow) ID() string               { return idColumn(r.c.ID, r.trunc) }
func (r containerRow) Name() string             { return r.c.Name }
func (r containerRow) SandboxKey() string       { return r.c.NetworkSettings.SandboxKey }
func (r containerRow) Labels() string           { return joinLabels(r.c.Labels) }
func (r containerRow) Label(name string) string { return r.c.Labels[name] }
func (r containerRow) CreatedAt() string        { return r.c.Created.String() }

// endpoints are the container's network names in interface order (eth0 first).
func (r containerRow) endpoints() []string {
	names := make([]string, 0, len(r.c.NetworkSettings.Networks))
	for n := range r.c.NetworkSettings.Networks {
		names = append(names, n)
	}
	eps := r.c.NetworkSettings.Networks
	sort.Slice(names, func(i, j int) bool {
		a, b := eps[names[i]].Interface, eps[names[j]].Interface
		if a != b {
			return naturalLess(a, b)
		}
		return names[i] < names[j]
	})
	return names
}

func (r containerRow) Networks() string { return strings.Join(r.endpoints(), ",") }

func (r containerRow) IPAddresses() string {
	var ips []string
	for _, n := range r.endpoints() {
		if ip := r.c.NetworkSettings.Networks[n].IPAddress; ip != "" {
			ips = append(ips, ip)
		}
	}
	return strings.Join(ips, ",")
}

// Ports is docker ps's column: 0.0.0.0:8080->80/tcp, natural order.
func (r containerRow) Ports() string {
	var out []string
	for port, bs := range r.c.NetworkSettings.Ports {
		if len(bs) == 0 {
			out = append(out, port)
		}
		for _, b := range bs {
			out = append(out, net.JoinHostPort(b.HostIP, b.HostPort)+"->"+port)
		}
	}
	sort.Slice(out, func(i, j int) bool { return naturalLess(out[i], out[j]) })
	return strings.Join(out, ", ")
}

func (r containerRow) MarshalJSON() ([]byte, error) {
	return jsonFields(map[string]string{
		"ID": r.ID(), "Name": r.Name(), "Networks": r.Networks(), "IPAddresses": r.IPAddresses(), "Ports": r.Ports(),
		"SandboxKey": r.SandboxKey(), "Labels": r.Labels(), "CreatedAt": r.CreatedAt(),
	})
}

// writeContainers is the output of `netd container ls`, sorted by name.
func writeContainers(w io.Writer, cts []api.Container, format string, quiet, noTrunc bool) error {
	rows := sortedRows(cts, func(ct api.Container) string { return ct.Name },
		func(ct api.Container) containerRow { return containerRow{trunc: !noTrunc, c: ct} })
	return writeList(w, listFormat(format, quiet, defaultContainerTableFormat), containerHeader, rows)
}

func containerInspectCommand() *cli.Command {
	return inspectCommand("container", (*api.Client).ContainerInspect)
}

func containerRmCommand() *cli.Command {
	return rmCommand("container", "Remove the container even if its endpoints cannot be cleaned up; no error if it does not exist",
		(*api.Client).ContainerRemove)
}
