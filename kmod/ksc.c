// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - known-socket cache (ksc): which executable owns a socket.
 *
 * Keyed by the socket cookie, a 64-bit number the kernel hands out once
 * per socket and never again, so neither a freed and reallocated struct
 * sock nor a recycled inode number can find another socket's owner.
 *
 * An entry is learnt from the sending task on the first packet a socket
 * sends in process context (connect(), sendmsg()).  Packets sent from
 * softirq (ACKs, retransmits, replies on loopback) find the owner here.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dcache.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/path.h>
#include <linux/seqlock.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/limits.h>
#include <linux/mm.h>
#include <linux/rculist.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/sock_diag.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <net/sock.h>

#include "vordr.h"

#define KSC_BITS 10
#define KSC_BUCKET_MAX 8	/* entries per bucket before the oldest goes */

struct vordr_ksc_entry {
	struct hlist_node node;
	struct rcu_head rcu;
	u64 cookie;
	u8 nr;			/* place in its bucket's insertion order */
	struct vordr_ident id;	/* last: ends in the path */
};

struct vordr_ksc_bucket {
	struct hlist_head head;
	u8 count;
	u8 next_nr;
};

/* ksc_lock serializes writers of every bucket; readers use RCU only. */
static DEFINE_SPINLOCK(ksc_lock);
static struct vordr_ksc_bucket ksc_table[1 << KSC_BITS];

/* The root the module was loaded under; rules name paths below it. */
static struct path ksc_root;

/*
 * Whether current's root is ksc_root.  A new mount namespace copies the
 * root mount, so this also tells a task in another mount namespace.
 * Only pointers are compared, under the fs_struct's seqcount.
 */
static bool ksc_root_is_ours(void)
{
	struct fs_struct *fs = current->fs;
	unsigned int seq;
	bool same;

	do {
		seq = read_seqcount_begin(&fs->seq);
		same = path_equal(&fs->root, &ksc_root);
	} while (read_seqcount_retry(&fs->seq, seq));
	return same;
}

static u64 vordr_sk_cookie(struct sock *sk)
{
	u64 cookie = atomic64_read(&sk->sk_cookie);
	u32 c[2];

	if (likely(cookie))
		return cookie;
	/* Hands out a cookie if the socket has none yet. */
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
const struct vordr_ident *vordr_ksc_find(struct sock *sk)
{
	struct vordr_ksc_entry *e;
	u64 cookie = vordr_sk_cookie(sk);

	e = ksc_lookup(ksc_bucket(cookie), cookie);
	return e ? &e->id : NULL;
}

/*
 * Build an identity for the current task.  Called only in task context
 * from the packet path, so no sleeping: GFP_ATOMIC, and the executable is
 * taken from current->mm->exe_file under RCU (get_task_exe_file() is not
 * exported to modules in 6.1).
 */
static struct vordr_ksc_entry *ksc_entry_for_current(int *err)
{
	struct vordr_ksc_entry *e = NULL;
	struct mm_struct *mm = current->mm;
	struct file *exe;
	char *buf, *p;
	size_t len, i, skip, n = 0;

	rcu_read_lock();
	exe = rcu_dereference(mm->exe_file);
	if (exe && !get_file_rcu(exe))
		exe = NULL;
	rcu_read_unlock();
	if (!exe) {
		*err = -ENOENT;
		return NULL;
	}

	/* Task context, but maybe under locks: no sleeping, no reserves. */
	buf = kmalloc(PATH_MAX, GFP_NOWAIT | __GFP_NOWARN);
	if (!buf) {
		*err = -ENOMEM;
		goto out_put;
	}
	p = d_path(&exe->f_path, buf, PATH_MAX);
	if (IS_ERR(p)) {
		*err = PTR_ERR(p);
		goto out_free;
	}
	len = strlen(p);
	if (len == 0 || len >= U16_MAX) {
		*err = -ENAMETOOLONG;
		goto out_free;
	}

	e = kmalloc(struct_size(e, id.path, len + 1), GFP_NOWAIT | __GFP_NOWARN);
	if (!e) {
		*err = -ENOMEM;
		goto out_free;
	}
	memcpy(e->id.path, p, len + 1);
	e->id.len = len;
	e->id.hash = vordr_hash(e->id.path, len);
	e->id.dev = file_inode(exe)->i_sb->s_dev;
	e->id.ino = file_inode(exe)->i_ino;
	e->id.pid = task_tgid_nr(current);
	e->id.uid = current_fsuid();
	e->id.foreign = !ksc_root_is_ours();
	e->id.ndirs = 0;
	/*
	 * The deepest VORDR_MAX_DEPTH directory prefixes, shallowest first,
	 * each with its '/': the deepest are the most specific.
	 */
	for (i = 0; i < len; i++)
		n += e->id.path[i] == '/';
	skip = n > VORDR_MAX_DEPTH ? n - VORDR_MAX_DEPTH : 0;
	for (i = 0; i < len; i++) {
		if (e->id.path[i] != '/')
			continue;
		if (skip) {
			skip--;
			continue;
		}
		e->id.dir_len[e->id.ndirs] = i + 1;
		e->id.dir_hash[e->id.ndirs] = vordr_hash(e->id.path, i + 1);
		e->id.ndirs++;
	}
out_free:
	kfree(buf);
out_put:
	fput(exe);
	return e;
}

/*
 * Learn the owner of @sk from the current task.  Caller has checked that
 * this is task context with a user mm.  Returns the cached identity or
 * NULL with *err set.
 */
const struct vordr_ident *vordr_ksc_learn(struct sock *sk, int *err)
{
	u64 cookie = vordr_sk_cookie(sk);
	struct vordr_ksc_bucket *b = ksc_bucket(cookie);
	struct vordr_ksc_entry *e, *old, *victim = NULL;
	unsigned long flags;

	e = ksc_entry_for_current(err);
	if (!e)
		return NULL;
	e->cookie = cookie;

	spin_lock_irqsave(&ksc_lock, flags);
	old = ksc_lookup(b, cookie);
	if (old) {
		/* Another CPU learnt it first; keep theirs. */
		spin_unlock_irqrestore(&ksc_lock, flags);
		kfree(e);
		return &old->id;
	}
	if (b->count >= KSC_BUCKET_MAX) {
		struct vordr_ksc_entry *it;

		/* Evict the oldest: the one whose number is furthest behind. */
		hlist_for_each_entry(it, &b->head, node)
			if (!victim || (u8)(b->next_nr - it->nr) >
				       (u8)(b->next_nr - victim->nr))
				victim = it;
		hlist_del_rcu(&victim->node);
		b->count--;
	}
	e->nr = b->next_nr++;
	hlist_add_head_rcu(&e->node, &b->head);
	b->count++;
	spin_unlock_irqrestore(&ksc_lock, flags);

	if (victim)
		kfree_rcu(victim, rcu);
	return &e->id;
}

int vordr_ksc_init(void)
{
	size_t i;

	get_fs_root(current->fs, &ksc_root);
	for (i = 0; i < ARRAY_SIZE(ksc_table); i++) {
		INIT_HLIST_HEAD(&ksc_table[i].head);
		ksc_table[i].count = 0;
		ksc_table[i].next_nr = 0;
	}
	return 0;
}

/* Called after the hooks are unregistered: no reader can start anew. */
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
			kfree_rcu(e, rcu);
		}
		ksc_table[i].count = 0;
	}
	spin_unlock_irqrestore(&ksc_lock, flags);
	/* kfree_rcu() callbacks must not outlive the module's text. */
	rcu_barrier();
	path_put(&ksc_root);
}
