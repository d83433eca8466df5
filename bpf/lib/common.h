/* Kernel UAPI and libbpf helpers every program needs. */
#ifndef NETD_COMMON_H
#define NETD_COMMON_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "netd_shared.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* From linux/if_packet.h, which drags in arch-specific headers. */
#ifndef PACKET_HOST
#define PACKET_HOST 0
#endif

typedef _Bool bool;
#define true 1
#define false 0

#endif /* NETD_COMMON_H */
