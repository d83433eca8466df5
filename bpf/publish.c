// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Port publishing (Docker's -p) without a proxy process.
 *
 * from_uplink, TC ingress of the host's uplinks: a packet to a published
 * host port gets the container's address and port (checksums fixed) and goes
 * straight into the container (bpf_redirect_peer); the container sees the
 * client's real address. Replies are translated back by bpf/bridge.c on the
 * container's veth, from the same flow table (bpf/lib/nat.h).
 *
 * xdp_uplink does the same for established TCP/UDP flows at XDP, before an
 * skb exists; anything else it passes on to from_uplink.
 *
 * The cgroup socket hooks translate the host's own sockets (localhost:PORT,
 * HOST_IP:PORT) at connect/sendmsg time: no per-packet NAT, no route_localnet.
 * They act in the daemon's network namespace only. */

#include "common.h"
#include "eth.h"
#include "ipv4.h"
#include "nat.h"

const struct pub_key *unused_pub_key __attribute__((unused));
const struct pub_target *unused_pub_target __attribute__((unused));
const struct nat_key *unused_nat_key __attribute__((unused));
const struct nat_entry *unused_nat_entry __attribute__((unused));
const struct frag_key *unused_frag_key __attribute__((unused));
const struct sock_rev_key *unused_sock_rev_key __attribute__((unused));
const struct sock_rev_val *unused_sock_rev_val __attribute__((unused));
const struct pub_config *unused_pub_config __attribute__((unused));
const struct pub_counters *unused_pub_counters __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pub_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_pubconf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NETD_MAX_SOCK_REV);
	__type(key, struct sock_rev_key);
	__type(value, struct sock_rev_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} netd_sockrev SEC(".maps");

/* A new flow from outside to a published port. */
static __always_inline int uplink_new(struct __sk_buff *skb, struct nat_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct pub_target *t = publish_lookup(p->daddr, p->dport, p->proto, false);
	struct nat_entry fwd = {}, rev = {};
	struct nat_key fk, rk;

	if (!t || p->proto == IPPROTO_ICMP)
		return -1;
	if ((void *)(eth + 1) > data_end)
		return -1;
	fwd.saddr = p->saddr;
	fwd.sport = p->sport;
	fwd.daddr = t->addr;
	fwd.dport = t->port;
	fwd.ifindex = t->ifindex;
	__builtin_memcpy(fwd.smac, t->gw_mac, 6);
	__builtin_memcpy(fwd.dmac, t->mac, 6);
	fwd.flags = NAT_F_PEER;
	fwd.last_seen = bpf_ktime_get_ns();
	nat_key_of(&fk, p, NAT_ZONE_UPLINK);
	nat_reverse(&rk, &rev, p, &fwd);
	rev.ifindex = skb->ifindex;
	__builtin_memcpy(rev.smac, eth->h_dest, 6);
	__builtin_memcpy(rev.dmac, eth->h_source, 6);
	if (nat_create(&fk, &fwd, &rk, &rev, BPF_ANY)) {
		PUB_COUNT(nat_full);
		return TC_ACT_SHOT;
	}
	return nat_flow(skb, p, NAT_ZONE_UPLINK, true);
}

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct nat_pkt p;
	int ret;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (!nat_parse(data, data_end, sizeof(*eth), &p))
		return TC_ACT_OK;
	/* Nothing from outside reaches the host's loopback (moby#45610): a
	 * 127.0.0.1 binding is for the host alone. */
	if (ipv4_is_loopback(p.daddr)) {
		PUB_COUNT(loopback_drops);
		return TC_ACT_SHOT;
	}
	if (p.proto == IPPROTO_ICMP) {
		ret = nat_icmp_error(skb, &p, NAT_ZONE_UPLINK, true);
		return ret < 0 ? TC_ACT_OK : ret;
	}
	ret = nat_flow(skb, &p, NAT_ZONE_UPLINK, true);
	if (ret >= 0)
		return ret;
	if (!p.has_l4) {
		/* A fragment before its first one, or of a flow not ours. */
		if (publish_lookup(p.daddr, 0, p.proto, false))
			PUB_COUNT(frag_misses);
		return TC_ACT_OK;
	}
	ret = uplink_new(skb, &p);
	return ret < 0 ? TC_ACT_OK : ret;
}

/* XDP: established flows only, whole (unfragmented) TCP/UDP packets; the
 * rest goes on to from_uplink. Checksums by hand (RFC 1624). */
static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline void csum_repl32(__sum16 *sum, __be32 old, __be32 new)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~(old & 0xffff) + (__u16)~(old >> 16);
	s += (new & 0xffff) + (new >> 16);
	*sum = ~csum_fold32(s);
}

