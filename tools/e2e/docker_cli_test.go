//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/netd-dev/netd/tools/lab"
)

// The real docker CLI and Docker's Go SDK against a netd daemon: netd serves
// the Engine API's network calls on its socket (daemon/engineapi.go).

// dockerCLIPaths are the docker CLIs tried: $DOCKER_CLI, Debian's docker.io
// (what `make deps` installs) and a docker-ce CLI in /usr/local/bin.
func dockerCLIPaths() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range []string{os.Getenv("DOCKER_CLI"), "/usr/bin/docker", "/usr/local/bin/docker"} {
		if p == "" || seen[p] {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// dockerCLI runs one docker CLI binary against one lab host's netd.
type dockerCLI struct {
	t     *testing.T
	path  string
	major int // 20 for Debian's 20.10, 28 for docker-ce 28.x
	h     *lab.Host
	cfg   string // DOCKER_CONFIG: nothing of the machine's own docker setup is read or written
}

var dockerVersionRE = regexp.MustCompile(`Docker version (\d+)\.`)

func newDockerCLI(t *testing.T, path string, h *lab.Host) *dockerCLI {
	t.Helper()
	out, err := exec.Command(path, "--version").Output()
	m := dockerVersionRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("%s --version: %q, %v", path, out, err)
	}
	major, _ := strconv.Atoi(string(m[1]))
	return &dockerCLI{t: t, path: path, major: major, h: h, cfg: t.TempDir()}
}

// run is `docker -H <netd> args...` in the lab host's namespace.
func (d *dockerCLI) run(args ...string) (stdout, stderr string, exit int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lab.CommandTimeout)
	defer cancel()
	cmd := d.h.Command(ctx, d.path, append([]string{"-H", d.h.HostURL()}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.cfg, "DOCKER_CLI_HINTS=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		exit = ee.ExitCode()
	default:
		d.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), exit
}

// ok runs docker and fails the test unless it exits 0; it returns stdout.
func (d *dockerCLI) ok(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.run(args...)
	if code != 0 {
		d.t.Fatalf("docker %s: exit %d\nstdout: %s\nstderr: %s", lab.ShellJoin(args), code, out, errOut)
	}
	return out
}

// fails expects exit code 1 and stderr matching the regular expression want.
func (d *dockerCLI) fails(want string, args ...string) {
	d.t.Helper()
	out, errOut, code := d.run(args...)
	if code != 1 || !regexp.MustCompile(want).MatchString(errOut) {
		d.t.Errorf("docker %s: exit %d, stderr %q (stdout %q); want exit 1 and stderr matching %q",
			lab.ShellJoin(args), code, errOut, out, want)
	}
}

// same runs one command with docker and with netd: stdout, stderr and exit
// code must be identical.
func (d *dockerCLI) same(args ...string) {
	d.t.Helper()
	dOut, dErr, dCode := d.run(args...)
	nOut, nErr, nCode := d.h.Netd(args...)
	if dOut != nOut || dErr != nErr || dCode != nCode {
		d.t.Errorf("%s differs:\n--- docker (exit %d)\n%s%s\n--- netd (exit %d)\n%s%s",
			lab.ShellJoin(args), dCode, dOut, dErr, nCode, nOut, nErr)
	}
}

func dockerCLIs(t *testing.T) []string {
	t.Helper()
	paths := dockerCLIPaths()
	if len(paths) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("no docker CLI found: `make deps` installs Debian's docker.io")
		}
		t.Skip("no docker CLI (/usr/bin/docker from docker.io, or $DOCKER_CLI)")
	}
	return paths
}

// TestDockerCLINetworks drives every `docker network` subcommand and flag
// netd's CLI has through each docker CLI found, each against its own daemon.
func TestDockerCLINetworks(t *testing.T) {
	for _, path := range dockerCLIs(t) {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_"), func(t *testing.T) {
			l := newLab(t)
			h := startHost(t, l, "h1", "--dataplane", "kernel")
			d := newDockerCLI(t, path, h)
			testDockerCLI(t, d)
		})
	}
}

