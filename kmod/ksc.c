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
 * once published, but for their flow's counters (dest.c): a new owner
 * replaces the whole entry.
 *
 * Bounded and partitioned: every entry counts against its owner's user
 * and kind (learnt from a sender or the process table; or derived from a
 * listener, for accepted TCP sockets), at most vordr_ksc_user_max each,
 * and a user at its bound evicts its own oldest entry, never another's.
 * Only when all entries together reach vordr_ksc_max does a new one evict
 * the oldest of the largest partition.  An entry holds a reference to its
 * socket (not to its memory's reuse: to the struct itself), so a closed
 * socket, of which the entry holds the last reference, is seen and its
 * entry dropped: at the next insertion into its partition (its two oldest
 * entries are checked) or by a sweep of the whole table every
 * KSC_SWEEP_ROUNDS seconds.  Identities named by entries of closed
 * sockets are so given back, and the identity bound holds.  Buckets are
 * chosen by a keyed hash (hsiphash) of the cookie, which a user may read
 * (SO_COOKIE) but cannot aim at another's bucket, and are not bounded
 * but by the total.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/log2.h>
#include <linux/random.h>
#include <linux/rculist.h>
#include <linux/siphash.h>
#include <linux/slab.h>
#include <linux/sock_diag.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/ipv6.h>
#include <net/sock.h>

#include "vordr.h"

#define KSC_PART_BITS 8
#define KSC_CHECK 2		/* oldest entries of a partition checked per insertion */
#define KSC_SWEEP_ROUNDS 4	/* the sweep covers the table in this many seconds */

/* Module parameters (main.c): read at load. */
unsigned int vordr_ksc_max = 131072;
unsigned int vordr_ksc_user_max = 16384;

/*
 * One user's entries of one kind, oldest first.  @count weighs each
 * entry by the identities it names (1 + nalso), so the bounds bound the
 * identities a user's entries can keep in use as well.
 */
struct ksc_part {
	struct hlist_node node;
	struct list_head lru;
	kuid_t uid;
	bool derived;
	unsigned int count;
};


/*
 * The packets of an entry's socket to the flow it first saw (dest.c):
 * @state 0 until a packet keys it, 1 while one does, 2 keyed (then the
 * key never changes); the counts go to the owner's destination table when
 * the entry goes or the sweep passes (exchanged with 0).
 */
struct ksc_flow {
	atomic_t state;
	bool derived;			/* accepted from a listener, or a listener */
	u8 af, prot;
	u16 lport, rport;
	union nf_inet_addr raddr;
	atomic64_t ap, ab, bp, bb;
	u64 folded;			/* packets taken by ksc_flow_fold() */
	time64_t last;			/* racy: a second off at worst */
};

struct vordr_ksc_entry {
	struct hlist_node node;
	struct list_head lru;		/* in its partition, ksc_lock */
	struct rcu_head rcu;
	u64 cookie;
	struct sock *sk;		/* a reference, or NULL */
	struct ksc_part *part;		/* ksc_lock */
	struct ksc_flow flow;
	struct vordr_owner owner;
};

static unsigned int ksc_weight(const struct vordr_ksc_entry *e)
{
	return 1 + e->owner.nalso;
}

/* ksc_lock serializes writers of every bucket and partition; readers use RCU. */
static DEFINE_SPINLOCK(ksc_lock);
static struct hlist_head *ksc_table;
static unsigned int ksc_bits;
static hsiphash_key_t ksc_key;
static struct hlist_head ksc_parts[1 << KSC_PART_BITS];
static unsigned int ksc_count;		/* ksc_lock; read locklessly */
static struct ksc_part *ksc_heavy;	/* ksc_lock: the largest partition seen */
static bool ksc_dying;			/* ksc_lock: module exit, no more heavy */
static struct kmem_cache *ksc_cache;
static unsigned int ksc_sweep_pos;	/* the sweep's own */
static void ksc_sweep(struct work_struct *work);
static DECLARE_DELAYED_WORK(ksc_sweep_work, ksc_sweep);

/* vordr_sk_cookie() of a socket that has none yet: hands one out. */
u64 vordr_sk_cookie_new(struct sock *sk)
{
	u32 c[2];

	sock_diag_save_cookie(sk, c);
	return ((u64)c[1] << 32) | c[0];
}

unsigned int vordr_ksc_count_now(void)
{
	return READ_ONCE(ksc_count);
}

static struct hlist_head *ksc_bucket(u64 cookie)
{
	u32 h = hsiphash_2u32((u32)cookie, (u32)(cookie >> 32), &ksc_key);

	return &ksc_table[h & ((1u << ksc_bits) - 1)];
}

static struct vordr_ksc_entry *ksc_lookup(struct hlist_head *b, u64 cookie)
{
	struct vordr_ksc_entry *e;

	hlist_for_each_entry_rcu(e, b, node, lockdep_is_held(&ksc_lock))
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

bool vordr_owner_is_current(const struct vordr_owner *o)
{
	unsigned int i;

	if (o->id && vordr_ident_is_current(o->id))
		return true;
	for (i = 0; i < o->nalso; i++)
		if (vordr_ident_is_current(o->also[i]))
			return true;
	return false;
}

static void ksc_owner_put(struct vordr_owner *o)
{
	unsigned int i;

	if (o->id)
		vordr_ident_put(o->id);
	for (i = 0; i < o->nalso; i++)
		vordr_ident_put(o->also[i]);
}

/*
 * Whether this end's port names the destination (side "from"): a socket
 * accepted from a listener (or the listener), or a datagram socket
 * answering from a lower, non-ephemeral port.
 */
static bool ksc_side_from(bool derived, u8 prot, u16 lport, u16 rport)
{
	return derived || (prot == VORDR_PROT_UDP && lport < rport && lport < 32768);
}

/* The service's side of a flow (dest.c): which port names it. */
static void ksc_flow_key(const struct ksc_flow *f, struct vordr_dest_key *k)
{
	memset(k, 0, sizeof(*k));
	k->af = f->af;
	k->prot = f->prot;
	k->addr = f->raddr;
	if (f->prot != VORDR_PROT_TCP && f->prot != VORDR_PROT_UDP) {
		k->side = VORDR_SIDE_TO;
	} else if (ksc_side_from(f->derived, f->prot, f->lport, f->rport)) {
		k->side = VORDR_SIDE_FROM;
		k->port = f->lport;
	} else {
		k->side = VORDR_SIDE_TO;
		k->port = f->rport;
	}
}

/*
 * @e's flow counts, taken (zeroed), to its owner's destinations.  Under
 * ksc_lock with @e linked (the sweep), or once @e is unlinked (its free):
 * never two at once.
 */
static void ksc_flow_fold(struct vordr_ksc_entry *e)
{
	struct ksc_flow *f = &e->flow;
	struct vordr_dest_counts c;
	struct vordr_dest_key k;

	if (atomic_read_acquire(&f->state) != 2 || !e->owner.id ||
	    (!atomic64_read(&f->ap) && !atomic64_read(&f->bp)))
		return;		/* nothing since the last (the sweep's usual case) */
	c.ap = atomic64_xchg(&f->ap, 0);
	c.ab = atomic64_xchg(&f->ab, 0);
	c.bp = atomic64_xchg(&f->bp, 0);
	c.bb = atomic64_xchg(&f->bb, 0);
	f->folded += c.ap + c.bp;
	ksc_flow_key(f, &k);
	vordr_dest_add(e->owner.id, &k, &c, READ_ONCE(f->last), f->folded);
}

/*
 * Whether @pkt's destination (ksc_flow_key()'s, not its whole 4-tuple) is
 * @f's: a listener's SYNs from one client address, or a server's datagrams
 * from one, count on the entry whatever their remote ports.
 */
static bool ksc_flow_is(const struct ksc_flow *f, const struct vordr_pkt *pkt,
			const union nf_inet_addr *raddr, u16 lport, u16 rport, bool service)
{
	if (f->af != pkt->af || f->prot != pkt->prot ||
	    (pkt->af == AF_INET ? f->raddr.ip != raddr->ip : !ipv6_addr_equal(&f->raddr.in6, &raddr->in6)))
		return false;
	/* Ports not read (a later fragment, a cut header): the socket's own. */
	if (pkt->broken || pkt->later)
		return true;
	if (lport != f->lport || (service && !f->derived))
		return false;
	/* Side "from" (this end's port, the same): the packet on that side too. */
	if (ksc_side_from(f->derived, f->prot, f->lport, f->rport))
		return ksc_side_from(f->derived, pkt->prot, lport, rport);
	return rport == f->rport;
}

static inline void ksc_flow_add(struct ksc_flow *f, bool allowed, unsigned int len, time64_t now)
{
	if (allowed) {
		atomic64_inc(&f->ap);
		atomic64_add(len, &f->ab);
	} else {
		atomic64_inc(&f->bp);
		atomic64_add(len, &f->bb);
	}
	if (READ_ONCE(f->last) != now)
		WRITE_ONCE(f->last, now);
}

/*
 * vordr_ksc_count()'s other cases, out of its line (no stack frame there):
 * the flow's first packet keys it; a packet to another destination than
 * the flow's (or not keyable) goes straight to the table.
 */
static noinline void ksc_count_slow(const struct vordr_owner *o, struct ksc_flow *f,
				    const struct vordr_pkt *pkt, const union nf_inet_addr *raddr,
				    u16 lport, u16 rport, bool service, bool allowed, time64_t now)
{
	struct vordr_dest_counts c = { 0 };
	struct vordr_dest_key k;
	struct ksc_flow one;
	int state = atomic_read_acquire(&f->state);

	if (state == 0 && !pkt->broken && !pkt->later &&
	    atomic_cmpxchg(&f->state, 0, 1) == 0) {
		f->derived |= service;
		f->af = pkt->af;
		f->prot = pkt->prot;
		memset(&f->raddr, 0, sizeof(f->raddr));
		memcpy(&f->raddr, raddr, pkt->af == AF_INET ? 4 : sizeof(*raddr));
		f->lport = lport;
		f->rport = rport;
		atomic_set_release(&f->state, 2);
		ksc_flow_add(f, allowed, pkt->len, now);	/* the packet that keyed it */
		return;
	}
	if (state == 2 && ksc_flow_is(f, pkt, raddr, lport, rport, service)) {
		ksc_flow_add(f, allowed, pkt->len, now);	/* its destination, another port */
		return;
	}
	one.derived = f->derived || service;
	one.af = pkt->af;
	one.prot = pkt->prot;
	one.lport = pkt->broken || pkt->later ? 0 : lport;
	one.rport = pkt->broken || pkt->later ? 0 : rport;
	memset(&one.raddr, 0, sizeof(one.raddr));
	memcpy(&one.raddr, raddr, pkt->af == AF_INET ? 4 : sizeof(*raddr));
	ksc_flow_key(&one, &k);
	if (allowed) {
		c.ap = 1;
		c.ab = pkt->len;
	} else {
		c.bp = 1;
		c.bb = pkt->len;
	}
	vordr_dest_add(o->id, &k, &c, now, 0);
}

/*
 * After the verdict, from the hook (any context, under RCU): @pkt counted
 * against the flow of the entry @o is in, keyed by its first packet.
 */
void vordr_ksc_count(const struct vordr_owner *o, const struct vordr_pkt *pkt,
		     bool service, bool allowed, time64_t now)
{
	struct vordr_ksc_entry *e = container_of(o, struct vordr_ksc_entry, owner);
	struct ksc_flow *f = &e->flow;
	const union nf_inet_addr *raddr = pkt->dir == VORDR_DIR_OUT ? &pkt->daddr : &pkt->saddr;
	bool ported = pkt->prot == VORDR_PROT_TCP || pkt->prot == VORDR_PROT_UDP;
	u16 lport = !ported ? 0 : pkt->dir == VORDR_DIR_OUT ? pkt->sport : pkt->dport;
	u16 rport = !ported ? 0 : pkt->dir == VORDR_DIR_OUT ? pkt->dport : pkt->sport;

	/* The usual case: the socket's own 4-tuple (ksc_flow_is() then holds). */
	if (likely(atomic_read_acquire(&f->state) == 2 && f->lport == lport && f->rport == rport &&
		   f->af == pkt->af && f->prot == pkt->prot && (!service || f->derived) &&
		   (pkt->af == AF_INET ? f->raddr.ip == raddr->ip :
		    ipv6_addr_equal(&f->raddr.in6, &raddr->in6)))) {
		ksc_flow_add(f, allowed, pkt->len, now);
		return;
	}
	ksc_count_slow(o, f, pkt, raddr, lport, rport, service, allowed, now);
}

static void ksc_free(struct vordr_ksc_entry *e)
{
	ksc_flow_fold(e);
	ksc_owner_put(&e->owner);
	if (e->sk)
		sock_put(e->sk);
	kmem_cache_free(ksc_cache, e);
}

static void ksc_free_rcu(struct rcu_head *head)
{
	ksc_free(container_of(head, struct vordr_ksc_entry, rcu));
}

/* Whether the entry holds the last reference to its socket: closed. */
static bool ksc_dead(const struct vordr_ksc_entry *e)
{
	return e->sk && refcount_read(&e->sk->sk_refcnt) == 1;
}

static struct hlist_head *ksc_part_bucket(kuid_t uid, bool derived)
{
	return &ksc_parts[hash_32(__kuid_val(uid) * 2 + derived, KSC_PART_BITS)];
}

static struct ksc_part *ksc_part_find(kuid_t uid, bool derived)
{
	struct ksc_part *p;

	lockdep_assert_held(&ksc_lock);
	hlist_for_each_entry(p, ksc_part_bucket(uid, derived), node)
		if (uid_eq(p->uid, uid) && p->derived == derived)
			return p;
	return NULL;
}

/* The largest partition, found again (only when the last one emptied). */
static void ksc_heavy_find(void)
{
	struct ksc_part *p;
	size_t i;

	lockdep_assert_held(&ksc_lock);
	ksc_heavy = NULL;
	for (i = 0; i < ARRAY_SIZE(ksc_parts); i++)
		hlist_for_each_entry(p, &ksc_parts[i], node)
			if (!ksc_heavy || p->count > ksc_heavy->count)
				ksc_heavy = p;
}

/*
 * Take @e out of the table and its partition, which goes too if emptied
 * (unless it is @keep); @e is freed after a grace period.
 */
static void ksc_unlink(struct vordr_ksc_entry *e, struct ksc_part *keep)
{
	struct ksc_part *p = e->part;

	lockdep_assert_held(&ksc_lock);
	hlist_del_rcu(&e->node);
	list_del(&e->lru);
	ksc_count -= ksc_weight(e);
	p->count -= ksc_weight(e);
	if (!p->count && p != keep) {
		hlist_del(&p->node);
		kfree(p);
		if (ksc_heavy == p && !ksc_dying)
			ksc_heavy_find();
		else if (ksc_heavy == p)
			ksc_heavy = NULL;
	}
	call_rcu(&e->rcu, ksc_free_rcu);
}

static void ksc_link(struct vordr_ksc_entry *e, struct ksc_part *p)
{
	lockdep_assert_held(&ksc_lock);
	hlist_add_head_rcu(&e->node, ksc_bucket(e->cookie));
	list_add_tail(&e->lru, &p->lru);
	e->part = p;
	ksc_count += ksc_weight(e);
	p->count += ksc_weight(e);
	if (p->count > (ksc_heavy ? ksc_heavy->count : 0))
		ksc_heavy = p;
}

static struct vordr_ksc_entry *ksc_oldest(struct ksc_part *p)
{
	return list_first_entry(&p->lru, struct vordr_ksc_entry, lru);
}

/* All entries in use: the largest partition (maybe @p) gives one up. */
static bool ksc_full(struct ksc_part *p)
{
	struct ksc_part *v = ksc_heavy && ksc_heavy->count > p->count ? ksc_heavy : p;

	if (!v->count)
		return false;
	ksc_unlink(ksc_oldest(v), p);
	return true;
}

/*
 * The executables that sent on @old into @o (TCP: data queued by any of
 * them may leave in any later packet), each with a reference.  ksc_lock
 * held.
 */
static void ksc_keep(struct vordr_owner *o, const struct vordr_owner *old)
{
	struct vordr_ident *ids[1 + VORDR_OWNER_ALSO];
	unsigned int n = 0, i, j;

	/* A listener's owner or a holder found in the process table sent nothing. */
	if (old->id && old->sender)
		ids[n++] = old->id;
	for (i = 0; i < old->nalso; i++)
		ids[n++] = old->also[i];
	o->crowded |= old->crowded;
	for (i = 0; i < n; i++) {
		if (ids[i] == o->id)
			continue;
		for (j = 0; j < o->nalso && o->also[j] != ids[i]; j++)
			;
		if (j < o->nalso)
			continue;
		if (o->nalso == VORDR_OWNER_ALSO) {
			o->crowded = true;
			continue;
		}
		vordr_ident_get(ids[i]);
		o->also[o->nalso++] = ids[i];
	}
}

/*
 * Any context.  Replaces an entry already there for @cookie (unless
 * @weak and it names an owner).  Returns the new owner, or NULL (and
 * @id's reference dropped) if memory ran out or @weak lost.
 */
static const struct vordr_owner *ksc_set(struct sock *sk, u64 cookie,
					 struct vordr_ident *id, pid_t pid,
					 kuid_t uid, unsigned int how, bool weak)
{
	bool derived = how & VORDR_KSC_DERIVED;
	struct vordr_ksc_entry *e, *old, *it;
	struct ksc_part *p, *fresh = NULL;
	unsigned long flags;
	unsigned int i;

	e = kmem_cache_alloc(ksc_cache, GFP_ATOMIC | __GFP_NOWARN);
	if (!e)
		goto nomem;
	memset(&e->owner, 0, sizeof(e->owner));
	memset(&e->flow, 0, sizeof(e->flow));
	e->cookie = cookie;
	e->owner.id = id;
	e->owner.pid = pid;
	e->owner.uid = uid;
	e->owner.stamp = jiffies;
	e->owner.sender = how & VORDR_KSC_SENDER;
	/*
	 * The socket is alive (a packet or lookup holds it) unless being
	 * freed.  Only a socket that holds its namespace is held: a kernel
	 * socket must not outlive the namespace it was made for.
	 */
	e->sk = sk && sk->sk_net_refcnt && refcount_inc_not_zero(&sk->sk_refcnt) ?
		sk : NULL;

	spin_lock_irqsave(&ksc_lock, flags);
again:
	old = ksc_lookup(ksc_bucket(cookie), cookie);
	/* An accepted socket stays with its kind when its server sends. */
	if (old && old->part->derived)
		derived = true;
	p = ksc_part_find(uid, derived);
	if (!p && !fresh) {
		spin_unlock_irqrestore(&ksc_lock, flags);
		fresh = kmalloc(sizeof(*fresh), GFP_ATOMIC | __GFP_NOWARN);
		if (!fresh) {
			e->owner.id = NULL;
			ksc_free(e);
			goto nomem;
		}
		spin_lock_irqsave(&ksc_lock, flags);
		goto again;
	}
	if (!p) {
		p = fresh;
		fresh = NULL;
		p->uid = uid;
		p->derived = derived;
		p->count = 0;
		INIT_LIST_HEAD(&p->lru);
		hlist_add_head(&p->node, ksc_part_bucket(uid, derived));
	}
	if (old && weak && old->owner.id) {
		/* Learnt from its sender while the offer was made: keep that. */
		if (!p->count) {
			hlist_del(&p->node);
			kfree(fresh);
			fresh = p;
		}
		spin_unlock_irqrestore(&ksc_lock, flags);
		kfree(fresh);
		ksc_free(e);
		return NULL;
	}
	if (old && id && (how & VORDR_KSC_KEEP))
		ksc_keep(&e->owner, &old->owner);
	e->flow.derived = derived;
	if (old)
		ksc_unlink(old, p);
	/* Closed sockets among the partition's oldest go first. */
	for (i = 0; i < KSC_CHECK && p->count; i++) {
		it = ksc_oldest(p);
		if (!ksc_dead(it))
			break;
		ksc_unlink(it, p);
	}
	while (p->count && p->count + ksc_weight(e) > READ_ONCE(vordr_ksc_user_max))
		ksc_unlink(ksc_oldest(p), p);
	while (ksc_count + ksc_weight(e) > READ_ONCE(vordr_ksc_max) && ksc_full(p))
		;
	ksc_link(e, p);
	spin_unlock_irqrestore(&ksc_lock, flags);
	kfree(fresh);
	return &e->owner;
nomem:
	if (id)
		vordr_ident_put(id);
	return NULL;
}

const struct vordr_owner *vordr_ksc_set(struct sock *sk, u64 cookie,
					struct vordr_ident *id, pid_t pid,
					kuid_t uid, unsigned int how)
{
	return ksc_set(sk, cookie, id, pid, uid, how, false);
}

/* From the process table (asc): never overrides an owner learnt since. */
void vordr_ksc_offer(u64 cookie, struct vordr_ident *id, pid_t pid, kuid_t uid)
{
	ksc_set(NULL, cookie, id, pid, uid, 0, true);
}

/*
 * Every second, 1/KSC_SWEEP_ROUNDS of the buckets: entries of closed
 * sockets go, one bucket under the lock at a time.
 */
static void ksc_sweep(struct work_struct *work)
{
	unsigned int n = max(1u << ksc_bits >> ilog2(KSC_SWEEP_ROUNDS), 1u);
	struct vordr_ksc_entry *e;
	struct hlist_node *tmp;
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct hlist_head *b = &ksc_table[ksc_sweep_pos];

		ksc_sweep_pos = (ksc_sweep_pos + 1) & ((1u << ksc_bits) - 1);
		if (hlist_empty(b))
			continue;
		spin_lock_irq(&ksc_lock);
		hlist_for_each_entry_safe(e, tmp, b, node) {
			if (ksc_dead(e))
				ksc_unlink(e, NULL);
			else
				ksc_flow_fold(e);	/* a live socket's counts so far */
		}
		spin_unlock_irq(&ksc_lock);
		cond_resched();
	}
	schedule_delayed_work(&ksc_sweep_work, HZ);
}

int vordr_ksc_init(void)
{
	size_t i;

	/* About four entries a bucket when full. */
	ksc_bits = clamp(order_base_2(vordr_ksc_max / 4), 10, 20);
	ksc_table = kvcalloc(1u << ksc_bits, sizeof(*ksc_table), GFP_KERNEL);
	if (!ksc_table)
		return -ENOMEM;
	ksc_cache = KMEM_CACHE(vordr_ksc_entry, 0);
	if (!ksc_cache) {
		kvfree(ksc_table);
		return -ENOMEM;
	}
	get_random_bytes(&ksc_key, sizeof(ksc_key));
	for (i = 0; i < (1u << ksc_bits); i++)
		INIT_HLIST_HEAD(&ksc_table[i]);
	for (i = 0; i < ARRAY_SIZE(ksc_parts); i++)
		INIT_HLIST_HEAD(&ksc_parts[i]);
	schedule_delayed_work(&ksc_sweep_work, HZ);
	return 0;
}

/* Called after the hooks and the asc are gone: no writer, no new reader. */
void vordr_ksc_exit(void)
{
	struct vordr_ksc_entry *e;
	struct hlist_node *tmp;
	size_t i;

	cancel_delayed_work_sync(&ksc_sweep_work);
	spin_lock_irq(&ksc_lock);
	ksc_dying = true;
	for (i = 0; i < (1u << ksc_bits); i++)
		hlist_for_each_entry_safe(e, tmp, &ksc_table[i], node)
			ksc_unlink(e, NULL);
	spin_unlock_irq(&ksc_lock);
	/* The callbacks are this module's code and use ksc_cache. */
	rcu_barrier();
	kmem_cache_destroy(ksc_cache);
	kvfree(ksc_table);
}
