package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
)

const defaultNetworkTableFormat = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

// networkHeader names the columns of every field of networkRow.
var networkHeader = map[string]string{
	"ID":        "NETWORK ID",
	"Name":      "NAME",
	"Driver":    "DRIVER",
	"Scope":     "SCOPE",
	"IPv4":      "IPV4",
	"IPv6":      "IPV6",
	"Internal":  "INTERNAL",
	"Labels":    "LABELS",
	"CreatedAt": "CREATED AT",
}

func networkCommand() *cli.Command {
	return groupCommand("network", "Manage networks",
		networkLsCommand(),
		networkCreateCommand(),
		networkInspectCommand(),
		networkRmCommand(),
		networkPruneCommand(),
		networkConnectCommand(),
		networkDisconnectCommand(),
	)
}

func networkLsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "List networks",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "Provide filter values (e.g. 'driver=bridge')"},
		}, lsFlags("network")...),
		Action: daemonAction(checkFilters, func(c *cli.Context, cl *api.Client, filters map[string][]string) error {
			nets, err := cl.NetworkList(c.Context, filters)
			if err != nil {
				return err
			}
			return writeNetworks(c.App.Writer, nets, c.String("format"), c.Bool("quiet"), c.Bool("no-trunc"))
		}),
	}
}

// checkFilters is the check of ls and prune: no arguments, valid --filter values.
func checkFilters(c *cli.Context) (map[string][]string, error) {
	if err := noArgs(c); err != nil {
		return nil, err
	}
	return parseFilters(c.StringSlice("filter"))
}

// networkRow is what ls templates see: docker's network context.
type networkRow struct {
	trunc bool
	n     api.Network
}

func (r networkRow) ID() string               { return idColumn(r.n.ID, r.trunc) }
func (r networkRow) Name() string             { return r.n.Name }
func (r networkRow) Driver() string           { return r.n.Driver }
func (r networkRow) Scope() string            { return r.n.Scope }
func (r networkRow) IPv4() string             { return strconv.FormatBool(r.n.EnableIPv4) }
func (r networkRow) IPv6() string             { return strconv.FormatBool(r.n.EnableIPv6) }
func (r networkRow) Internal() string         { return strconv.FormatBool(r.n.Internal) }
func (r networkRow) Labels() string           { return joinLabels(r.n.Labels) }
func (r networkRow) Label(name string) string { return r.n.Labels[name] }
func (r networkRow) CreatedAt() string        { return r.n.Created.String() }
func (r networkRow) MarshalJSON() ([]byte, error) {
	return jsonFields(map[string]string{
		"ID": r.ID(), "Name": r.Name(), "Driver": r.Driver(), "Scope": r.Scope(),
		"IPv4": r.IPv4(), "IPv6": r.IPv6(), "Internal": r.Internal(),
		"Labels": r.Labels(), "CreatedAt": r.CreatedAt(),
	})
}

// writeNetworks is the output of `netd network ls`, sorted by name.
func writeNetworks(w io.Writer, nets []api.Network, format string, quiet, noTrunc bool) error {
	rows := sortedRows(nets, func(n api.Network) string { return n.Name },
		func(n api.Network) networkRow { return networkRow{trunc: !noTrunc, n: n} })
	return writeList(w, listFormat(format, quiet, defaultNetworkTableFormat), networkHeader, rows)
}

func networkCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a network",
		ArgsUsage: "NETWORK",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "bridge", Usage: "Driver to manage the Network"},
			&cli.StringSliceFlag{Name: "subnet", Usage: "Subnet in CIDR format that represents a network segment"},
			&cli.StringSliceFlag{Name: "gateway", Usage: "IPv4 Gateway for the master subnet"},
			&cli.StringSliceFlag{Name: "ip-range", Usage: "Allocate container ip from a sub-range"},
			&cli.StringSliceFlag{Name: "aux-address", Usage: "Auxiliary IPv4 addresses used by Network driver (host=ip)"},
			&cli.BoolFlag{Name: "internal", Usage: "Restrict external access to the network"},
			&cli.BoolFlag{Name: "attachable", Usage: "Enable manual container attachment"},
			&cli.StringSliceFlag{Name: "label", Usage: "Set metadata on a network"},
			&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "Set driver specific options"},
			&cli.BoolFlag{Name: "ipv6", Usage: "Enable or disable IPv6 networking"},
		},
		Action: daemonAction(networkCreateRequest, func(c *cli.Context, cl *api.Client, req api.NetworkCreateRequest) error {
			resp, err := cl.NetworkCreate(c.Context, req)
			if err != nil {
				return err
			}
			if resp.Warning != "" {
				fmt.Fprintln(c.App.ErrWriter, "WARNING:", resp.Warning)
			}
			fmt.Fprintln(c.App.Writer, resp.ID)
			return nil
		}),
	}
}

