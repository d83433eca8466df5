/* Port publishing: the maps both bpf/publish.c (uplink ingress, host sockets)
 * and bpf/bridge.c (what containers send) use, pinned by name in the same
 * directory so both objects share them, and the translation itself.
 *
 * A flow is two nat_map entries, one per direction, each keyed by the tuple
 * as it is seen where it enters (the uplink or a container's veth) and saying
 * how to rewrite it and where to deliver it. Only a packet whose tuple is in
 * the table is translated back: a reply, never a new flow from a container.
 * ICMP errors about a translated packet find the flow from the header they
 * quote, and get their inner header translated too. */
#ifndef NETD_NAT_H
#define NETD_NAT_H

#include "common.h"
#include "ipv4.h"

#ifndef IPPROTO_ICMP
#define IPPROTO_ICMP 1
#endif
#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif
#ifndef IPPROTO_UDP
#define IPPROTO_UDP 17
#endif

#define NAT_IP_OFF_MASK 0x1fff /* fragment offset, in 8-byte units */
#define NAT_IP_MF 0x2000

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_MAX_PUBLISHED);
	__type(key, struct pub_key);
	__type(value, struct pub_target);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_publish SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NETD_MAX_NAT);
	__type(key, struct nat_key);
	__type(value, struct nat_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NETD_MAX_FRAGS);
	__type(key, struct frag_key);
	__type(value, struct nat_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_frags SEC(".maps");

/* The host's own IPv4 addresses (kept by the daemon): wildcard bindings. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETD_MAX_LOCAL_ADDRS);
	__type(key, __be32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_localaddr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pub_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_pubstats SEC(".maps");

static __always_inline struct pub_counters *pub_stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&netd_pubstats, &zero);
}

#define PUB_COUNT(field)                              \
	do {                                          \
		struct pub_counters *__c = pub_stats(); \
		if (__c)                              \
			__c->field++;                 \
	} while (0)

static __always_inline bool ipv4_is_loopback(__be32 a)
{
	return (bpf_ntohl(a) >> 24) == 127;
}

/* The published port for daddr:dport, exact address first, then the wildcard
 * if daddr is the host's (127.0.0.0/8 counts only for host sockets). */
static __always_inline struct pub_target *publish_lookup(__be32 daddr, __be16 dport, __u8 proto,
							 bool loopback_ok)
{
	struct pub_key k = {};
	struct pub_target *t;

	k.addr = daddr;
	k.port = dport;
	k.proto = proto;
	t = bpf_map_lookup_elem(&netd_publish, &k);
	if (t)
		return t;
	if (!(loopback_ok && ipv4_is_loopback(daddr)) && !bpf_map_lookup_elem(&netd_localaddr, &daddr))
		return NULL;
	k.addr = 0;
	return bpf_map_lookup_elem(&netd_publish, &k);
}

/* Offsets and values of a parsed IPv4 TCP/UDP/ICMP packet. */
struct nat_pkt {
	__u32 l3;       /* offset of the IPv4 header */
	__u32 l4;       /* offset of the L4 header (may be absent: later fragment) */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__be16 id;
	__u16 frag;     /* frag_off in host order */
	__u8 proto;
	__u8 ttl;
	__u8 tcp_flags;
	__u8 icmp_type;
	bool has_l4;    /* first (or only) fragment with its L4 header */
};

#define NAT_TCP_FIN 0x01
#define NAT_TCP_RST 0x04

/* Parses the IPv4 packet at l3_off; false for anything not translatable. */
static __always_inline bool nat_parse(void *data, void *data_end, __u32 l3_off, struct nat_pkt *p)
{
	struct netd_iphdr *ip = data + l3_off;
	__u32 hlen;
	__u8 *l4;

	if (l3_off > 64)
		return false;
	ip = ipv4_parse(data + l3_off, data_end);
	if (!ip)
		return false;
	hlen = (ip->ver_ihl & 0x0f) * 4;
	p->l3 = l3_off;
	p->l4 = l3_off + hlen;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->id = ip->id;
	p->frag = bpf_ntohs(ip->frag_off);
	p->proto = ip->protocol;
	p->ttl = ip->ttl;
	p->has_l4 = (p->frag & NAT_IP_OFF_MASK) == 0;
	p->sport = p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type = 0;
	if (!p->has_l4)
		return p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP;
	l4 = data + p->l4;
	switch (p->proto) {
	case IPPROTO_TCP:
		if ((void *)(l4 + 20) > data_end)
			return false;
		p->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
		if ((void *)(l4 + 8) > data_end)
			return false;
		break;
	case IPPROTO_ICMP:
		if ((void *)(l4 + 8) > data_end)
			return false;
		p->icmp_type = l4[0];
		return true;
	default:
		return false;
	}
	p->sport = *(__be16 *)l4;
	p->dport = *(__be16 *)(l4 + 2);
	return true;
}

static __always_inline bool icmp_is_error(__u8 type)
{
	return type == 3 /* unreachable, frag needed */ || type == 11 /* time exceeded */ ||
	       type == 12 /* parameter problem */;
}

static __always_inline __u32 l4_csum_off(__u8 proto)
{
	return proto == IPPROTO_TCP ? 16 : 6;
}

/* Replaces a 4-byte address at off, fixing the IP checksum at ip_csum and,
 * when l4_csum is nonzero, the L4 checksum that covers it through the
 * pseudo-header. */
static __always_inline int nat_set_addr(struct __sk_buff *skb, __u32 off, __u32 ip_csum, __u32 l4_csum,
					__u64 l4_flags, __be32 old, __be32 new)
{
	if (old == new)
		return 0;
	if (l4_csum && bpf_l4_csum_replace(skb, l4_csum, old, new, l4_flags | BPF_F_PSEUDO_HDR | 4))
		return -1;
	if (bpf_l3_csum_replace(skb, ip_csum, old, new, 4))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, 4, 0);
}

