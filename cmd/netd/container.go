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

const defaultContainerTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Networks}}\t{{.IPAddresses}}"

var containerHeader = map[string]string{
	"ID":          "CONTAINER ID",
	"Name":        "NAME",
	"Networks":    "NETWORKS",
	"IPAddresses": "IP ADDRESSES",
	"SandboxKey":  "SANDBOX",
	"Labels":      "LABELS",
	"CreatedAt":   "CREATED AT",
}

func containerCommand() *cli.Command {
	return &cli.Command{
		Name:         "container",
		Usage:        "Manage containers (network namespaces)",
		OnUsageError: usageError,
		Action:       groupAction,
		Subcommands: []*cli.Command{
			containerCreateCommand(),
			containerRunCommand(),
			containerExecCommand(),
			containerLsCommand(),
			containerInspectCommand(),
			containerRmCommand(),
		},
	}
}

// containerCreateFlags are shared by create and run.
func containerCreateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "network", Usage: "Connect a container to a network (repeatable; the first gets eth0 and the default route)"},
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address on the first network (e.g., 172.30.100.104)"},
		&cli.StringFlag{Name: "mac-address", Usage: "Container MAC address on the first network (e.g., 92:d0:c6:0a:29:33)"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "Set meta data on a container"},
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

func containerCreateCommand() *cli.Command {
	return &cli.Command{
		Name:         "create",
		Usage:        "Create a new container",
		ArgsUsage:    "NAME",
		OnUsageError: usageError,
		Flags:        containerCreateFlags(),
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, 1); err != nil {
				return err
			}
			req, err := containerCreateRequest(c, c.Args().First())
			if err != nil {
				return flagErr(c, err)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			resp, err := cl.ContainerCreate(c.Context, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, resp.ID)
			return nil
		},
	}
}

// splitCommand separates NAME from the command after it ("--" optional).
func splitCommand(args []string) (name string, cmd []string) {
	if len(args) == 0 {
		return "", nil
	}
	name, cmd = args[0], args[1:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	return name, cmd
}

func containerRunCommand() *cli.Command {
	return &cli.Command{
		Name:         "run",
		Usage:        "Create a new container and run a command in it (the container is kept)",
		ArgsUsage:    "NAME -- COMMAND [ARG...]",
		OnUsageError: usageError,
		Flags:        containerCreateFlags(),
		Action: func(c *cli.Context) error {
			name, argv := splitCommand(c.Args().Slice())
			if len(argv) == 0 {
				return argsError(c, "requires at least 2 arguments")
			}
			req, err := containerCreateRequest(c, name)
			if err != nil {
				return flagErr(c, err)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			if _, err := cl.ContainerCreate(c.Context, req); err != nil {
				return err
			}
			return execIn(c, cl, name, argv)
		},
	}
}

func containerExecCommand() *cli.Command {
	return &cli.Command{
		Name:         "exec",
		Usage:        "Run a command in a container's network namespace",
		ArgsUsage:    "CONTAINER -- COMMAND [ARG...]",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			name, argv := splitCommand(c.Args().Slice())
			if len(argv) == 0 {
				return argsError(c, "requires at least 2 arguments")
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			return execIn(c, cl, name, argv)
		},
	}
}

// execIn runs argv in the container's netns and ends netd with its status.
func execIn(c *cli.Context, cl *api.Client, name string, argv []string) error {
	ct, err := cl.ContainerInspect(c.Context, name)
	if err != nil {
		// As docker exec: "Error response from daemon: No such container: X".
		return err
	}
	if ct.NetworkSettings.SandboxKey == "" {
		return fmt.Errorf("container %s has no network namespace", name)
	}
	code, err := runInSandbox(ct.NetworkSettings.SandboxKey, argv, c.App.Reader, c.App.Writer, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if code != 0 {
		return &statusError{code: code}
	}
	return nil
}

func containerLsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Aliases:      []string{"list", "ps"},
		Usage:        "List containers",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Usage: "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "Do not truncate the output"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "Only display container IDs"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			cts, err := cl.ContainerList(c.Context)
			if err != nil {
				return err
			}
			return writeContainers(c.App.Writer, cts, c.String("format"), c.Bool("quiet"), c.Bool("no-trunc"))
		},
	}
}

// containerRow is what container ls templates see.
type containerRow struct {
	trunc bool
	c     api.Container
}

func (r containerRow) ID() string {
	if r.trunc {
		return truncID(r.c.ID)
	}
	return r.c.ID
}
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

func (r containerRow) MarshalJSON() ([]byte, error) {
	return jsonFields(map[string]string{
		"ID": r.ID(), "Name": r.Name(), "Networks": r.Networks(), "IPAddresses": r.IPAddresses(),
		"SandboxKey": r.SandboxKey(), "Labels": r.Labels(), "CreatedAt": r.CreatedAt(),
	})
}

// writeContainers is the output of `netd container ls`, sorted by name.
func writeContainers(w io.Writer, cts []api.Container, format string, quiet, noTrunc bool) error {
	sorted := append([]api.Container(nil), cts...)
	sort.SliceStable(sorted, func(i, j int) bool { return naturalLess(sorted[i].Name, sorted[j].Name) })
	rows := make([]containerRow, len(sorted))
	for i, ct := range sorted {
		rows[i] = containerRow{trunc: !noTrunc, c: ct}
	}
	return writeList(w, listFormat(format, quiet, defaultContainerTableFormat), containerHeader, rows)
}

func containerInspectCommand() *cli.Command {
	return &cli.Command{
		Name:         "inspect",
		Usage:        "Display detailed information on one or more containers",
		ArgsUsage:    "CONTAINER [CONTAINER...]",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Format output using a custom template: 'json', 'TEMPLATE'"},
		},
		Action: func(c *cli.Context) error {
			if err := minArgs(c, 1); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			return inspectEach(c, "container", c.Args().Slice(), func(name string) (api.Container, error) {
				return cl.ContainerInspect(c.Context, name)
			})
		},
	}
}

func containerRmCommand() *cli.Command {
	return &cli.Command{
		Name:         "rm",
		Aliases:      []string{"remove"},
		Usage:        "Remove one or more containers",
		ArgsUsage:    "CONTAINER [CONTAINER...]",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Remove the container even if its endpoints cannot be cleaned up; no error if it does not exist"},
		},
		Action: func(c *cli.Context) error {
			if err := minArgs(c, 1); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			force := c.Bool("force")
			return removeEach(c, c.Args().Slice(), func(n string) error {
				err := cl.ContainerRemove(c.Context, n, force)
				if force && api.IsNotFound(err) {
					return errSkip
				}
				return err
			})
		},
	}
}
