/* ARP (Ethernet/IPv4) parsing for the anti-spoofing check. */
#ifndef NETD_ARP_H
#define NETD_ARP_H

#include "common.h"

#define NETD_ARPHRD_ETHER 1

struct netd_arphdr {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

/* Returns the header if it is a complete Ethernet/IPv4 ARP packet, NULL otherwise. */
static __always_inline struct netd_arphdr *arp_parse(void *l3, void *data_end)
{
	struct netd_arphdr *arp = l3;

	if ((void *)(arp + 1) > data_end)
		return NULL;
	if (arp->htype != bpf_htons(NETD_ARPHRD_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != 6 || arp->plen != 4)
		return NULL;
	return arp;
}

#endif /* NETD_ARP_H */
