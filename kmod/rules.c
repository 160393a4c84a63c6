// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - the rule table.
 *
 * A fixed-capacity circular table of slots (capacity: the rules_max
 * module parameter): a new rule takes the next free slot after the last
 * one taken, wrapping around, so dumps walk the slots in a stable order.
 * A hash index over the rule paths makes lookup one bucket walk whatever
 * the number of rules.  A path ending in '/' is a directory rule and
 * matches every executable below it.
 *
 * Qualified rules (a remote address or prefix, ports, a user: struct
 * vordr_qual) live apart, so a path without any is looked up as before
 * and its identities' rule cache holds: a group per path (gindex) counts
 * them and the prefix lengths they use, and a second index (qindex)
 * hashes each by (group, user, address masked to its prefix, prefix
 * length).  A packet of a path with a group costs one probe per prefix
 * length that path's rules use, for the owner's user and for any user,
 * longest first (an exact address is the longest prefix): at most
 * 2 x 34 for IPv4 and 2 x 130 for IPv6 however many rules there are,
 * and one with no qualified rule costs nothing new.  At most
 * RULES_QKEY_MAX rules share one such key (they differ in protocol,
 * ports or side).
 *
 * Readers (the packet path, dumps) use RCU only.  Writers (netlink
 * handlers, process context) serialize on rules_lock, publish with
 * rcu_assign_pointer()/hlist_add_head_rcu() and retire with call_rcu(); a
 * published rule is never written again except its per-CPU counters.
 *
 * The slots, the index and their counts form one table, itself published
 * through an RCU pointer: a policy load (policy.c) builds a whole new
 * table off to the side (a stage, never seen by readers) and swaps it in
 * with one rcu_assign_pointer(), so a packet sees the old rules or the new
 * ones, never a mix.  Every table has rules_max slots.
 *
 * A rule's life: ALWAYS and REBOOT rules stay until removed (REBOOT only
 * tells the daemon not to save it); an EXIT rule belongs to the netlink
 * socket that added it (its network namespace and port id) and is
 * retired when that socket is released (vordr_rules_release(), from the
 * netlink notifier), however its process ends.  A timeout applies to
 * every life: the earlier end wins.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/jhash.h>
#include <linux/jiffies.h>
#include <linux/log2.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/u64_stats_sync.h>
#include <linux/vmalloc.h>
#include <asm/unaligned.h>

#include "vordr.h"

struct vordr_rule_stats {
	u64_stats_t packets;
	u64_stats_t bytes;
	u64_stats_t lasthit;
	struct u64_stats_sync syncp;
};

struct vordr_rule {
	struct hlist_node node;		/* in rules_index, under RCU */
	struct rcu_head rcu;
	struct vordr_rule_stats __percpu *stats;
	unsigned long expires;		/* jiffies; 0: never */
	u32 timeout;			/* seconds it was given, for dumps */
	u32 hash;
	u32 slot;
	u8 prot;
	u8 verdict;
	u8 life;			/* VORDR_LIFE_* */
	u16 len;
	/* Qualified: its qualifiers, key hash and group (gnode: rules_lock). */
	struct vordr_qual *qual;
	u32 qhash;
	struct rules_group *group;
	struct list_head gnode;
	/*
	 * EXIT: in rules_owned, under rules_lock; the owner's socket by its
	 * namespace (compared, never dereferenced) and port id.
	 */
	struct list_head owned;
	const struct net *owner_net;
	u32 owner_portid;
	char path[];
};

unsigned int vordr_rules_max = 16384;

#define RULES_QKEY_MAX 64
/* A name rule's key family (no address family is this); plen: 1 for a domain. */
#define RULES_AF_NAME 0xff
/* Names of one address looked at per packet, and labels of each. */
#define RULES_NAMES 8
#define RULES_LABELS 16

/*
 * A path's qualified rules: how many, how many name a user or no
 * address, and per family which prefix lengths (bits, read locklessly;
 * set before a rule using one is published, cleared after the last goes).
 */
struct rules_group {
	struct hlist_node node;		/* in gindex, under RCU */
	struct rcu_head rcu;
	struct list_head rules;		/* rules_lock */
	u32 hash;
	u16 len;
	u32 n, nuser, nnoaddr, nname;
	u32 n4[33], n6[129];
	DECLARE_BITMAP(plens4, 33);
	DECLARE_BITMAP(plens6, 129);
	char path[];
};

struct rules_table {
	struct vordr_rule __rcu **slot;	/* rules_max slots */
	struct hlist_head *index;	/* 1 << rules_bits buckets */
	struct hlist_head *qindex;	/* qualified rules, as many */
	struct hlist_head *gindex;	/* their groups, as many */
	u32 nqual;	/* qualified rules; read locklessly */
	u32 count;
	u32 cursor;	/* where the search for a free slot starts */
	u32 ndirs;	/* directory rules; read locklessly */
	u32 timed;	/* rules that expire */
	u32 nverdict[2];	/* allow rules, block rules; read locklessly */
};

/* A table being filled by a policy load; never published until swapped in. */
struct vordr_rules_stage {
	struct rules_table *t;
};

/*
 * rules_lock guards every write to the table in force (rules_tab) and to
 * a stage's: slots, index and counts.
 */
static DEFINE_MUTEX(rules_lock);
static struct rules_table __rcu *rules_tab;
static unsigned int rules_bits;
static LIST_HEAD(rules_owned);	/* EXIT rules (of the table in force only) */
static u32 rules_nowned;	/* their number; read locklessly */
static u32 rules_seed;
static u32 rules_gen = 1;	/* bumped by every change; 0 means "none" to dumps */
/*
 * A sequence count for the identities' rule caches: odd while rules_lock's
 * holder changes the table, bumped before and after.  64 bits, so that an
 * identity's cached match (which keeps its low 43) could only be taken
 * for a later one after 2^42 changes of the table.
 */
static atomic64_t rules_seq = ATOMIC64_INIT(0);

static void rules_write_begin(void)
{
	lockdep_assert_held(&rules_lock);
	atomic64_inc(&rules_seq);
	smp_wmb();	/* odd before any change is seen */
}

