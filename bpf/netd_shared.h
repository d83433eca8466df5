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
	DROP_NO_ENDPOINT = 8, /* overlay: destination MAC, IPv4 or ARP target is no endpoint of the network */
	DROP_FLOOD = 9,       /* overlay: broadcast/multicast other than ARP: nothing floods the underlay */
	DROP_NO_TUNNEL = 10,  /* overlay: no VXLAN device or VTEP configured, no or unusable tunnel key */
	DROP_VLAN = 11,       /* overlay: VLAN-tagged frame; overlay networks carry untagged frames only */
	DROP_REASON_MAX = 12,
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

/* Overlay data path (bpf/overlay.c). Networks are keyed by their VNI, the
 * one number every host agrees on; local and remote endpoints share a table. */
#define NETD_OV_MAX_ENDPOINTS 65536 /* local and remote endpoints of every overlay network */
#define NETD_OV_MAX_LOCAL 4096      /* endpoints on this host */
#define NETD_OV_MAX_NETWORKS 1024
/* Tunnel counters slot for frames of no network here (VNIs are 24 bits). */
#define NETD_OV_VNI_OTHER 0xffffffffU

/* Key of the overlay endpoint table by MAC (forwarding, tunnel ingress). */
struct ov_mac_key {
	__u32 vni;
	__u8 mac[6];
	__u8 pad[2];
};

/* Key of the overlay endpoint table by address (ARP replies, IPv4 fallback). */
struct ov_ip_key {
	__u32 vni;
	__be32 ipv4; /* network byte order */
};

/* An endpoint of an overlay network: local (ifindex set) or remote (vtep set). */
struct ov_endpoint {
	__u32 ifindex; /* host-side veth of a local endpoint; 0 for a remote one */
	__be32 vtep;   /* VTEP of the host owning a remote endpoint; 0 for a local one */
	__be32 ipv4;
	__u8 mac[6];
	__u8 pad[2];
};

/* What the owner of a host-side veth on an overlay network may send as. */
struct ov_iface {
	__u32 vni;
	__be32 ipv4;
	__u8 mac[6];
	__u8 pad[2];
};

/* The one entry of the overlay config map: where encapsulated frames go. */
struct ov_config {
	__u32 vxlan_ifindex; /* collect-metadata VXLAN device */
	__be32 local_vtep;   /* explicit outer source address */
};

/* Per-CPU, per host-side ifindex of a local overlay endpoint. */
struct ov_ep_counters {
	__u64 local_pkts;  /* sent to an endpoint on this host */
	__u64 local_bytes;
	__u64 encap_pkts;  /* sent through the tunnel */
	__u64 encap_bytes;
	__u64 decap_pkts;  /* received from the tunnel */
	__u64 decap_bytes;
	__u64 arp_replies; /* ARP requests answered in place */
	__u64 pass_pkts;   /* handed to the host's bridge: its gateway, the outside */
	__u64 pass_bytes;
	__u64 drops[DROP_REASON_MAX];
};

/* An overlay network on this host, by VNI: its gateway is this host's
 * bridge (each host's has the same address and a MAC of its own). */
struct ov_network {
	__be32 gateway;   /* network byte order; 0: no gateway, nothing goes to the bridge */
	__u8 gw_mac[6];   /* the host bridge's MAC */
	__u8 pad[2];
};

/* Per-CPU, per VNI (NETD_OV_VNI_OTHER: any other): the tunnel's side. */
struct ov_tunnel_counters {
	__u64 encap_pkts;
	__u64 encap_bytes;
	__u64 decap_pkts;
	__u64 decap_bytes;
	__u64 drops[DROP_REASON_MAX];
};

#endif /* NETD_SHARED_H */
