// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - netfilter entry: every packet's verdict starts here.
 *
 * IPv4 and IPv6, NF_INET_LOCAL_OUT and NF_INET_LOCAL_IN, in every network
 * namespace (pernet_operations, so namespaces made after load too).
 *
 * Order of the decision: the mode (first: "block" drops even what cannot
 * be parsed); the protocol's header; the owning socket and its owner
 * (unknown: unkproc; a packet without a readable transport header and no
 * known socket: fail; another protocol than tcp, udp, icmp: unkprot);
 * the most specific rule (none: unkrule, or unkprot for those protocols).  The hooks
 * run inside rcu_read_lock(), in task context for connect() and sendmsg()
 * and in softirq for inbound packets, ACKs, retransmits and loopback
 * replies: nothing here sleeps.  A packet whose socket is known costs one
 * RCU hash lookup for the socket and one or a few for the rule.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/in.h>
#include <linux/indirect_call_wrapper.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/jiffies.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/cred.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>
#include <net/netfilter/nf_socket.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "vordr.h"

/* How long "no owner found" stands before the process table is asked again. */
#define VORDR_ASC_RETRY (5 * HZ)

/* The hooks, which a held datagram is replayed from (asc.c). */
static nf_hookfn vordr_ipv4;
#if IS_ENABLED(CONFIG_IPV6)
static nf_hookfn vordr_ipv6;
#define VORDR_HOOK_OF(af) ((af) == AF_INET ? vordr_ipv4 : vordr_ipv6)
#else
#define VORDR_HOOK_OF(af) vordr_ipv4
#endif

static const struct vordr_proto *vordr_proto_of(u8 af, u8 ipproto)
{
	switch (ipproto) {
	case IPPROTO_TCP:
		return &vordr_proto_tcp;
	case IPPROTO_UDP:
		return &vordr_proto_udp;
	case IPPROTO_UDPLITE:
		return &vordr_proto_udplite;
	case IPPROTO_ICMP:
		return af == AF_INET ? &vordr_proto_icmp : NULL;
	case IPPROTO_ICMPV6:
		return af == AF_INET6 ? &vordr_proto_icmpv6 : NULL;
	}
	return NULL;
}

struct sock *vordr_lookup_slow(struct sk_buff *skb, struct vordr_pkt *pkt)
{
	pkt->sk_ref = true;
	if (pkt->af == AF_INET)
		return nf_sk_lookup_slow_v4(pkt->state->net, skb, pkt->state->in);
#if IS_ENABLED(CONFIG_IPV6)
	return nf_sk_lookup_slow_v6(pkt->state->net, skb, pkt->state->in);
#else
	return NULL;
#endif
}

/*
 * The protocols rules name (tcp, udp, icmp); any other is "unknown" to
 * unkprot, though an "any" rule covers it.
 */
static bool vordr_prot_named(u8 prot)
{
	switch (prot) {
	case VORDR_PROT_TCP:
	case VORDR_PROT_UDP:
	case VORDR_PROT_ICMP:
		return true;
	}
	return false;
}

/*
 * The full socket a packet belongs to, or NULL.  Outbound packets carry
 * it; inbound ones carry it only when early demux found a connected
 * socket, else the protocol looks it up (*found: that socket, which the
 * caller releases if pkt->sk_ref says it holds a reference, and may hand
 * to the stack if pkt->sk_hand says so, see vordr_hand_over()).  Without
 * a transport header (@proto NULL) nothing can be looked up.  A request
 * socket stands for its listener; a time-wait one for nobody.
 */
static struct sock *vordr_socket(struct sk_buff *skb, struct vordr_pkt *pkt,
				 const struct vordr_proto *proto, struct sock **found)
{
	struct sock *sk = skb->sk;

	if (!sk && pkt->dir == VORDR_DIR_IN && pkt->state->in && proto &&
	    proto->lookup_in) {
		sk = INDIRECT_CALL_2(proto->lookup_in, vordr_udp_lookup,
				     vordr_lookup_slow, skb, pkt);
		*found = sk;
	}
	if (!sk)
		return NULL;
	sk = sk_to_full_sk(sk);
	return sk && sk_fullsock(sk) ? sk : NULL;
}