static void rules_write_end(void)
{
	lockdep_assert_held(&rules_lock);
	smp_wmb();	/* every change seen before even */
	atomic64_inc(&rules_seq);
}

/* The table in force, for its writer. */
static struct rules_table *rules_w(void)
{
	return rcu_dereference_protected(rules_tab, lockdep_is_held(&rules_lock));
}

static void rules_tally(struct rules_table *t, const struct vordr_rule *r, int delta)
{
	u32 *n = &t->nverdict[r->verdict == VORDR_VALUE_BLOCK];

	WRITE_ONCE(*n, *n + delta);
}

/*
 * The verdict every executable would get, whoever it is, if there is one:
 * with no block rule and unkrule allow, everything is allowed; with no
 * allow rule and unkrule block, everything is blocked.  Lets a packet
 * whose owner is still being looked up pass or go without waiting.
 * -1: the rules tell owners apart.
 */
int vordr_rules_uniform(u8 unkrule)
{
	const struct rules_table *t;
	int v = -1;

	rcu_read_lock();
	t = rcu_dereference(rules_tab);
	if (unkrule == VORDR_VALUE_ALLOW && !READ_ONCE(t->nverdict[1]))
		v = VORDR_VALUE_ALLOW;
	else if (unkrule == VORDR_VALUE_BLOCK && !READ_ONCE(t->nverdict[0]))
		v = VORDR_VALUE_BLOCK;
	rcu_read_unlock();
	return v;
}

u32 vordr_hash(const char *s, u16 len)
{
	return jhash(s, len, rules_seed);
}

static struct hlist_head *rules_bucket(const struct rules_table *t, u32 hash)
{
	return &t->index[hash & ((1u << rules_bits) - 1)];
}

static bool rules_expired(const struct vordr_rule *r)
{
	return r->expires && time_after_eq(jiffies, r->expires);
}

/* Whether @r names exactly @path[0..len), whose hash is @hash. */
static bool rules_names(const struct vordr_rule *r, u32 hash,
			const char *path, u16 len)
{
	return r->hash == hash && r->len == len && !memcmp(r->path, path, len);
}

/*
 * The best rule in one bucket for @path[0..len) and @prot: a rule naming
 * the protocol beats an "any" rule.
 */
static const struct vordr_rule *rules_best(const struct rules_table *t, u32 hash,
					   const char *path, u16 len, u8 prot)
{
	const struct vordr_rule *r, *any = NULL;

	hlist_for_each_entry_rcu(r, rules_bucket(t, hash), node) {
		if (!rules_names(r, hash, path, len) || rules_expired(r))
			continue;
		if (r->prot == prot)
			return r;
		if (r->prot == VORDR_PROT_ANY)
			any = r;
	}
	return any;
}

static struct hlist_head *rules_qbucket(const struct hlist_head *index, u32 hash)
{
	return (struct hlist_head *)&index[hash & ((1u << rules_bits) - 1)];
}

/* The group of @path[0..len) in @t, if it has qualified rules. */
static struct rules_group *rules_group_find(const struct rules_table *t, u32 hash,
					    const char *path, u16 len)
{
	struct rules_group *g;

	hlist_for_each_entry_rcu(g, rules_qbucket(t->gindex, hash), node,
				 lockdep_is_held(&rules_lock))
		if (g->hash == hash && g->len == len && !memcmp(g->path, path, len))
			return g;
	return NULL;
}

/* @a masked to its first @plen bits into @m (zero past them). */
static void rules_mask(union nf_inet_addr *m, const union nf_inet_addr *a,
		       u8 af, u8 plen)
{
	unsigned int i, words = af == AF_INET ? 1 : 4;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < words && plen; i++) {
		u32 bits = min_t(u32, plen, 32);

		m->all[i] = a->all[i] & htonl(bits == 32 ? ~0u : ~(~0u >> bits));
		plen -= bits;
	}
}

static u32 rules_qkey(u32 path_hash, u32 user, u8 af, u8 plen,
		      const union nf_inet_addr *m)
{
	u32 k[7] = { path_hash, user, af << 8 | plen,
		     m->all[0], m->all[1], m->all[2], m->all[3] };

	return jhash2(k, ARRAY_SIZE(k), rules_seed);
}

/* A name's key "address": its hash (a domain's without its "*."). */
static void rules_name_key(union nf_inet_addr *m, const char *name, size_t len)
{
	memset(m, 0, sizeof(*m));
	m->all[0] = jhash(name, len, rules_seed);
}

static bool rules_is_domain(const struct vordr_qual *q)
{
	return q->nlen > 2 && q->name[0] == '*' && q->name[1] == '.';
}

static bool rules_ports_hold(const struct vordr_qual *q, u16 port)
{
	unsigned int lo = 0, hi = q->nports;

	/* Sorted and apart: a binary search for the last range starting <= port. */
	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (q->ports[mid][0] <= port)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && port <= q->ports[lo - 1][1];
}

/* The packet as qualified rules see it. */
struct rules_qpkt {
	const struct vordr_pkt *pkt;
	const union nf_inet_addr *remote;
	u16 rport, lport;
	bool ported;	/* TCP or UDP: ports to compare */
	bool portless;	/* ... but not read (a fragment after the first, a broken header) */
};

/*
 * How specific a qualified rule that matched is, past its key: a port
 * beats none, a named protocol "any", and block allow.
 */
static unsigned int rules_qscore(const struct vordr_rule *r)
{
	return (r->qual->nports ? 4 : 0) | (r->prot != VORDR_PROT_ANY ? 2 : 0) |
	       (r->verdict == VORDR_VALUE_BLOCK);
}

/* Whether qualified rule @r's protocol and ports fit @qp (its key matched). */
static bool rules_qfit(const struct vordr_rule *r, const struct rules_qpkt *qp)
{
	const struct vordr_qual *q = r->qual;

	if (rules_expired(r) || (r->prot != qp->pkt->prot && r->prot != VORDR_PROT_ANY))
		return false;
	if (!q->nports)
		return true;
	/*
	 * Ports not read: a port rule may block the packet, never allow it
	 * (fail closed: a header cut short cannot dodge "block port 22").
	 */
	if (!qp->ported)
		return false;
	if (qp->portless)
		return r->verdict == VORDR_VALUE_BLOCK;
	return rules_ports_hold(q, q->side == VORDR_SIDE_FROM ? qp->lport : qp->rport);
}

