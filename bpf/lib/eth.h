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

#endif /* NETD_ETH_H */
