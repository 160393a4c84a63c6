// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - known-socket cache (ksc): which task and executable own a socket.
 *
 * Keyed by the socket cookie, a 64-bit number the kernel hands out once
 * per socket and never again, so neither a freed and reallocated struct
 * sock nor a recycled inode number can find another socket's owner.
 *
 * An entry is learnt from the sending task on the first packet a socket
 * sends in process context (connect(), sendmsg()), and learnt again when
 * another executable sends on it (a socket inherited across exec or
 * passed over SCM_RIGHTS).  Packets sent or received in softirq (ACKs,
 * retransmits, inbound) find the owner here; on a miss the active-socket
 * cache (asc.c) looks for it in the process table.  Entries are immutable
 * once published: a new owner replaces the whole entry.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/sock_diag.h>
#include <linux/spinlock.h>
#include <net/sock.h>

#include "vordr.h"

#define KSC_BITS 14	/* 16384 buckets, 131072 entries */
#define KSC_BUCKET_MAX 8	/* entries per bucket before the oldest goes */

struct vordr_ksc_entry {
	struct hlist_node node;
	struct rcu_head rcu;
	u64 cookie;
	u8 nr;			/* place in its bucket's insertion order */
	struct vordr_owner owner;
};

struct vordr_ksc_bucket {
	struct hlist_head head;
	u8 count;
	u8 next_nr;
};

/* ksc_lock serializes writers of every bucket; readers use RCU only. */
static DEFINE_SPINLOCK(ksc_lock);
static struct vordr_ksc_bucket ksc_table[1 << KSC_BITS];
static struct kmem_cache *ksc_cache;

/* vordr_sk_cookie() of a socket that has none yet: hands one out. */
u64 vordr_sk_cookie_new(struct sock *sk)
{
	u32 c[2];

	sock_diag_save_cookie(sk, c);
	return ((u64)c[1] << 32) | c[0];
}

static struct vordr_ksc_bucket *ksc_bucket(u64 cookie)
{
	return &ksc_table[hash_64(cookie, KSC_BITS)];
}

static struct vordr_ksc_entry *ksc_lookup(struct vordr_ksc_bucket *b,
					  u64 cookie)
{
	struct vordr_ksc_entry *e;

	hlist_for_each_entry_rcu(e, &b->head, node,
				 lockdep_is_held(&ksc_lock))
		if (e->cookie == cookie)
			return e;
	return NULL;
}

/* Caller in an RCU read-side section (netfilter hooks are). */
const struct vordr_owner *vordr_ksc_find(u64 cookie)
{
	struct vordr_ksc_entry *e = ksc_lookup(ksc_bucket(cookie), cookie);

	return e ? &e->owner : NULL;
}

static void ksc_free_rcu(struct rcu_head *head)
{
	struct vordr_ksc_entry *e = container_of(head, struct vordr_ksc_entry, rcu);

	if (e->owner.id)
		vordr_ident_put(e->owner.id);
	kmem_cache_free(ksc_cache, e);
}

/*
 * Any context.  Replaces an entry already there for @cookie.  Returns the
 * new owner, or NULL (and @id's reference dropped) if memory ran out.
 */
static const struct vordr_owner *ksc_set(u64 cookie, struct vordr_ident *id,
					 pid_t pid, kuid_t uid, bool weak)
{
	struct vordr_ksc_bucket *b = ksc_bucket(cookie);
	struct vordr_ksc_entry *e, *old, *victim = NULL;
	unsigned long flags;

	e = kmem_cache_alloc(ksc_cache, GFP_ATOMIC | __GFP_NOWARN);
	if (!e) {
		if (id)
			vordr_ident_put(id);
		return NULL;
	}
	e->cookie = cookie;
	e->owner.id = id;
	e->owner.pid = pid;
	e->owner.uid = uid;
	e->owner.stamp = jiffies;

	spin_lock_irqsave(&ksc_lock, flags);
	old = ksc_lookup(b, cookie);
	if (old && weak && old->owner.id) {
		/* Learnt from its sender while the offer was made: keep that. */
		spin_unlock_irqrestore(&ksc_lock, flags);
		if (id)
			vordr_ident_put(id);
		kmem_cache_free(ksc_cache, e);
		return NULL;
	}
	e->nr = b->next_nr++;
	if (old) {
		hlist_replace_rcu(&old->node, &e->node);
		victim = old;
	} else {
		if (b->count >= KSC_BUCKET_MAX) {
			struct vordr_ksc_entry *it;

			/* Evict the oldest: the number furthest behind. */
			hlist_for_each_entry(it, &b->head, node)
				if (!victim || (u8)(b->next_nr - it->nr) >
					       (u8)(b->next_nr - victim->nr))
					victim = it;
			hlist_del_rcu(&victim->node);
			b->count--;
		}
		hlist_add_head_rcu(&e->node, &b->head);
		b->count++;
	}
	spin_unlock_irqrestore(&ksc_lock, flags);

	if (victim)
		call_rcu(&victim->rcu, ksc_free_rcu);
	return &e->owner;
}

const struct vordr_owner *vordr_ksc_set(u64 cookie, struct vordr_ident *id,
					pid_t pid, kuid_t uid)
{
	return ksc_set(cookie, id, pid, uid, false);
}

/* From the process table (asc): never overrides an owner learnt since. */
void vordr_ksc_offer(u64 cookie, struct vordr_ident *id, pid_t pid, kuid_t uid)
{
	ksc_set(cookie, id, pid, uid, true);
}

int vordr_ksc_init(void)
{
	size_t i;

	ksc_cache = KMEM_CACHE(vordr_ksc_entry, 0);
	if (!ksc_cache)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(ksc_table); i++) {
		INIT_HLIST_HEAD(&ksc_table[i].head);
		ksc_table[i].count = 0;
		ksc_table[i].next_nr = 0;
	}
	return 0;
}

/* Called after the hooks and the asc are gone: no writer, no new reader. */
void vordr_ksc_exit(void)
{
	struct vordr_ksc_entry *e;
	struct hlist_node *tmp;
	unsigned long flags;
	size_t i;

	spin_lock_irqsave(&ksc_lock, flags);
	for (i = 0; i < ARRAY_SIZE(ksc_table); i++) {
		hlist_for_each_entry_safe(e, tmp, &ksc_table[i].head, node) {
			hlist_del_rcu(&e->node);
			call_rcu(&e->rcu, ksc_free_rcu);
		}
		ksc_table[i].count = 0;
	}
	spin_unlock_irqrestore(&ksc_lock, flags);
	/* The callbacks are this module's code and use ksc_cache. */
	rcu_barrier();
	kmem_cache_destroy(ksc_cache);
}