/*
 * A probe's key: an address masked to @plen in family @af, or (@af
 * RULES_AF_NAME, @plen 1 for a domain) a name's hash with @name[0..@len).
 */
struct rules_pkey {
	u8 af, plen;
	union nf_inet_addr m;
	const char *name;
	size_t len;
};

static bool rules_pkey_is(const struct vordr_qual *q, const struct rules_pkey *k)
{
	size_t skip = k->plen ? 2 : 0;

	if (k->af != RULES_AF_NAME)
		return !q->nlen && q->af == k->af && q->plen == k->plen &&
		       !memcmp(&q->addr, &k->m, sizeof(k->m));
	return q->nlen && rules_is_domain(q) == !!k->plen && q->nlen == k->len + skip &&
	       !memcmp(q->name + skip, k->name, k->len);
}

/* The best rule of @g with this user and key, for @qp: one bucket's walk. */
static const struct vordr_rule *rules_probe_key(const struct rules_table *t,
						const struct rules_group *g, u32 user,
						const struct rules_pkey *k,
						const struct rules_qpkt *qp)
{
	const struct vordr_rule *r, *best = NULL;
	u32 h = rules_qkey(g->hash, user, k->af, k->plen, &k->m);

	hlist_for_each_entry_rcu(r, rules_qbucket(t->qindex, h), node) {
		if (r->qhash != h || r->group != g || r->qual->user != user ||
		    !rules_pkey_is(r->qual, k) || !rules_qfit(r, qp))
			continue;
		if (!best || rules_qscore(r) > rules_qscore(best))
			best = r;
	}
	return best;
}

/* The best rule of @g with this user, family, prefix length, for @qp. */
static const struct vordr_rule *rules_probe(const struct rules_table *t,
					    const struct rules_group *g, u32 user,
					    u8 af, u8 plen, const struct rules_qpkt *qp)
{
	struct rules_pkey k = { .af = af, .plen = plen };

	if (af)
		rules_mask(&k.m, qp->remote, af, plen);
	else
		memset(&k.m, 0, sizeof(k.m));
	return rules_probe_key(t, g, user, &k, qp);
}

/*
 * The best name rule of @g with this user for @name[0..len) (@domain: the
 * rules "*.name"), for @qp.
 */
static const struct vordr_rule *rules_probe_name(const struct rules_table *t,
						 const struct rules_group *g, u32 user,
						 bool domain, const char *name, size_t len,
						 const struct rules_qpkt *qp)
{
	struct rules_pkey k = { .af = RULES_AF_NAME, .plen = domain, .name = name, .len = len };

	rules_name_key(&k.m, name, len);
	return rules_probe_key(t, g, user, &k, qp);
}

/*
 * The best name rule of @g with this user for the names @id's own lookups
 * gave the packet's remote address: an exact name first, then the deepest
 * domain holding one.  Under RCU.
 */
static const struct vordr_rule *rules_names_best(const struct rules_table *t,
						 const struct rules_group *g, u32 user,
						 const struct vordr_ident *id,
						 const struct rules_qpkt *qp)
{
	const char *names[RULES_NAMES];
	const struct vordr_rule *r;
	unsigned int n, i, k;

	n = vordr_dns_names(id, qp->pkt->af, qp->remote, names, RULES_NAMES);
	for (i = 0; i < n; i++) {
		r = rules_probe_name(t, g, user, false, names[i], strlen(names[i]), qp);
		if (r)
			return r;
	}
	for (i = 0; i < n; i++) {
		const char *s = names[i];

		for (k = 0; s && k < RULES_LABELS; k++) {
			r = rules_probe_name(t, g, user, true, s, strlen(s), qp);
			if (r)
				return r;
			s = strchr(s, '.');
			if (s)
				s++;
		}
	}
	return NULL;
}

/* The most specific qualified rule of @g for the packet: user, address, port, protocol. */
static const struct vordr_rule *rules_qbest(const struct rules_table *t,
					    const struct rules_group *g,
					    const struct vordr_ident *id,
					    const struct rules_qpkt *qp, u32 uid1)
{
	const struct vordr_pkt *pkt = qp->pkt;
	const unsigned long *plens = pkt->af == AF_INET ? g->plens4 : g->plens6;
	unsigned int nbits = pkt->af == AF_INET ? 33 : 129;
	const struct vordr_rule *r;
	int u;

	for (u = READ_ONCE(g->nuser) ? 0 : 1; u < 2; u++) {
		u32 user = u ? 0 : uid1;
		unsigned int size = nbits, b;

		for (b = find_last_bit(plens, size); b < size; b = find_last_bit(plens, size)) {
			r = rules_probe(t, g, user, pkt->af, b, qp);
			if (r)
				return r;
			size = b;
			if (!size)
				break;
		}
		/* An address beats a name beats none (SPEC section 2). */
		if (READ_ONCE(g->nname)) {
			r = rules_names_best(t, g, user, id, qp);
			if (r)
				return r;
		}
		if (READ_ONCE(g->nnoaddr)) {
			r = rules_probe(t, g, user, 0, 0, qp);
			if (r)
				return r;
		}
	}
	return NULL;
}

/*
 * The most specific rule for @id and @qp: the exact path, then the
 * deepest directory holding it; within a path, a qualified rule that
 * matches before an unqualified one.  *@qual: a path with qualified rules
 * was looked at, so the answer depends on the packet, not only on @id
 * and its protocol.  Under rcu_read_lock().
 */
static const struct vordr_rule *rules_match(const struct rules_table *t,
					    const struct vordr_ident *id,
					    const struct rules_qpkt *qp, u32 uid1,
					    bool *qual)
{
	bool groups = READ_ONCE(t->nqual);
	const struct vordr_rule *r;
	int i = id->ndirs;
	u32 hash = id->hash;
	u16 len = id->len;
	u8 prot = qp->pkt->prot;

	*qual = false;
	for (;;) {
		if (unlikely(groups)) {
			const struct rules_group *g = rules_group_find(t, hash, id->path, len);

			if (g) {
				*qual = true;
				r = rules_qbest(t, g, id, qp, uid1);
				if (r)
					return r;
			}
		}
		r = rules_best(t, hash, id->path, len, prot);
		/* ndirs counts qualified directory rules too. */
		if (r || --i < 0 || !READ_ONCE(t->ndirs))
			return r;
		hash = id->dir_hash[i];
		len = id->dir_len[i];
	}
}

