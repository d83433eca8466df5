/* IPv4 header parsing: own struct so no bitfield endianness is involved. */
#ifndef NETD_IPV4_H
#define NETD_IPV4_H

#include "common.h"

struct netd_iphdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
} __attribute__((packed));

/* Returns the header if it is complete and sane, NULL otherwise. */
static __always_inline struct netd_iphdr *ipv4_parse(void *l3, void *data_end)
{
	struct netd_iphdr *ip = l3;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end)
		return NULL;
	if ((ip->ver_ihl >> 4) != 4)
		return NULL;
	hlen = (ip->ver_ihl & 0x0f) * 4;
	if (hlen < sizeof(*ip))
		return NULL;
	if (l3 + hlen > data_end)
		return NULL;
	if (bpf_ntohs(ip->tot_len) < hlen)
		return NULL;
	return ip;
}

#endif /* NETD_IPV4_H */
