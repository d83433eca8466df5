//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netns"

	"github.com/netd-dev/netd/api"
	"github.com/netd-dev/netd/dataplane/sandbox"
)

// execIn runs the command after the container name in c's arguments inside
// that container's netns and ends netd with its status.
func execIn(c *cli.Context, cl *api.Client) error {
	name, argv := splitCommand(c.Args().Slice())
	enter, closeNS, err := sandboxOf(c, cl, name)
	if err != nil {
		// As docker exec: "Error response from daemon: No such container: X".
		return err
	}
	defer closeNS()
	if ct, err := cl.ContainerInspect(c.Context, name); err == nil && ct.NetworkSettings.SandboxKey != "" {
		// /etc/netns/<netns>/resolv.conf: the embedded DNS server.
		enter = withNetnsEtc(enter, filepath.Base(ct.NetworkSettings.SandboxKey), c.App.ErrWriter)
	}
	code, err := runInSandbox(enter, argv, c.App.Reader, c.App.Writer, c.App.ErrWriter)
	if err != nil {
		return err
	}
	if code != 0 {
		return &statusError{code: code}
	}
	return nil
}

// sandboxOf returns how to enter the network namespace of container name.
// The daemon passes the namespace itself, as its path may not be one in
// this mount namespace (ip netns exec gives each process its own); only a
// daemon without that route makes netd open the SandboxKey path.
func sandboxOf(c *cli.Context, cl *api.Client, name string) (enter func(fn func() error) error, closeNS func(), err error) {
	ns, err := cl.ContainerNetns(c.Context, name)
	if err == nil {
		return func(fn func() error) error { return sandbox.Do(netns.NsHandle(ns.Fd()), fn) }, func() { ns.Close() }, nil
	}
	if !errors.Is(err, api.ErrNetnsUnsupported) {
		return nil, nil, err
	}
	ct, err := cl.ContainerInspect(c.Context, name)
	if err != nil {
		return nil, nil, err
	}
	path := ct.NetworkSettings.SandboxKey
	if path == "" {
		return nil, nil, fmt.Errorf("container %s has no network namespace", name)
	}
	enter = func(fn func() error) error {
		err := sandbox.DoPath(path, fn)
		var se *startError
		if errors.Is(err, syscall.EINVAL) && !errors.As(err, &se) {
			// setns on a file that is no namespace: a bind mount this mount namespace does not see.
			return fmt.Errorf("enter network namespace of container %s: %s is not one in this mount namespace, and the daemon does not pass namespaces over its socket: run netd where the daemon runs, or upgrade the daemon: %w", name, path, err)
		}
		return err
	}
	return enter, func() {}, nil
}

// runInSandbox starts argv with the given stdio from a thread that enter
// switched into the sandbox (a child inherits the namespaces of the thread
// that forks it) and returns its exit status (128+n when killed by signal n).
func runInSandbox(enter func(fn func() error) error, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr

	// Ctrl-C reaches the child through the terminal's process group; netd
	// stays alive to report the child's status, and passes SIGTERM on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	err := enter(func() error {
		if err := cmd.Start(); err != nil {
			return &startError{err}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, sandbox.ErrRestore) && cmd.Process != nil {
			// Started, but netd's thread is stuck in the sandbox: do not
			// leave a child that netd cannot account for.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		var se *startError
		if !errors.As(err, &se) {
			return 0, err
		}
		// Shell conventions: 127 command not found, 126 cannot execute.
		code := 126
		if errors.Is(se.err, exec.ErrNotFound) || errors.Is(se.err, os.ErrNotExist) {
			code = 127
		}
		return 0, &statusError{code: code, msg: se.err.Error()}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s != syscall.SIGINT && s != syscall.SIGQUIT {
				_ = cmd.Process.Signal(s)
			}
		case err := <-done:
			return waitStatus(err)
		}
	}
}

// startError is the command failing to start, as opposed to netd failing
// to switch namespaces.
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }

func waitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, fmt.Errorf("wait for command: %w", err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ee.ExitCode(), nil
}
