// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - active-socket cache (asc): finds who holds a socket, and holds
 * a new server's first datagrams until it knows.
 *
 * Asked only on a known-socket cache miss where current cannot be the
 * owner (softirq, inbound packets): the listening socket of a server that
 * has not sent anything yet, a socket whose entry was evicted, sockets
 * that existed before the module was loaded.  The packet path only claims
 * a slot (a spinlock, no allocation, no sleeping) naming the socket's
 * cookie, its struct file (compared, never dereferenced) and the user who
 * opened it (file->f_cred, as xt_owner and nft_meta read it); a work item
 * searches the process table in process context and offers the owner it
 * finds, or "nobody", to the known-socket cache.
 *
 * The search cannot be outrun by another user.  It looks first only at
 * the tasks of the socket's opener (any of their uids equal to the
 * file's fsuid), and only then, for a socket passed on or kept across a
 * setuid, at everyone else's.  It walks pid numbers (find_ge_pid), so it
 * resumes where it stopped: every slot gets ASC_QUANTUM steps (a pid or a
 * descriptor) per round, the work item reschedules between rounds, and
 * every search runs to its end however many descriptors anyone holds.
 * A descriptor matches only if it is the socket's very file; the cookie
 * is then checked on the file itself.
 *
 * Held datagrams: an inbound UDP datagram to a socket whose owner is being
 * looked up is stolen from the hook (NF_STOLEN) onto its slot, with the
 * references netfilter's own queue takes (nf_queue.c), and replayed from
 * vordr's hook in the same hook chain once the search ends, so the
 * owner's rule decides it and every later hook still sees it.  Bounded:
 * ASC_HOLD_SOCK per socket, ASC_HOLD_USER per opening user, ASC_HOLD_MAX
 * and ASC_HOLD_BYTES in all, ASC_HOLD_TIME each.  Past a bound, or once
 * replayed with the owner still unknown, a datagram follows unkproc and
 * counts in heldlost.
 *
 * Every reference taken is dropped on every path: files (get_file_rcu,
 * fput), tasks (get_task_struct, put_task_struct), mms (get_task_mm,
 * mmput, in ident.c), held packets (the skb, its devices).  Task locks are
 * taken only here, in process context.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <linux/netfilter.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/cred.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/dst.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "compat.h"
#include "vordr.h"

#define ASC_WANT 64		/* searches at once */
#define ASC_WANT_USER 32	/* of them, for sockets one user opened */
#define ASC_QUANTUM 4096	/* pids and descriptors per slot per round */

#define ASC_HOLD_MAX 256		/* datagrams held in all */
#define ASC_HOLD_BYTES (4u << 20)	/* their truesize in all */
#define ASC_HOLD_USER (ASC_HOLD_MAX / 2)	/* for one user's sockets */
#define ASC_HOLD_SOCK 16		/* for one socket */
#define ASC_HOLD_TIME HZ		/* the longest a datagram waits */

/* A datagram held for its socket's owner. */
struct asc_held {
	struct list_head node;
	struct sk_buff *skb;
	struct net_device *dev;		/* skb->dev, held */
	struct nf_hook_state state;	/* state->in held */
	nf_hookfn *hook;		/* vordr's hook it left, to replay from */
	unsigned long since;
};

/*
 * One search.  @cookie, @file, @uid and the held list are set under
 * asc_lock; the walker alone moves @pass, @pos, @fd and @found.
 */
struct asc_slot {
	u64 cookie;			/* 0: free */
	const struct file *file;	/* compared only; NULL: any file */
	kuid_t uid;			/* the opener; INVALID_UID: unknown */
	struct list_head held;
	unsigned int nheld, bytes;
	u8 pass;			/* 0: the opener's tasks; 1: the rest */
	pid_t pos;			/* next pid number to look at */
	unsigned int fd;		/* next descriptor of the task at pos */
	struct task_struct *found;	/* referenced */
};

static DEFINE_SPINLOCK(asc_lock);
static struct asc_slot asc_slots[ASC_WANT];	/* asc_lock, see above */
static unsigned int asc_nheld, asc_bytes;	/* asc_lock */
/* Held as their search ended: replayed at once, the owner now known. */
static LIST_HEAD(asc_late);			/* asc_lock */
static bool asc_dead;				/* asc_lock: module going away */
static atomic64_t asc_held_total = ATOMIC64_INIT(0);
static atomic64_t asc_lost = ATOMIC64_INIT(0);
/* The datagram this CPU is replaying through vordr's hook, if any. */
static DEFINE_PER_CPU(const struct sk_buff *, asc_replay);

