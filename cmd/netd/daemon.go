//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/daemon"
)

// daemonCommand is the only place cmd/netd reaches into the daemon package.
func daemonCommand() *cli.Command {
	host, _ := os.Hostname()
	return &cli.Command{
		Name:         "daemon",
		Usage:        "Run the netd daemon",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"NETD_SOCKET"}, Usage: "unix socket to serve the API on"},
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/netd", EnvVars: []string{"NETD_STATE_DIR"}, Usage: "directory of the state database"},
			&cli.StringFlag{Name: "bpffs", Value: "/sys/fs/bpf/netd", EnvVars: []string{"NETD_BPFFS"}, Usage: "bpffs directory for pinned maps and links"},
			&cli.StringFlag{Name: "node-name", Value: host, EnvVars: []string{"NETD_NODE_NAME"}, Usage: "name of this node; prefixes namespaces and pin paths"},
			&cli.StringFlag{Name: "dataplane", Value: api.DataplaneEBPF, EnvVars: []string{"NETD_DATAPLANE"}, Usage: "default dataplane of new networks: ebpf|kernel"},
			&cli.StringSliceFlag{Name: "default-address-pool", EnvVars: []string{"NETD_DEFAULT_ADDRESS_POOL"}, Usage: "default address pool for networks (base=10.10.0.0/16,size=24); repeatable"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"NETD_LOG_LEVEL"}, Usage: "debug|info|warn|error"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg, err := daemonConfig(c)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return daemon.Run(ctx, cfg)
		},
	}
}

func daemonConfig(c *cli.Context) (daemon.Config, error) {
	var cfg daemon.Config
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return cfg, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	dp := c.String("dataplane")
	if dp != api.DataplaneEBPF && dp != api.DataplaneKernel {
		return cfg, fmt.Errorf("invalid --dataplane %q: want %s or %s", dp, api.DataplaneEBPF, api.DataplaneKernel)
	}
	if c.String("node-name") == "" {
		return cfg, fmt.Errorf("--node-name is empty and the hostname is unknown")
	}
	var pools []string
	for _, p := range c.StringSlice("default-address-pool") {
		// NETD_DEFAULT_ADDRESS_POOL holds several pools separated by spaces.
		pools = append(pools, strings.Fields(p)...)
	}
	return daemon.Config{
		Socket:       c.String("socket"),
		StateDir:     c.String("state-dir"),
		BPFFS:        c.String("bpffs"),
		NodeName:     c.String("node-name"),
		Dataplane:    dp,
		AddressPools: pools,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}, nil
}
