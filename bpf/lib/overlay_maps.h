/* Maps of the overlay data path, pinned by name next to (never shared with)
 * the bridge's: netd_ov_ names them (kernel limit: 15 chars). */
#ifndef NETD_OVERLAY_MAPS_H
#define NETD_OVERLAY_MAPS_H

#include "common.h"

/* (VNI, MAC) -> endpoint: where a frame goes, and who may arrive from a VTEP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_OV_MAX_ENDPOINTS);
	__type(key, struct ov_mac_key);
	__type(value, struct ov_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_macs SEC(".maps");

/* (VNI, IPv4) -> endpoint: the ARP responder's table. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_OV_MAX_ENDPOINTS);
	__type(key, struct ov_ip_key);
	__type(value, struct ov_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_OV_MAX_LOCAL);
	__type(key, __u32); /* host-side ifindex */
	__type(value, struct ov_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_ifaces SEC(".maps");

/* VNI -> the network's gateway on this host (frames for it go to the bridge). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_OV_MAX_NETWORKS);
	__type(key, __u32); /* VNI */
	__type(value, struct ov_network);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_nets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ov_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NETD_OV_MAX_LOCAL);
	__type(key, __u32); /* host-side ifindex */
	__type(value, struct ov_ep_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NETD_OV_MAX_NETWORKS + 1); /* + NETD_OV_VNI_OTHER */
	__type(key, __u32); /* VNI */
	__type(value, struct ov_tunnel_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ov_tunnel SEC(".maps");

#endif /* NETD_OVERLAY_MAPS_H */
