package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/api/buildinfo"
)

// clientVersion is the Client part of `netd version`.
type clientVersion struct {
	Version    string
	APIVersion string `json:"ApiVersion"`
	GoVersion  string
	Os         string
	Arch       string
}

// versionReport is what `netd version --format` templates see.
type versionReport struct {
	Client clientVersion
	Server *api.VersionInfo
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "Show the netd version information",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "Format output using a custom template: 'json', 'TEMPLATE'"},
		},
		Action: argsAction(noArgs, func(c *cli.Context, cl *api.Client) error {
			return writeVersion(c.Context, c.App.Writer, cl, c.String("format"))
		}),
	}
}

func writeVersion(ctx context.Context, w io.Writer, cl *api.Client, format string) error {
	rep := versionReport{Client: clientVersion{
		Version:    buildinfo.Version,
		APIVersion: api.Version,
		GoVersion:  runtime.Version(),
		Os:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}}
	sv, srvErr := cl.Version(ctx)
	if srvErr == nil {
		rep.Server = &sv
	}
	if format != "" {
		if format == jsonFormatKey {
			format = "{{json .}}"
		}
		if err := writeInspect(w, format, []versionReport{rep}); err != nil {
			return err
		}
		return srvErr
	}
	tw := tabwriter.NewWriter(w, 0, 1, 1, ' ', 0)
	fmt.Fprintf(tw, "Client:\n Version:\t%s\n API version:\t%s\n Go version:\t%s\n OS/Arch:\t%s/%s\n",
		rep.Client.Version, rep.Client.APIVersion, rep.Client.GoVersion, rep.Client.Os, rep.Client.Arch)
	if rep.Server != nil {
		fmt.Fprintf(tw, "\nServer:\n Version:\t%s\n API version:\t%s\n Node name:\t%s\n Dataplane:\t%s\n Go version:\t%s\n",
			sv.Version, sv.APIVersion, sv.NodeName, sv.Dataplane, sv.GoVersion)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return srvErr
}
