//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/netd-dev/netd/dataplane/sandbox"
	"github.com/netd-dev/netd/tools/lab"
	"github.com/vishvananda/netlink"
)

// ingressPrograms asks the kernel, not netd, which eBPF programs run on the
// ingress of each "nd*" link of a lab host: TCX attachments and, for the
// clsact fallback, direct-action tc filters. Debian's bpftool cannot list TCX.
func ingressPrograms(t *testing.T, h *lab.Host) map[string][]ebpf.ProgramID {
	t.Helper()
	progs := map[string][]ebpf.ProgramID{}
	err := sandbox.DoPath(h.NSPath(), func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			name, idx := l.Attrs().Name, l.Attrs().Index
			if !strings.HasPrefix(name, "nd") {
				continue
			}
			res, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: ebpf.AttachTCXIngress})
			if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("query tcx ingress of %s: %w", name, err)
			}
			if res != nil {
				for _, p := range res.Programs {
					progs[name] = append(progs[name], p.ID)
				}
			}
			filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
			if err != nil {
				continue // no clsact qdisc: nothing attached the old way
			}
			for _, f := range filters {
				if bf, ok := f.(*netlink.BpfFilter); ok {
					progs[name] = append(progs[name], ebpf.ProgramID(bf.Id))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query eBPF attachments in %s: %v", h.NS(), err)
	}
	return progs
}

// bpfProgIDs lists the IDs of every program attached in the host, sorted.
func bpfProgIDs(t *testing.T, h *lab.Host) []string {
	t.Helper()
	var s []string
	for _, ids := range ingressPrograms(t, h) {
		for _, id := range ids {
			s = append(s, fmt.Sprint(id))
		}
	}
	sort.Strings(s)
	return s
}
