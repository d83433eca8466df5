package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
)

func dataplaneCommand() *cli.Command {
	show := dataplaneShowCommand()
	return &cli.Command{
		Name:  "dataplane",
		Usage: "Show the eBPF dataplane: attached programs and endpoint counters",
		Flags: dataplaneShowCommand().Flags, // own copies: urfave flags keep parse state
		// Bare `netd dataplane` is `netd dataplane show`.
		Action:      show.Action,
		Subcommands: []*cli.Command{show},
	}
}

func dataplaneShowCommand() *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "Show attached programs and per-endpoint counters",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Usage: "Format output: 'json' or a Go template over the status"},
		},
		Action: argsAction(noArgs, func(c *cli.Context, cl *api.Client) error {
			st, err := cl.DataplaneStatus(c.Context)
			if err != nil {
				return err
			}
			format := c.String("format")
			if format == "" || format == tableFormatKey {
				// The status names containers by ID; the table shows names.
				cts, err := cl.ContainerList(c.Context)
				if err != nil {
					return err
				}
				st = withContainerNames(st, cts)
			}
			return writeDataplane(c.App.Writer, st, format)
		}),
	}
}

// writeDataplane prints the status as two tables, as JSON, or through a template.
func writeDataplane(w io.Writer, st api.DataplaneStatus, format string) error {
	switch format {
	case "", tableFormatKey:
	case jsonFormatKey:
		b, err := json.MarshalIndent(st, "", "    ")
		if err != nil {
			return fmt.Errorf("encode dataplane status: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	default:
		return writeInspect(w, format, []api.DataplaneStatus{st})
	}

	fmt.Fprintf(w, "Default dataplane: %s\nPin directory:     %s\n\n", st.Default, st.PinDir)

	progs := append([]api.ProgramAttachment(nil), st.Programs...)
	sort.SliceStable(progs, func(i, j int) bool {
		if progs[i].Interface != progs[j].Interface {
			return naturalLess(progs[i].Interface, progs[j].Interface)
		}
		return progs[i].Hook < progs[j].Hook
	})
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tHOOK\tPROGRAM\tPROG-ID\tPINNED")
	for _, p := range progs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p.Interface, p.Hook, p.Program, p.ProgramID, p.Pinned)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	eps := append([]api.EndpointCounters(nil), st.Endpoints...)
	sort.SliceStable(eps, func(i, j int) bool {
		if eps[i].Network != eps[j].Network {
			return naturalLess(eps[i].Network, eps[j].Network)
		}
		return naturalLess(eps[i].Container, eps[j].Container)
	})
	tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tCONTAINER\tINTERFACE\tFAST-PKTS\tFAST-BYTES\tSLOW-PKTS\tDROPS")
	for _, e := range eps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", e.Network, e.Container, e.Interface,
			e.FastPackets, e.FastBytes, e.SlowPackets, formatDrops(e.Drops))
	}
	if err := tw.Flush(); err != nil || len(st.Tunnels) == 0 {
		return err
	}
	// Overlay networks on the eBPF dataplane: their traffic through the host's VXLAN device.
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	fmt.Fprintln(tw, "OVERLAY NETWORK\tVNI\tINTERFACE\tENCAP-PKTS\tENCAP-BYTES\tDECAP-PKTS\tDECAP-BYTES\tDROPS")
	for _, t := range st.Tunnels {
		vni := "-"
		if t.VNI != 0 {
			vni = strconv.FormatUint(uint64(t.VNI), 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Network, vni, t.Interface,
			t.EncapPackets, t.EncapBytes, t.DecapPackets, t.DecapBytes, formatDrops(t.Drops))
	}
	return tw.Flush()
}

// withContainerNames replaces container IDs in st's endpoints by names,
// and shortens IDs it cannot resolve to docker's 12 characters.
func withContainerNames(st api.DataplaneStatus, cts []api.Container) api.DataplaneStatus {
	names := make(map[string]string, len(cts))
	for _, ct := range cts {
		names[ct.ID] = ct.Name
	}
	eps := make([]api.EndpointCounters, len(st.Endpoints))
	for i, e := range st.Endpoints {
		if n, ok := names[e.Container]; ok {
			e.Container = n
		} else if isFullID(e.Container) {
			e.Container = stringid.ShortID(e.Container)
		}
		eps[i] = e
	}
	st.Endpoints = eps
	return st
}

// isFullID says whether s is a 64-hex-digit ID rather than a name.
func isFullID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// formatDrops renders drop counters as "reason=n,..." sorted by reason;
// reasons that never fired are left out.
func formatDrops(drops map[string]uint64) string {
	var parts []string
	for r, n := range drops {
		if n > 0 {
			parts = append(parts, r+"="+strconv.FormatUint(n, 10))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