#define RULES_CACHE_SLOT_BITS 21	/* slot + 1 <= 2^20 (rules_max) */
#define RULES_CACHE_SEQ_MASK (U64_MAX >> RULES_CACHE_SLOT_BITS)
/* A cached "qualified rules decide, per packet" (no slot is this high). */
#define RULES_CACHE_QUAL ((1u << RULES_CACHE_SLOT_BITS) - 1)

static int rules_cache_index(u8 prot)
{
	switch (prot) {
	case VORDR_PROT_TCP:
		return 0;
	case VORDR_PROT_UDP:
		return 1;
	case VORDR_PROT_ICMP:
		return 2;
	}
	return -1;
}

static void rules_qpkt(struct rules_qpkt *qp, const struct vordr_pkt *pkt)
{
	bool out = pkt->dir == VORDR_DIR_OUT;

	qp->pkt = pkt;
	qp->remote = out ? &pkt->daddr : &pkt->saddr;
	qp->rport = out ? pkt->dport : pkt->sport;
	qp->lport = out ? pkt->sport : pkt->dport;
	qp->ported = pkt->prot == VORDR_PROT_TCP || pkt->prot == VORDR_PROT_UDP;
	qp->portless = pkt->broken || pkt->later;
}

/*
 * rules_match() remembered per identity and protocol: the table's sequence
 * count and the slot of the rule matched (0: none; RULES_CACHE_QUAL: a
 * path with qualified rules decides, looked up for each packet).  While
 * the count has not moved, nothing in the table has, and the slot holds
 * that very rule; a packet then costs no path comparison and no directory
 * walk.  Readers never wait: while a writer is at work (odd count) they
 * look up.  @uid: the socket's owner, for rules naming a user.
 */
/* rules_match() for a packet: its remote end and ports read once, here. */
static const struct vordr_rule *rules_match_pkt(const struct rules_table *t,
						const struct vordr_ident *id,
						const struct vordr_pkt *pkt, kuid_t uid,
						bool *qual)
{
	struct rules_qpkt qp;

	rules_qpkt(&qp, pkt);
	return rules_match(t, id, &qp, __kuid_val(uid) + 1, qual);
}

const struct vordr_rule *vordr_rule_match(struct vordr_ident *id,
					  const struct vordr_pkt *pkt, kuid_t uid)
{
	int c = rules_cache_index(pkt->prot);
	const struct rules_table *t;
	const struct vordr_rule *r;
	u64 seq, e;
	u32 slot;
	bool qual;

	if (id->foreign)
		return NULL;
	if (c < 0)
		return rules_match_pkt(rcu_dereference(rules_tab), id, pkt, uid, &qual);
	seq = atomic64_read(&rules_seq);
	smp_rmb();	/* the count before the table */
	t = rcu_dereference(rules_tab);
	e = atomic64_read(&id->rule_cache[c]);
	if (!(seq & 1) && e >> RULES_CACHE_SLOT_BITS == (seq & RULES_CACHE_SEQ_MASK)) {
		slot = e & ((1u << RULES_CACHE_SLOT_BITS) - 1);
		if (slot == RULES_CACHE_QUAL)
			return rules_match_pkt(t, id, pkt, uid, &qual);
		r = slot ? rcu_dereference(t->slot[slot - 1]) : NULL;
		smp_rmb();	/* the table before the count */
		if (atomic64_read(&rules_seq) == seq && (!r || !rules_expired(r)))
			return r;
	}
	r = rules_match_pkt(t, id, pkt, uid, &qual);
	smp_rmb();	/* the table before the count: a change meanwhile, no tag */
	if (!(seq & 1) && atomic64_read(&rules_seq) == seq)
		atomic64_set(&id->rule_cache[c], (seq & RULES_CACHE_SEQ_MASK) << RULES_CACHE_SLOT_BITS |
			     (qual ? RULES_CACHE_QUAL : r ? r->slot + 1 : 0));
	return r;
}

/* Count a packet against @r and return its verdict. */
u8 vordr_rule_hit(const struct vordr_rule *r, unsigned int bytes, time64_t now)
{
	/* The hook may be preempted (PREEMPT_RCU): stay on this CPU. */
	struct vordr_rule_stats *s = get_cpu_ptr(r->stats);
	unsigned long flags;

	flags = u64_stats_update_begin_irqsave(&s->syncp);
	u64_stats_inc(&s->packets);
	u64_stats_add(&s->bytes, bytes);
	u64_stats_set(&s->lasthit, now);
	u64_stats_update_end_irqrestore(&s->syncp, flags);
	put_cpu_ptr(r->stats);
	return r->verdict;
}

/* @r's verdict, without counting a hit. */
u8 vordr_rule_verdict(const struct vordr_rule *r)
{
	return r->verdict;
}

/* Changes with every rule added, replaced or removed. */
u32 vordr_rules_gen(void)
{
	return READ_ONCE(rules_gen);
}

static void rules_free(struct vordr_rule *r)
{
	free_percpu(r->stats);
	kfree(r->qual);
	kfree(r);
}

static void rules_free_rcu(struct rcu_head *head)
{
	rules_free(container_of(head, struct vordr_rule, rcu));
}

/* A qualified rule leaves @t's group of its path (freed after the last). */
static void rules_ungroup(struct rules_table *t, struct vordr_rule *r)
{
	struct rules_group *g = r->group;
	const struct vordr_qual *q = r->qual;

	lockdep_assert_held(&rules_lock);
	list_del(&r->gnode);
	if (q->user)
		WRITE_ONCE(g->nuser, g->nuser - 1);
	if (q->nlen)
		WRITE_ONCE(g->nname, g->nname - 1);
	else if (q->af == AF_INET && !--g->n4[q->plen])
		clear_bit(q->plen, g->plens4);
	else if (q->af == AF_INET6 && !--g->n6[q->plen])
		clear_bit(q->plen, g->plens6);
	else if (!q->af)
		WRITE_ONCE(g->nnoaddr, g->nnoaddr - 1);
	WRITE_ONCE(t->nqual, t->nqual - 1);
	if (--g->n)
		return;
	hlist_del_rcu(&g->node);
	kfree_rcu(g, rcu);
}

