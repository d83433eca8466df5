//go:build linux

// Command demo is `sudo make demo`: in a throwaway lab namespace it starts a
// netd daemon and walks through networks, containers and pings on both
// dataplanes, echoing every command like a terminal session, then removes
// everything it made (also on Ctrl-C or failure).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/tools/lab"
)

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces, eBPF): run `sudo make demo`")
		os.Exit(1)
	}
	l, err := lab.NewLab("")
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
	// Ctrl-C: remove the lab and exit 130. The walk-through may still be
	// running a command; Close waits for this cleanup if the main path
	// gets there too, so the process never exits half-way through it.
	var interrupted atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		interrupted.Store(true)
		fmt.Fprintf(os.Stderr, "\ndemo: %v, removing lab %s\n", s, l.Prefix)
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", err)
		}
		os.Exit(130)
	}()

	d := &demo{lab: l}
	err = d.run()
	if interrupted.Load() {
		l.Close() // waits for the signal handler's cleanup
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		if d.host != nil {
			fmt.Fprintf(os.Stderr, "---- daemon log (last lines) ----\n%s\n", lastLines(d.host.DaemonLog(), 40))
		}
	}
	fmt.Printf("\n# cleaning up lab %s\n", l.Prefix)
	if cerr := l.Close(); cerr != nil {
		fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", cerr)
		err = errors.Join(err, cerr)
	}
	if err != nil {
		os.Exit(1)
	}
	fmt.Println("# demo finished: everything it created is gone")
}

type demo struct {
	lab  *lab.Lab
	host *lab.Host
}

func (d *demo) run() error {
	h, err := d.lab.Host("demo")
	if err != nil {
		return err
	}
	d.host = h
	say("netd demo: a lab host is a network namespace (%s) running its own `netd daemon`.", h.NS())
	say("Every command below is the real netd CLI talking to that daemon (-H %s).", h.HostURL())
	say("Nothing here touches this machine's own network; everything is removed at the end.")
	if err := h.StartDaemon(); err != nil {
		return err
	}
	if _, err := d.netd("network", "ls"); err != nil {
		return err
	}

	say("")
	say("---- 1. a bridge network on the ebpf dataplane (the daemon's default) ----")
	if err := d.network(api.DataplaneEBPF, "demo-net", "10.77.0.0/24", "web", "db"); err != nil {
		return err
	}
	say("")
	say("A TC program on each host-side veth (tcx-ingress) hands web<->db frames straight to")
	say("the peer veth (bpf_redirect_peer); ARP and the gateway go the slow path, the bridge:")
	before, err := d.fastPackets()
	if err != nil {
		return err
	}
	if _, err := d.netd("dataplane", "show"); err != nil {
		return err
	}
	dbIP, err := d.containerIP("db", "demo-net")
	if err != nil {
		return err
	}
	say("")
	say("Now 200 quick pings from web to db, and the counters again:")
	if _, err := d.netd("container", "exec", "web", "--", "ping", "-q", "-c", "200", "-i", "0.005", "-W", "2", dbIP); err != nil {
		return err
	}
	if _, err := d.netd("dataplane", "show"); err != nil {
		return err
	}
	after, err := d.fastPackets()
	if err != nil {
		return err
	}
	say("FAST-PKTS of web and db together went from %d to %d: every echo request and reply", before, after)
	say("took the eBPF fast path; SLOW-PKTS (ARP, gateway) barely moved.")
	if after < before+400 {
		return fmt.Errorf("fast-path counters moved by %d, want at least 400 (200 requests + 200 replies)", after-before)
	}

	say("")
	say("---- 2. the same on the kernel dataplane: Linux bridge + nftables, no eBPF ----")
	if err := d.network(api.DataplaneKernel, "demo-kernel", "10.78.0.0/24", "kweb", "kdb"); err != nil {
		return err
	}
	say("")
	say("dataplane show still lists only demo-net's veths: kweb and kdb have no program,")
	say("their frames cross the bridge br-<id> like docker0's:")
	if _, err := d.netd("dataplane", "show"); err != nil {
		return err
	}

	say("")
	say("---- 3. what the lab host's namespace looks like ----")
	d.cmd("brctl", "show")
	d.cmd("sh", "-c", "ip netns list | grep '^"+d.lab.Prefix+"-'")

	say("")
	say("---- 4. removing what we made ----")
	if _, err := d.netd("container", "rm", "web", "db", "kweb", "kdb"); err != nil {
		return err
	}
	if _, err := d.netd("network", "rm", "demo-net", "demo-kernel"); err != nil {
		return err
	}
	_, err = d.netd("network", "ls")
	return err
}

