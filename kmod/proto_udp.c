// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - UDP: ports from the header.  Unconnected sockets receive
 * without early demux: the socket is looked up here the way udp_rcv()
 * will, under RCU and without a reference (UDP sockets are freed after a
 * grace period, SOCK_RCU_FREE), which keeps a datagram flood cheap.
 */
#include <linux/in.h>
#include <linux/netdevice.h>
#include <linux/udp.h>
#include <net/ipv6.h>
#include <net/udp.h>

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

static struct sock *vordr_udp_lookup(struct sk_buff *skb,
				     const struct vordr_pkt *pkt, bool *ref)
{
	int dif = pkt->indev->ifindex;

	*ref = false;
	if (pkt->af == AF_INET)
		return __udp4_lib_lookup(pkt->net, pkt->saddr.ip, htons(pkt->sport),
					 pkt->daddr.ip, htons(pkt->dport), dif,
					 0, &udp_table, NULL);
#if IS_ENABLED(CONFIG_IPV6)
	return __udp6_lib_lookup(pkt->net, &pkt->saddr.in6, htons(pkt->sport),
				 &pkt->daddr.in6, htons(pkt->dport), dif, 0,
				 &udp_table, NULL);
#else
	return NULL;
#endif
}

const struct vordr_proto vordr_proto_udp = {
	.prot = VORDR_PROT_UDP,
	.parse = vordr_udp_parse,
	.lookup_in = vordr_udp_lookup,
};