/*
 * An accepted inbound packet keeps the socket its decision was made for,
 * as early demux and bpf_sk_assign() leave it: the protocol's receive
 * function takes it from skb->sk (skb_steal_sock()) instead of looking
 * it up again, which also delivers it to the very socket whose owner's
 * rule let it in.  No reference is taken: the socket is freed only after
 * a grace period, and the skb reaches udp_rcv() inside the read-side
 * section it came in (softirq, or nf_reinject() under rcu_read_lock())
 * unless a queue takes a reference (nf_queue) or orphans it
 * (reassembly).  The protocol decides where a hand-over is safe.
 */
static void vordr_hand_over(struct sk_buff *skb, struct sock *sk)
{
	skb_orphan(skb);
	skb->sk = sk;
	skb->destructor = sock_pfree;
}

/* The listener @sk (TCP, connected) was accepted from, if it was: by its local address. */
static struct sock *vordr_listener_of(struct net *net, struct sock *sk, int dif)
{
	struct inet_hashinfo *h = net->ipv4.tcp_death_row.hashinfo;
	struct sock *l = NULL;

	if (sk->sk_family == AF_INET)
		l = __inet_lookup_listener(net, h, NULL, 0,
					   sk->sk_daddr, sk->sk_dport,
					   sk->sk_rcv_saddr, sk->sk_num, dif, 0);
#if IS_ENABLED(CONFIG_IPV6)
	else if (sk->sk_family == AF_INET6)
		l = inet6_lookup_listener(net, h, NULL, 0,
					  &sk->sk_v6_daddr, sk->sk_dport,
					  &sk->sk_v6_rcv_saddr, sk->sk_num, dif, 0);
#endif
	/* Listeners are freed after a grace period: no reference needed. */
	return IS_ERR_OR_NULL(l) ? NULL : l;
}

/*
 * A TCP socket accepted from a listener (or not yet accepted) belongs to
 * whoever owns the listener: find it by the socket's local address.  A
 * listener whose owner is not known yet sets *pending to its cookie.
 */
static const struct vordr_owner *vordr_listener_owner(const struct vordr_pkt *pkt,
						      struct sock *sk, u64 *pending)
{
	const struct vordr_owner *o;
	int dif = pkt->state->in ? pkt->state->in->ifindex : sk->sk_bound_dev_if;
	u8 state = READ_ONCE(sk->sk_state);
	struct sock *l;

	if (sk->sk_protocol != IPPROTO_TCP || state == TCP_LISTEN ||
	    state == TCP_SYN_SENT)
		return NULL;
	l = vordr_listener_of(pkt->state->net, sk, dif);
	if (!l)
		return NULL;
	*pending = vordr_sk_cookie(l);
	o = vordr_ksc_find(*pending);
	if (o)
		*pending = 0;
	else
		vordr_asc_request(l, *pending);
	return o;
}

/*
 * Current, as @id, sends or writes on @sk (@known: it has an owner).  TCP
 * keeps every executable that did: data another executable queued may
 * leave with any packet.  A connection whose server speaks first (SSH,
 * SMTP: before any packet of its client's came in, that would have found
 * it through its listener) is an accepted one all the same: of its
 * listener's kind, in the cache's partitions and in DESTS (its own port
 * names it).  Looked up once a socket, never for a client's (SYN_SENT).
 */
static const struct vordr_owner *vordr_learn(struct sock *sk, u64 cookie,
					     struct vordr_ident *id, bool known)
{
	unsigned int how = VORDR_KSC_SENDER;
	u8 state = READ_ONCE(sk->sk_state);

	if (sk->sk_protocol == IPPROTO_TCP) {
		how |= VORDR_KSC_KEEP;
		if (!known && state != TCP_SYN_SENT && state != TCP_LISTEN && state != TCP_CLOSE &&
		    vordr_listener_of(sock_net(sk), sk, sk->sk_bound_dev_if))
			how |= VORDR_KSC_DERIVED;
	}
	return vordr_ksc_set(sk, cookie, id, task_tgid_nr(current), current_euid(), how);
}

/*
 * vordr_owner() when the known-socket cache has no identity for @cookie
 * (@o: its entry, if any) or another executable sends on it.
 */
