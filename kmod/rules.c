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

struct rules_table {
	struct vordr_rule __rcu **slot;	/* rules_max slots */
	struct hlist_head *index;	/* 1 << rules_bits buckets */
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

/*
 * The most specific rule for @id and @prot: the exact path, then the
 * deepest directory holding it.  Under rcu_read_lock().
 */
static const struct vordr_rule *rules_match(const struct rules_table *t,
					    const struct vordr_ident *id, u8 prot)
{
	const struct vordr_rule *r;
	int i;

	r = rules_best(t, id->hash, id->path, id->len, prot);
	if (r || !READ_ONCE(t->ndirs))
		return r;
	for (i = id->ndirs - 1; i >= 0; i--) {
		r = rules_best(t, id->dir_hash[i], id->path, id->dir_len[i], prot);
		if (r)
			return r;
	}
	return NULL;
}

#define RULES_CACHE_SLOT_BITS 21	/* slot + 1 <= 2^20 (rules_max) */
#define RULES_CACHE_SEQ_MASK (U64_MAX >> RULES_CACHE_SLOT_BITS)

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

/*
 * rules_match() remembered per identity and protocol: the table's sequence
 * count and the slot of the rule matched (0: none).  While the count has
 * not moved, nothing in the table has, and the slot holds that very rule;
 * a packet then costs no path comparison and no directory walk.  Readers
 * never wait: while a writer is at work (odd count) they look up.
 */
const struct vordr_rule *vordr_rule_match(struct vordr_ident *id, u8 prot)
{
	int c = rules_cache_index(prot);
	const struct rules_table *t;
	const struct vordr_rule *r;
	u64 seq, e;
	u32 slot;

	if (id->foreign)
		return NULL;
	if (c < 0)
		return rules_match(rcu_dereference(rules_tab), id, prot);
	seq = atomic64_read(&rules_seq);
	smp_rmb();	/* the count before the table */
	t = rcu_dereference(rules_tab);
	e = atomic64_read(&id->rule_cache[c]);
	if (!(seq & 1) && e >> RULES_CACHE_SLOT_BITS == (seq & RULES_CACHE_SEQ_MASK)) {
		slot = e & ((1u << RULES_CACHE_SLOT_BITS) - 1);
		r = slot ? rcu_dereference(t->slot[slot - 1]) : NULL;
		smp_rmb();	/* the table before the count */
		if (atomic64_read(&rules_seq) == seq && (!r || !rules_expired(r)))
			return r;
	}
	r = rules_match(t, id, prot);
	smp_rmb();	/* the table before the count: a change meanwhile, no tag */
	if (!(seq & 1) && atomic64_read(&rules_seq) == seq)
		atomic64_set(&id->rule_cache[c], (seq & RULES_CACHE_SEQ_MASK) << RULES_CACHE_SLOT_BITS |
			     (r ? r->slot + 1 : 0));
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

static void rules_free_rcu(struct rcu_head *head)
{
	struct vordr_rule *r = container_of(head, struct vordr_rule, rcu);

	free_percpu(r->stats);
	kfree(r);
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
				    u32 portid)
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

static void rules_free(struct vordr_rule *r)
{
	free_percpu(r->stats);
	kfree(r);
}

/*
 * Put @r in @t (the table in force, or a stage): a rule for the same path
 * and protocol is replaced in place (same slot, @r's own counters).
 * rules_lock held.  -ENOSPC: @t is full; @r is then the caller's.
 */
static int rules_insert(struct rules_table *t, struct vordr_rule *r)
{
	struct vordr_rule *old;
	u32 i, slot = 0;

	lockdep_assert_held(&rules_lock);
	old = rules_find(t, r->hash, r->path, r->len, r->prot);
	if (old) {
		r->slot = old->slot;
		hlist_replace_rcu(&old->node, &r->node);
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
	hlist_add_head_rcu(&r->node, rules_bucket(t, r->hash));
	return 0;
}

int vordr_rule_add(u8 prot, const char *path, u8 verdict, u32 timeout,
		   u8 life, const struct net *net, u32 portid)
{
	struct vordr_rule *r;
	int err;

	r = rules_new(prot, path, verdict, timeout, life, net, portid);
	if (IS_ERR(r))
		return PTR_ERR(r);
	mutex_lock(&rules_lock);
	rules_write_begin();
	rules_gc();
	WRITE_ONCE(rules_gen, rules_gen + 1);
	err = rules_insert(rules_w(), r);
	rules_write_end();
	mutex_unlock(&rules_lock);
	if (err)
		rules_free(r);
	return err;
}

int vordr_rule_del(const char *path, bool any_prot, u8 prot)
{
	size_t len = strlen(path);
	u32 hash = vordr_hash(path, len);
	struct vordr_rule *r;
	struct hlist_node *tmp;
	int removed = 0;

	mutex_lock(&rules_lock);
	rules_write_begin();
	rules_gc();
	hlist_for_each_entry_safe(r, tmp, rules_bucket(rules_w(), hash), node) {
		if (!rules_names(r, hash, path, len) ||
		    (!any_prot && r->prot != prot))
			continue;
		rules_retire(r);
		removed++;
	}
	rules_write_end();
	mutex_unlock(&rules_lock);
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
	if (!t->slot || !t->index) {
		rules_table_free(t);
		return NULL;
	}
	for (i = 0; i < (1u << rules_bits); i++)
		INIT_HLIST_HEAD(&t->index[i]);
	return t;
}

/* Frees @t and every rule in it; no reader may still see it. */
static void rules_table_destroy(struct rules_table *t)
{
	struct vordr_rule *r;
	u32 i;

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
 * A lasting rule into stage @s (a later one for the same path and
 * protocol replaces the earlier); -ENOSPC past rules_max rules.
 */
int vordr_rules_stage_add(struct vordr_rules_stage *s, u8 prot, const char *path,
			  u8 verdict)
{
	struct vordr_rule *r;
	int err;

	r = rules_new(prot, path, verdict, 0, VORDR_LIFE_ALWAYS, NULL, 0);
	if (IS_ERR(r))
		return PTR_ERR(r);
	mutex_lock(&rules_lock);
	err = rules_insert(s->t, r);
	mutex_unlock(&rules_lock);
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
			      r->life == VORDR_LIFE_EXIT ? r->owner_portid : 0);
		if (IS_ERR(c)) {
			lost++;
			continue;
		}
		if (r->expires)
			c->timeout = r->timeout;
		if (rules_insert(t, c)) {
			rules_free(c);
			lost++;
		}
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
