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
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\ndemo: %v, cleaning up\n", s)
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: cleanup: %v\n", err)
		}
		os.Exit(130)
	}()

	d := &demo{lab: l}
	err = d.run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		if d.host != nil {
			fmt.Fprintf(os.Stderr, "---- daemon log (last lines) ----\n%s\n", lastLines(d.host.DaemonLog(), 40))
		}
	}
	signal.Stop(sigs)
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
	say("The daemon's socket is %s; every command below is the real netd CLI.", h.Socket)
	if err := h.StartDaemon(); err != nil {
		return err
	}
	if _, err := d.netd("version"); err != nil {
		return err
	}
	if _, err := d.netd("network", "ls"); err != nil {
		return err
	}

	for _, s := range []struct{ dp, net, subnet, a, b string }{
		{api.DataplaneEBPF, "demo-net", "10.77.0.0/24", "web", "db"},
		{api.DataplaneKernel, "demo-kernel", "10.78.0.0/24", "kweb", "kdb"},
	} {
		say("")
		say("---- a bridge network on the %s dataplane ----", s.dp)
		args := []string{"network", "create", "--subnet", s.subnet}
		if s.dp != api.DataplaneEBPF { // ebpf is the daemon's default
			args = append(args, "-o", api.OptDataplane+"="+s.dp)
		}
		if _, err := d.netd(append(args, s.net)...); err != nil {
			return err
		}
		for _, c := range []string{s.a, s.b} {
			if _, err := d.netd("container", "create", "--network", s.net, c); err != nil {
				return err
			}
		}
		if _, err := d.netd("network", "inspect", s.net); err != nil {
			return err
		}
		ipB, err := d.containerIP(s.b, s.net)
		if err != nil {
			return err
		}
		if _, err := d.netd("container", "exec", s.a, "--", "ip", "-brief", "addr", "show", "eth0"); err != nil {
			return err
		}
		if _, err := d.netd("container", "exec", s.a, "--", "ping", "-c", "3", "-W", "1", "-i", "0.2", ipB); err != nil {
			return err
		}
		if s.dp == api.DataplaneEBPF {
			if _, err := d.netd("dataplane", "show"); err != nil {
				say("# (netd dataplane show is not available in this build)")
			}
		}
	}
	say("")
	say("---- what the host namespace looks like ----")
	d.cmd("brctl", "show")
	d.cmd("ip", "-brief", "link", "show", "type", "veth")
	d.cmd("sh", "-c", "ip netns list | grep '^"+d.lab.Prefix+"-'")
	if _, err := d.netd("network", "ls"); err != nil {
		return err
	}

	say("")
	say("---- removing what we made ----")
	if _, err := d.netd("container", "rm", "web", "db", "kweb", "kdb"); err != nil {
		return err
	}
	if _, err := d.netd("network", "rm", "demo-net", "demo-kernel"); err != nil {
		return err
	}
	_, err = d.netd("network", "ls")
	return err
}

// netd echoes and runs one CLI command; a non-zero exit is an error.
func (d *demo) netd(args ...string) (string, error) {
	fmt.Printf("\n$ netd %s\n", shellJoin(args))
	out, errOut, code := d.host.Netd(args...)
	fmt.Print(out)
	fmt.Fprint(os.Stderr, errOut)
	if code != 0 {
		return out, fmt.Errorf("netd %s: exit %d", shellJoin(args), code)
	}
	return out, nil
}

// cmd echoes and runs a command in the lab host's namespace; failures are shown, not fatal.
func (d *demo) cmd(name string, args ...string) {
	fmt.Printf("\n$ %s %s\n", name, shellJoin(args))
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

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"{}$") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