// network creates a bridge network on dataplane dp with containers a and b
// and pings b from a.
func (d *demo) network(dp, name, subnet, a, b string) error {
	args := []string{"network", "create", "--subnet", subnet}
	if dp != api.DataplaneEBPF { // ebpf is the daemon's default
		args = append(args, "-o", api.OptDataplane+"="+dp)
	}
	if _, err := d.netd(append(args, name)...); err != nil {
		return err
	}
	for _, c := range []string{a, b} {
		if _, err := d.netd("container", "create", "--network", name, c); err != nil {
			return err
		}
	}
	if _, err := d.netd("network", "inspect", "-f", inspectFormat, name); err != nil {
		return err
	}
	ipB, err := d.containerIP(b, name)
	if err != nil {
		return err
	}
	if _, err := d.netd("container", "exec", a, "--", "ip", "-brief", "addr", "show", "eth0"); err != nil {
		return err
	}
	_, err = d.netd("container", "exec", a, "--", "ping", "-c", "3", "-W", "2", "-i", "0.2", ipB)
	return err
}

// inspectFormat is a one-screen `network inspect` (the full JSON is Docker's, and long).
const inspectFormat = `{{.Name}}: {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} gateway {{.Gateway}}{{end}}; containers:{{range .Containers}} {{.Name}}={{.IPv4Address}}{{end}}`

// fastPackets sums the fast-path packet counters of every eBPF endpoint.
func (d *demo) fastPackets() (uint64, error) {
	out, errOut, code := d.host.Netd("dataplane", "show", "--format", "json")
	if code != 0 {
		return 0, fmt.Errorf("netd dataplane show --format json: exit %d: %s", code, errOut)
	}
	var st api.DataplaneStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return 0, fmt.Errorf("parse netd dataplane show: %w", err)
	}
	var n uint64
	for _, e := range st.Endpoints {
		n += e.FastPackets
	}
	return n, nil
}

// netd echoes and runs one CLI command; a non-zero exit is an error.
func (d *demo) netd(args ...string) (string, error) {
	fmt.Printf("\n$ netd %s\n", lab.ShellJoin(args))
	out, errOut, code := d.host.Netd(args...)
	fmt.Print(out)
	fmt.Fprint(os.Stderr, errOut)
	if code != 0 {
		return out, fmt.Errorf("netd %s: exit %d", lab.ShellJoin(args), code)
	}
	return out, nil
}

// cmd echoes and runs a command in the lab host's namespace; failures are shown, not fatal.
func (d *demo) cmd(name string, args ...string) {
	fmt.Printf("\n$ %s %s\n", name, lab.ShellJoin(args))
	out, errOut, _ := d.host.Run(name, args...)
	fmt.Print(out, errOut)
}

func (d *demo) containerIP(name, network string) (string, error) {
	out, errOut, code := d.host.Netd("container", "inspect", name)
	if code != 0 {
		return "", fmt.Errorf("container inspect %s: %s", name, errOut)
	}
	var cs []api.Container
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
		return "", fmt.Errorf("container inspect %s: unexpected output: %v", name, err)
	}
	ep, found := cs[0].NetworkSettings.Networks[network]
	if !found || ep.IPAddress == "" {
		return "", fmt.Errorf("container %s has no address on %s", name, network)
	}
	return ep.IPAddress, nil
}

func say(format string, args ...any) {
	if format == "" {
		fmt.Println()
		return
	}
	fmt.Printf("# "+format+"\n", args...)
	time.Sleep(50 * time.Millisecond) // readable pacing when watched live
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