// networkCreateRequest builds the API request from create's argument and
// flags, refusing what docker's CLI refuses before asking the daemon.
func networkCreateRequest(c *cli.Context) (api.NetworkCreateRequest, error) {
	var req api.NetworkCreateRequest
	if err := exactArgs(1)(c); err != nil {
		return req, err
	}
	if c.Bool("ipv6") {
		return req, errors.New("IPv6 networks are not supported yet")
	}
	aux, err := parseKV("aux-address", c.StringSlice("aux-address"))
	if err != nil {
		return req, err
	}
	for k, v := range aux {
		if v == "" {
			return req, badFlagValue("invalid argument %q for \"--aux-address\" flag: expected host=ip", k)
		}
	}
	labels, err := parseLabels(c.StringSlice("label"))
	if err != nil {
		return req, err
	}
	opts, err := parseKV("opt", c.StringSlice("opt"))
	if err != nil {
		return req, err
	}
	cfg, err := consolidateIPAM(c.StringSlice("subnet"), c.StringSlice("ip-range"), c.StringSlice("gateway"), aux)
	if err != nil {
		return req, err
	}
	return api.NetworkCreateRequest{
		Name:       c.Args().First(),
		Driver:     c.String("driver"),
		Internal:   c.Bool("internal"),
		Attachable: c.Bool("attachable"),
		IPAM:       &api.IPAM{Driver: "default", Config: cfg},
		Options:    opts,
		Labels:     labels,
	}, nil
}

// consolidateIPAM groups --ip-range, --gateway and --aux-address under the
// --subnet that contains them, with the docker CLI's rules and messages.
func consolidateIPAM(subnets, ranges, gateways []string, aux map[string]string) ([]api.IPAMConfig, error) {
	if len(subnets) < len(ranges) || len(subnets) < len(gateways) {
		return nil, errors.New("every ip-range or gateway must have a corresponding subnet")
	}
	prefixes := make([]netip.Prefix, len(subnets))
	cfg := make([]api.IPAMConfig, len(subnets))
	for i, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid subnet %s: invalid CIDR address: %s", s, s)
		}
		if p.Addr().Is6() {
			return nil, errors.New("IPv6 networks are not supported yet")
		}
		for j := 0; j < i; j++ {
			if prefixes[j].Overlaps(p) {
				return nil, errors.New("multiple overlapping subnet configuration is not supported")
			}
		}
		prefixes[i] = p
		cfg[i] = api.IPAMConfig{Subnet: s}
	}
	// matching finds the subnet holding an address or CIDR.
	matching := func(what, v string) (int, error) {
		var a netip.Addr
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return -1, fmt.Errorf("invalid %s %s: invalid CIDR address: %s", what, v, v)
			}
			a = p.Addr()
		} else {
			var err error
			if a, err = netip.ParseAddr(v); err != nil {
				return -1, fmt.Errorf("invalid %s %s: invalid IP address", what, v)
			}
		}
		for i, p := range prefixes {
			if p.Contains(a) {
				return i, nil
			}
		}
		return -1, fmt.Errorf("no matching subnet for %s %s", what, v)
	}
	// once sets field of the subnet holding each value; dup is docker's
	// error for a second value in one subnet.
	once := func(what string, vals []string, field func(*api.IPAMConfig) *string, dup string) error {
		for _, v := range vals {
			i, err := matching(what, v)
			if err != nil {
				return err
			}
			f := field(&cfg[i])
			if *f != "" {
				return fmt.Errorf(dup, v, *f, subnets[i])
			}
			*f = v
		}
		return nil
	}
	if err := once("range", ranges, func(c *api.IPAMConfig) *string { return &c.IPRange },
		"cannot configure multiple ranges (%s, %s) on the same subnet (%s)"); err != nil {
		return nil, err
	}
	if err := once("gateway", gateways, func(c *api.IPAMConfig) *string { return &c.Gateway },
		"cannot configure multiple gateways (%s, %s) for the same subnet (%s)"); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(aux))
	for k := range aux {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i, err := matching("aux-address", aux[k])
		if err != nil {
			return nil, err
		}
		if cfg[i].AuxiliaryAddresses == nil {
			cfg[i].AuxiliaryAddresses = map[string]string{}
		}
		cfg[i].AuxiliaryAddresses[k] = aux[k]
	}
	return cfg, nil
}

