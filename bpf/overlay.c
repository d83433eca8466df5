// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Overlay data path: VXLAN through one collect-metadata device per host.
 * overlay_from_container runs on TC ingress of every host-side veth of an
 * overlay endpoint: ARP is answered in place, a local destination gets the
 * frame through bpf_redirect_peer, a remote one through the tunnel (key set
 * here, outer headers by the device). overlay_from_tunnel runs on TC ingress
 * of the VXLAN device and hands a frame to the local endpoint its (VNI,
 * destination MAC) names. Nothing floods: what no endpoint owns is dropped.
 * The one way out of the overlay is the network's gateway, the host's own
 * bridge: frames for its MAC (the outside, the host) are left to the kernel,
 * and ARP for its address is answered with that MAC. */

#include "common.h"
#include "eth.h"
#include "ipv4.h"
#include "arp.h"
#include "arp_reply.h"
#include "encap.h"
#include "overlay_maps.h"
#include "overlay_counters.h"

/* Keeps enum drop_reason in BTF so bpf2go can generate it for Go. */
const enum drop_reason *unused_drop_reason __attribute__((unused));

static __always_inline struct ov_endpoint *ov_by_mac(__u32 vni, const __u8 *mac)
{
	struct ov_mac_key key = {};

	key.vni = vni;
	__builtin_memcpy(key.mac, mac, 6);
	return bpf_map_lookup_elem(&netd_ov_macs, &key);
}

static __always_inline struct ov_endpoint *ov_by_ip(__u32 vni, __be32 ipv4)
{
	struct ov_ip_key key = {};

	key.vni = vni;
	key.ipv4 = ipv4;
	return bpf_map_lookup_elem(&netd_ov_ips, &key);
}

/* The network's gateway here, if it has one. */
static __always_inline const struct ov_network *ov_gateway(__u32 vni)
{
	const struct ov_network *net = bpf_map_lookup_elem(&netd_ov_nets, &vni);

	return net && net->gateway ? net : 0;
}

/* Answers a checked ARP request in place: the gateway's address with the
 * bridge's MAC, or an endpoint of the network other than the sender; else
 * the request is dropped (never flooded). */
static __always_inline int ov_arp(struct __sk_buff *skb, const struct ov_iface *self,
				  const struct ov_network *gw, struct ethhdr *eth,
				  struct netd_arphdr *arp)
{
	__u32 ifindex = skb->ifindex;
	struct ov_ep_counters *c;
	struct ov_endpoint *tgt;
	const __u8 *mac;

	if (gw && arp->tpa == gw->gateway) {
		mac = gw->gw_mac;
	} else {
		tgt = ov_by_ip(self->vni, arp->tpa);
		/* Its own address (a probe or a gratuitous ARP) must stay unanswered. */
		if (!tgt || mac_eq(tgt->mac, self->mac))
			return ov_drop_ep(ifindex, DROP_NO_ENDPOINT);
		mac = tgt->mac;
	}
	arp_make_reply(eth, arp, mac, arp->tpa);
	c = ov_ep_ctr(ifindex);
	if (c)
		c->arp_replies++;
	return bpf_redirect(ifindex, 0);
}

/* The frame is for a remote endpoint: tunnel key, then out the VXLAN device. */
static __always_inline int ov_encap(struct __sk_buff *skb, const struct ov_iface *self,
				    const struct ov_endpoint *dst)
{
	__u32 ifindex = skb->ifindex, zero = 0, len = skb->len;
	struct ov_tunnel_counters *tc;
	struct ov_ep_counters *c;
	struct ov_config *cfg;

	cfg = bpf_map_lookup_elem(&netd_ov_config, &zero);
	if (!cfg || !cfg->vxlan_ifindex || !cfg->local_vtep ||
	    encap_set_key(skb, self->vni, dst->vtep, cfg->local_vtep) < 0) {
		ov_drop_tun(self->vni, DROP_NO_TUNNEL);
		return ov_drop_ep(ifindex, DROP_NO_TUNNEL);
	}
	c = ov_ep_ctr(ifindex);
	if (c) {
		c->encap_pkts++;
		c->encap_bytes += len;
	}
	tc = ov_tun_ctr(self->vni);
	if (tc) {
		tc->encap_pkts++;
		tc->encap_bytes += len;
	}
	return bpf_redirect(cfg->vxlan_ifindex, 0);
}

/* The frame is for the gateway (the host, the outside): the bridge takes it. */
static __always_inline int ov_pass(struct __sk_buff *skb)
{
	struct ov_ep_counters *c = ov_ep_ctr(skb->ifindex);

	if (c) {
		c->pass_pkts++;
		c->pass_bytes += skb->len;
	}
	return TC_ACT_OK;
}

