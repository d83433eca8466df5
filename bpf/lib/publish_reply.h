/* What a container sends that belongs to a published port: replies of
 * translated flows, ICMP errors about them, and its own connections to a
 * published port of the host (hairpin and container-to-host-port), which
 * are translated to the target container with the target network's
 * gateway as source so the replies come back here. Called from
 * from_container (bpf/bridge.c) for gateway-bound IPv4 only: same-network
 * traffic never gets here. */
#ifndef NETD_PUBLISH_REPLY_H
#define NETD_PUBLISH_REPLY_H

#include "common.h"
#include "nat.h"

#define NAT_HAIRPIN_TRIES 4

static __always_inline int container_hairpin(struct __sk_buff *skb, struct nat_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct pub_target *t = publish_lookup(p->daddr, p->dport, p->proto, false);
	struct nat_entry fwd = {}, rev = {};
	struct nat_key fk, rk;
	__be16 port = p->sport;
	int i;

	if (!t || !t->gateway)
		return -1;
	if ((void *)(eth + 1) > data_end)
		return -1;
	fwd.saddr = t->gateway;
	fwd.daddr = t->addr;
	fwd.dport = t->port;
	fwd.ifindex = t->ifindex;
	__builtin_memcpy(fwd.smac, t->gw_mac, 6);
	__builtin_memcpy(fwd.dmac, t->mac, 6);
	fwd.flags = NAT_F_PEER;
	fwd.last_seen = bpf_ktime_get_ns();
	nat_key_of(&fk, p, NAT_ZONE_CONTAINER);
	__builtin_memcpy(rev.smac, eth->h_dest, 6);
	__builtin_memcpy(rev.dmac, eth->h_source, 6);
	/* The source port on the gateway: the client's own unless another flow
	 * to the same container port has it. */
#pragma unroll
	for (i = 0; i < NAT_HAIRPIN_TRIES; i++) {
		fwd.sport = port;
		nat_reverse(&rk, &rev, p, &fwd);
		rev.ifindex = skb->ifindex;
		rev.flags |= NAT_F_PEER;
		if (!nat_create(&fk, &fwd, &rk, &rev, BPF_NOEXIST))
			break;
		port = bpf_htons(32768 + (bpf_get_prandom_u32() & 0x7fff));
	}
	if (i == NAT_HAIRPIN_TRIES) {
		PUB_COUNT(nat_full);
		return TC_ACT_SHOT;
	}
	PUB_COUNT(hairpin_pkts);
	return nat_flow(skb, p, NAT_ZONE_CONTAINER, false);
}

/* Returns a TC verdict, or -1: not a published port's, policy goes on. */
static __always_inline int publish_from_container(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct nat_pkt p;
	bool routed;
	int ret;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (!nat_parse(data, data_end, sizeof(*eth), &p))
		return -1;
	if (p.proto == IPPROTO_ICMP)
		return nat_icmp_error(skb, &p, NAT_ZONE_CONTAINER, true);
	/* A reply leaving for the uplink crosses the host: the TTL goes down. */
	routed = true;
	ret = nat_flow(skb, &p, NAT_ZONE_CONTAINER, routed);
	if (ret >= 0 || !p.has_l4)
		return ret;
	return container_hairpin(skb, &p);
}

#endif /* NETD_PUBLISH_REPLY_H */