static noinline const struct vordr_owner *
vordr_owner_slow(struct vordr_pkt *pkt, struct sock *sk, u64 cookie,
		 const struct vordr_owner *o, bool here)
{
	const struct vordr_owner *l;
	struct vordr_ident *id;
	u64 listener = 0;
	bool asked;
	int err = 0;

	if (o && !o->id && !here &&
	    time_before(jiffies, o->stamp + VORDR_ASC_RETRY))
		return o;		/* nobody was found, a moment ago */
	if (!here) {
		if (sk->sk_kern_sock)
			return o;
		l = vordr_listener_owner(pkt, sk, &listener);
		if (l && l->id) {
			vordr_ident_get(l->id);
			return vordr_ksc_set(sk, cookie, l->id, l->pid, l->uid,
					     VORDR_KSC_DERIVED);
		}
		/*
		 * Not accepted yet (no file), or its listener is being looked
		 * up: the listener's owner decides, so wait for it.
		 */
		if (listener) {
			pkt->wait = !o;
			return o;
		}
		if (!READ_ONCE(sk->sk_socket))
			return o;	/* orphaned: nobody holds it */
		asked = vordr_asc_request(sk, cookie);
		/*
		 * TCP sends the packet again (a SYN after a second), so it
		 * can wait for the owner; a datagram in would be lost for
		 * good, so it is held until the owner is known (asc.c).
		 */
		pkt->wait = !o && sk->sk_protocol == IPPROTO_TCP;
		if (asked && pkt->dir == VORDR_DIR_IN && sk->sk_protocol == IPPROTO_UDP)
			pkt->hold = cookie;
		return o;
	}
	id = vordr_ident_of_current(&err);
	if (!id) {
		if (err == -ENOMEM) {
			pkt->failed = true;
			return NULL;
		}
		/* Not retried on every packet: remembered as unknown. */
		return vordr_ksc_set(sk, cookie, NULL, 0, INVALID_UID, 0);
	}
	o = vordr_learn(sk, cookie, id, o && o->id);
	if (!o)
		pkt->failed = true;
	return o;
}

/*
 * Whether current can be acting on @sk itself (sending, writing): process
 * context with bottom halves enabled, a user's task with an executable,
 * and a socket a user made (see vordr_owner()).
 */
static inline bool vordr_current_acts(const struct sock *sk)
{
	return in_task() && !in_softirq() && !sk->sk_kern_sock && current->mm &&
	       !(current->flags & PF_KTHREAD);
}

/*
 * The owner of @sk.  Learnt from current on a socket's first packet sent
 * in process context, and again when another executable sends on it.
 * Elsewhere (softirq, inbound) a miss on a user's socket asks the
 * active-socket cache; for TCP it sets pkt->wait: the packet is dropped
 * until the owner is known, and the sender's retransmission finds it.
 * pkt->failed: memory ran out.
 */
static const struct vordr_owner *vordr_owner(struct vordr_pkt *pkt,
					     struct sock *sk)
{
	const struct vordr_owner *o;
	u64 cookie = vordr_sk_cookie(sk);
	bool here;

	/*
	 * current is the sender only in process context with bottom halves
	 * enabled, and only on a socket a user made: in softirq current is
	 * whoever was interrupted; with BHs off it may be sending for others
	 * (tun, busy polling); a kernel socket (TCP's per-CPU control socket)
	 * has no owner.  Only a user task has an executable.  And only while
	 * the packet is still on its way down from the sender's system call:
	 * netfilter keeps the hook state on that task's stack (nf_hook()).  A
	 * packet a hook ahead of vordr's queued to user space (NFQUEUE) comes
	 * back through nf_reinject() with the state in the queue's entry, in
	 * the process context of the program that gave the verdict: that
	 * program is not the sender.
	 */
	here = pkt->dir == VORDR_DIR_OUT && vordr_current_acts(sk) &&
	       object_is_on_stack(pkt->state);

	o = vordr_ksc_find(cookie);
	if (likely(o && o->id && (!here || vordr_owner_is_current(o))))
		return o;
	return vordr_owner_slow(pkt, sk, cookie, o, here);
}

/*
 * Current is about to queue data on the TCP socket @sk (watch.c), in its
 * own process context: it is learnt as a sender is, before its data can
 * leave from softirq (the peer's window shut, more than the congestion
 * window allows), where current is somebody else.  What vordr_owner()
 * asks of a sender, asked of the writer.  A writer whose identity cannot
 * be had (no memory for a new one) is not learnt: a write cannot be
 * refused from here, so its data is judged as the socket's known senders
 * (a packet it sends itself in that state is dropped, reason `fail`).
 */