SEC("tc")
int overlay_from_container(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ifindex = skb->ifindex;
	const struct ov_network *gw;
	struct ethhdr *eth = data;
	struct ov_endpoint *dst;
	struct ov_ep_counters *c;
	struct ov_iface *self;
	void *l3 = eth + 1;
	__be32 daddr = 0;
	__be16 proto;

	self = bpf_map_lookup_elem(&netd_ov_ifaces, &ifindex);
	if (!self)
		return TC_ACT_OK; /* not ours: leave it alone */

	if ((void *)(eth + 1) > data_end)
		return ov_drop_ep(ifindex, DROP_MALFORMED);
	if (!mac_eq(eth->h_source, self->mac))
		return ov_drop_ep(ifindex, DROP_SPOOF_MAC);
	proto = eth->h_proto;
	if (skb->vlan_present || eth_is_vlan(proto))
		return ov_drop_ep(ifindex, DROP_VLAN);
	gw = ov_gateway(self->vni);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct netd_iphdr *ip = ipv4_parse(l3, data_end);

		if (!ip)
			return ov_drop_ep(ifindex, DROP_MALFORMED);
		if (ip->saddr != self->ipv4)
			return ov_drop_ep(ifindex, DROP_SPOOF_IP);
		daddr = ip->daddr;
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		struct netd_arphdr *arp = arp_parse(l3, data_end);

		if (!arp)
			return ov_drop_ep(ifindex, DROP_MALFORMED);
		/* spa 0.0.0.0 is an RFC 5227 probe: it updates no neighbour cache. */
		if (!mac_eq(arp->sha, self->mac) || (arp->spa != self->ipv4 && arp->spa != 0))
			return ov_drop_ep(ifindex, DROP_SPOOF_ARP);
		/* Broadcast or unicast (a neighbour's reachability probe): answered here. */
		if (arp->oper == bpf_htons(NETD_ARPOP_REQUEST))
			return ov_arp(skb, self, gw, eth, arp);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		return ov_drop_ep(ifindex, DROP_IPV6); /* overlay networks are IPv4-only */
	}

	if (mac_is_group(eth->h_dest))
		return ov_drop_ep(ifindex, DROP_FLOOD);
	/* The gateway: the bridge routes it (outside, masquerade) or delivers it to the host. */
	if (gw && mac_eq(eth->h_dest, gw->gw_mac))
		return ov_pass(skb);

	dst = ov_by_mac(self->vni, eth->h_dest);
	if (!dst && daddr && gw && daddr == gw->gateway) {
		/* A stale neighbour entry for the gateway (its bridge was made anew). */
		if (bpf_skb_store_bytes(skb, 0, gw->gw_mac, 6, 0) < 0)
			return ov_drop_ep(ifindex, DROP_MALFORMED);
		return ov_pass(skb);
	}
	if (!dst && daddr) {
		/* A stale neighbour entry: the address still names an endpoint, whose MAC it gets. */
		dst = ov_by_ip(self->vni, daddr);
		if (dst && bpf_skb_store_bytes(skb, 0, dst->mac, 6, 0) < 0)
			return ov_drop_ep(ifindex, DROP_MALFORMED);
	}
	if (!dst || dst->ifindex == ifindex)
		return ov_drop_ep(ifindex, DROP_NO_ENDPOINT);

	if (dst->ifindex) {
		c = ov_ep_ctr(ifindex);
		if (c) {
			c->local_pkts++;
			c->local_bytes += skb->len;
		}
		/* The host veth saw a foreign destination MAC (OTHERHOST); the peer must take it as its own. */
		bpf_skb_change_type(skb, PACKET_HOST);
		return bpf_redirect_peer(dst->ifindex, 0);
	}
	if (!dst->vtep)
		return ov_drop_ep(ifindex, DROP_NO_ENDPOINT);
	return ov_encap(skb, self, dst);
}

SEC("tc")
int overlay_from_tunnel(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct bpf_tunnel_key key = {};
	struct ov_tunnel_counters *tc;
	struct ethhdr *eth = data;
	struct ov_endpoint *dst, *src;
	struct ov_ep_counters *c;
	__u32 vni, len = skb->len;

	/* Only the ID and the outer source are read: the short key works on every kernel. */
	if (bpf_skb_get_tunnel_key(skb, &key, __builtin_offsetof(struct bpf_tunnel_key, local_ipv4), 0) < 0)
		return ov_drop_tun(NETD_OV_VNI_OTHER, DROP_NO_TUNNEL);
	vni = key.tunnel_id;

	if ((void *)(eth + 1) > data_end)
		return ov_drop_tun(vni, DROP_MALFORMED);
	if (mac_is_group(eth->h_dest))
		return ov_drop_tun(vni, DROP_FLOOD);
	/* A host speaks only for its own endpoints: the sender must be one behind this VTEP. */
	src = ov_by_mac(vni, eth->h_source);
	if (!src || src->ifindex || src->vtep != bpf_htonl(key.remote_ipv4))
		return ov_drop_tun(vni, DROP_SPOOF_MAC);
	dst = ov_by_mac(vni, eth->h_dest);
	if (!dst || !dst->ifindex)
		return ov_drop_tun(vni, DROP_NO_ENDPOINT);

	tc = ov_tun_ctr(vni);
	if (tc) {
		tc->decap_pkts++;
		tc->decap_bytes += len;
	}
	c = ov_ep_ctr(dst->ifindex);
	if (c) {
		c->decap_pkts++;
		c->decap_bytes += len;
	}
	bpf_skb_change_type(skb, PACKET_HOST);
	return bpf_redirect_peer(dst->ifindex, 0);
}

char __license[] SEC("license") = "Dual BSD/GPL";
