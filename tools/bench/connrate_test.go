//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCRRLeavesNoTimeWait runs connection-rate requests over loopback and checks that the
// server's reset leaves no socket of the test's port in TIME_WAIT.
func TestCRRLeavesNoTimeWait(t *testing.T) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	const n = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for i := 0; i < n; i++ {
			fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			serveOne(fd, buf)
		}
	}()
	dst, err := sockaddr(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		if err := oneRequest(dst, buf); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	<-done
	b, err := os.ReadFile("/proc/self/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == "06" && (strings.HasSuffix(f[1], suffix) || strings.HasSuffix(f[2], suffix)) {
			t.Errorf("socket in TIME_WAIT after the run: %s", line)
		}
	}
}

func TestSockaddr(t *testing.T) {
	sa, err := sockaddr("10.1.2.3:9002")
	if err != nil || sa.Port != 9002 || sa.Addr != [4]byte{10, 1, 2, 3} {
		t.Errorf("sockaddr = %+v, %v", sa, err)
	}
	for _, bad := range []string{"10.1.2.3", "[::1]:80", "host:80", ""} {
		if _, err := sockaddr(bad); err == nil {
			t.Errorf("sockaddr(%q) accepted", bad)
		}
	}
}
