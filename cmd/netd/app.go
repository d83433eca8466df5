package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/buildinfo"
)

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
	app := &cli.App{
		Name:                      "netd",
		Usage:                     "Docker-style networks for network namespaces, with an eBPF fast path",
		Version:                   buildinfo.Version,
		Reader:                    stdin,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		DisableSliceFlagSeparator: true, // label values and address pools contain commas
		EnableBashCompletion:      true, // netd completion bash
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
			nodeCommand(),
			systemCommand(),
			daemonCommand(),
			versionCommand(),
			completionCommand(),
		},
	}
	// Every command reports bad usage as docker does (exit 125, "See --help").
	var docker func([]*cli.Command)
	docker = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = usageError
			}
			docker(c.Subcommands)
		}
	}
	docker(app.Commands)
	return app
}

// newClient is the one place commands get their API client from.
func newClient(c *cli.Context) (*api.Client, error) {
	return api.NewClient(c.String("host"))
}
