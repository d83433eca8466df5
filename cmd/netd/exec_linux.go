//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
)

// runInSandbox runs argv with the given stdio inside the network namespace
// at nsPath and returns its exit status (128+n when killed by signal n).
func runInSandbox(nsPath string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return 0, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer target.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr

	// Ctrl-C reaches the child through the terminal's process group; netd
	// stays alive to report the child's status, and passes SIGTERM on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	if err := startInNetns(cmd, target); err != nil {
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

// startInNetns forks cmd from an OS thread switched into target: a child
// inherits the namespaces of the thread that forks it.
func startInNetns(cmd *exec.Cmd, target netns.NsHandle) error {
	errc := make(chan error, 1)
	// A fresh goroutine, so a thread we fail to switch back dies with it
	// (a goroutine that exits locked takes its thread along).
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace (are you root?): %w", err)
			return
		}
		startErr := cmd.Start()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it is discarded when we return.
			if startErr == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			errc <- fmt.Errorf("restore network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		if startErr != nil {
			errc <- &startError{startErr}
			return
		}
		errc <- nil
	}()
	return <-errc
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