static __always_inline int nat_set_port(struct __sk_buff *skb, __u32 off, __u32 l4_csum, __u64 l4_flags,
					__be16 old, __be16 new)
{
	if (old == new)
		return 0;
	if (l4_csum && bpf_l4_csum_replace(skb, l4_csum, old, new, l4_flags | 2))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, 2, 0);
}

/* Rewrites the packet's tuple and MACs as e says; decrements the TTL when it
 * crosses the host (uplink <-> container). */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct nat_pkt *p, const struct nat_entry *e,
				       bool routed)
{
	__u32 ip_csum = p->l3 + 10;
	__u32 l4_csum = 0;
	__u64 fl = 0;

	if (p->has_l4) {
		l4_csum = p->l4 + l4_csum_off(p->proto);
		if (p->proto == IPPROTO_UDP)
			fl = BPF_F_MARK_MANGLED_0;
	}
	if (nat_set_addr(skb, p->l3 + 12, ip_csum, l4_csum, fl, p->saddr, e->saddr) ||
	    nat_set_addr(skb, p->l3 + 16, ip_csum, l4_csum, fl, p->daddr, e->daddr))
		return -1;
	if (p->has_l4) {
		if (nat_set_port(skb, p->l4, l4_csum, fl, p->sport, e->sport) ||
		    nat_set_port(skb, p->l4 + 2, l4_csum, fl, p->dport, e->dport))
			return -1;
	}
	if (routed) {
		__be16 old = bpf_htons(((__u16)p->ttl << 8) | p->proto);
		__be16 new = bpf_htons(((__u16)(p->ttl - 1) << 8) | p->proto);
		__u8 ttl = p->ttl - 1;

		if (p->ttl <= 1)
			return -1; /* the stack sends the time-exceeded */
		if (bpf_l3_csum_replace(skb, ip_csum, old, new, 2) ||
		    bpf_skb_store_bytes(skb, p->l3 + 8, &ttl, 1, 0))
			return -1;
	}
	if (bpf_skb_store_bytes(skb, 0, e->dmac, 6, 0) || bpf_skb_store_bytes(skb, 6, e->smac, 6, 0))
		return -1;
	return 0;
}

static __always_inline int nat_deliver(struct __sk_buff *skb, const struct nat_entry *e)
{
	if (e->flags & NAT_F_PEER) {
		bpf_skb_change_type(skb, PACKET_HOST);
		return bpf_redirect_peer(e->ifindex, 0);
	}
	return bpf_redirect(e->ifindex, 0);
}

static __always_inline void nat_touch(struct nat_entry *e, __u8 tcp_flags)
{
	__u64 now = bpf_ktime_get_ns();

	/* One write a second at most: the entry is shared by every CPU. */
	if (now - e->last_seen > 1000000000ULL)
		e->last_seen = now;
	if ((tcp_flags & (NAT_TCP_FIN | NAT_TCP_RST)) && !(e->flags & NAT_F_CLOSING))
		e->flags |= NAT_F_CLOSING; /* a lost race only delays the GC */
}

static __always_inline void nat_key_of(struct nat_key *k, const struct nat_pkt *p, __u8 zone)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->zone = zone;
}

