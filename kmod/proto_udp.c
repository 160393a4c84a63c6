// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - UDP: ports from the header.  Unconnected sockets receive
 * without early demux; nf_sk_lookup_slow finds them (hook.c).
 */
#include <linux/in.h>
#include <linux/udp.h>

#include "vordr.h"

static bool vordr_udp_parse(const struct sk_buff *skb, struct vordr_pkt *pkt)
{
	const struct udphdr *uh;
	struct udphdr _uh;

	uh = skb_header_pointer(skb, pkt->thoff, sizeof(_uh), &_uh);
	if (!uh)
		return false;
	pkt->sport = ntohs(uh->source);
	pkt->dport = ntohs(uh->dest);
	return true;
}

const struct vordr_proto vordr_proto_udp = {
	.ipproto = IPPROTO_UDP,
	.prot = VORDR_PROT_UDP,
	.parse = vordr_udp_parse,
};
