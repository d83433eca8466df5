/* Endpoint table lookups: per network, so networks are isolated by construction. */
#ifndef NETD_ENDPOINT_H
#define NETD_ENDPOINT_H

#include "common.h"
#include "maps.h"

static __always_inline struct endpoint_info *endpoint_lookup(__u32 net_index, const __u8 *mac)
{
	struct endpoint_key key = {};

	key.net_index = net_index;
	__builtin_memcpy(key.mac, mac, 6);
	return bpf_map_lookup_elem(&netd_endpoints, &key);
}

static __always_inline struct network_info *network_lookup(__u32 net_index)
{
	return bpf_map_lookup_elem(&netd_networks, &net_index);
}

/* The netd network whose subnet holds addr (longest prefix), or NULL. */
static __always_inline struct subnet_info *subnet_lookup(__be32 addr)
{
	struct subnet_key key = {};

	key.prefixlen = 32;
	key.addr = addr;
	return bpf_map_lookup_elem(&netd_subnets, &key);
}

#endif /* NETD_ENDPOINT_H */