static void asc_walk(struct work_struct *work);
static DECLARE_WORK(asc_work, asc_walk);

/* Under asc_lock: @cookie's slot, or NULL. */
static struct asc_slot *asc_slot_of(u64 cookie)
{
	unsigned int i;

	for (i = 0; i < ASC_WANT; i++)
		if (asc_slots[i].cookie == cookie)
			return &asc_slots[i];
	return NULL;
}

/* Who opened @sk's file, and the file, as nft_meta reads them. */
static void asc_opener(struct sock *sk, const struct file **file, kuid_t *uid)
{
	const struct socket *sock;

	*file = NULL;
	*uid = INVALID_UID;
	read_lock_bh(&sk->sk_callback_lock);
	sock = sk->sk_socket;
	if (sock && sock->file) {
		*file = sock->file;
		*uid = sock->file->f_cred->fsuid;
	}
	read_unlock_bh(&sk->sk_callback_lock);
}

bool vordr_asc_request(struct sock *sk, u64 cookie)
{
	struct asc_slot *s, *slot = NULL;
	const struct file *file;
	unsigned int i, mine = 0;
	unsigned long flags;
	bool ok = false;
	kuid_t uid;

	asc_opener(sk, &file, &uid);
	spin_lock_irqsave(&asc_lock, flags);
	if (asc_dead)
		goto out;
	for (i = 0; i < ASC_WANT; i++) {
		s = &asc_slots[i];
		if (s->cookie == cookie) {
			ok = true;
			goto out;
		}
		if (!s->cookie && !slot)
			slot = s;
		else if (s->cookie && uid_eq(s->uid, uid))
			mine++;
	}
	/* Full: the next packet of this socket asks again. */
	if (!slot || mine >= ASC_WANT_USER)
		goto out;
	slot->cookie = cookie;
	slot->file = file;
	slot->uid = uid;
	slot->pass = uid_valid(uid) ? 0 : 1;
	slot->pos = 1;
	slot->fd = 0;
	slot->found = NULL;
	ok = true;
	queue_work(system_unbound_wq, &asc_work);
out:
	spin_unlock_irqrestore(&asc_lock, flags);
	return ok;
}

bool vordr_asc_hold(struct sk_buff *skb, const struct nf_hook_state *state,
		    u64 cookie, nf_hookfn *hook)
{
	unsigned int i, user = 0, size = skb->truesize;
	struct asc_held *h = NULL;
	unsigned long flags;
	struct asc_slot *s;

	if (this_cpu_read(asc_replay) == skb)
		goto lost;	/* back from the hold: unkproc decides */
	/* What nf_queue does before a packet leaves its hook. */
	if (skb_sk_is_prefetched(skb) && !sk_is_refcounted(skb->sk)) {
		if (!refcount_inc_not_zero(&skb->sk->sk_refcnt))
			goto lost;
		skb->destructor = sock_edemux;
	}
	h = kmalloc(sizeof(*h), GFP_ATOMIC | __GFP_NOWARN);
	if (!h || (skb_dst(skb) && !skb_dst_force(skb)))
		goto lost;

	spin_lock_irqsave(&asc_lock, flags);
	s = asc_dead ? NULL : asc_slot_of(cookie);
	if (s)
		for (i = 0; i < ASC_WANT; i++)
			if (asc_slots[i].cookie && uid_eq(asc_slots[i].uid, s->uid))
				user += asc_slots[i].nheld;
	if (asc_dead || (s && (s->nheld >= ASC_HOLD_SOCK || user >= ASC_HOLD_USER)) ||
	    asc_nheld >= ASC_HOLD_MAX || asc_bytes + size > ASC_HOLD_BYTES) {
		spin_unlock_irqrestore(&asc_lock, flags);
		goto lost;
	}
	h->skb = skb;
	h->dev = skb->dev;
	h->state = *state;
	h->hook = hook;
	h->since = jiffies;
	dev_hold(h->dev);
	dev_hold(h->state.in);
	if (s) {
		list_add_tail(&h->node, &s->held);
		s->nheld++;
		s->bytes += size;
	} else {
		/*
		 * Its search ended after this packet missed the known-socket
		 * cache: replayed at once, it finds the owner there.
		 */
		list_add_tail(&h->node, &asc_late);
		queue_work(system_unbound_wq, &asc_work);
	}
	asc_nheld++;
	asc_bytes += size;
	spin_unlock_irqrestore(&asc_lock, flags);
	atomic64_inc(&asc_held_total);
	return true;
lost:
	kfree(h);
	atomic64_inc(&asc_lost);
	return false;
}

