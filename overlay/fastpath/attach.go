//go:build linux

package fastpath

// Attachment of the programs: a pinned TCX link per interface, or a clsact
// filter where the kernel has no TCX; adopted across restarts. Call these in
// the network namespace of the interface (the host's).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/netd-dev/netd/dataplane/bpfattach"
)

// Hooks reported by Attach, as the bridge's fast path names them.
const (
	HookTCXIngress = bpfattach.HookTCXIngress
	HookTCIngress  = bpfattach.HookTCIngress
)

// AttachEndpoint runs overlay_from_container on ingress of a host-side veth
// of a local endpoint (PutEndpoint it first). Returns the hook used.
func (o *Overlay) AttachEndpoint(ifname string, ifindex int) (string, error) {
	return o.attach(ProgFromContainer, ifname, ifindex)
}

// AttachTunnel runs overlay_from_tunnel on ingress of the host's
// collect-metadata VXLAN device. Returns the hook used.
func (o *Overlay) AttachTunnel(ifname string, ifindex int) (string, error) {
	return o.attach(ProgFromTunnel, ifname, ifindex)
}

func (o *Overlay) attach(prog, ifname string, ifindex int) (string, error) {
	if ifindex <= 0 || ifname == "" || strings.ContainsRune(ifname, '/') {
		return "", fmt.Errorf("attach %s: interface %q (ifindex %d) is not valid", prog, ifname, ifindex)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.progs[prog]
	if p == nil {
		return "", fmt.Errorf("attach %s to %s: program not loaded", prog, ifname)
	}
	hook, err := o.att.Attach(bpfattach.Program{Name: prog, Prog: p, ID: o.progIDs[prog]}, ifname, ifindex)
	if err != nil {
		return "", err
	}
	o.attached[ifname] = &attachState{ifindex: ifindex, prog: prog, hook: hook}
	return hook, nil
}

// Detach takes the overlay program off ifname: its pinned TCX link and any
// clsact filter of ours. An interface already gone took both with it.
func (o *Overlay) Detach(ifname string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	ifindex := 0
	if st := o.attached[ifname]; st != nil {
		ifindex = st.ifindex
	} else if l, err := netlink.LinkByName(ifname); err == nil {
		ifindex = l.Attrs().Index
	}
	if ifindex > 0 {
		if err := bpfattach.DetachTC(ifindex, ProgFromContainer, ProgFromTunnel); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, o.att.DetachLink(ifname)...)
	delete(o.attached, ifname)
	return errors.Join(errs...)
}
