/* Per-endpoint counters and explicit drops (one number per reason). */
#ifndef NETD_COUNTERS_H
#define NETD_COUNTERS_H

#include "common.h"
#include "maps.h"

static __always_inline void count_fast(__u32 ifindex, __u32 bytes)
{
	struct ep_counters *c = bpf_map_lookup_elem(&netd_counters, &ifindex);

	if (c) {
		c->fast_pkts++;
		c->fast_bytes += bytes;
	}
}

static __always_inline int pass_slow(__u32 ifindex)
{
	struct ep_counters *c = bpf_map_lookup_elem(&netd_counters, &ifindex);

	if (c)
		c->slow_pkts++;
	return TC_ACT_OK;
}

static __always_inline int drop(__u32 ifindex, enum drop_reason reason)
{
	struct ep_counters *c = bpf_map_lookup_elem(&netd_counters, &ifindex);

	if (c && reason < DROP_REASON_MAX)
		c->drops[reason]++;
	return TC_ACT_SHOT;
}

#endif /* NETD_COUNTERS_H */
