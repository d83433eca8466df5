//go:build linux

package fastpath

// The bridge fast path: bpf/bridge.c compiled for little-endian BPF; the
// generated fastpath_bpfel.go/.o are committed so go build needs no clang.
//go:generate go tool bpf2go -tags linux -target bpfel -type endpoint_key -type endpoint_info -type iface_info -type network_info -type subnet_key -type subnet_info -type ep_counters -type drop_reason fastpath ../../bpf/bridge.c -- -I../../bpf -I../../bpf/lib -I../../bpf/include
