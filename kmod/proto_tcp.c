// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - TCP: ports from the header.  Inbound sockets are found by
 * nf_sk_lookup_slow (established, then listening); accepted sockets
 * inherit their listener's owner (hook.c).
 */
#include <linux/in.h>
#include <linux/tcp.h>

#include "vordr.h"

bool vordr_tcp_parse(const struct sk_buff *skb, struct vordr_pkt *pkt)
{
	const struct tcphdr *th;
	struct tcphdr _th __uninitialized;

	th = skb_header_pointer(skb, pkt->thoff, sizeof(_th), &_th);
	if (!th || th->doff < sizeof(_th) / 4)
		return false;
	pkt->sport = ntohs(th->source);
	pkt->dport = ntohs(th->dest);
	/* A first IPv6 fragment's length says nothing of the segment's. */
	pkt->bare = !pkt->frag && skb->len <= pkt->thoff + th->doff * 4;
	/* An outbound connection's SYN: refused at once if blocked (hook.c). */
	pkt->syn = pkt->dir == VORDR_DIR_OUT && th->syn && !th->ack;
	return true;
}

const struct vordr_proto vordr_proto_tcp = {
	.prot = VORDR_PROT_TCP,
	.parse = vordr_tcp_parse,
	.lookup_in = vordr_lookup_slow,
};
