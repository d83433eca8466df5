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


/* Port publishing (bpf/publish.c, bpf/lib/nat.h). */
#define NETD_MAX_PUBLISHED 65536  /* published host ports */
#define NETD_MAX_NAT 262144       /* translated flows, two entries each */
#define NETD_MAX_FRAGS 8192       /* datagrams in flight as fragments */
#define NETD_MAX_LOCAL_ADDRS 256  /* addresses of the host (wildcard bindings) */
#define NETD_MAX_SOCK_REV 65536   /* host sockets connected to a published port */

/* A published host port: addr 0 is every address of the host. */
struct pub_key {
	__be32 addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/* Where a published port leads: the container and how to reach it. */
struct pub_target {
	__be32 addr;      /* container address */
	__be16 port;      /* container port */
	__u16 pad;
	__u32 ifindex;    /* host side of the container's veth */
	__be32 gateway;   /* the bridge's address: source of container-to-published flows */
	__u8 mac[6];      /* container MAC */
	__u8 gw_mac[6];   /* bridge MAC */
};

/* Where a flow's packet was seen: uplink ingress, or sent by a container. */
#define NAT_ZONE_UPLINK 1
#define NAT_ZONE_CONTAINER 2

/* nat_entry.flags */
#define NAT_F_PEER (1U << 0)  /* deliver with bpf_redirect_peer (into a container) */
#define NAT_F_REPLY (1U << 1) /* the reply direction of the flow */
#define NAT_F_SEEN_REPLY (1U << 2)
#define NAT_F_CLOSING (1U << 3) /* FIN or RST seen */

/* A packet's 5-tuple as seen in a zone. */
struct nat_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 zone;
	__u16 pad;
};

/* How to rewrite a packet of the flow, and where it goes. */
struct nat_entry {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u32 ifindex;  /* redirect target */
	__u8 smac[6];
	__u8 dmac[6];
	__u32 flags;
	__u64 last_seen; /* bpf_ktime_get_ns; GC from Go */
};

/* The later fragments of a datagram whose first fragment was translated. */
struct frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 zone;
};

/* A host socket whose connect/sendmsg went to a container for a published port. */
struct sock_rev_key {
	__u64 cookie;
	__be32 addr;  /* container address */
	__be16 port;  /* container port */
	__u16 pad;
};

struct sock_rev_val {
	__be32 addr;  /* the address the program used */
	__be16 port;
	__u16 pad;
};

/* The one entry of the publish config map. */
struct pub_config {
	__u64 netns_cookie; /* the daemon's netns: socket hooks act there only */
};

/* Per-CPU totals of the publishing programs. */
struct pub_counters {
	__u64 dnat_pkts;      /* to a published port, translated and delivered */
	__u64 reply_pkts;     /* replies translated back */
	__u64 icmp_pkts;      /* ICMP errors of translated flows, translated */
	__u64 frag_pkts;      /* later fragments translated */
	__u64 hairpin_pkts;   /* container to a published port of the host */
	__u64 sock_connects;  /* host sockets sent to a container */
	__u64 loopback_drops; /* from outside to 127.0.0.0/8 */
	__u64 frag_misses;    /* later fragment with no first: left to the stack */
	__u64 xdp_pkts;       /* translated by the XDP program */
	__u64 nat_full;       /* flow not recorded: the table refused it */
};

#endif /* NETD_SHARED_H */