/* Later fragments carry no ports: they follow their first fragment. */
static __always_inline void frag_key_of(struct frag_key *k, const struct nat_pkt *p, __u8 zone)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->id = p->id;
	k->proto = p->proto;
	k->zone = zone;
}

/* Translates a TCP/UDP packet of a known flow (or a later fragment of one).
 * Returns a TC verdict, or -1 when the packet is not ours. */
static __always_inline int nat_flow(struct __sk_buff *skb, struct nat_pkt *p, __u8 zone, bool routed)
{
	struct nat_entry *e, copy;
	struct nat_key k;

	if (!p->has_l4) {
		struct frag_key fk;

		frag_key_of(&fk, p, zone);
		e = bpf_map_lookup_elem(&netd_frags, &fk);
		if (!e)
			return -1;
		copy = *e;
		if (nat_rewrite(skb, p, &copy, routed))
			return TC_ACT_SHOT;
		PUB_COUNT(frag_pkts);
		return nat_deliver(skb, &copy);
	}
	nat_key_of(&k, p, zone);
	e = bpf_map_lookup_elem(&netd_nat, &k);
	if (!e)
		return -1;
	nat_touch(e, p->tcp_flags);
	copy = *e;
	if (p->frag & NAT_IP_MF) {
		struct frag_key fk;

		frag_key_of(&fk, p, zone);
		bpf_map_update_elem(&netd_frags, &fk, &copy, BPF_ANY);
	}
	if (nat_rewrite(skb, p, &copy, routed))
		return TC_ACT_SHOT;
	if (copy.flags & NAT_F_REPLY)
		PUB_COUNT(reply_pkts);
	else
		PUB_COUNT(dnat_pkts);
	return nat_deliver(skb, &copy);
}

/* Records both directions of a new flow: fwd keyed by the packet as seen in
 * zone, rev by its translated reply as the container sends it. */
static __always_inline int nat_create(const struct nat_key *fk, const struct nat_entry *fwd,
				      const struct nat_key *rk, const struct nat_entry *rev, __u64 rev_flags)
{
	if (bpf_map_update_elem(&netd_nat, rk, rev, rev_flags))
		return -1;
	if (bpf_map_update_elem(&netd_nat, fk, fwd, BPF_ANY)) {
		bpf_map_delete_elem(&netd_nat, rk);
		return -1;
	}
	return 0;
}

/* The reply entry of a flow: what the container sends back (saddr:sport of
 * its own, to the source fwd gave it) becomes what the peer expects. */
static __always_inline void nat_reverse(struct nat_key *rk, struct nat_entry *rev, const struct nat_pkt *p,
					const struct nat_entry *fwd)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	rk->saddr = fwd->daddr;
	rk->daddr = fwd->saddr;
	rk->sport = fwd->dport;
	rk->dport = fwd->sport;
	rk->proto = p->proto;
	rk->zone = NAT_ZONE_CONTAINER;
	rev->saddr = p->daddr;
	rev->daddr = p->saddr;
	rev->sport = p->dport;
	rev->dport = p->sport;
	rev->flags = NAT_F_REPLY;
	rev->last_seen = fwd->last_seen;
}

/* Offsets of the header an ICMP error quotes. */
struct nat_inner {
	__u32 l3;
	__u32 l4;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	bool l4_csum; /* the quote holds the L4 checksum */
};

/* An ICMP error about a translated packet: the outer destination, the quoted
 * header and every checksum covering them are translated. The quoted packet
 * went the other way, so its swapped tuple is the flow's key in zone. */