/* An EXIT rule joins or leaves rules_owned; rules_lock held. */
static void rules_own(struct vordr_rule *r, bool join)
{
	lockdep_assert_held(&rules_lock);
	if (r->life != VORDR_LIFE_EXIT)
		return;
	if (join)
		list_add(&r->owned, &rules_owned);
	else
		list_del(&r->owned);
	WRITE_ONCE(rules_nowned, rules_nowned + (join ? 1 : -1));
}

/* Unlink @r from the table in force; rules_lock held. */
static void rules_retire(struct vordr_rule *r)
{
	struct rules_table *t = rules_w();

	WRITE_ONCE(rules_gen, rules_gen + 1);
	rules_own(r, false);
	hlist_del_rcu(&r->node);
	if (r->qual)
		rules_ungroup(t, r);
	RCU_INIT_POINTER(t->slot[r->slot], NULL);
	t->count--;
	rules_tally(t, r, -1);
	if (r->expires)
		t->timed--;
	if (r->path[r->len - 1] == '/')
		WRITE_ONCE(t->ndirs, t->ndirs - 1);
	call_rcu(&r->rcu, rules_free_rcu);
}

static struct vordr_rule *rules_find(struct rules_table *t, u32 hash,
				     const char *path, u16 len, u8 prot)
{
	struct vordr_rule *r;

	hlist_for_each_entry_rcu(r, rules_bucket(t, hash), node,
				 lockdep_is_held(&rules_lock))
		if (r->prot == prot && rules_names(r, hash, path, len))
			return r;
	return NULL;
}

const char *vordr_rule_path(const struct vordr_rule *r, u8 *prot)
{
	*prot = r->prot;
	return r->path;
}

/* Retire every expired rule; rules_lock held. */
static void rules_gc(void)
{
	struct rules_table *t = rules_w();
	struct vordr_rule *r;
	u32 i;

	if (!t->timed)
		return;
	for (i = 0; i < vordr_rules_max; i++) {
		r = rcu_dereference_protected(t->slot[i],
					      lockdep_is_held(&rules_lock));
		if (r && rules_expired(r))
			rules_retire(r);
	}
}

/* A new rule, not yet in any table; NULL or an ERR_PTR. */
static struct vordr_rule *rules_new(u8 prot, const char *path, u8 verdict,
				    u32 timeout, u8 life, const struct net *net,
				    u32 portid, const struct vordr_qual *q)
{
	size_t len = strlen(path);
	struct vordr_rule *r;
	int cpu;

	if (len == 0 || len >= U16_MAX)
		return ERR_PTR(-EINVAL);
	if (timeout > VORDR_TIMEOUT_MAX)
		return ERR_PTR(-ERANGE);
	if (life == VORDR_LIFE_EXIT && !net)
		return ERR_PTR(-EINVAL);
	/* Identities hash only their shallowest VORDR_MAX_DEPTH directories. */
	if (path[len - 1] == '/') {
		size_t i, n = 0;

		for (i = 0; i < len; i++)
			n += path[i] == '/';
		if (n > VORDR_MAX_DEPTH)
			return ERR_PTR(-EDOM);
	}
	r = kzalloc(struct_size(r, path, len + 1), GFP_KERNEL);
	if (!r)
		return ERR_PTR(-ENOMEM);
	r->stats = alloc_percpu(struct vordr_rule_stats);
	if (!r->stats) {
		kfree(r);
		return ERR_PTR(-ENOMEM);
	}
	if (q) {
		r->qual = kmemdup(q, vordr_qual_size(q), GFP_KERNEL);
		if (!r->qual) {
			rules_free(r);
			return ERR_PTR(-ENOMEM);
		}
	}
	for_each_possible_cpu(cpu)
		u64_stats_init(&per_cpu_ptr(r->stats, cpu)->syncp);
	memcpy(r->path, path, len + 1);
	r->len = len;
	r->prot = prot;
	r->verdict = verdict;
	r->hash = vordr_hash(path, len);
	r->life = life;
	if (life == VORDR_LIFE_EXIT) {
		r->owner_net = net;
		r->owner_portid = portid;
	}
	if (timeout) {
		/* Never 0 (never expires); may be one jiffy late. */
		r->expires = (jiffies + (unsigned long)timeout * HZ) | 1;
		r->timeout = timeout;
	}
	return r;
}

/* @r's qualified key, as rules_probe() computes it from its group's path hash. */
static void rules_qhash(struct vordr_rule *r)
{
	const struct vordr_qual *q = r->qual;
	union nf_inet_addr m;

	if (!q->nlen) {
		r->qhash = rules_qkey(r->hash, q->user, q->af, q->plen, &q->addr);
		return;
	}
	if (rules_is_domain(q))
		rules_name_key(&m, q->name + 2, q->nlen - 2);
	else
		rules_name_key(&m, q->name, q->nlen);
	r->qhash = rules_qkey(r->hash, q->user, RULES_AF_NAME, rules_is_domain(q), &m);
}

/*
 * A group for @r's path, made before rules_lock's write section (nothing
 * allocates while readers skip their cache); NULL for want of memory.
 */
static struct rules_group *rules_group_new(const struct vordr_rule *r)
{
	struct rules_group *g = kzalloc(struct_size(g, path, r->len), GFP_KERNEL);

	if (!g)
		return NULL;
	INIT_LIST_HEAD(&g->rules);
	g->hash = r->hash;
	g->len = r->len;
	memcpy(g->path, r->path, r->len);
	return g;
}

/*
 * The rule in @t equal to @r (path, protocol, qualifiers), if there is
 * one; *@same: how many rules share @r's qualified key.
 */
