//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// gotConfig is what the tests read of the daemon configuration (the
// daemon package itself is daemon.go's alone to import).
type gotConfig struct {
	StateDir, BPFFS, Dataplane, SocketGroup string
	XDP                                     bool
	Ifaces, Join                            []string
	Port                                    int
}

// daemonConfigFrom runs the daemon command's flag handling on args with
// the given environment and returns the configuration it would start with.
func daemonConfigFrom(t *testing.T, env map[string]string, args ...string) (gotConfig, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd := daemonCommand()
	var cfg gotConfig
	var cfgErr error
	cmd.Action = func(c *cli.Context) error {
		if cfgErr = applyConfigFile(c); cfgErr != nil {
			return nil
		}
		d, err := daemonConfig(c)
		cfgErr = err
		cfg = gotConfig{StateDir: d.StateDir, BPFFS: d.BPFFS, Dataplane: d.Dataplane, SocketGroup: d.SocketGroup,
			XDP: d.Publish.XDP, Ifaces: d.Publish.Ifaces, Join: d.Cluster.Join, Port: d.Cluster.Port}
		return nil
	}
	cmd.Subcommands = nil
	app := &cli.App{Name: "netd", Commands: []*cli.Command{cmd}, Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}}
	if err := app.Run(append([]string{"netd", "daemon"}, args...)); err != nil {
		return cfg, err
	}
	return cfg, cfgErr
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDaemonConfigFile(t *testing.T) {
	p := writeConfig(t, `{
		"state-dir": "/tmp/from-file",
		"gossip-port": 7950,
		"join": ["10.0.0.1", "10.0.0.2"],
		"xdp-publish": true,
		"publish-ifaces": "eth1",
		"dataplane": "kernel",
		"group": ""
	}`)
	cfg, err := daemonConfigFrom(t, map[string]string{"NETD_DATAPLANE": "ebpf"}, "--config", p, "--gossip-port", "7951")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != "/tmp/from-file" || !cfg.XDP || !reflect.DeepEqual(cfg.Ifaces, []string{"eth1"}) ||
		!reflect.DeepEqual(cfg.Join, []string{"10.0.0.1", "10.0.0.2"}) || cfg.SocketGroup != "" {
		t.Errorf("file values not applied: %+v", cfg)
	}
	if cfg.Port != 7951 {
		t.Errorf("the flag does not override the file: gossip port %d", cfg.Port)
	}
	if cfg.Dataplane != "ebpf" {
		t.Errorf("the environment does not override the file: dataplane %q", cfg.Dataplane)
	}
	if cfg.BPFFS != "/sys/fs/bpf/netd" {
		t.Errorf("an unset key lost its default: bpffs %q", cfg.BPFFS)
	}
}

func TestDaemonConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"state-dir": "/x", "gossip_port": 1, "bogus": true}`, "the following directives don't match any configuration option: bogus, gossip_port"},
		{`{"gossip-port": "7946"}`, `"gossip-port" must be an integer, not a string`},
		{`{"xdp-publish": 1}`, `"xdp-publish" must be true or false, not a number`},
		{`{"join": {"a": 1}}`, `"join" must be a list of strings or a string, not an object`},
		{`{"config": "/etc/other.json"}`, "don't match any configuration option: config"},
		{`[1, 2]`, "decode JSON"},
		{`{"state-dir": "/x"} {}`, "data after the object"},
		{`{"state-dir": `, "decode JSON"},
	} {
		_, err := daemonConfigFrom(t, nil, "--config", writeConfig(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "daemon.json") {
			t.Errorf("config %s: error %v, want %q naming the file", tc.body, err, tc.want)
		}
	}
	if _, err := daemonConfigFrom(t, nil, "--config", "/nonexistent/daemon.json"); err == nil || !strings.Contains(err.Error(), "read config file") {
		t.Errorf("missing file: %v", err)
	}
}