func networkInspectCommand() *cli.Command {
	cmd := inspectCommand("network", func(cl *api.Client, ctx context.Context, name string) (api.Network, error) {
		return cl.NetworkInspect(ctx, name)
	})
	// Docker's --verbose: a cluster-wide network's endpoints on every host.
	cmd.Flags = append(cmd.Flags, &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "Verbose output for diagnostics"})
	inner := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		if !c.Bool("verbose") {
			return inner(c)
		}
		return argsAction(minArgs(1), func(c *cli.Context, cl *api.Client) error {
			return inspectEach(c, "network", c.Args().Slice(), func(name string) (api.Network, error) {
				return cl.NetworkInspectVerbose(c.Context, name)
			})
		})(c)
	}
	return cmd
}

func networkRmCommand() *cli.Command {
	return rmCommand("network", "Do not error if the network does not exist",
		func(cl *api.Client, ctx context.Context, name string, _ bool) error {
			return cl.NetworkRemove(ctx, name)
		})
}

const pruneWarning = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?"

func networkPruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "Remove all unused networks",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Usage: "Provide filter values (e.g. 'until=<timestamp>')"},
			confirmFlag(),
		},
		Action: daemonAction(func(c *cli.Context) (map[string][]string, error) {
			filters, err := checkFilters(c)
			if err == nil && !confirmed(c, pruneWarning) {
				return nil, errSkip
			}
			return filters, err
		}, func(c *cli.Context, cl *api.Client, filters map[string][]string) error {
			report, err := cl.NetworksPrune(c.Context, filters)
			if err != nil {
				return err
			}
			if len(report.NetworksDeleted) > 0 {
				fmt.Fprintf(c.App.Writer, "Deleted Networks:\n%s\n\n", strings.Join(report.NetworksDeleted, "\n"))
			}
			return nil
		}),
	}
}

// confirmFlag is the --force of a command that asks with confirmed.
func confirmFlag() cli.Flag {
	return &cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Do not prompt for confirmation"}
}

// confirmed is true with --force; else it asks a y/N question, and
// anything but y/yes is no.
func confirmed(c *cli.Context, question string) bool {
	if c.Bool("force") {
		return true
	}
	in, out := c.App.Reader, c.App.Writer
	fmt.Fprintf(out, "%s [y/N] ", question)
	if in == nil {
		fmt.Fprintln(out)
		return false
	}
	line, _ := bufio.NewReader(in).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes"
}

func networkConnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "Connect a container to a network",
		ArgsUsage: "NETWORK CONTAINER",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ip", Usage: "IPv4 address (e.g., \"172.30.100.104\")"},
			&cli.StringSliceFlag{Name: "alias", Usage: "Add network-scoped alias for the container"},
		},
		Action: daemonAction(func(c *cli.Context) (*api.EndpointSettings, error) {
			if err := exactArgs(2)(c); err != nil {
				return nil, err
			}
			return endpointSettings(c.String("ip"), "", c.StringSlice("alias"))
		}, func(c *cli.Context, cl *api.Client, settings *api.EndpointSettings) error {
			return cl.NetworkConnect(c.Context, c.Args().Get(0), c.Args().Get(1), settings)
		}),
	}
}

// endpointSettings validates --ip/--mac-address/--alias into the API's
// settings; nil when nothing was asked for.
func endpointSettings(ip, mac string, aliases []string) (*api.EndpointSettings, error) {
	if ip == "" && mac == "" && len(aliases) == 0 {
		return nil, nil
	}
	s := &api.EndpointSettings{Aliases: aliases, MacAddress: mac}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("invalid IPv4 address: %s", ip)
		}
		s.IPAMConfig = &api.EndpointIPAMConfig{IPv4Address: a.String()}
	}
	return s, nil
}

func networkDisconnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "disconnect",
		Usage:     "Disconnect a container from a network",
		ArgsUsage: "NETWORK CONTAINER",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Force the container to disconnect from a network"},
		},
		Action: argsAction(exactArgs(2), func(c *cli.Context, cl *api.Client) error {
			return cl.NetworkDisconnect(c.Context, c.Args().Get(0), c.Args().Get(1), c.Bool("force"))
		}),
	}
}