static __always_inline int nat_icmp_error(struct __sk_buff *skb, struct nat_pkt *p, __u8 zone, bool routed)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct netd_iphdr *iip;
	struct nat_entry *e, rw;
	struct nat_inner in = {};
	struct nat_key k = {};
	__u32 icsum = p->l4 + 2;
	__u32 hlen, ilcsum;
	__u8 *il4;

	if (!p->has_l4 || !icmp_is_error(p->icmp_type))
		return -1;
	if (p->l4 > 128)
		return -1;
	in.l3 = p->l4 + 8;
	iip = data + in.l3;
	if ((void *)(iip + 1) > data_end || (iip->ver_ihl >> 4) != 4)
		return -1;
	hlen = (iip->ver_ihl & 0x0f) * 4;
	if (hlen < sizeof(*iip) || hlen > 60)
		return -1;
	in.l4 = in.l3 + hlen;
	in.saddr = iip->saddr;
	in.daddr = iip->daddr;
	in.proto = iip->protocol;
	if (in.proto != IPPROTO_TCP && in.proto != IPPROTO_UDP)
		return -1;
	if (in.l4 > 256)
		return -1;
	il4 = data + in.l4;
	if ((void *)(il4 + 8) > data_end)
		return -1;
	in.sport = *(__be16 *)il4;
	in.dport = *(__be16 *)(il4 + 2);
	ilcsum = in.l4 + l4_csum_off(in.proto);
	in.l4_csum = (void *)(il4 + l4_csum_off(in.proto) + 2) <= data_end;

	k.saddr = in.daddr;
	k.daddr = in.saddr;
	k.sport = in.dport;
	k.dport = in.sport;
	k.proto = in.proto;
	k.zone = zone;
	e = bpf_map_lookup_elem(&netd_nat, &k);
	if (!e)
		return -1;
	rw = *e;

	/* The quoted header: the checksums inside it first, then the ICMP one,
	 * which covers every byte changed. A quoted UDP checksum of 0 stays 0. */
	{
		__be16 iold_sum = *(__be16 *)((__u8 *)iip + 10);
		__be16 lold_sum = 0;
		__be16 inew_sum, lnew_sum = 0;
		__u64 lfl = in.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

		if (in.l4_csum) {
			__u8 *cs = data + ilcsum;

			if ((void *)(cs + 2) > data_end)
				return -1;
			lold_sum = *(__be16 *)cs;
		}
		/* inner saddr becomes rw.daddr, sport rw.dport; daddr rw.saddr, dport rw.sport */
		if (bpf_l3_csum_replace(skb, in.l3 + 10, in.saddr, rw.daddr, 4) ||
		    bpf_l3_csum_replace(skb, in.l3 + 10, in.daddr, rw.saddr, 4))
			return TC_ACT_SHOT;
		if (in.l4_csum && !(in.proto == IPPROTO_UDP && lold_sum == 0)) {
			if (bpf_l4_csum_replace(skb, ilcsum, in.saddr, rw.daddr, BPF_F_PSEUDO_HDR | 4 | lfl) ||
			    bpf_l4_csum_replace(skb, ilcsum, in.daddr, rw.saddr, BPF_F_PSEUDO_HDR | 4 | lfl) ||
			    bpf_l4_csum_replace(skb, ilcsum, in.sport, rw.dport, 2 | lfl) ||
			    bpf_l4_csum_replace(skb, ilcsum, in.dport, rw.sport, 2 | lfl))
				return TC_ACT_SHOT;
		}
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		{
			__u8 *ic = data + in.l3 + 10;

			if ((void *)(ic + 2) > data_end)
				return TC_ACT_SHOT;
			inew_sum = *(__be16 *)ic;
		}
		if (in.l4_csum) {
			__u8 *cs = data + ilcsum;

			if ((void *)(cs + 2) > data_end)
				return TC_ACT_SHOT;
			lnew_sum = *(__be16 *)cs;
		}
		if (bpf_skb_store_bytes(skb, in.l3 + 12, &rw.daddr, 4, 0) ||
		    bpf_skb_store_bytes(skb, in.l3 + 16, &rw.saddr, 4, 0) ||
		    bpf_skb_store_bytes(skb, in.l4, &rw.dport, 2, 0) ||
		    bpf_skb_store_bytes(skb, in.l4 + 2, &rw.sport, 2, 0))
			return TC_ACT_SHOT;
		/* The ICMP checksum: plain sum over the message, no pseudo-header. */
		if (bpf_l4_csum_replace(skb, icsum, in.saddr, rw.daddr, 4) ||
		    bpf_l4_csum_replace(skb, icsum, in.daddr, rw.saddr, 4) ||
		    bpf_l4_csum_replace(skb, icsum, in.sport, rw.dport, 2) ||
		    bpf_l4_csum_replace(skb, icsum, in.dport, rw.sport, 2) ||
		    bpf_l4_csum_replace(skb, icsum, iold_sum, inew_sum, 2) ||
		    (in.l4_csum && bpf_l4_csum_replace(skb, icsum, lold_sum, lnew_sum, 2)))
			return TC_ACT_SHOT;
	}

	/* The outer header: to the flow's other end; from it too when the error
	 * comes from the quoted packet's destination itself. */
	{
		struct nat_pkt outer = *p;
		struct nat_entry oe = rw;

		outer.has_l4 = false; /* the ICMP checksum covers no pseudo-header */
		oe.saddr = p->saddr == in.daddr ? rw.saddr : p->saddr;
		if (nat_rewrite(skb, &outer, &oe, routed))
			return TC_ACT_SHOT;
	}
	PUB_COUNT(icmp_pkts);
	return nat_deliver(skb, &rw);
}

#endif /* NETD_NAT_H */
