/* VXLAN encapsulation through a collect-metadata device: the program sets
 * the tunnel key, the device builds the outer headers. */
#ifndef NETD_ENCAP_H
#define NETD_ENCAP_H

#include "common.h"

#define NETD_TUNNEL_TTL 64

/* Sets VNI, remote VTEP, TTL 64 and the explicit outer source. Kernels
 * before 6.0 know no local_ipv4 and refuse the full key (-EINVAL): they get
 * the older layout and take the source from the route. */
static __always_inline long encap_set_key(struct __sk_buff *skb, __u32 vni, __be32 remote,
					  __be32 local)
{
	struct bpf_tunnel_key key = {};
	long ret;

	key.tunnel_id = vni;
	key.remote_ipv4 = bpf_ntohl(remote); /* the helper takes host byte order */
	key.local_ipv4 = bpf_ntohl(local);
	key.tunnel_ttl = NETD_TUNNEL_TTL;
	ret = bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0);
	if (ret == -22 /* EINVAL */)
		ret = bpf_skb_set_tunnel_key(skb, &key, __builtin_offsetof(struct bpf_tunnel_key, local_ipv4), 0);
	return ret;
}

#endif /* NETD_ENCAP_H */