func testDockerCLI(t *testing.T, d *dockerCLI) {
	h := d.h
	if out := d.ok("version", "--format", "{{.Server.Platform.Name}} {{.Server.APIVersion}}"); strings.TrimSpace(out) != "netd 1.51" {
		t.Errorf("docker version: server %q, want netd 1.51", out)
	}

	// create with every flag netd's create has.
	id := strings.TrimSpace(d.ok("network", "create", "-d", "bridge", "--subnet", "10.61.0.0/24", "--gateway", "10.61.0.254",
		"--ip-range", "10.61.0.128/25", "--aux-address", "printer=10.61.0.5", "--label", "team=db",
		"-o", "com.docker.network.bridge.enable_icc=false", "--opt", "com.docker.network.driver.mtu=1400", "--attachable", "dbnet"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("docker network create printed %q, want a 64-hex ID", id)
	}
	d.ok("network", "create", "--internal", "--label", "tier", "--subnet", "10.62.0.0/24", "inner")
	d.ok("network", "create", "auto")
	n := inspectNet(t, h, "dbnet")
	if n.ID != id || n.IPAM.Config[0].Gateway != "10.61.0.254" || n.IPAM.Config[0].IPRange != "10.61.0.128/25" ||
		n.IPAM.Config[0].AuxiliaryAddresses["printer"] != "10.61.0.5" || !n.Attachable || n.Labels["team"] != "db" ||
		n.Options["com.docker.network.driver.mtu"] != "1400" {
		t.Errorf("netd sees the network docker created as %+v", n)
	}
	if !inspectNet(t, h, "inner").Internal {
		t.Error("docker network create --internal: netd's network is not internal")
	}

	// ls and inspect print the same as netd's CLI for the same state (one label per
	// network: docker joins labels in map order, netd sorts them).
	formats := [][]string{
		{}, {"--no-trunc"}, {"-q"}, {"--quiet", "--no-trunc"}, {"--format", "table"},
		{"--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} {{.IPv6}} {{.Internal}} {{.Labels}} {{.Label \"team\"}} {{.CreatedAt}}"},
		{"--format", "table {{.Name}}\t{{.Labels}}"},
		{"-f", "driver=bridge"}, {"--filter", "label=team=db"}, {"--filter", "name=net"}, {"--filter", "id=" + id[:6]},
		{"--filter", "type=custom"}, {"--filter", "type=builtin"}, {"--filter", "dangling=true"}, {"--filter", "scope=local"},
		{"--filter", "label=team", "--filter", "driver=bridge", "-q"},
	}
	if d.major >= 23 { // json format key, IPv4 column
		formats = append(formats, []string{"--format", "json"}, []string{"--format", "{{.IPv4}} {{.Name}}"})
	}
	for _, f := range formats {
		d.same(append([]string{"network", "ls"}, f...)...)
	}
	inspects := [][]string{
		{"dbnet"}, {"dbnet", "inner", "bridge"}, {id[:12]},
		{"-f", "{{.Name}} {{.Driver}} {{.Internal}} {{.Attachable}} {{json .Labels}}", "dbnet", "inner"},
		{"--format", "{{json .IPAM}}", "dbnet"}, {"--format", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "auto"},
		{"--format", "{{.Id}}", "dbnet"},
	}
	for _, f := range inspects {
		d.same(append([]string{"network", "inspect"}, f...)...)
	}

	// Error cases: docker shows the daemon's error and exits 1.
	d.fails(`^Error response from daemon: network with name dbnet already exists\n$`, "network", "create", "dbnet")
	d.fails(`^Error response from daemon: .*Pool overlaps with other one on this address space\n$`,
		"network", "create", "--subnet", "10.61.0.0/16", "overlap")
	d.fails(`No such network: nosuch|network nosuch not found`, "network", "inspect", "nosuch")
	d.fails(`No such network: nosuch|network nosuch not found`, "network", "rm", "nosuch")
	d.fails(`^Error response from daemon: bridge is a pre-defined network and cannot be removed\n`, "network", "rm", "bridge")
	if d.major >= 23 { // docker network rm --force came with Docker 23
		if out, errOut, code := d.run("network", "rm", "-f", "nosuch"); code != 0 || out != "" || errOut != "" {
			t.Errorf("docker network rm -f nosuch: exit %d, %q %q; want a silent success", code, out, errOut)
		}
	}

	// connect and disconnect a netd container.
	createCtr(t, h, "web")
	d.ok("network", "connect", "--ip", "10.61.0.200", "--alias", "www", "dbnet", "web")
	if got := ctrIP(t, h, "web", "dbnet"); got != "10.61.0.200" {
		t.Errorf("after docker network connect --ip 10.61.0.200: web has %s on dbnet", got)
	}
	if got := inspectCtr(t, h, "web").NetworkSettings.Networks["dbnet"].Aliases; !equal(got, []string{"www"}) {
		t.Errorf("after docker network connect --alias www: aliases %v", got)
	}
	d.same("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}", "dbnet")
	d.same("network", "ls", "--filter", "dangling=false")
	d.fails(`^Error response from daemon: error while removing network: network dbnet id `+id+` has active endpoints\n`, "network", "rm", "dbnet")
	d.fails(`No such container: ghost`, "network", "connect", "dbnet", "ghost")
	d.ok("network", "disconnect", "dbnet", "web")
	if _, on := inspectCtr(t, h, "web").NetworkSettings.Networks["dbnet"]; on {
		t.Error("docker network disconnect: web is still on dbnet")
	}
	d.ok("network", "connect", "auto", "web")
	d.ok("network", "disconnect", "-f", "auto", "web")
	d.fails(`is not connected to network auto`, "network", "disconnect", "auto", "web")

	// prune (with its filters) prints what netd's prune prints.
	d.ok("network", "create", "--label", "p=1", "p-docker")
	ok(t, h, "network", "create", "--label", "p=2", "p-netd")
	dOut := d.ok("network", "prune", "-f", "--filter", "label=p=1")
	nOut := ok(t, h, "network", "prune", "--force", "--filter", "label=p=2")
	if dOut != "Deleted Networks:\np-docker\n\n" || strings.ReplaceAll(nOut, "p-netd", "p-docker") != dOut {
		t.Errorf("prune: docker printed %q, netd %q", dOut, nOut)
	}
	d.ok("network", "rm", "dbnet", "inner")
	if out := d.ok("network", "prune", "--force", "--filter", "until=1h"); out != "" {
		t.Errorf("docker network prune --filter until=1h removed networks younger than 1h: %q", out)
	}
	d.ok("network", "prune", "-f")
	if got := lsNames(t, h); !equal(got, []string{"bridge", "host", "none"}) {
		t.Errorf("after docker network rm and prune: netd lists %v", got)
	}

	// Commands of other nouns say netd does not serve them.
	d.fails(`^Error response from daemon: netd does not serve GET /v1\.\d+/containers/json: `, "ps")
}

// TestDockerSDKClient lists, creates, inspects and removes a network
// through netd with Docker's own Go client, negotiating the API version.
func TestDockerSDKClient(t *testing.T) {
	l := newLab(t)
	h := startHost(t, l, "h1", "--dataplane", "kernel")
	cl, err := client.NewClientWithOpts(client.WithHost(h.HostURL()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	ping, err := cl.Ping(ctx)
	if err != nil || ping.APIVersion != "1.51" || ping.OSType != "linux" {
		t.Fatalf("ping: %+v, %v", ping, err)
	}
	v, err := cl.ServerVersion(ctx)
	if err != nil || v.Platform.Name != "netd" || v.MinAPIVersion != "1.40" {
		t.Errorf("server version: %+v, %v", v, err)
	}

	created, err := cl.NetworkCreate(ctx, "sdknet", network.CreateOptions{
		Driver: "bridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.63.0.0/24"}}},
		Labels: map[string]string{"via": "sdk"},
	})
	if err != nil || len(created.ID) != 64 {
		t.Fatalf("create: %+v, %v", created, err)
	}
	if _, err := cl.NetworkCreate(ctx, "sdknet", network.CreateOptions{}); !errdefs.IsConflict(err) {
		t.Errorf("second create of sdknet: %v, want a conflict", err)
	}

	list, err := cl.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list {
		names = append(names, n.Name)
	}
	if !equal(sorted(names...), []string{"bridge", "host", "none", "sdknet"}) {
		t.Errorf("list: %v", names)
	}

	n, err := cl.NetworkInspect(ctx, "sdknet", network.InspectOptions{})
	if err != nil || n.ID != created.ID || n.Labels["via"] != "sdk" || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "10.63.0.0/24" {
		t.Errorf("inspect: %+v, %v", n, err)
	}
	if own := inspectNet(t, h, "sdknet"); own.ID != created.ID {
		t.Errorf("netd's CLI sees sdknet as %s, the SDK created %s", own.ID, created.ID)
	}

	if err := cl.NetworkRemove(ctx, created.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := cl.NetworkInspect(ctx, "sdknet", network.InspectOptions{}); !client.IsErrNotFound(err) {
		t.Errorf("inspect after remove: %v, want not found", err)
	}
	if got := lsNames(t, h); !equal(got, []string{"bridge", "host", "none"}) {
		t.Errorf("after the SDK removed sdknet, netd lists %v", got)
	}
}
