//go:build linux

package fastpath

// Attachment of from_container to host-side veths: a pinned TCX link, or a
// clsact filter where the kernel has no TCX; adopted across restarts.

import (
	"net"

	"github.com/cilium/ebpf/link"

	"github.com/netd-dev/netd/dataplane/bpfattach"
)

// attach makes sure from_container runs on ingress of ifindex; returns the hook used.
func (e *EBPF) attach(ifname string, ifindex int) (string, error) {
	return e.att.Attach(bpfattach.Program{Name: progName, Prog: e.prog, ID: e.progID}, ifname, ifindex)
}

// downIfindex finds the ifindex of a host-side veth being taken down: what
// EndpointUp recorded, else the interface, else its TCX link, which it loads
// from the pin for detach when this process never attached it.
func (e *EBPF) downIfindex(ifname string) int {
	ifindex := -1
	if info := e.eps[ifname]; info != nil {
		ifindex = info.ifindex
	} else if l, err := net.InterfaceByName(ifname); err == nil {
		ifindex = l.Index
	}
	if l := e.att.Links[ifname]; l != nil {
		if info, err := l.Info(); err == nil && info.TCX() != nil && ifindex < 0 {
			ifindex = int(info.TCX().Ifindex)
		}
	} else if l, err := link.LoadPinnedLink(e.att.Pin(ifname), nil); err == nil {
		e.att.Links[ifname] = l
	}
	return ifindex
}

// detach takes from_container off ifname: the clsact filter, and the pinned link.
func (e *EBPF) detach(ifname string, ifindex int) []error {
	var errs []error
	if ifindex > 0 && e.att.UseTC() {
		if err := bpfattach.DetachTC(ifindex, progName); err != nil {
			errs = append(errs, err)
		}
	}
	return append(errs, e.att.DetachLink(ifname)...)
}
