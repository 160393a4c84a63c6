// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - ICMP and ICMPv6, both the protocol "icmp" in rules.  Events
 * carry the type as sport and the code as dport.  Outbound echo requests
 * from ping sockets and raw sockets are their sender's; errors about a
 * packet are found to belong to that packet's socket by nf_sk_lookup_slow.
 * IPv6 neighbour discovery and multicast listener messages belong to the
 * network itself (as ARP does for IPv4, which never reaches these hooks)
 * and always pass: without them no IPv6 address works at all.
 */
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <net/ndisc.h>

#include "vordr.h"

/* ICMP and ICMPv6 headers both start with type and code. */
static bool vordr_icmp_parse(const struct sk_buff *skb, struct vordr_pkt *pkt)
{
	const u8 *tc;
	u8 _tc[2] __uninitialized;

	tc = skb_header_pointer(skb, pkt->thoff, sizeof(_tc), _tc);
	if (!tc)
		return false;
	pkt->sport = tc[0];
	pkt->dport = tc[1];
	return true;
}

static bool vordr_icmpv6_infrastructure(const struct vordr_pkt *pkt)
{
	switch (pkt->sport) {
	case ICMPV6_MGM_QUERY:
	case ICMPV6_MGM_REPORT:
	case ICMPV6_MGM_REDUCTION:
	case NDISC_ROUTER_SOLICITATION:
	case NDISC_ROUTER_ADVERTISEMENT:
	case NDISC_NEIGHBOUR_SOLICITATION:
	case NDISC_NEIGHBOUR_ADVERTISEMENT:
	case NDISC_REDIRECT:
	case ICMPV6_MLD2_REPORT:
		return true;
	}
	return false;
}

const struct vordr_proto vordr_proto_icmp = {
	.prot = VORDR_PROT_ICMP,
	.parse = vordr_icmp_parse,
	.lookup_in = vordr_lookup_slow,	/* errors: the quoted packet's socket */
};

const struct vordr_proto vordr_proto_icmpv6 = {
	.prot = VORDR_PROT_ICMP,
	.parse = vordr_icmp_parse,
	.infrastructure = vordr_icmpv6_infrastructure,
	.lookup_in = vordr_lookup_slow,
};