static struct vordr_rule *rules_find_equal(struct rules_table *t,
					   const struct vordr_rule *r,
					   unsigned int *same)
{
	const struct vordr_qual *q = r->qual;
	struct vordr_rule *o, *eq = NULL;

	*same = 0;
	if (!q)
		return rules_find(t, r->hash, r->path, r->len, r->prot);
	hlist_for_each_entry_rcu(o, rules_qbucket(t->qindex, r->qhash), node,
				 lockdep_is_held(&rules_lock)) {
		const struct vordr_qual *p = o->qual;

		if (o->qhash != r->qhash || !rules_names(o, r->hash, r->path, r->len) ||
		    p->user != q->user || p->af != q->af || p->plen != q->plen ||
		    memcmp(&p->addr, &q->addr, sizeof(q->addr)) || p->nlen != q->nlen ||
		    memcmp(p->name, q->name, q->nlen))
			continue;
		(*same)++;
		if (o->prot == r->prot && !memcmp(p, q, vordr_qual_size(q)))
			eq = o;
	}
	return eq;
}

/*
 * Put @r in @t (the table in force, or a stage): a rule equal in path,
 * protocol and qualifiers is replaced in place (same slot, @r's own
 * counters).  A qualified @r whose path has no group yet takes *@spare
 * (rules_group_new(); set to NULL when taken).  rules_lock held.
 * -ENOSPC: @t is full, -E2BIG: too many rules share @r's qualified key,
 * -ENOMEM: no group; @r is then the caller's.
 */
static int rules_insert(struct rules_table *t, struct vordr_rule *r,
			struct rules_group **spare)
{
	struct rules_group *g = NULL;
	struct vordr_rule *old;
	unsigned int same;
	u32 i, slot = 0;

	lockdep_assert_held(&rules_lock);
	if (r->qual)
		rules_qhash(r);
	old = rules_find_equal(t, r, &same);
	if (old) {
		r->slot = old->slot;
		r->group = old->group;
		hlist_replace_rcu(&old->node, &r->node);
		if (old->qual)
			list_replace(&old->gnode, &r->gnode);
		rcu_assign_pointer(t->slot[r->slot], r);
		t->timed += !!r->expires - !!old->expires;
		rules_own(old, false);
		rules_own(r, true);
		rules_tally(t, old, -1);
		rules_tally(t, r, 1);
		call_rcu(&old->rcu, rules_free_rcu);
		return 0;
	}
	if (t->count >= vordr_rules_max)
		return -ENOSPC;
	if (same >= RULES_QKEY_MAX)
		return -E2BIG;
	if (r->qual) {
		g = rules_group_find(t, r->hash, r->path, r->len);
		if (!g) {
			if (!spare || !*spare)
				return -ENOMEM;
			g = *spare;
			*spare = NULL;
		}
	}
	for (i = 0; i < vordr_rules_max; i++) {
		slot = (t->cursor + i) % vordr_rules_max;
		if (!rcu_access_pointer(t->slot[slot]))
			break;
	}
	r->slot = slot;
	t->cursor = (slot + 1) % vordr_rules_max;
	t->count++;
	rules_tally(t, r, 1);
	t->timed += !!r->expires;
	rules_own(r, true);
	if (r->path[r->len - 1] == '/')
		WRITE_ONCE(t->ndirs, t->ndirs + 1);
	rcu_assign_pointer(t->slot[slot], r);
	if (!g) {
		hlist_add_head_rcu(&r->node, rules_bucket(t, r->hash));
		return 0;
	}
	/* The group's counts and bits first: a reader that finds the rule uses them. */
	r->group = g;
	list_add(&r->gnode, &g->rules);
	g->n++;
	if (r->qual->user)
		WRITE_ONCE(g->nuser, g->nuser + 1);
	if (r->qual->nlen)
		WRITE_ONCE(g->nname, g->nname + 1);
	else if (r->qual->af == AF_INET && !g->n4[r->qual->plen]++)
		set_bit(r->qual->plen, g->plens4);
	else if (r->qual->af == AF_INET6 && !g->n6[r->qual->plen]++)
		set_bit(r->qual->plen, g->plens6);
	else if (!r->qual->af)
		WRITE_ONCE(g->nnoaddr, g->nnoaddr + 1);
	WRITE_ONCE(t->nqual, t->nqual + 1);
	if (g->n == 1)
		hlist_add_head_rcu(&g->node, rules_qbucket(t->gindex, g->hash));
	hlist_add_head_rcu(&r->node, rules_qbucket(t->qindex, r->qhash));
	return 0;
}

int vordr_rule_add(u8 prot, const char *path, u8 verdict, u32 timeout,
		   u8 life, const struct net *net, u32 portid,
		   const struct vordr_qual *q)
{
	struct rules_group *spare = NULL;
	struct vordr_rule *r;
	int err;

	r = rules_new(prot, path, verdict, timeout, life, net, portid, q);
	if (IS_ERR(r))
		return PTR_ERR(r);
	if (q) {
		spare = rules_group_new(r);
		if (!spare) {
			rules_free(r);
			return -ENOMEM;
		}
	}
	mutex_lock(&rules_lock);
	rules_write_begin();
	rules_gc();
	WRITE_ONCE(rules_gen, rules_gen + 1);
	err = rules_insert(rules_w(), r, &spare);
	rules_write_end();
	mutex_unlock(&rules_lock);
	kfree(spare);
	if (err)
		rules_free(r);
	return err;
}