void vordr_hook_writer(struct sock *sk)
{
	const struct vordr_owner *o;
	struct vordr_ident *id;
	u64 cookie;
	int err;

	if (!vordr_current_acts(sk))
		return;
	rcu_read_lock();
	cookie = vordr_sk_cookie(sk);
	o = vordr_ksc_find(cookie);
	if (likely(o && o->id && vordr_owner_is_current(o)))
		goto out;
	id = vordr_ident_of_current(&err);
	if (id)
		vordr_learn(sk, cookie, id, o && o->id);
out:
	rcu_read_unlock();
}

/* How strict a verdict is: allow < pending < block. */
static int vordr_strictness(u8 verdict)
{
	return verdict == VORDR_VALUE_ALLOW ? 0 : verdict == VORDR_VALUE_PENDING ? 1 : 2;
}

/*
 * A TCP socket several executables have sent on: its data may be any of
 * theirs, so the strictest of their verdicts applies (@rule: the latest
 * sender's).  More executables than the entry keeps: blocked, as an
 * unknown owner would be (reason unkproc, no rule).
 */
static noinline const struct vordr_rule *
vordr_strictest(const struct vordr_owner *owner, const struct vordr_pkt *pkt,
		const struct vordr_rule *rule, u8 *reason)
{
	u8 unkrule = vordr_flag(VORDR_FLAG_UNKRULE);
	u8 v = rule ? vordr_rule_verdict(rule) : unkrule;
	unsigned int i;

	*reason = rule ? VORDR_REASON_RULE : VORDR_REASON_NORULE;
	if (owner->crowded) {
		*reason = VORDR_REASON_UNKPROC;
		return NULL;
	}
	for (i = 0; i < owner->nalso; i++) {
		const struct vordr_rule *r = vordr_rule_match(owner->also[i], pkt, owner->uid);
		u8 w = r ? vordr_rule_verdict(r) : unkrule;

		if (vordr_strictness(w) > vordr_strictness(v)) {
			v = w;
			rule = r;
			*reason = r ? VORDR_REASON_RULE : VORDR_REASON_NORULE;
		}
	}
	return rule;
}

static bool vordr_event_wanted(u8 verdict, u8 reason)
{
	if (verdict == VORDR_VALUE_PENDING)
		return true;
	if (reason == VORDR_REASON_NORULE)
		return vordr_flag(VORDR_FLAG_NORULE) == VORDR_VALUE_ENABLED;
	if (verdict == VORDR_VALUE_ALLOW)
		return vordr_flag(VORDR_FLAG_ACCEPTS) == VORDR_VALUE_ENABLED;
	return vordr_flag(VORDR_FLAG_DROPS) == VORDR_VALUE_ENABLED;
}

/*
 * A blocked connection's first SYN, sent from connect() itself: refused, so
 * connect() fails at once with ECONNREFUSED (tcp_connect() hands the
 * error of this transmission back) instead of waiting for its timeout.
 * Only there: a SYN retransmitted from the timer that gets an error is
 * tried again sooner, not given up, so it is dropped as every other
 * packet is.  `pending` drops silently (the application's retry is its
 * answer), and so does a drop while the owner is looked up or memory ran
 * out (the retransmission is judged).  Inbound packets never get here,
 * nor do kernel sockets (NFS, SMB, MPTCP subflows): their callers retry
 * on their own terms.
 */
static noinline unsigned int vordr_refuse(const struct vordr_pkt *pkt, struct sock *sk)
{
	if (pkt->failed || pkt->wait || !sk || !sk_fullsock(sk) ||
	    sk->sk_protocol != IPPROTO_TCP || sk->sk_kern_sock ||
	    READ_ONCE(sk->sk_state) != TCP_SYN_SENT ||
	    !in_task() || in_softirq() || !object_is_on_stack(pkt->state))
		return NF_DROP;
	return NF_DROP_ERR(-ECONNREFUSED);
}

/*
 * The verdict for a packet whose owner is known: its rule, else unkrule;
 * for a protocol no rule names but "any" (UDP-Lite, SCTP, raw protocol
 * numbers), unkprot when no rule matches.
 */
