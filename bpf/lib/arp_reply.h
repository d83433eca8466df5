/* In-place ARP responder: the request becomes the reply, sent back out the
 * interface it came in on, so no ARP ever leaves the host. */
#ifndef NETD_ARP_REPLY_H
#define NETD_ARP_REPLY_H

#include "common.h"
#include "arp.h"

#define NETD_ARPOP_REQUEST 1
#define NETD_ARPOP_REPLY 2

/* Rewrites eth/arp (a checked request) into "tip is at mac" for its sender. */
static __always_inline void arp_make_reply(struct ethhdr *eth, struct netd_arphdr *arp,
					   const __u8 *mac, __be32 tip)
{
	__builtin_memcpy(eth->h_dest, arp->sha, 6);
	__builtin_memcpy(eth->h_source, mac, 6);
	arp->oper = bpf_htons(NETD_ARPOP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	arp->tpa = arp->spa;
	__builtin_memcpy(arp->sha, mac, 6);
	arp->spa = tip;
}

#endif /* NETD_ARP_REPLY_H */
