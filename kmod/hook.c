// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - netfilter entry: every packet's verdict starts here.
 *
 * Order of the decision: the mode; the protocol (others follow unkprot);
 * the owning socket and its executable (unknown: unkproc); the most
 * specific rule (none: unkrule).  The hooks run in every network namespace
 * (pernet_operations), inside rcu_read_lock(), in task context for
 * connect() and sendmsg() and in softirq for ACKs, retransmits and
 * loopback replies: nothing here sleeps.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ip.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <net/inet_sock.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "vordr.h"

static unsigned int vordr_verdict(u32 value)
{
	return value == VORDR_VALUE_ALLOW ? NF_ACCEPT : NF_DROP;
}

/* The owner of @sk, learnt from the current task if this is its first packet. */
static const struct vordr_ident *vordr_owner(struct sock *sk, bool *failed)
{
	const struct vordr_ident *id;
	int err = 0;

	id = vordr_ksc_find(sk);
	if (id)
		return id;
	/*
	 * current is the sender only in process context with bottom halves
	 * enabled, and only on a socket a user made: in softirq current is
	 * whoever was interrupted; with BHs off it may be receiving for
	 * others (tun, busy polling); a kernel socket (TCP's per-CPU control
	 * socket sending RSTs for everyone) has no owner at all.  Only a user
	 * task has an executable.
	 */
	if (!in_task() || in_softirq() || sk->sk_kern_sock || !current->mm ||
	    (current->flags & PF_KTHREAD))
		return NULL;
	id = vordr_ksc_learn(sk, &err);
	if (!id && err == -ENOMEM)
		*failed = true;
	return id;
}

static unsigned int vordr_decide(struct sk_buff *skb, u8 prot)
{
	const struct vordr_ident *id;
	const struct vordr_rule *rule;
	bool failed = false;
	struct sock *sk;

	switch (vordr_flag(VORDR_FLAG_MODE)) {
	case VORDR_VALUE_DISABLED:
		return NF_ACCEPT;
	case VORDR_VALUE_BLOCK:
		return NF_DROP;
	}

	switch (prot) {
	case VORDR_PROT_TCP:
	case VORDR_PROT_UDP:
	case VORDR_PROT_ICMP:
		break;
	default:
		return vordr_verdict(vordr_flag(VORDR_FLAG_UNKPROT));
	}

	/* A request socket stands for its listener; a time-wait one for nobody. */
	sk = skb_to_full_sk(skb);
	if (!sk || !sk_fullsock(sk))
		return vordr_verdict(vordr_flag(VORDR_FLAG_UNKPROC));

	id = vordr_owner(sk, &failed);
	if (!id)
		return vordr_verdict(vordr_flag(failed ? VORDR_FLAG_FAIL :
						VORDR_FLAG_UNKPROC));

	rule = vordr_rule_match(id, prot);
	if (rule)
		return vordr_verdict(vordr_rule_hit(rule, skb->len));
	/* pending: drop now, the console will answer with a rule. */
	return vordr_verdict(vordr_flag(VORDR_FLAG_UNKRULE));
}

static unsigned int vordr_ipv4_out(void *priv, struct sk_buff *skb,
				   const struct nf_hook_state *state)
{
	const struct iphdr *iph;
	struct iphdr _iph;

	vordr_count_packet();
	iph = skb_header_pointer(skb, skb_network_offset(skb), sizeof(_iph), &_iph);
	if (!iph)
		return vordr_verdict(vordr_flag(VORDR_FLAG_FAIL));
	return vordr_decide(skb, iph->protocol);
}

static const struct nf_hook_ops vordr_nf_ops[] = {
	{
		.hook = vordr_ipv4_out,
		.pf = NFPROTO_IPV4,
		.hooknum = NF_INET_LOCAL_OUT,
		.priority = NF_IP_PRI_FILTER,
	},
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
	return register_pernet_subsys(&vordr_net_ops);
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