static unsigned int vordr_decide(struct sk_buff *skb, struct vordr_pkt *pkt)
{
	const struct vordr_owner *owner = NULL;
	const struct vordr_rule *rule = NULL;
	const struct vordr_proto *proto;
	struct sock *sk = NULL, *found = NULL;
	u8 verdict, reason;
	time64_t now;
	bool named;
	int uniform;

	vordr_count_packet();
	/* Before anything is read: "block" drops even what cannot be parsed. */
	switch (vordr_flag(VORDR_FLAG_MODE)) {
	case VORDR_VALUE_DISABLED:
		return NF_ACCEPT;
	case VORDR_VALUE_BLOCK:
		verdict = VORDR_VALUE_BLOCK;
		reason = VORDR_REASON_MODE;
		goto out;
	}

	proto = vordr_proto_of(pkt->af, pkt->ipproto);
	if (proto)
		pkt->prot = proto->prot;
	named = vordr_prot_named(pkt->prot);
	if (proto && !pkt->broken) {
		if (!INDIRECT_CALL_2(proto->parse, vordr_udp_parse, vordr_tcp_parse, skb, pkt))
			pkt->broken = true;	/* a truncated transport header */
		else if (proto->infrastructure && proto->infrastructure(pkt))
			return NF_ACCEPT;
	}

	/*
	 * A packet with no transport header to read (truncated, a fragment
	 * after the first, no next header) still has the socket it was sent
	 * on, and follows that socket's rule: only without one can nothing
	 * be said of it.
	 */
	sk = vordr_socket(skb, pkt, pkt->broken ? NULL : proto, &found);
	if (sk)
		owner = vordr_owner(pkt, sk);
	if (!owner || !owner->id) {
		uniform = -1;
		if (!pkt->failed && (pkt->wait || pkt->hold) && named && !pkt->broken)
			uniform = vordr_rules_uniform(vordr_flag(VORDR_FLAG_UNKRULE));
		if (pkt->failed) {
			/*
			 * Out of memory naming a sender that is there: dropped,
			 * whatever `fail` says, or a shortage someone can cause
			 * would open every block rule.  TCP sends it again.
			 */
			verdict = VORDR_VALUE_BLOCK;
			reason = VORDR_REASON_FAIL;
		} else if (pkt->later) {
			/*
			 * A fragment after the first, of nobody known: the first
			 * carries the verdict, and without it nothing is
			 * reassembled.
			 */
			verdict = VORDR_VALUE_ALLOW;
			reason = VORDR_REASON_UNKPROC;
			goto out_quiet;
		} else if (pkt->broken) {
			verdict = vordr_flag(VORDR_FLAG_FAIL);
			reason = VORDR_REASON_FAIL;
		} else if (!named) {
			verdict = vordr_flag(VORDR_FLAG_UNKPROT);
			reason = VORDR_REASON_UNKPROT;
		} else if (uniform >= 0) {
			/* Whoever the owner is, the rules say the same. */
			verdict = uniform;
			reason = VORDR_REASON_NORULE;
		} else if (pkt->wait && pkt->bare && READ_ONCE(sk->sk_state) == TCP_LISTEN) {
			/*
			 * A listener's handshake (SYN in, SYN-ACK out, ACK
			 * in) while its owner is looked up: it carries no
			 * data, and the first data, on the new socket, waits
			 * for the listener's owner.  Holding it back instead
			 * would stall every new server's first client for a
			 * SYN retransmission (a second).
			 */
			verdict = VORDR_VALUE_ALLOW;
			reason = VORDR_REASON_UNKPROC;
		} else if (pkt->hold &&
			   vordr_asc_hold(skb, pkt->state, pkt->hold, VORDR_HOOK_OF(pkt->af))) {
			/* Judged, counted and reported when it comes back. */
			this_cpu_dec(vordr_qpackets);
			if (found && pkt->sk_ref)
				sock_gen_put(found);
			return NF_STOLEN;
		} else {
			/* Being looked up: dropped, the retransmission passes. */
			verdict = pkt->wait ? VORDR_VALUE_BLOCK : vordr_flag(VORDR_FLAG_UNKPROC);
			reason = VORDR_REASON_UNKPROC;
		}
		goto out;
	}

	now = ktime_get_real_seconds();
	rule = vordr_rule_match(owner->id, pkt, owner->uid);
	if (unlikely(owner->nalso || owner->crowded))
		rule = vordr_strictest(owner, pkt, rule, &reason);
	else
		reason = rule ? VORDR_REASON_RULE : VORDR_REASON_NORULE;
	if (rule) {
		verdict = vordr_rule_hit(rule, pkt->len, now);
	} else if (reason == VORDR_REASON_NORULE && !named) {
		verdict = vordr_flag(VORDR_FLAG_UNKPROT);
		reason = VORDR_REASON_UNKPROT;
	} else if (reason == VORDR_REASON_NORULE) {
		verdict = vordr_flag(VORDR_FLAG_UNKRULE);
	} else {
		verdict = VORDR_VALUE_BLOCK;
	}
	vordr_ident_count(owner->id, verdict == VORDR_VALUE_ALLOW, pkt->len, now);
	vordr_ksc_count(owner, pkt, pkt->prot == VORDR_PROT_TCP &&
			(READ_ONCE(sk->sk_state) == TCP_LISTEN ||
			 READ_ONCE(sk->sk_state) == TCP_NEW_SYN_RECV),
			verdict == VORDR_VALUE_ALLOW, now);
	/* DNS let through: a query remembered, an answer read before delivery. */
	if (unlikely(pkt->sport == VORDR_DNS_PORT || pkt->dport == VORDR_DNS_PORT) && verdict == VORDR_VALUE_ALLOW)
		vordr_dns_see(skb, pkt, sk, owner->id);
out:
	if (vordr_event_wanted(verdict, reason))
		vordr_event(pkt, owner, rule, verdict, reason);
out_quiet:
	if (found && pkt->sk_ref)
		sock_gen_put(found);
	if (verdict != VORDR_VALUE_ALLOW)
		return unlikely(pkt->syn) && verdict == VORDR_VALUE_BLOCK ?
		       vordr_refuse(pkt, sk) : NF_DROP;
	if (found && pkt->sk_hand)
		vordr_hand_over(skb, found);
	return NF_ACCEPT;
}

