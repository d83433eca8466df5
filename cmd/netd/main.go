// Command netd is the netd daemon and its CLI in one binary: `netd daemon`
// runs the daemon, every other command is a thin client of package api.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := newApp(os.Stdin, os.Stdout, os.Stderr)
	os.Exit(run(app, os.Args))
}

// run executes args and returns the process exit status, printing errors
// to the app's ErrWriter as the docker CLI does.
func run(app *cli.App, args []string) int {
	err := app.Run(permuteArgs(app, args))
	if err == nil {
		return 0
	}
	var se *statusError
	if errors.As(err, &se) {
		if se.msg != "" {
			fmt.Fprintln(app.ErrWriter, se.msg)
		}
		return se.code
	}
	fmt.Fprintln(app.ErrWriter, err)
	return 1
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                      "netd",
		Usage:                     "Docker-style networks for network namespaces, with an eBPF fast path",
		Version:                   version,
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		DisableSliceFlagSeparator: true, // label values and address pools contain commas
		// Errors are printed once, by run.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Action:         groupAction,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "host",
				Aliases: []string{"H"},
				Usage:   "daemon socket to connect to (unix:///path or a path)",
				Value:   api.DefaultHost,
				EnvVars: []string{"NETD_HOST"},
			},
		},
		Commands: []*cli.Command{
			networkCommand(),
			containerCommand(),
			dataplaneCommand(),
			daemonCommand(),
			versionCommand(),
		},
	}
}

// newClient is the one place commands get their API client from.
func newClient(c *cli.Context) (*api.Client, error) {
	return api.NewClient(c.String("host"))
}

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

// argsError is docker's message for a wrong number of arguments.
func argsError(c *cli.Context, what string) error {
	path := commandPath(c)
	usage := path
	if c.Command != nil {
		for _, f := range c.Command.Flags {
			if f != cli.HelpFlag {
				usage += " [OPTIONS]"
				break
			}
		}
		if c.Command.ArgsUsage != "" {
			usage += " " + c.Command.ArgsUsage
		}
	}
	desc := ""
	if c.Command != nil {
		desc = c.Command.Usage
	}
	return &statusError{code: 1, msg: fmt.Sprintf("%q %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s", path, what, path, usage, desc)}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func exactArgs(c *cli.Context, n int) error {
	if c.NArg() != n {
		return argsError(c, "requires exactly "+plural(n, "argument"))
	}
	return nil
}

func minArgs(c *cli.Context, n int) error {
	if c.NArg() < n {
		return argsError(c, "requires at least "+plural(n, "argument"))
	}
	return nil
}

func noArgs(c *cli.Context) error {
	if c.NArg() != 0 {
		return argsError(c, "accepts no arguments")
	}
	return nil
}

// usageError reports a bad flag like docker: status 125, pflag's wording
// and a pointer to --help.
func usageError(c *cli.Context, err error, _ bool) error {
	return &statusError{code: 125, msg: fmt.Sprintf("%s\nSee '%s --help'.", pflagMessage(err.Error()), commandPath(c))}
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
	return &statusError{code: 1, msg: fmt.Sprintf("%s: '%s' is not a %s command.\nSee '%s --help'", path, c.Args().First(), path, path)}
}

// passthrough names commands whose arguments after the given number of
// positionals belong to a program run in a container, so flags there are
// not netd's.
var passthrough = map[string]int{
	"container run":  1,
	"container exec": 1,
}

// permuteArgs moves the flags of the final (sub)command in front of its
// positional arguments, so `netd network create NAME --subnet S` works as in
// docker. "--" and the passthrough positions stop the reordering.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	flags := app.Flags
	cmds := app.Commands
	var path []string
	i := 1
	// Global and intermediate flags, then command names.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			out = append(out, a)
			i++
			if takesValue(flags, a) && i < len(args) {
				out = append(out, args[i])
				i++
			}
			continue
		}
		cmd := findCommand(cmds, a)
		if cmd == nil {
			break
		}
		out = append(out, a)
		path = append(path, cmd.Name)
		i++
		flags = cmd.Flags
		cmds = cmd.Subcommands
		if len(cmd.Subcommands) == 0 {
			break
		}
	}
	limit, hasLimit := passthrough[strings.Join(path, " ")]
	var fl, pos []string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			i++
			if takesValue(flags, a) && i == len(args) {
				// A value flag with nothing after it: leave it last so the
				// parser reports it instead of taking a positional as its value.
				return append(append(out, fl...), a)
			}
			fl = append(fl, canonicalFlag(flags, a))
			if takesValue(flags, a) {
				fl = append(fl, args[i])
				i++
			}
			continue
		}
		if hasLimit && len(pos) >= limit {
			break
		}
		pos = append(pos, a)
		i++
	}
	out = append(out, fl...)
	if hasLimit && len(pos) > 0 && i < len(args) && args[i] != "--" {
		// Keep where netd's arguments end visible to the command.
		pos = append(pos, "--")
	}
	out = append(out, pos...)
	return append(out, args[i:]...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// canonicalFlag rewrites an alias ("-o x", "-f=a") to the flag's first
// name: urfave/cli refuses "-o a --opt b" as "two forms of the same flag",
// docker accepts it.
func canonicalFlag(flags []cli.Flag, arg string) string {
	name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		names := f.Names()
		for _, n := range names {
			if n == name {
				if hasVal {
					return "--" + names[0] + "=" + val
				}
				return "--" + names[0]
			}
		}
	}
	return arg
}

// takesValue says whether flag arg (e.g. "--subnet", "-d") consumes the
// next argument: it is a known non-boolean flag without an inline "=value".
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// parseKV parses repeated key=value flag values. A value without "=" maps
// the key to "" (docker's MapOpts); an empty key is an error.
func parseKV(flag string, vals []string) (map[string]string, error) {
	return kvMap(vals, func(v string) error {
		return badFlagValue("invalid argument %q for \"--%s\" flag: empty name", v, flag)
	})
}

// parseLabels is docker's label parsing: "k=v" or "k", name not empty.
func parseLabels(vals []string) (map[string]string, error) {
	return kvMap(vals, func(v string) error {
		return badFlagValue("invalid argument %q for \"--label\" flag: invalid label '%s': empty name", v, v)
	})
}

// kvMap splits vals at their first "=", failing with emptyKey(v) for a
// value whose key is blank.
func kvMap(vals []string, emptyKey func(v string) error) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, _ := strings.Cut(v, "=")
		if strings.TrimSpace(k) == "" {
			return nil, emptyKey(v)
		}
		m[k] = val
	}
	return m, nil
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

// parseFilters turns repeated --filter key=value into the API's map.
func parseFilters(vals []string) (map[string][]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	f := make(map[string][]string)
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, badFlagValue("invalid argument %q for \"-f, --filter\" flag: bad format of filter (expected name=value)", v)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		f[k] = append(f[k], strings.TrimSpace(val))
	}
	return f, nil
}

// errSkip tells removeEach to pass over a name silently (rm -f of a missing one).
var errSkip = errors.New("skip")

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
