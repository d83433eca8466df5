//go:build linux

// Package fastpath is the eBPF data path of overlay networks (bpf/overlay.c):
// overlay_from_container on TC ingress of every host-side veth of an overlay
// endpoint, overlay_from_tunnel on TC ingress of the host's collect-metadata
// VXLAN device, and the pinned maps both read. The overlay driver fills the
// endpoint table from the gossip tables: local endpoints with their veth,
// remote ones with their host's VTEP.
package fastpath

// bpf/overlay.c compiled for little-endian BPF; the generated
// overlay_bpfel.go/.o are committed so go build needs no clang.
//go:generate go tool bpf2go -tags linux -target bpfel -type ov_mac_key -type ov_ip_key -type ov_endpoint -type ov_iface -type ov_config -type ov_network -type ov_ep_counters -type ov_tunnel_counters -type drop_reason overlay ../../bpf/overlay.c -- -I../../bpf -I../../bpf/lib -I../../bpf/include