static __always_inline void csum_repl16(__sum16 *sum, __be16 old, __be16 new)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~old;
	s += new;
	*sum = ~csum_fold32(s);
}

SEC("xdp")
int xdp_uplink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct netd_iphdr *ip;
	struct nat_entry *e;
	struct nat_pkt p;
	struct nat_key k;
	__sum16 *l4sum;
	__u8 *l4;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (!nat_parse(data, data_end, sizeof(*eth), &p))
		return XDP_PASS;
	if (p.proto == IPPROTO_ICMP || !p.has_l4 || (p.frag & NAT_IP_MF) || p.ttl <= 1)
		return XDP_PASS;
	nat_key_of(&k, &p, NAT_ZONE_UPLINK);
	e = bpf_map_lookup_elem(&netd_nat, &k);
	if (!e || !(e->flags & NAT_F_PEER))
		return XDP_PASS;
	nat_touch(e, p.tcp_flags);

	ip = data + sizeof(*eth);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	l4 = data + p.l4;
	if (p.l4 > 128 || (void *)(l4 + 20) > data_end)
		return XDP_PASS; /* short UDP: the TC path handles it */
	l4sum = (__sum16 *)(l4 + (p.proto == IPPROTO_TCP ? 16 : 6));
	if ((void *)(l4sum + 1) > data_end)
		return XDP_PASS;
	/* Not in a pseudo-header: ports, and the addresses' share of it. */
	if (p.proto == IPPROTO_TCP || *l4sum != 0) {
		csum_repl32(l4sum, p.saddr, e->saddr);
		csum_repl32(l4sum, p.daddr, e->daddr);
		csum_repl16(l4sum, p.sport, e->sport);
		csum_repl16(l4sum, p.dport, e->dport);
		if (p.proto == IPPROTO_UDP && *l4sum == 0)
			*l4sum = 0xffff;
	}
	{
		__sum16 check = ip->check;

		csum_repl32(&check, ip->saddr, e->saddr);
		csum_repl32(&check, ip->daddr, e->daddr);
		csum_repl16(&check, bpf_htons(((__u16)ip->ttl << 8) | ip->protocol),
			    bpf_htons(((__u16)(ip->ttl - 1) << 8) | ip->protocol));
		ip->check = check;
	}
	ip->ttl--;
	ip->saddr = e->saddr;
	ip->daddr = e->daddr;
	*(__be16 *)l4 = e->sport;
	*(__be16 *)(l4 + 2) = e->dport;
	__builtin_memcpy(eth->h_dest, e->dmac, 6);
	__builtin_memcpy(eth->h_source, e->smac, 6);
	PUB_COUNT(xdp_pkts);
	return bpf_redirect(e->ifindex, 0);
}

/* Host sockets. ctx->user_port is in network order in its low 16 bits. */
static __always_inline bool sock_ours(void *ctx)
{
	__u32 zero = 0;
	struct pub_config *c = bpf_map_lookup_elem(&netd_pubconf, &zero);

	return c && c->netns_cookie && c->netns_cookie == bpf_get_netns_cookie(ctx);
}

static __always_inline __u8 sock_proto(struct bpf_sock_addr *ctx)
{
	if (ctx->type == 1 /* SOCK_STREAM */)
		return IPPROTO_TCP;
	if (ctx->type == 2 /* SOCK_DGRAM */)
		return IPPROTO_UDP;
	return 0;
}

static __always_inline int sock_translate(struct bpf_sock_addr *ctx)
{
	struct sock_rev_key rk = {};
	struct sock_rev_val rv = {};
	struct pub_target *t;
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	__u8 proto = sock_proto(ctx);

	if (!proto || !sock_ours(ctx))
		return 1;
	t = publish_lookup(addr, port, proto, true);
	if (!t)
		return 1;
	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.addr = t->addr;
	rk.port = t->port;
	rv.addr = addr;
	rv.port = port;
	bpf_map_update_elem(&netd_sockrev, &rk, &rv, BPF_ANY);
	ctx->user_ip4 = t->addr;
	ctx->user_port = (__u32)t->port;
	PUB_COUNT(sock_connects);
	return 1;
}

/* The peer the application asked for, not the container behind it. */
static __always_inline int sock_untranslate(struct bpf_sock_addr *ctx)
{
	struct sock_rev_key rk = {};
	struct sock_rev_val *rv;

	if (!sock_ours(ctx))
		return 1;
	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.addr = ctx->user_ip4;
	rk.port = (__be16)ctx->user_port;
	rv = bpf_map_lookup_elem(&netd_sockrev, &rk);
	if (rv) {
		ctx->user_ip4 = rv->addr;
		ctx->user_port = (__u32)rv->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_untranslate(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_untranslate(ctx);
}

char __license[] SEC("license") = "Dual BSD/GPL";