/*
 * Every field but the addresses, which the caller writes.  The descriptor
 * and header buffers of the hooks are __uninitialized: zeroing them at
 * every call (CONFIG_INIT_STACK_ALL_ZERO) cost a datagram flood more than
 * a tenth of vordr's share.
 */
static void vordr_pkt_init(struct vordr_pkt *pkt, const struct sk_buff *skb,
			   const struct nf_hook_state *state, u8 af, u8 ipproto,
			   unsigned int thoff)
{
	pkt->state = state;
	pkt->thoff = thoff;
	pkt->len = skb->len;
	pkt->af = af;
	pkt->dir = state->hook == NF_INET_LOCAL_IN ? VORDR_DIR_IN : VORDR_DIR_OUT;
	pkt->ipproto = ipproto;
	pkt->prot = ipproto;
	pkt->sport = 0;
	pkt->dport = 0;
	pkt->bare = false;
	pkt->syn = false;
	pkt->frag = false;
	pkt->later = false;
	pkt->broken = false;
	pkt->sk_ref = false;
	pkt->sk_hand = false;
	pkt->failed = false;
	pkt->wait = false;
	pkt->hold = 0;
}

/*
 * A packet whose network header cannot be read: no addresses, no
 * protocol.  It still goes through the decision, so mode "block" drops it
 * and a socket it was sent on decides it.
 */
static unsigned int vordr_malformed(struct sk_buff *skb,
				    const struct nf_hook_state *state, u8 af)
{
	struct vordr_pkt pkt __uninitialized;

	vordr_pkt_init(&pkt, skb, state, af, IPPROTO_RAW, skb_network_offset(skb));
	pkt.broken = true;
	memset(&pkt.saddr, 0, sizeof(pkt.saddr));
	memset(&pkt.daddr, 0, sizeof(pkt.daddr));
	return vordr_decide(skb, &pkt);
}

static unsigned int vordr_ipv4(void *priv, struct sk_buff *skb,
			       const struct nf_hook_state *state)
{
	struct vordr_pkt pkt __uninitialized;
	struct iphdr _iph __uninitialized;
	const struct iphdr *iph;

	iph = skb_header_pointer(skb, skb_network_offset(skb), sizeof(_iph), &_iph);
	if (!iph)
		return vordr_malformed(skb, state, AF_INET);
	vordr_pkt_init(&pkt, skb, state, AF_INET, iph->protocol,
		       skb_network_offset(skb) + iph->ihl * 4);
	/* Events send only the first 4 bytes of an IPv4 address. */
	pkt.saddr.ip = iph->saddr;
	pkt.daddr.ip = iph->daddr;
	/*
	 * LOCAL_OUT sees the stack's packets before fragmentation, and
	 * LOCAL_IN after reassembly; only a raw socket writing its own
	 * headers (IP_HDRINCL) sends fragments here, and one after the first
	 * has no transport header.
	 */
	if (iph->ihl < 5)
		pkt.broken = true;
	if (iph->frag_off & htons(IP_OFFSET)) {
		pkt.broken = true;
		pkt.later = true;
	}
	return vordr_decide(skb, &pkt);
}