u64 vordr_asc_held(void)
{
	return atomic64_read(&asc_held_total);
}

u64 vordr_asc_lost(void)
{
	return atomic64_read(&asc_lost);
}

static void asc_held_free(struct asc_held *h)
{
	dev_put(h->dev);
	dev_put(h->state.in);
	kfree(h);
}

/*
 * In process context: @h's datagram goes through the hook chain again
 * from vordr's hook, which now finds the owner (or, for this datagram
 * only, follows unkproc), then on to the hooks after it and to the
 * protocol, as nf_reinject() goes on with a queued packet.
 */
static void asc_replay_one(struct asc_held *h)
{
	const struct nf_hook_entries *e = NULL;
	struct nf_hook_state *st = &h->state;
	struct sk_buff *skb = h->skb;
	unsigned int i = 0;

	rcu_read_lock();
	local_bh_disable();
	if (st->pf == NFPROTO_IPV4)
		e = rcu_dereference(st->net->nf.hooks_ipv4[st->hook]);
#if IS_ENABLED(CONFIG_IPV6)
	else if (st->pf == NFPROTO_IPV6)
		e = rcu_dereference(st->net->nf.hooks_ipv6[st->hook]);
#endif
	while (e && i < e->num_hook_entries && e->hooks[i].hook != h->hook)
		i++;
	if (!e || i == e->num_hook_entries) {
		/* vordr's hook left this namespace: nothing may pass unjudged. */
		kfree_skb(skb);
	} else {
		int ret;

		this_cpu_write(asc_replay, skb);
		ret = nf_hook_slow(skb, st, e, i);
		this_cpu_write(asc_replay, NULL);
		if (ret == 1)
			st->okfn(st->net, st->sk, skb);
	}
	local_bh_enable();
	rcu_read_unlock();
	asc_held_free(h);
}

static void asc_replay_list(struct list_head *list)
{
	struct asc_held *h, *tmp;

	list_for_each_entry_safe(h, tmp, list, node) {
		list_del(&h->node);
		asc_replay_one(h);
	}
}

/* Under asc_lock: move @h from @s to @list. */
static void asc_unhold(struct asc_slot *s, struct asc_held *h, struct list_head *list)
{
	list_move_tail(&h->node, list);
	s->nheld--;
	s->bytes -= h->skb->truesize;
	asc_nheld--;
	asc_bytes -= h->skb->truesize;
}

/* Whether one of @t's uids is @uid.  Under rcu_read_lock(). */
static bool asc_cred_is(struct task_struct *t, kuid_t uid)
{
	const struct cred *c = __task_cred(t);

	return uid_eq(c->uid, uid) || uid_eq(c->euid, uid) ||
	       uid_eq(c->suid, uid) || uid_eq(c->fsuid, uid);
}

/* Whether @file (held) is the socket with @cookie. */
static bool asc_file_is(struct file *file, u64 cookie)
{
	struct socket *sock = sock_from_file(file);

	return sock && sock->sk && atomic64_read(&sock->sk->sk_cookie) == cookie;
}

/*
 * @t's descriptors from s->fd on, at most *budget of them: 1 if one is
 * the socket (s->found set), 0 when they are done, -1 when the budget is.
 * Under rcu_read_lock().
 */
static int asc_scan(struct asc_slot *s, struct task_struct *t, unsigned int *budget)
{
	struct file *file;
	bool is;

	for (;; s->fd++) {
		if (!*budget)
			return -1;
		/* Held, so that its socket cannot be released under us. */
		file = vordr_task_next_file(t, &s->fd);
		if (!file)
			return 0;
		(*budget)--;
		is = (!s->file || file == s->file) && asc_file_is(file, s->cookie);
		fput(file);
		if (is) {
			get_task_struct(t);
			s->found = t;
			return 1;
		}
	}
}

/* Whether the search of @s looks at @t's descriptors in this pass. */
static bool asc_candidate(const struct asc_slot *s, struct task_struct *t)
{
	struct task_struct *leader = READ_ONCE(t->group_leader);

	/*
	 * Every thread with a file table of its own: a leader that exited
	 * early has none, and a thread may have unshared its own.
	 */
	if ((t->flags & PF_KTHREAD) ||
	    (t != leader && READ_ONCE(t->files) == READ_ONCE(leader->files)))
		return false;
	/* The first pass takes the opener's tasks, the second the rest. */
	return !uid_valid(s->uid) || asc_cred_is(t, s->uid) == !s->pass;
}

