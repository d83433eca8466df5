package main

import (
	"bufio"
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
	return &cli.Command{
		Name:         "network",
		Usage:        "Manage networks",
		OnUsageError: usageError,
		Action:       groupAction,
		Subcommands: []*cli.Command{
			networkLsCommand(),
			networkCreateCommand(),
			networkInspectCommand(),
			networkRmCommand(),
			networkPruneCommand(),
			networkConnectCommand(),
			networkDisconnectCommand(),
		},
	}
}

func networkLsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Aliases:      []string{"list"},
		Usage:        "List networks",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "Provide filter values (e.g. 'driver=bridge')"},
			&cli.StringFlag{Name: "format", Usage: "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "Do not truncate the output"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "Only display network IDs"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			filters, err := parseFilters(c.StringSlice("filter"))
			if err != nil {
				return flagErr(c, err)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			nets, err := cl.NetworkList(c.Context, filters)
			if err != nil {
				return err
			}
			return writeNetworks(c.App.Writer, nets, c.String("format"), c.Bool("quiet"), c.Bool("no-trunc"))
		},
	}
}

// networkRow is what ls templates see: docker's network context.
type networkRow struct {
	trunc bool
	n     api.Network
}

func (r networkRow) ID() string {
	if r.trunc {
		return truncID(r.n.ID)
	}
	return r.n.ID
}
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
	sorted := append([]api.Network(nil), nets...)
	sort.SliceStable(sorted, func(i, j int) bool { return naturalLess(sorted[i].Name, sorted[j].Name) })
	rows := make([]networkRow, len(sorted))
	for i, n := range sorted {
		rows[i] = networkRow{trunc: !noTrunc, n: n}
	}
	return writeList(w, listFormat(format, quiet, defaultNetworkTableFormat), networkHeader, rows)
}

func networkCreateCommand() *cli.Command {
	return &cli.Command{
		Name:         "create",
		Usage:        "Create a network",
		ArgsUsage:    "NETWORK",
		OnUsageError: usageError,
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
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, 1); err != nil {
				return err
			}
			req, err := networkCreateRequest(c)
			if err != nil {
				return flagErr(c, err)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			resp, err := cl.NetworkCreate(c.Context, req)
			if err != nil {
				return err
			}
			if resp.Warning != "" {
				fmt.Fprintln(c.App.ErrWriter, "WARNING:", resp.Warning)
			}
			fmt.Fprintln(c.App.Writer, resp.ID)
			return nil
		},
	}
}

// networkCreateRequest builds the API request from create's flags,
// refusing what docker's CLI refuses before asking the daemon.
func networkCreateRequest(c *cli.Context) (api.NetworkCreateRequest, error) {
	var req api.NetworkCreateRequest
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
	for _, r := range ranges {
		i, err := matching("range", r)
		if err != nil {
			return nil, err
		}
		if cfg[i].IPRange != "" {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r, cfg[i].IPRange, subnets[i])
		}
		cfg[i].IPRange = r
	}
	for _, g := range gateways {
		i, err := matching("gateway", g)
		if err != nil {
			return nil, err
		}
		if cfg[i].Gateway != "" {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", g, cfg[i].Gateway, subnets[i])
		}
		cfg[i].Gateway = g
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
	return &cli.Command{
		Name:         "inspect",
		Usage:        "Display detailed information on one or more networks",
		ArgsUsage:    "NETWORK [NETWORK...]",
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
			return inspectEach(c, "network", c.Args().Slice(), func(name string) (api.Network, error) {
				return cl.NetworkInspect(c.Context, name)
			})
		},
	}
}

// inspectEach fetches every name, prints what was found (as docker, all of
// it, before the errors) and then "Error: No such <kind>: X" per miss.
func inspectEach[T any](c *cli.Context, kind string, names []string, get func(string) (T, error)) error {
	format := c.String("format")
	if format == jsonFormatKey {
		format = ""
	}
	if format != "" {
		if _, err := parseTemplate(format); err != nil {
			return err
		}
	}
	var found []T
	var errs []string
	for _, n := range names {
		v, err := get(n)
		switch {
		case err == nil:
			found = append(found, v)
		case api.IsNotFound(err):
			errs = append(errs, fmt.Sprintf("Error: No such %s: %s", kind, n))
		default:
			var ce *api.ConnectError
			if errors.As(err, &ce) {
				return err
			}
			errs = append(errs, err.Error())
		}
	}
	if err := writeInspect(c.App.Writer, format, found); err != nil {
		return err
	}
	if len(errs) > 0 {
		return &statusError{code: 1, msg: strings.Join(errs, "\n")}
	}
	return nil
}

func networkRmCommand() *cli.Command {
	return &cli.Command{
		Name:         "rm",
		Aliases:      []string{"remove"},
		Usage:        "Remove one or more networks",
		ArgsUsage:    "NETWORK [NETWORK...]",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Do not error if the network does not exist"},
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
				err := cl.NetworkRemove(c.Context, n)
				if force && api.IsNotFound(err) {
					return errSkip
				}
				return err
			})
		},
	}
}

const pruneWarning = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?"

func networkPruneCommand() *cli.Command {
	return &cli.Command{
		Name:         "prune",
		Usage:        "Remove all unused networks",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "filter", Usage: "Provide filter values (e.g. 'until=<timestamp>')"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Do not prompt for confirmation"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			filters, err := parseFilters(c.StringSlice("filter"))
			if err != nil {
				return flagErr(c, err)
			}
			if !c.Bool("force") && !confirm(c.App.Reader, c.App.Writer, pruneWarning) {
				return nil
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			report, err := cl.NetworksPrune(c.Context, filters)
			if err != nil {
				return err
			}
			if len(report.NetworksDeleted) > 0 {
				fmt.Fprintf(c.App.Writer, "Deleted Networks:\n%s\n\n", strings.Join(report.NetworksDeleted, "\n"))
			}
			return nil
		},
	}
}

// confirm asks a y/N question; anything but y/yes is no.
func confirm(in io.Reader, out io.Writer, question string) bool {
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
		Name:         "connect",
		Usage:        "Connect a container to a network",
		ArgsUsage:    "NETWORK CONTAINER",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ip", Usage: "IPv4 address (e.g., \"172.30.100.104\")"},
			&cli.StringSliceFlag{Name: "alias", Usage: "Add network-scoped alias for the container"},
		},
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, 2); err != nil {
				return err
			}
			settings, err := endpointSettings(c.String("ip"), "", c.StringSlice("alias"))
			if err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			return cl.NetworkConnect(c.Context, c.Args().Get(0), c.Args().Get(1), settings)
		},
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
		Name:         "disconnect",
		Usage:        "Disconnect a container from a network",
		ArgsUsage:    "NETWORK CONTAINER",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "Force the container to disconnect from a network"},
		},
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, 2); err != nil {
				return err
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			return cl.NetworkDisconnect(c.Context, c.Args().Get(0), c.Args().Get(1), c.Bool("force"))
		},
	}
}
