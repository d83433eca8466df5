/* Structs and numbers shared between the eBPF data path and Go.
 * Go gets them through bpf2go -type; change both sides together. */
#ifndef NETD_SHARED_H
#define NETD_SHARED_H

#include <linux/types.h>

#define NETD_MAX_ENDPOINTS 4096
#define NETD_MAX_NETWORKS 1024

/* Drop reasons: index into ep_counters.drops; Go names them by the suffix after DROP_.
 * Append-only, as cilium's: a number is never reused or renumbered, a retired
 * reason keeps its number (comment it "retired", keep the slot), because pinned
 * counters and the CLI's history outlive a build. New reasons go just before
 * DROP_REASON_MAX, which grows with them (the counters map migrates). */
enum drop_reason {
	DROP_SPOOF_MAC = 0,  /* source MAC is not the endpoint's own */
	DROP_SPOOF_IP = 1,   /* IPv4 source address is not the endpoint's own */
	DROP_SPOOF_ARP = 2,  /* ARP sender MAC/IP is not the endpoint's own */
	DROP_ICC_DENIED = 3, /* inter-container traffic disabled on the network */
	DROP_MALFORMED = 4,  /* truncated or invalid Ethernet/IPv4/ARP header */
	DROP_ISOLATED = 5,   /* IPv4 destination in another netd network's subnet */
	DROP_INTERNAL = 6,   /* IPv4 destination outside the subnet of an internal network */
	DROP_IPV6 = 7,       /* IPv6 (also VLAN-tagged) on a network without NET_F_IPV6 */
	DROP_REASON_MAX = 8,
};

/* network_info.flags */
#define NET_F_ICC (1U << 0)
#define NET_F_INTERNAL (1U << 1) /* no IPv4 beyond the network's own subnet */
#define NET_F_IPV6 (1U << 2)     /* IPv6 allowed; never set yet: no IPv6 anti-spoofing exists */

/* Key of the endpoint table: isolation between networks comes from the index. */
struct endpoint_key {
	__u32 net_index;
	__u8 mac[6];
	__u8 pad[2];
};

struct endpoint_info {
	__u32 ifindex;   /* host-side veth */
	__u32 net_index;
	__be32 ipv4;     /* network byte order */
	__u8 mac[6];
	__u16 flags;
};

/* What the owner of a host-side veth may send as (anti-spoofing). */
struct iface_info {
	__u32 net_index;
	__be32 ipv4;
	__u8 mac[6];
	__u8 pad[2];
};

struct network_info {
	__u32 flags;
};

/* LPM trie key of the subnets map: prefixlen first, as the kernel requires. */
struct subnet_key {
	__u32 prefixlen;
	__be32 addr; /* network byte order */
};

/* Which netd network a subnet belongs to. The gateway is the host's own
 * address: reaching it is not routing into the other network. */
struct subnet_info {
	__u32 net_index;
	__be32 gateway; /* network byte order; 0 when the network has none */
};

/* Per-CPU, per host-side ifindex: what the sender on that veth did. */
struct ep_counters {
	__u64 fast_pkts;
	__u64 fast_bytes;
	__u64 slow_pkts;
	__u64 drops[DROP_REASON_MAX];
};

#endif /* NETD_SHARED_H */
