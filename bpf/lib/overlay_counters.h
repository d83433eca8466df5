/* Counters of the overlay data path: per local endpoint and per VNI. */
#ifndef NETD_OVERLAY_COUNTERS_H
#define NETD_OVERLAY_COUNTERS_H

#include "common.h"
#include "overlay_maps.h"

static __always_inline struct ov_ep_counters *ov_ep_ctr(__u32 ifindex)
{
	return bpf_map_lookup_elem(&netd_ov_counters, &ifindex);
}

/* The VNI's counters, or the NETD_OV_VNI_OTHER slot for a VNI of no network here. */
static __always_inline struct ov_tunnel_counters *ov_tun_ctr(__u32 vni)
{
	struct ov_tunnel_counters *c = bpf_map_lookup_elem(&netd_ov_tunnel, &vni);
	__u32 other = NETD_OV_VNI_OTHER;

	if (!c)
		c = bpf_map_lookup_elem(&netd_ov_tunnel, &other);
	return c;
}

/* A frame a local endpoint sent, dropped. */
static __always_inline int ov_drop_ep(__u32 ifindex, enum drop_reason reason)
{
	struct ov_ep_counters *c = ov_ep_ctr(ifindex);

	if (c && reason < DROP_REASON_MAX)
		c->drops[reason]++;
	return TC_ACT_SHOT;
}

/* A frame that came out of the tunnel, dropped. */
static __always_inline int ov_drop_tun(__u32 vni, enum drop_reason reason)
{
	struct ov_tunnel_counters *c = ov_tun_ctr(vni);

	if (c && reason < DROP_REASON_MAX)
		c->drops[reason]++;
	return TC_ACT_SHOT;
}

#endif /* NETD_OVERLAY_COUNTERS_H */