int vordr_rule_del(const char *path, bool any_prot, u8 prot,
		   const struct vordr_qual *q)
{
	size_t len = strlen(path);
	u32 hash = vordr_hash(path, len);
	struct vordr_rule *r, *key = NULL;
	struct rules_table *t;
	struct rules_group *g;
	struct hlist_node *tmp;
	unsigned int same;
	int removed = 0;

	if (len == 0 || len >= U16_MAX)
		return -ENOENT;
	if (q && !any_prot) {
		/* That one qualified rule: found as an equal one would be. */
		key = kzalloc(struct_size(key, path, len + 1), GFP_KERNEL);
		if (!key)
			return -ENOMEM;
		memcpy(key->path, path, len + 1);
		key->len = len;
		key->hash = hash;
		key->prot = prot;
		key->qual = (struct vordr_qual *)q;
		rules_qhash(key);
	}
	mutex_lock(&rules_lock);
	rules_write_begin();
	rules_gc();
	t = rules_w();
	if (key) {
		r = rules_find_equal(t, key, &same);
		if (r) {
			rules_retire(r);
			removed++;
		}
	} else {
		hlist_for_each_entry_safe(r, tmp, rules_bucket(t, hash), node) {
			if (!rules_names(r, hash, path, len) ||
			    (!any_prot && r->prot != prot))
				continue;
			rules_retire(r);
			removed++;
		}
		/* Every rule of the path: its qualified ones too (the group goes with the last). */
		while (any_prot && (g = rules_group_find(t, hash, path, len))) {
			rules_retire(list_first_entry(&g->rules, struct vordr_rule, gnode));
			removed++;
		}
	}
	rules_write_end();
	mutex_unlock(&rules_lock);
	kfree(key);	/* not its qualifiers: the caller's */
	return removed ? 0 : -ENOENT;
}

/* Remove every rule (@all) or every rule with @verdict.  Skips none. */
void vordr_rule_clear(bool all, u8 verdict)
{
	struct vordr_rule *r;
	u32 i;

	mutex_lock(&rules_lock);
	rules_write_begin();
	for (i = 0; i < vordr_rules_max; i++) {
		r = rcu_dereference_protected(rules_w()->slot[i],
					      lockdep_is_held(&rules_lock));
		if (r && (all || r->verdict == verdict))
			rules_retire(r);
	}
	rules_write_end();
	mutex_unlock(&rules_lock);
}

/*
 * The netlink socket @portid of @net is being released: retire the EXIT
 * rules it added.  Process context (the netlink notifier), any socket of
 * any protocol family's generic netlink: nothing is locked while none is
 * owned.  The number retired.
 */
unsigned int vordr_rules_release(const struct net *net, u32 portid)
{
	struct vordr_rule *r, *tmp;
	unsigned int n = 0;

	if (!READ_ONCE(rules_nowned))
		return 0;
	mutex_lock(&rules_lock);
	rules_write_begin();
	list_for_each_entry_safe(r, tmp, &rules_owned, owned) {
		if (r->owner_net != net || r->owner_portid != portid)
			continue;
		rules_retire(r);
		n++;
	}
	rules_write_end();
	mutex_unlock(&rules_lock);
	return n;
}

bool vordr_rule_next(u32 *pos, bool all, u8 verdict, struct vordr_rule_view *v)
{
	const struct rules_table *t = rcu_dereference(rules_tab);
	const struct vordr_rule *r;
	unsigned int start;
	int cpu;

	for (; *pos < vordr_rules_max; (*pos)++) {
		r = rcu_dereference(t->slot[*pos]);
		if (!r || (!all && r->verdict != verdict) || rules_expired(r))
			continue;
		if (r->expires) {
			long left = (long)(r->expires - jiffies);

			/* Rounded up, but never more than it was given. */
			v->timeout = left > 0 ? min_t(u32, DIV_ROUND_UP(left, HZ), r->timeout) : 1;
		} else {
			v->timeout = 0;
		}
		v->prot = r->prot;
		v->verdict = r->verdict;
		v->life = r->life;
		v->len = r->len;
		v->path = r->path;
		v->qual = r->qual;
		v->packets = 0;
		v->bytes = 0;
		v->lasthit = 0;
		for_each_possible_cpu(cpu) {
			const struct vordr_rule_stats *s = per_cpu_ptr(r->stats, cpu);
			u64 packets, bytes, last;

			do {
				start = u64_stats_fetch_begin(&s->syncp);
				packets = u64_stats_read(&s->packets);
				bytes = u64_stats_read(&s->bytes);
				last = u64_stats_read(&s->lasthit);
			} while (u64_stats_fetch_retry(&s->syncp, start));
			v->packets += packets;
			v->bytes += bytes;
			v->lasthit = max(v->lasthit, last);
		}
		return true;
	}
	return false;
}

size_t vordr_qual_bytes(const struct vordr_qual *q, u8 *buf)
{
	size_t alen = q->af == AF_INET ? 4 : q->af == AF_INET6 ? 16 : 0, n = 0;
	unsigned int i;

	put_unaligned_le32(q->user, buf);
	n += 4;
	buf[n++] = alen;
	memcpy(buf + n, &q->addr, alen);
	n += alen;
	buf[n++] = q->plen;
	buf[n++] = q->side;
	buf[n++] = q->nports;
	for (i = 0; i < q->nports; i++, n += 4) {
		put_unaligned_le16(q->ports[i][0], buf + n);
		put_unaligned_le16(q->ports[i][1], buf + n + 2);
	}
	buf[n++] = q->nlen;
	memcpy(buf + n, q->name, q->nlen);
	n += q->nlen;
	return n;
}

/* An absolute path with no empty, "." or ".." component: what d_path() prints. */
bool vordr_path_valid(const char *p)
{
	size_t n = strlen(p);

	if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../"))
		return false;
	if ((n >= 2 && !strcmp(p + n - 2, "/.")) ||
	    (n >= 3 && !strcmp(p + n - 3, "/..")))
		return false;
	return true;
}

static void rules_table_free(struct rules_table *t)
{
	if (!t)
		return;
	kvfree(t->gindex);
	kvfree(t->qindex);
	kvfree(t->index);
	kvfree(t->slot);
	kfree(t);
}

static struct rules_table *rules_table_new(void)
{
	struct rules_table *t = kzalloc(sizeof(*t), GFP_KERNEL);
	unsigned int i;

	if (!t)
		return NULL;
	t->slot = kvcalloc(vordr_rules_max, sizeof(*t->slot), GFP_KERNEL);
	t->index = kvcalloc(1u << rules_bits, sizeof(*t->index), GFP_KERNEL);
	t->qindex = kvcalloc(1u << rules_bits, sizeof(*t->qindex), GFP_KERNEL);
	t->gindex = kvcalloc(1u << rules_bits, sizeof(*t->gindex), GFP_KERNEL);
	if (!t->slot || !t->index || !t->qindex || !t->gindex) {
		rules_table_free(t);
		return NULL;
	}
	for (i = 0; i < (1u << rules_bits); i++) {
		INIT_HLIST_HEAD(&t->index[i]);
		INIT_HLIST_HEAD(&t->qindex[i]);
		INIT_HLIST_HEAD(&t->gindex[i]);
	}
	return t;
}

