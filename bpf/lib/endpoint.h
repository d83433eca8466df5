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
	return bpf_map_lookup_elem(&endpoints, &key);
}

static __always_inline bool network_icc(__u32 net_index, bool *known)
{
	struct network_info *n = bpf_map_lookup_elem(&networks, &net_index);

	*known = n != NULL;
	return n && (n->flags & NET_F_ICC);
}

#endif /* NETD_ENDPOINT_H */
