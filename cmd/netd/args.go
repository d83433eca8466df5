package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

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
