package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/stringid"
)

// The shapes every noun's commands share: an action that checks its input
// before it talks to the daemon, ls, inspect and rm.

// errSkip passes over quietly: a name rm -f does not find, a declined prompt.
var errSkip = errors.New("skip")

// daemonAction is the action of a command that talks to the daemon: check
// turns the arguments and flags into what run needs, and only then is a
// client made, so bad input never reaches the daemon. A check returning
// errSkip ends the command successfully.
func daemonAction[T any](check func(*cli.Context) (T, error), run func(*cli.Context, *api.Client, T) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		in, err := check(c)
		if errors.Is(err, errSkip) {
			return nil
		}
		if err != nil {
			return flagErr(c, err)
		}
		cl, err := newClient(c)
		if err != nil {
			return err
		}
		return run(c, cl, in)
	}
}

// argsAction is daemonAction for a command whose only check is its
// argument count (noArgs, exactArgs(n), minArgs(n)).
func argsAction(count func(*cli.Context) error, run func(*cli.Context, *api.Client) error) cli.ActionFunc {
	return daemonAction(
		func(c *cli.Context) (struct{}, error) { return struct{}{}, count(c) },
		func(c *cli.Context, cl *api.Client, _ struct{}) error { return run(c, cl) })
}

// groupCommand is a noun holding subs; bare or with an unknown subcommand it
// answers as groupAction does.
func groupCommand(name, usage string, subs ...*cli.Command) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, OnUsageError: usageError, Action: groupAction, Subcommands: subs}
}

// lsFlags are the output flags of every ls; what names the IDs -q prints.
func lsFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Usage: "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'"},
		&cli.BoolFlag{Name: "no-trunc", Usage: "Do not truncate the output"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "Only display " + what + " IDs"},
	}
}

// sortedRows orders items by name, numbers numerically, and makes a row of each.
func sortedRows[T, R any](items []T, name func(T) string, row func(T) R) []R {
	sorted := append([]T(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool { return naturalLess(name(sorted[i]), name(sorted[j])) })
	rows := make([]R, len(sorted))
	for i, it := range sorted {
		rows[i] = row(it)
	}
	return rows
}

// idColumn is an ID as ls shows it: docker's 12 characters unless --no-trunc.
func idColumn(id string, trunc bool) string {
	if trunc {
		return stringid.ShortID(id)
	}
	return id
}

// argsUsage is "NETWORK [NETWORK...]" for kind "network".
func argsUsage(kind string) string {
	k := strings.ToUpper(kind)
	return k + " [" + k + "...]"
}

// inspectCommand is `netd <kind> inspect`, looking every name up with get.
func inspectCommand[T any](kind string, get func(*api.Client, context.Context, string) (T, error)) *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "Display detailed information on one or more " + kind + "s",
		ArgsUsage: argsUsage(kind),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Format output using a custom template: 'json', 'TEMPLATE'"},
		},
		Action: argsAction(minArgs(1), func(c *cli.Context, cl *api.Client) error {
			return inspectEach(c, kind, c.Args().Slice(), func(name string) (T, error) {
				return get(cl, c.Context, name)
			})
		}),
	}
}

// inspectEach fetches every name, prints what was found (as docker, all of
// it, before the errors) and then the error of each miss as the daemon
// words it, and of each item the template could not render. A template
// that does not parse exits 64, as docker's inspect.
func inspectEach[T any](c *cli.Context, kind string, names []string, get func(string) (T, error)) error {
	format := c.String("format")
	if format != "" && format != jsonFormatKey {
		if _, err := parseTemplate(format); err != nil {
			return &statusError{code: 64, msg: err.Error()}
		}
	}
	var found []T
	var errs []string
	for _, n := range names {
		v, err := get(n)
		if err == nil {
			found = append(found, v)
			continue
		}
		var ce *api.ConnectError
		if errors.As(err, &ce) {
			return err
		}
		errs = append(errs, err.Error())
	}
	err := writeInspect(c.App.Writer, format, found)
	var re *inspectRenderError
	switch {
	case errors.As(err, &re):
		errs = append(errs, re.msgs...)
	case err != nil:
		return err
	}
	if len(errs) > 0 {
		return &statusError{code: 1, msg: strings.Join(errs, "\n")}
	}
	return nil
}

// rmCommand is `netd <kind> rm`; with --force a name not found is no error.
func rmCommand(kind, forceUsage string, rm func(cl *api.Client, ctx context.Context, name string, force bool) error) *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Aliases:   []string{"remove"},
		Usage:     "Remove one or more " + kind + "s",
		ArgsUsage: argsUsage(kind),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: forceUsage},
		},
		Action: argsAction(minArgs(1), func(c *cli.Context, cl *api.Client) error {
			force := c.Bool("force")
			return removeEach(c, c.Args().Slice(), func(n string) error {
				err := rm(cl, c.Context, n, force)
				if force && api.IsNotFound(err) {
					return errSkip
				}
				return err
			})
		}),
	}
}

// removeEach runs rm for every name, printing each success on stdout and
// each failure on stderr, and fails at the end if anything failed.
func removeEach(c *cli.Context, names []string, rm func(string) error) error {
	status := 0
	for _, n := range names {
		err := rm(n)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			var ce *api.ConnectError
			if errors.As(err, &ce) {
				return err
			}
			fmt.Fprintln(c.App.ErrWriter, err)
			status = 1
			continue
		}
		fmt.Fprintln(c.App.Writer, n)
	}
	if status != 0 {
		return &statusError{code: status}
	}
	return nil
}