/* One quantum of @s's search: true when it is over (s->found or not). */
static bool asc_step(struct asc_slot *s)
{
	unsigned int budget = ASC_QUANTUM;
	struct task_struct *t;
	bool over = false;
	struct pid *pid;
	int r;

	rcu_read_lock();
	while (budget) {
		pid = find_ge_pid(s->pos, &init_pid_ns);
		if (!pid) {
			if (!s->pass) {
				s->pass = 1;	/* now everyone else's tasks */
				s->pos = 1;
				s->fd = 0;
				continue;
			}
			over = true;
			break;
		}
		if (pid_nr(pid) != s->pos) {
			s->pos = pid_nr(pid);
			s->fd = 0;
		}
		budget--;
		t = pid_task(pid, PIDTYPE_PID);
		if (t && asc_candidate(s, t)) {
			r = asc_scan(s, t, &budget);
			if (r > 0) {
				over = true;
				break;
			}
			if (r < 0)
				break;	/* resumes at this task's s->fd */
		}
		s->pos++;
		s->fd = 0;
	}
	rcu_read_unlock();
	return over;
}

/* @s's search is over: tell the known-socket cache, free the slot. */
static void asc_finish(struct asc_slot *s, struct list_head *replay)
{
	struct task_struct *p = s->found;
	struct asc_held *h, *tmp;
	struct vordr_ident *id = NULL;
	kuid_t uid = INVALID_UID;
	int err;

	if (p) {
		id = vordr_ident_of_task(p, &err);
		if (id)
			uid = task_euid(p);
	}
	vordr_ksc_offer(s->cookie, id, id ? task_tgid_nr(p) : 0, uid);
	if (p)
		put_task_struct(p);
	s->found = NULL;

	spin_lock_irq(&asc_lock);
	list_for_each_entry_safe(h, tmp, &s->held, node)
		asc_unhold(s, h, replay);
	s->cookie = 0;
	spin_unlock_irq(&asc_lock);
}

/*
 * Under asc_lock: datagrams held too long (then unkproc) and those whose
 * search had just ended go on to @list.
 */
static void asc_expire(struct list_head *list)
{
	struct asc_held *h, *tmp;
	unsigned int i;

	list_for_each_entry_safe(h, tmp, &asc_late, node) {
		list_move_tail(&h->node, list);
		asc_nheld--;
		asc_bytes -= h->skb->truesize;
	}

	for (i = 0; i < ASC_WANT; i++)
		list_for_each_entry_safe(h, tmp, &asc_slots[i].held, node)
			if (time_after_eq(jiffies, h->since + ASC_HOLD_TIME))
				asc_unhold(&asc_slots[i], h, list);
}

static void asc_walk(struct work_struct *work)
{
	bool busy[ASC_WANT];
	LIST_HEAD(replay);
	unsigned int i;
	bool any;

	do {
		spin_lock_irq(&asc_lock);
		any = false;
		for (i = 0; i < ASC_WANT; i++) {
			busy[i] = asc_slots[i].cookie && !asc_dead;
			any |= busy[i];
		}
		asc_expire(&replay);
		spin_unlock_irq(&asc_lock);
		asc_replay_list(&replay);

		for (i = 0; i < ASC_WANT; i++) {
			if (!busy[i] || !asc_step(&asc_slots[i]))
				continue;
			asc_finish(&asc_slots[i], &replay);
			asc_replay_list(&replay);
		}
		cond_resched();
	} while (any);
}

int vordr_asc_init(void)
{
	unsigned int i;

	for (i = 0; i < ASC_WANT; i++)
		INIT_LIST_HEAD(&asc_slots[i].held);
	return 0;
}

/* After the hooks are gone: nothing holds or asks any more. */
void vordr_asc_exit(void)
{
	struct asc_held *h, *tmp;
	LIST_HEAD(drop);
	unsigned int i;

	spin_lock_irq(&asc_lock);
	asc_dead = true;
	spin_unlock_irq(&asc_lock);
	cancel_work_sync(&asc_work);

	spin_lock_irq(&asc_lock);
	for (i = 0; i < ASC_WANT; i++) {
		struct asc_slot *s = &asc_slots[i];

		list_for_each_entry_safe(h, tmp, &s->held, node)
			asc_unhold(s, h, &drop);
		if (s->found)
			put_task_struct(s->found);
		s->found = NULL;
		s->cookie = 0;
	}
	list_splice_init(&asc_late, &drop);
	asc_nheld = 0;
	asc_bytes = 0;
	spin_unlock_irq(&asc_lock);
	list_for_each_entry_safe(h, tmp, &drop, node) {
		list_del(&h->node);
		kfree_skb(h->skb);
		atomic64_inc(&asc_lost);
		asc_held_free(h);
	}
}
