//go:build linux

package publish

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ethtool commands (linux/ethtool.h) and their argument.
const ethtoolSGRO = 0x0000002c

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

// enableGRO turns GRO on for ifname in the network namespace at path: a
// veth then receives through NAPI, which is what lets XDP_REDIRECT from the
// uplink hand it frames (without it, the kernel drops them).
func enableGRO(path, ifname string) error {
	return ethtoolIn(path, ifname, ethtoolSGRO, 1)
}

func ethtoolIn(path, ifname string, cmd, value uint32) error {
	if path == "" || ifname == "" {
		return fmt.Errorf("ethtool command %#x: no netns path or interface name", cmd)
	}
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("ethtool command %#x on %s: open netns %s: %w", cmd, ifname, path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread is left in the other netns if switching back fails:
		// never unlocked then, so the runtime drops it.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		err = setEthtool(ifname, ethtoolSGRO, 1)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("ethtool command %#x on %s in %s: %w", cmd, ifname, path, err)
	}
	return nil
}

// setEthtool runs one ethtool set command with value on ifname in the
// calling thread's netns.
func setEthtool(ifname string, cmd, value uint32) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: cmd, data: value}
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = uintptr(unsafe.Pointer(&v))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&v)
	if errno != 0 {
		return errno
	}
	return nil
}
