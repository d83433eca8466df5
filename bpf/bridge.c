// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Bridge fast path: TC ingress of every host-side veth, i.e. frames a container sends.
 * Same-network unicast goes straight to the peer with bpf_redirect_peer; everything
 * else goes on to the Linux bridge (slow path). Spoofed frames, IPv6 on IPv4-only
 * networks, and IPv4 the host would route into another network or out of an
 * internal one, are dropped here. */

#include "common.h"
#include "maps.h"
#include "eth.h"
#include "ipv4.h"
#include "arp.h"
#include "counters.h"
#include "endpoint.h"
#include "policy.h"
#include "publish_reply.h"

/* Keeps enum drop_reason in BTF so bpf2go can generate it for Go. */
const enum drop_reason *unused_drop_reason __attribute__((unused));

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ifindex = skb->ifindex;
	struct iface_info *self;
	struct endpoint_info *dst;
	struct network_info *net;
	struct ethhdr *eth = data;
	bool is_ipv4 = false, tagged;
	void *l3 = eth + 1;
	__be32 daddr = 0;
	__be16 proto;

	self = bpf_map_lookup_elem(&netd_ifaces, &ifindex);
	if (!self)
		return TC_ACT_OK; /* not ours: leave it alone */

	if ((void *)(eth + 1) > data_end)
		return drop(ifindex, DROP_MALFORMED);
	if (!mac_eq(eth->h_source, self->mac))
		return drop(ifindex, DROP_SPOOF_MAC);

	/* A tag sits in the skb (taken off on receive) or in the frame. Tagged frames
	 * never take the fast path, but the inner headers are still checked: the host
	 * and the peers take a priority tag (VID 0) as untagged, so a spoofed inner
	 * address would otherwise get through the bridge. */
	proto = eth->h_proto;
	tagged = skb->vlan_present || eth_is_vlan(proto);
	if (!eth_skip_vlan(&l3, data_end, &proto))
		return drop(ifindex, DROP_MALFORMED);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct netd_iphdr *ip = ipv4_parse(l3, data_end);

		if (!ip)
			return drop(ifindex, DROP_MALFORMED);
		if (ip->saddr != self->ipv4)
			return drop(ifindex, DROP_SPOOF_IP);
		is_ipv4 = true;
		daddr = ip->daddr;
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		struct netd_arphdr *arp = arp_parse(l3, data_end);

		if (!arp)
			return drop(ifindex, DROP_MALFORMED);
		/* spa 0.0.0.0 is an RFC 5227 probe: it updates no neighbour cache. */
		if (!mac_eq(arp->sha, self->mac) || (arp->spa != self->ipv4 && arp->spa != 0))
			return drop(ifindex, DROP_SPOOF_ARP);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		/* The container side has IPv6 disabled, as Docker's on IPv4-only networks;
		 * a container that turns it back on must not spoof neighbours unchecked. */
		net = network_lookup(self->net_index);
		if (!net || !(net->flags & NET_F_IPV6))
			return drop(ifindex, DROP_IPV6);
	}

	if (mac_is_group(eth->h_dest))
		return pass_slow(ifindex);

	net = network_lookup(self->net_index);
	dst = endpoint_lookup(self->net_index, eth->h_dest);
	if (!dst || dst->ifindex == ifindex || !net) {
		/* Gateway, unknown or hairpin: the bridge decides, within the policy;
		 * a published port's traffic first (bpf/lib/publish_reply.h). */
		if (is_ipv4) {
			int ret = tagged ? -1 : publish_from_container(skb);

			if (ret >= 0)
				return ret;
			return ipv4_policy(ifindex, self, net, daddr);
		}
		return pass_slow(ifindex);
	}

	/* Like Docker's icc=false, which filters IP but leaves ARP working. */
	if (!(net->flags & NET_F_ICC) && proto != bpf_htons(ETH_P_ARP))
		return drop(ifindex, DROP_ICC_DENIED);
	/* The bridge keeps the tag on its way to the peer; the fast path does not. */
	if (tagged)
		return pass_slow(ifindex);

	count_fast(ifindex, skb->len);
	/* The host veth saw a foreign destination MAC (OTHERHOST); the peer must take it as its own. */
	bpf_skb_change_type(skb, PACKET_HOST);
	return bpf_redirect_peer(dst->ifindex, 0);
}

char __license[] SEC("license") = "Dual BSD/GPL";
