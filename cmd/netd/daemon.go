//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/daemon"
)

// daemonCommand is the only place cmd/netd reaches into the daemon package.
func daemonCommand() *cli.Command {
	host, _ := os.Hostname()
	return &cli.Command{
		Name:        "daemon",
		Usage:       "Run the netd daemon",
		Subcommands: []*cli.Command{restoreStateCommand()},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: configFlag, EnvVars: []string{"NETD_CONFIG"}, Usage: "JSON file of daemon settings, keys named as these flags (\"gossip-port\": 7946, \"join\": [\"10.0.0.1\"]); flags and environment variables override it"},
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"NETD_SOCKET"}, Usage: "unix socket to serve the API on"},
			&cli.StringFlag{Name: "group", Aliases: []string{"G"}, Value: daemon.DefaultSocketGroup, EnvVars: []string{"NETD_GROUP"}, Usage: "group of the API socket (mode 0660), a name or a GID; empty: the daemon's own group"},
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/netd", EnvVars: []string{"NETD_STATE_DIR"}, Usage: "directory of the state database"},
			&cli.StringFlag{Name: "bpffs", Value: "/sys/fs/bpf/netd", EnvVars: []string{"NETD_BPFFS"}, Usage: "bpffs directory for pinned maps and links"},
			&cli.StringFlag{Name: "node-name", Value: host, EnvVars: []string{"NETD_NODE_NAME"}, Usage: "name of this node; prefixes namespaces and pin paths"},
			&cli.StringFlag{Name: "dataplane", Value: api.DataplaneEBPF, EnvVars: []string{"NETD_DATAPLANE"}, Usage: "default dataplane of new networks: ebpf|kernel"},
			&cli.StringSliceFlag{Name: "default-address-pool", EnvVars: []string{"NETD_DEFAULT_ADDRESS_POOL"}, Usage: "default address pool for networks (base=10.10.0.0/16,size=24); repeatable"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"NETD_LOG_LEVEL"}, Usage: "debug|info|warn|error"},
			&cli.StringFlag{Name: "advertise-addr", EnvVars: []string{"NETD_ADVERTISE_ADDR"}, Usage: "address other hosts reach this one at (the underlay); default: the source address of the route to the first --join peer"},
			&cli.StringSliceFlag{Name: "join", EnvVars: []string{"NETD_JOIN"}, Usage: "HOST[:PORT] of cluster members to join, comma-separated or repeated"},
			&cli.IntFlag{Name: "gossip-port", Value: 7946, EnvVars: []string{"NETD_GOSSIP_PORT"}, Usage: "TCP and UDP port of the gossip (memberlist)"},
			&cli.IntFlag{Name: "vxlan-port", Value: 4789, EnvVars: []string{"NETD_VXLAN_PORT"}, Usage: "UDP port of the VXLAN traffic of overlay networks"},
			&cli.StringFlag{Name: "gossip-key-file", EnvVars: []string{"NETD_GOSSIP_KEY_FILE"}, Usage: "file with the base64 gossip key (16, 24 or 32 bytes: `openssl rand -base64 32`); encrypts and authenticates all gossip"},
			&cli.StringFlag{Name: "dns-resolv-conf", Value: "/etc/resolv.conf", EnvVars: []string{"NETD_DNS_RESOLV_CONF"}, Usage: "resolv.conf whose nameservers the embedded DNS forwards to and whose search domains and options containers get"},
			&cli.StringSliceFlag{Name: "publish-ifaces", EnvVars: []string{"NETD_PUBLISH_IFACES"}, Usage: "uplink interfaces where published ports (-p) of ebpf networks are reachable from outside, comma-separated or repeated; default: every interface with an IPv4 address that is not loopback, a bridge, a bridge port or a tunnel"},
			&cli.BoolFlag{Name: "xdp-publish", EnvVars: []string{"NETD_XDP_PUBLISH"}, Usage: "also translate established published-port flows at XDP on the uplinks (native XDP only)"},
			&cli.StringFlag{Name: "publish-cgroup", EnvVars: []string{"NETD_PUBLISH_CGROUP"}, Usage: "cgroup v2 directory (default: the cgroup2 mount) whose processes reach published ports of ebpf networks at localhost:PORT and HOST_IP:PORT (socket hooks, this network namespace only); none: no such translation"},
			&cli.BoolFlag{Name: "prune-orphans", EnvVars: []string{"NETD_PRUNE_ORPHANS"}, Usage: "at start, delete kernel objects of this node that have no record in the state dir (otherwise they are kept and listed)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if err := applyConfigFile(c); err != nil {
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
	port := c.Int("gossip-port")
	if port < 1 || port > 65535 {
		return cfg, fmt.Errorf("invalid --gossip-port %d: want 1-65535", port)
	}
	if vp := c.Int("vxlan-port"); vp < 1 || vp > 65535 {
		return cfg, fmt.Errorf("invalid --vxlan-port %d: want 1-65535", vp)
	}
	var join []string
	for _, j := range c.StringSlice("join") {
		for _, p := range strings.FieldsFunc(j, func(r rune) bool { return r == ',' || r == ' ' }) {
			join = append(join, p)
		}
	}
	var pools []string
	for _, p := range c.StringSlice("default-address-pool") {
		// NETD_DEFAULT_ADDRESS_POOL holds several pools separated by spaces.
		pools = append(pools, strings.Fields(p)...)
	}
	var ifaces []string
	for _, i := range c.StringSlice("publish-ifaces") {
		ifaces = append(ifaces, strings.FieldsFunc(i, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	return daemon.Config{
		Publish:      daemon.PublishConfig{Ifaces: ifaces, XDP: c.Bool("xdp-publish"), Cgroup: c.String("publish-cgroup")},
		Socket:       c.String("socket"),
		SocketGroup:  c.String("group"),
		StateDir:     c.String("state-dir"),
		BPFFS:        c.String("bpffs"),
		NodeName:     c.String("node-name"),
		Dataplane:    dp,
		AddressPools: pools,
		PruneOrphans: c.Bool("prune-orphans"),
		DNS:          daemon.DNSConfig{ResolvConf: c.String("dns-resolv-conf")},
		Cluster: daemon.ClusterConfig{
			AdvertiseAddr: c.String("advertise-addr"),
			Join:          join,
			Port:          port,
			KeyFile:       c.String("gossip-key-file"),
			VXLANPort:     c.Int("vxlan-port"),
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}, nil
}

// restoreStateCommand puts the last good copy of the state database back,
// with the daemon stopped; the damaged file is moved aside, never deleted.
func restoreStateCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore-state",
		Usage: "With the daemon stopped, move a damaged state database aside and restore its last good copy",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/netd", EnvVars: []string{"NETD_STATE_DIR"}, Usage: "directory of the state database"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			dir := c.String("state-dir")
			if !c.IsSet("state-dir") && len(c.Lineage()) > 1 && c.Lineage()[1].IsSet("state-dir") {
				dir = c.Lineage()[1].String("state-dir") // netd daemon --state-dir DIR restore-state
			}
			r, err := daemon.RestoreState(dir, time.Now())
			if err != nil {
				return err
			}
			w := c.App.Writer
			if r.Damaged != "" {
				found := "it passed the check"
				if r.Problem != "" {
					found = "its check found: " + r.Problem
				}
				fmt.Fprintf(w, "moved %s aside to %s (%s)\n", r.DB, r.Damaged, found)
			}
			fmt.Fprintf(w, "restored %s from %s, saved %s: transaction %d, %d networks, %d containers\n",
				r.DB, r.LastGood, r.Saved.UTC().Format(time.RFC3339), r.TxID, r.Networks, r.Containers)
			if r.PrevTxID > r.TxID {
				fmt.Fprintf(w, "the copy is older than the last transaction netd recorded (%d): networks and containers made after it was saved are no longer recorded, and the daemon keeps their kernel objects as orphans\n", r.PrevTxID)
			}
			fmt.Fprintln(w, "start the daemon again: it brings the kernel in line with the restored state")
			return nil
		},
	}
}
