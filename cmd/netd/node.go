package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
)

// Default `node ls` table: this node's name is marked with *, as docker
// node ls marks its own.
const defaultNodeTableFormat = "table {{.Name}}{{if .Self}} *{{end}}\t{{.Address}}\t{{.State}}\t{{.Endpoints}}\t{{.Version}}"

var nodeHeader = map[string]string{
	"Name":      "NAME",
	"Address":   "ADDRESS",
	"State":     "STATE",
	"Endpoints": "ENDPOINTS",
	"Networks":  "NETWORKS",
	"Version":   "VERSION",
	"Since":     "SINCE",
}

func nodeCommand() *cli.Command {
	return groupCommand("node", "Manage the cluster's nodes (hosts joined by gossip)",
		nodeLsCommand(),
		inspectCommand("node", func(cl *api.Client, ctx context.Context, name string) (api.Node, error) {
			return cl.NodeInspect(ctx, name)
		}),
		groupCommand("key", "Manage the gossip encryption keys of every node",
			nodeKeyOpCommand("install", "Install a key on every node (as a secondary key)"),
			nodeKeyOpCommand("use", "Make an installed key the primary key of every node"),
			nodeKeyOpCommand("remove", "Remove a key from every node"),
			nodeKeyListCommand(),
		),
	)
}

// nodeRow is what node ls templates and --format json see.
type nodeRow struct {
	Name      string
	Address   string
	State     string
	Self      bool
	Endpoints int
	Networks  int
	Version   string
	Since     string
}

func nodeLsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "List the cluster's nodes as this node sees them",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Usage: "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "Only display node names"},
		},
		Action: argsAction(noArgs, func(c *cli.Context, cl *api.Client) error {
			nodes, err := cl.NodeList(c.Context)
			if err != nil {
				return err
			}
			rows := sortedRows(nodes, func(n api.Node) string { return n.Name }, func(n api.Node) nodeRow {
				r := nodeRow{Name: n.Name, Address: fmt.Sprintf("%s:%d", n.Addr, n.Port), State: n.State, Self: n.Self,
					Endpoints: n.Endpoints, Networks: n.Networks, Version: n.Version}
				if !n.StateChanged.IsZero() {
					r.Since = n.StateChanged.Format("2006-01-02T15:04:05Z")
				}
				return r
			})
			format := listFormat(c.String("format"), c.Bool("quiet"), defaultNodeTableFormat)
			if c.Bool("quiet") && (c.String("format") == "" || c.String("format") == tableFormatKey) {
				format = "{{.Name}}"
			}
			return writeList(c.App.Writer, format, nodeHeader, rows)
		}),
	}
}

func nodeKeyOpCommand(op, usage string) *cli.Command {
	return &cli.Command{
		Name:      op,
		Usage:     usage,
		ArgsUsage: "KEY",
		Description: "KEY is base64 of 16, 24 or 32 bytes (`openssl rand -base64 32`). Rotate with " +
			"install NEW, then use NEW, then remove OLD; at most 3 keys are held.",
		Action: argsAction(exactArgs(1), func(c *cli.Context, cl *api.Client) error {
			res, err := cl.NodeKeyOp(c.Context, op, strings.TrimSpace(c.Args().First()))
			if err != nil {
				return err
			}
			return writeKeyResult(c, res)
		}),
	}
}

func nodeKeyListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "List the gossip keys and how many nodes hold each",
		Action: argsAction(noArgs, func(c *cli.Context, cl *api.Client) error {
			res, err := cl.NodeKeys(c.Context)
			if err != nil {
				return err
			}
			return writeKeyResult(c, res)
		}),
	}
}

// writeKeyResult prints each key with the nodes holding it (serf's keys
// -list), then every node that failed; it fails if any did.
func writeKeyResult(c *cli.Context, res api.NodeKeyResponse) error {
	w := c.App.Writer
	if res.Op == "list" {
		keys := make([]string, 0, len(res.Keys))
		for k := range res.Keys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
		fmt.Fprintln(tw, "KEY\tNODES\tPRIMARY ON")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\n", k, res.Keys[k], res.Members, res.Primary[k], res.Members)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%s: done on %d of %d nodes\n", res.Op, res.Members-len(failedNodes(res)), res.Members)
	}
	if failed := failedNodes(res); len(failed) > 0 {
		return &statusError{code: 1, msg: "failed on: " + strings.Join(failed, "; ")}
	}
	return nil
}

func failedNodes(res api.NodeKeyResponse) []string {
	var out []string
	for _, n := range res.Nodes {
		if n.Error != "" {
			out = append(out, n.Node+": "+n.Error)
		}
	}
	return out
}
