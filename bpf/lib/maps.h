/* Maps of the bridge data path; pinned by name so forwarding outlives the daemon.
 * The netd_ prefix names them as ours on bpffs and in bpftool (kernel limit: 15 chars). */
#ifndef NETD_MAPS_H
#define NETD_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_MAX_ENDPOINTS);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_MAX_ENDPOINTS);
	__type(key, __u32); /* host-side ifindex */
	__type(value, struct iface_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_MAX_NETWORKS);
	__type(key, __u32); /* network index */
	__type(value, struct network_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_networks SEC(".maps");

/* Subnets of this daemon's networks, for isolation between networks. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NETD_MAX_NETWORKS);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct subnet_key);
	__type(value, struct subnet_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_subnets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NETD_MAX_ENDPOINTS);
	__type(key, __u32); /* host-side ifindex */
	__type(value, struct ep_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_counters SEC(".maps");

#endif /* NETD_MAPS_H */
