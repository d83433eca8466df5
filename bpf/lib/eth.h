/* Ethernet parsing helpers. */
#ifndef NETD_ETH_H
#define NETD_ETH_H

#include "common.h"

static __always_inline bool mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/* Group bit set: broadcast and multicast both go to the bridge. */
static __always_inline bool mac_is_group(const __u8 *m)
{
	return m[0] & 1;
}

static __always_inline bool eth_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

struct netd_vlanhdr {
	__be16 tci;
	__be16 proto; /* encapsulated ethertype */
} __attribute__((packed));

/* Tags a frame may carry in its bytes (QinQ); the kernel may hold one more in the skb. */
#define NETD_MAX_VLAN_TAGS 2

/* Skips the VLAN tags after the Ethernet header: *l3 and *proto end at the
 * first non-VLAN header. Returns false if a tag is cut short or there are
 * more tags than we look through. */
static __always_inline bool eth_skip_vlan(void **l3, void *data_end, __be16 *proto)
{
	int i;

#pragma unroll
	for (i = 0; i < NETD_MAX_VLAN_TAGS; i++) {
		struct netd_vlanhdr *vh = *l3;

		if (!eth_is_vlan(*proto))
			return true;
		if ((void *)(vh + 1) > data_end)
			return false;
		*proto = vh->proto;
		*l3 = vh + 1;
	}
	return !eth_is_vlan(*proto);
}

#endif /* NETD_ETH_H */
