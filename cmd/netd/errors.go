package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// statusError ends the command with code after printing msg (if any).
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.msg
}

// commandPath is "netd network create" for the running command.
func commandPath(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}
	if len(names) == 0 || names[0] != c.App.Name {
		names = append([]string{c.App.Name}, names...)
	}
	return strings.Join(names, " ")
}

// noOptionsInUsage are the commands whose usage line docker writes without
// [OPTIONS] although they have flags (docker's `network rm NETWORK [NETWORK...]`).
var noOptionsInUsage = map[string]bool{"network rm": true}

// usageLine is docker's "Usage:" line of the running command: netd itself
// takes a command, a group is its path alone, a command shows [OPTIONS]
// when it has flags, then its arguments.
func usageLine(c *cli.Context) string {
	path := commandPath(c)
	if c.Command == nil || c.Command.Name == "" || c.Command.Name == c.App.Name {
		return path + " [OPTIONS] COMMAND [ARG...]"
	}
	for _, sub := range c.Command.Subcommands {
		if sub.Name != "help" { // urfave/cli adds help to every command
			return path
		}
	}
	usage := path
	if !noOptionsInUsage[strings.TrimPrefix(path, c.App.Name+" ")] {
		for _, f := range c.Command.Flags {
			if f != cli.HelpFlag {
				usage += " [OPTIONS]"
				break
			}
		}
	}
	if c.Command.ArgsUsage != "" {
		usage += " " + c.Command.ArgsUsage
	}
	return usage
}

// argsError is docker's message for a wrong number of arguments; see is
// how its last line starts ("Run" or, for at-least counts, "See", as docker).
func argsError(c *cli.Context, what, see string) error {
	path := commandPath(c)
	return &statusError{code: 1, msg: fmt.Sprintf("%s: '%s' %s\n\nUsage:  %s\n\n%s '%s --help' for more information",
		c.App.Name, path, what, usageLine(c), see, path)}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// exactArgs is the check of a command taking exactly n arguments.
func exactArgs(n int) func(*cli.Context) error {
	return func(c *cli.Context) error {
		if c.NArg() != n {
			return argsError(c, "requires "+plural(n, "argument"), "Run")
		}
		return nil
	}
}

// minArgs is the check of a command taking at least n arguments.
func minArgs(n int) func(*cli.Context) error {
	return func(c *cli.Context) error {
		if c.NArg() < n {
			return argsError(c, "requires at least "+plural(n, "argument"), "See")
		}
		return nil
	}
}

func noArgs(c *cli.Context) error {
	if c.NArg() != 0 {
		return argsError(c, "accepts no arguments", "Run")
	}
	return nil
}

// usageError reports a bad flag like docker: status 125, pflag's wording,
// the usage line and a pointer to --help.
func usageError(c *cli.Context, err error, _ bool) error {
	return &statusError{code: 125, msg: fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information",
		pflagMessage(err.Error()), usageLine(c), commandPath(c))}
}

// pflagMessage rewrites the Go flag package's errors into the texts docker
// users know from pflag.
func pflagMessage(msg string) string {
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		if len(name) == 1 {
			return "unknown shorthand flag: '" + name + "' in -" + name
		}
		return "unknown flag: --" + name
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		name = strings.TrimLeft(name, "-")
		if len(name) == 1 {
			return "flag needs an argument: '" + name + "' in -" + name
		}
		return "flag needs an argument: --" + name
	}
	// flag: invalid boolean value "x" for -internal: parse error
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if val, name, ok := strings.Cut(rest, " for -"); ok {
			name, _, _ = strings.Cut(name, ": ")
			return fmt.Sprintf("invalid argument %s for \"--%s\" flag: strconv.ParseBool: parsing %s: invalid syntax", val, name, val)
		}
	}
	return msg
}

// groupAction runs for a command group (or netd itself) given no known
// subcommand: help without arguments, docker's error for an unknown one.
func groupAction(c *cli.Context) error {
	if c.NArg() == 0 {
		if c.Command == nil || c.Command.Name == "" || c.Command.Name == c.App.Name {
			return cli.ShowAppHelp(c)
		}
		return cli.ShowSubcommandHelp(c)
	}
	path := commandPath(c)
	usage := ""
	if path != c.App.Name {
		usage = "Usage:  " + usageLine(c) + "\n\n"
	}
	return &statusError{code: 1, msg: fmt.Sprintf("%s: unknown command: %s %s\n\n%sRun '%s --help' for more information",
		c.App.Name, path, c.Args().First(), usage, path)}
}

// flagValueError is a flag value refused before any request is sent:
// pflag's error in docker, so status 125.
type flagValueError struct{ msg string }

func (e *flagValueError) Error() string { return e.msg }

func badFlagValue(format string, a ...any) error {
	return &flagValueError{msg: fmt.Sprintf(format, a...)}
}

// flagErr reports a flagValueError as a usage error of c's command.
func flagErr(c *cli.Context, err error) error {
	var fe *flagValueError
	if errors.As(err, &fe) {
		return usageError(c, err, false)
	}
	return err
}
