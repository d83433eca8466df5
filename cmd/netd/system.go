package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
)

const systemPruneWarning = "WARNING! This will remove every bridge, veth, network namespace and eBPF pin of this node\n" +
	"that the daemon has no record of (an emptied database, another --state-dir).\nAre you sure you want to continue?"

// systemCommand holds the checks an operator runs on a node as a whole.
func systemCommand() *cli.Command {
	return groupCommand("system", "Check and repair this node's kernel state against the daemon's records",
		&cli.Command{
			Name:  "check",
			Usage: "Compare the daemon's records with the kernel; exit 1 on any drift",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Format output: 'json'"},
			},
			Action: argsAction(noArgs, func(c *cli.Context, cl *api.Client) error {
				rep, err := cl.SystemCheck(c.Context)
				if err != nil {
					return err
				}
				if err := writeCheck(c.App.Writer, rep, c.String("format")); err != nil {
					return err
				}
				if len(rep.Drifts) > 0 {
					return &statusError{code: 1}
				}
				return nil
			}),
		},
		&cli.Command{
			Name:  "prune",
			Usage: "Remove kernel objects of this node that have no record in the daemon (orphans)",
			Flags: []cli.Flag{
				confirmFlag(),
			},
			Action: daemonAction(func(c *cli.Context) (struct{}, error) {
				if err := noArgs(c); err != nil {
					return struct{}{}, err
				}
				if !confirmed(c, systemPruneWarning) {
					return struct{}{}, errSkip
				}
				return struct{}{}, nil
			}, func(c *cli.Context, cl *api.Client, _ struct{}) error {
				rep, err := cl.SystemPrune(c.Context)
				if err != nil {
					return err
				}
				w := c.App.Writer
				if len(rep.Removed) > 0 {
					fmt.Fprintln(w, "Removed:")
					for _, o := range rep.Removed {
						fmt.Fprintln(w, o)
					}
				}
				if len(rep.Kept) > 0 {
					fmt.Fprintln(w, "Kept (not provably this node's; remove by hand if they are):")
					for _, o := range rep.Kept {
						fmt.Fprintln(w, o)
					}
				}
				if len(rep.Removed)+len(rep.Kept) == 0 {
					fmt.Fprintln(w, "Nothing to prune")
				}
				return nil
			}),
		},
	)
}

func writeCheck(w io.Writer, rep api.SystemCheck, format string) error {
	switch format {
	case jsonFormatKey:
		return json.NewEncoder(w).Encode(rep)
	case "", tableFormatKey:
		if len(rep.Drifts) == 0 {
			_, err := fmt.Fprintln(w, "OK: the kernel matches the daemon's records")
			return err
		}
		for _, d := range rep.Drifts {
			if _, err := fmt.Fprintf(w, "%s: %s\n", d.Object, d.Problem); err != nil {
				return err
			}
		}
		_, err := fmt.Fprintf(w, "%d drift(s) found\n", len(rep.Drifts))
		return err
	}
	return fmt.Errorf("invalid --format %q: want json", format)
}
