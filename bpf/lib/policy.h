/* Routing policy for IPv4 a container hands to the bridge (gateway or unknown
 * MAC): isolation between networks and internal networks, as nftables does on
 * the kernel dataplane, but before the frame reaches the host. */
#ifndef NETD_POLICY_H
#define NETD_POLICY_H

#include "common.h"
#include "counters.h"
#include "endpoint.h"

/* net may be NULL (network being removed): then only isolation applies. */
static __always_inline int ipv4_policy(__u32 ifindex, const struct iface_info *self,
				       const struct network_info *net, __be32 daddr)
{
	struct subnet_info *owner = subnet_lookup(daddr);
	bool own = owner && owner->net_index == self->net_index;

	/* Another network's gateway is the host itself, which Docker lets containers reach. */
	if (owner && !own && daddr != owner->gateway)
		return drop(ifindex, DROP_ISOLATED);
	if (net && (net->flags & NET_F_INTERNAL) && !own)
		return drop(ifindex, DROP_INTERNAL);
	return pass_slow(ifindex);
}

#endif /* NETD_POLICY_H */