/* Frees @t and every rule and group in it; no reader may still see it. */
static void rules_table_destroy(struct rules_table *t)
{
	struct rules_group *g;
	struct hlist_node *tmp;
	struct vordr_rule *r;
	u32 i;

	for (i = 0; i < (1u << rules_bits); i++)
		hlist_for_each_entry_safe(g, tmp, &t->gindex[i], node)
			kfree(g);

	for (i = 0; i < vordr_rules_max; i++) {
		if (!(i & 1023))
			cond_resched();
		r = rcu_dereference_protected(t->slot[i], true);
		if (r)
			rules_free(r);
	}
	rules_table_free(t);
}

struct vordr_rules_stage *vordr_rules_stage_new(void)
{
	struct vordr_rules_stage *s = kzalloc(sizeof(*s), GFP_KERNEL);

	if (!s)
		return NULL;
	s->t = rules_table_new();
	if (!s->t) {
		kfree(s);
		return NULL;
	}
	return s;
}

void vordr_rules_stage_free(struct vordr_rules_stage *s)
{
	if (!s)
		return;
	if (s->t)
		rules_table_destroy(s->t);
	kfree(s);
}

/*
 * A lasting rule into stage @s (a later one for the same path, protocol
 * and qualifiers replaces the earlier); -ENOSPC past rules_max rules.
 */
int vordr_rules_stage_add(struct vordr_rules_stage *s, u8 prot, const char *path,
			  u8 verdict, const struct vordr_qual *q)
{
	struct rules_group *spare = NULL;
	struct vordr_rule *r;
	int err;

	r = rules_new(prot, path, verdict, 0, VORDR_LIFE_ALWAYS, NULL, 0, q);
	if (IS_ERR(r))
		return PTR_ERR(r);
	if (q) {
		spare = rules_group_new(r);
		if (!spare) {
			rules_free(r);
			return -ENOMEM;
		}
	}
	mutex_lock(&rules_lock);
	err = rules_insert(s->t, r, &spare);
	mutex_unlock(&rules_lock);
	kfree(spare);
	if (err)
		rules_free(r);
	return err;
}

/*
 * The rules of @old made for a while (for TIME, until exit, until reboot)
 * are not the saved policy's to drop: a copy of each goes into @t, over a
 * staged rule for the same path and protocol (the later decision), with
 * the time it has left and, for until exit, its owner (rules_owned).  One
 * that no longer fits or gets no memory is dropped, and said.  rules_lock
 * held; rules_owned already emptied of @old's.
 */
static void rules_carry(struct rules_table *old, struct rules_table *t)
{
	struct rules_group *spare;
	struct vordr_rule *r, *c;
	unsigned int lost = 0;
	u32 i, left;

	for (i = 0; i < vordr_rules_max; i++) {
		if (!(i & 1023))
			cond_resched();
		r = rcu_dereference_protected(old->slot[i], lockdep_is_held(&rules_lock));
		if (!r || (r->life == VORDR_LIFE_ALWAYS && !r->expires) || rules_expired(r))
			continue;
		left = r->expires ? max_t(long, 1, DIV_ROUND_UP((long)(r->expires - jiffies), HZ)) : 0;
		c = rules_new(r->prot, r->path, r->verdict, left, r->life,
			      r->life == VORDR_LIFE_EXIT ? r->owner_net : NULL,
			      r->life == VORDR_LIFE_EXIT ? r->owner_portid : 0, r->qual);
		if (IS_ERR(c)) {
			lost++;
			continue;
		}
		if (r->expires)
			c->timeout = r->timeout;
		/* @t is a stage no reader sees: allocating here is fine. */
		spare = c->qual ? rules_group_new(c) : NULL;
		if (rules_insert(t, c, &spare)) {
			rules_free(c);
			lost++;
		}
		kfree(spare);
	}
	if (lost)
		pr_warn_ratelimited("saved policy: %u temporary rules did not fit beside it and are gone\n", lost);
}

/*
 * Stage @s becomes the table in force, all at once: the saved policy's
 * lasting rules replace every lasting rule before it; temporary rules
 * stay (rules_carry).  @then runs right after the swap, under rules_lock
 * (a load's flags).  Consumes @s.  Sleeps for a grace period.
 */
void vordr_rules_swap(struct vordr_rules_stage *s, void (*then)(void *), void *arg)
{
	struct rules_table *old;
	struct vordr_rule *r, *tmp;

	mutex_lock(&rules_lock);
	old = rules_w();
	/* The old table's until-exit rules own nothing once it is gone; their copies will. */
	list_for_each_entry_safe(r, tmp, &rules_owned, owned)
		list_del(&r->owned);
	WRITE_ONCE(rules_nowned, 0);
	/* Allocates and may sleep: before the write section, rules_lock held. */
	rules_carry(old, s->t);
	rules_write_begin();
	WRITE_ONCE(rules_gen, rules_gen + 1);
	rcu_assign_pointer(rules_tab, s->t);
	s->t = NULL;
	if (then)
		then(arg);
	rules_write_end();
	mutex_unlock(&rules_lock);
	kfree(s);
	synchronize_rcu();
	rules_table_destroy(old);
}

int vordr_rules_init(void)
{
	struct rules_table *t;

	rules_bits = order_base_2(vordr_rules_max);
	if (rules_bits < 4)
		rules_bits = 4;
	t = rules_table_new();
	if (!t)
		return -ENOMEM;
	RCU_INIT_POINTER(rules_tab, t);
	rules_seed = get_random_u32();
	return 0;
}

/* Called after hooks and netlink are gone. */
void vordr_rules_exit(void)
{
	vordr_rule_clear(true, 0);
	/* rules_free_rcu is this module's code: wait for every callback. */
	rcu_barrier();
	rules_table_free(rcu_dereference_protected(rules_tab, true));
	RCU_INIT_POINTER(rules_tab, NULL);
}