#if IS_ENABLED(CONFIG_IPV6)
static unsigned int vordr_ipv6(void *priv, struct sk_buff *skb,
			       const struct nf_hook_state *state)
{
	struct ipv6hdr _ip6h __uninitialized;
	struct vordr_pkt pkt __uninitialized;
	const struct ipv6hdr *ip6h;
	__be16 frag_off;
	u8 nexthdr, _nh;
	const u8 *nh;
	int off;

	ip6h = skb_header_pointer(skb, skb_network_offset(skb), sizeof(_ip6h), &_ip6h);
	if (!ip6h)
		return vordr_malformed(skb, state, AF_INET6);
	nexthdr = ip6h->nexthdr;
	off = ipv6_skip_exthdr(skb, skb_network_offset(skb) + sizeof(_ip6h),
			       &nexthdr, &frag_off);
	/* A truncated extension header, or "no next header". */
	vordr_pkt_init(&pkt, skb, state, AF_INET6, off < 0 ? IPPROTO_RAW : nexthdr,
		       off < 0 ? skb_network_offset(skb) + sizeof(_ip6h) : off);
	pkt.saddr.in6 = ip6h->saddr;
	pkt.daddr.in6 = ip6h->daddr;
	if (off < 0) {
		pkt.broken = true;
	} else if (frag_off & htons(IP6_OFFSET)) {
		/*
		 * IPv6 reassembles after LOCAL_IN: a fragment after the first
		 * has no transport header.  ipv6_skip_exthdr() stopped at its
		 * fragment header, whose first byte names the protocol.
		 */
		nh = skb_header_pointer(skb, off, sizeof(_nh), &_nh);
		pkt.ipproto = nh ? *nh : IPPROTO_RAW;
		pkt.prot = pkt.ipproto;
		pkt.broken = true;
		pkt.later = true;
	} else {
		pkt.frag = !!(frag_off & htons(IP6_MF));
	}
	return vordr_decide(skb, &pkt);
}
#endif

static const struct nf_hook_ops vordr_nf_ops[] = {
	{
		.hook = vordr_ipv4,
		.pf = NFPROTO_IPV4,
		.hooknum = NF_INET_LOCAL_OUT,
		.priority = NF_IP_PRI_FILTER,
	},
	{
		.hook = vordr_ipv4,
		.pf = NFPROTO_IPV4,
		.hooknum = NF_INET_LOCAL_IN,
		.priority = NF_IP_PRI_FILTER,
	},
#if IS_ENABLED(CONFIG_IPV6)
	{
		.hook = vordr_ipv6,
		.pf = NFPROTO_IPV6,
		.hooknum = NF_INET_LOCAL_OUT,
		.priority = NF_IP6_PRI_FILTER,
	},
	{
		.hook = vordr_ipv6,
		.pf = NFPROTO_IPV6,
		.hooknum = NF_INET_LOCAL_IN,
		.priority = NF_IP6_PRI_FILTER,
	},
#endif
};

static int __net_init vordr_net_init(struct net *net)
{
	return nf_register_net_hooks(net, vordr_nf_ops, ARRAY_SIZE(vordr_nf_ops));
}

static void __net_exit vordr_net_exit(struct net *net)
{
	nf_unregister_net_hooks(net, vordr_nf_ops, ARRAY_SIZE(vordr_nf_ops));
}

static struct pernet_operations vordr_net_ops = {
	.init = vordr_net_init,
	.exit = vordr_net_exit,
};

int vordr_hook_init(void)
{
	int err = register_pernet_subsys(&vordr_net_ops);

	/*
	 * On failure the namespaces already done were unhooked, but a packet
	 * may still be inside a hook: wait, as vordr_hook_exit() does.
	 */
	if (err)
		synchronize_net();
	return err;
}

void vordr_hook_exit(void)
{
	unregister_pernet_subsys(&vordr_net_ops);
	/*
	 * Packets already inside a hook may still read the caches and the
	 * rule index: wait them out before anything is freed.
	 */
	synchronize_net();
}
