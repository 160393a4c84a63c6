// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - UDP: ports from the header.  Unconnected sockets receive
 * without early demux: the socket is looked up here the way udp_rcv()
 * would, under RCU and without a reference (UDP sockets are freed after
 * a grace period, SOCK_RCU_FREE).  Where that is safe (IPv4, unicast,
 * a socket bound to one address, see vordr_udp_handable()) an accepted
 * datagram carries it on to udp_rcv(), which then looks up nothing: a
 * datagram flood costs one socket lookup, as it does with no firewall.
 * UDP-Lite shares the header and the lookup, with its own table.
 */
#include <linux/in.h>
#include <linux/netdevice.h>
#include <linux/udp.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/route.h>
#include <net/netfilter/nf_conntrack.h>
#include <net/udp.h>
#include <net/udplite.h>

#include "vordr.h"

bool vordr_udp_parse(const struct sk_buff *skb, struct vordr_pkt *pkt)
{
	const struct udphdr *uh;
	struct udphdr _uh __uninitialized;

	uh = skb_header_pointer(skb, pkt->thoff, sizeof(_uh), &_uh);
	if (!uh)
		return false;
	pkt->sport = ntohs(uh->source);
	pkt->dport = ntohs(uh->dest);
	return true;
}

/*
 * Whether udp_rcv() may take @sk from skb->sk instead of looking it up
 * again (see vordr_hand_over()): only where it would find this very
 * socket, and where the route it then caches in the socket
 * (udp_sk_rx_dst_set()) cannot be misused.  Hence IPv4 only (IPv6 input
 * routes are per CPU: a socket fed by several CPUs would swap its cached
 * route on every switch); a unicast datagram; a socket of the packet's
 * own family (a dual-stack socket's IPv6 early demux would trust an IPv4
 * route); outside any reuseport group (whose BPF program reads the skb);
 * freed after a grace period; bound to one unicast address, so multicast
 * early demux, which uses the cached route too, never picks it; and no
 * NAT after this hook (conntrack: a confirmed entry without NAT) that
 * could make the stack choose another socket.
 */
static bool vordr_udp_handable(const struct sk_buff *skb, struct sock *sk)
{
	const struct rtable *rt = skb_rtable(skb);
	__be32 bound;
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	enum ip_conntrack_info ctinfo;
	const struct nf_conn *ct = nf_ct_get(skb, &ctinfo);

	if (ct && (!nf_ct_is_confirmed(ct) || (READ_ONCE(ct->status) & IPS_NAT_MASK)))
		return false;
#endif
	if (!rt || (rt->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)) ||
	    sk->sk_family != AF_INET || sk->sk_reuseport || sk_is_refcounted(sk))
		return false;
	bound = READ_ONCE(inet_sk(sk)->inet_rcv_saddr);
	return bound && !ipv4_is_multicast(bound);
}

/*
 * The socket udp_rcv() will deliver to, found as it finds it (the same
 * interfaces, so VRF slaves too) but without the skb, which only a
 * reuseport group's BPF program reads.  pkt->sk_hand: it may be handed
 * over (vordr_udp_handable()).
 */
struct sock *vordr_udp_lookup(struct sk_buff *skb, struct vordr_pkt *pkt)
{
	struct sock *sk;

	if (pkt->af == AF_INET) {
		sk = __udp4_lib_lookup(pkt->state->net, pkt->saddr.ip, htons(pkt->sport),
				       pkt->daddr.ip, htons(pkt->dport),
				       inet_iif(skb), inet_sdif(skb), &udp_table,
				       NULL);
		pkt->sk_hand = sk && vordr_udp_handable(skb, sk);
		return sk;
	}
#if IS_ENABLED(CONFIG_IPV6)
	return __udp6_lib_lookup(pkt->state->net, &pkt->saddr.in6, htons(pkt->sport),
				 &pkt->daddr.in6, htons(pkt->dport),
				 inet6_iif(skb), inet6_sdif(skb), &udp_table, NULL);
#else
	return NULL;
#endif
}

/*
 * UDP-Lite: UDP's header, its own socket table.  Never handed over:
 * udplite_rcv() is not what vordr_udp_handable() was reasoned for.
 */
static struct sock *vordr_udplite_lookup(struct sk_buff *skb, struct vordr_pkt *pkt)
{
	if (pkt->af == AF_INET)
		return __udp4_lib_lookup(pkt->state->net, pkt->saddr.ip, htons(pkt->sport),
					 pkt->daddr.ip, htons(pkt->dport),
					 inet_iif(skb), inet_sdif(skb), &udplite_table,
					 NULL);
#if IS_ENABLED(CONFIG_IPV6)
	return __udp6_lib_lookup(pkt->state->net, &pkt->saddr.in6, htons(pkt->sport),
				 &pkt->daddr.in6, htons(pkt->dport),
				 inet6_iif(skb), inet6_sdif(skb), &udplite_table, NULL);
#else
	return NULL;
#endif
}

/* Its own protocol number: only an "any" rule names it. */
const struct vordr_proto vordr_proto_udplite = {
	.prot = IPPROTO_UDPLITE,
	.parse = vordr_udp_parse,
	.lookup_in = vordr_udplite_lookup,
};

const struct vordr_proto vordr_proto_udp = {
	.prot = VORDR_PROT_UDP,
	.parse = vordr_udp_parse,
	.lookup_in = vordr_udp_lookup,
};
