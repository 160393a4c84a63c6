// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - identities: the executables that own sockets, interned.
 *
 * One struct vordr_ident per executable (device, inode, path as printed,
 * foreign or not), found through a hash index, shared by all the sockets
 * it owns and holding its per-CPU packet and byte counters.  Identities
 * stay after their last socket is gone, so STATS still shows them, until
 * the index holds vordr_idents_max of them; then the one unused longest
 * makes room (ident_unused, oldest first: no walk of the index).  Only
 * known-socket entries hold identities in use (ksc.c drops the entries of
 * closed sockets), so the index outgrows the bound only by identities of
 * live sockets, each of a running program.
 *
 * Built in two places: the packet path (current, first packet of a
 * socket, task context: never sleeps) and the active-socket cache's work
 * item (any task, process context).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dcache.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/hash.h>
#include <linux/limits.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/nsproxy.h>
#include <linux/user_namespace.h>
#include <linux/path.h>
#include <linux/percpu.h>
#include <linux/rculist.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/seqlock.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/u64_stats_sync.h>

#include "compat.h"
#include "vordr.h"

#define IDENT_BITS 12

/* Beyond this many, unused identities go (module parameter idents_max). */
unsigned int vordr_idents_max = 4096;

struct vordr_ident_stats {
	u64_stats_t apackets, abytes, bpackets, bbytes, lasthit;
	struct u64_stats_sync syncp;
};

/* ident_lock serializes writers of the index; readers use RCU. */
static DEFINE_SPINLOCK(ident_lock);
static struct hlist_head ident_index[1 << IDENT_BITS];
/* The same identities by where the file was reached; ident_lock only. */
static struct hlist_head ident_dindex[1 << IDENT_BITS];
static unsigned int ident_count;
/* ident_lock: identities no owner names, the longest unused first. */
static LIST_HEAD(ident_unused);
static u32 ident_gen = 1;	/* ident_lock; read locklessly */

u32 vordr_ident_gen(void)
{
	return READ_ONCE(ident_gen);
}

/* The root the module was loaded under; rules name paths below it. */
static struct path ident_root;
/* The initial mount namespace; compared, never dereferenced. */
static struct mnt_namespace *ident_mnt_ns;

/*
 * By device, inode and path: the hard links of one file (any number of
 * them, each a path of its own) spread over the buckets.
 */
static struct hlist_head *ident_bucket(dev_t dev, unsigned long ino, u32 hash)
{
	return &ident_index[hash_64((((u64)dev << 32) ^ ino) + ((u64)hash << 12),
				    IDENT_BITS)];
}

static struct hlist_head *ident_dbucket(const void *mnt, const void *dentry)
{
	return &ident_dindex[hash_64((unsigned long)mnt ^ (unsigned long)dentry,
				     IDENT_BITS)];
}

/*
 * Whether @fs's root is ident_root's directory; pointers only, under
 * fs->seq.  Dentries, not mounts: a copied mount namespace (ip netns
 * exec, unshare -m) has its own root mount over the same directory; a
 * chroot or pivot_root has another directory.
 */
static bool ident_root_is_ours(struct fs_struct *fs)
{
	unsigned int seq;
	bool same;

	do {
		seq = read_seqcount_begin(&fs->seq);
		same = fs->root.dentry == ident_root.dentry;
	} while (read_seqcount_retry(&fs->seq, seq));
	return same;
}

/*
 * Whether @exe is a file the kernel opened to execute it.  exec opens the
 * executable with __FMODE_EXEC (do_open_execat()), which open(2) and
 * openat2(2) cannot set (VALID_OPEN_FLAGS) nor fcntl(F_SETFL) add; landlock
 * and fanotify tell an exec from an open by the same bit.  mm->exe_file
 * is set to such a file by exec and inherited by fork, but
 * prctl(PR_SET_MM_MAP or PR_SET_MM_EXE_FILE) replaces it with any file the
 * process has open, which only needs CAP_CHECKPOINT_RESTORE in its own
 * user namespace: an unprivileged process can name /usr/bin/curl as its
 * executable.  Such a record is not what the kernel executed and names
 * nobody.  (binfmt_misc's "O" flag hands the interpreter a descriptor of
 * the exec-opened program; root configures it, and the program so named
 * is the one the kernel executed.)
 */
static bool ident_executed(const struct file *exe)
{
	return READ_ONCE(exe->f_flags) & __FMODE_EXEC;
}

/*
 * Whether @inode has no name left (deleted, or replaced by a rename): the
 * inode, not the dentry, since the packet path reads it without a
 * reference and a memfd's dentry is freed at once (DCACHE_NORCU), while
 * inodes are freed after a grace period.
 */
static bool ident_unlinked(const struct inode *inode)
{
	return !READ_ONCE(inode->i_nlink);
}

/*
 * Whether the path @exe prints as may name another file for the module's
 * loader: under another root directory; or, in another mount namespace,
 * for a task in a user namespace, or reached through a bind mount (its
 * mount's root is not its filesystem's root), or on a filesystem a user
 * namespace mounted.  Such a path matches
 * no rule: an unprivileged user could otherwise dress any program up as
 * an allowed one.
 */
static bool ident_foreign(struct fs_struct *fs, struct nsproxy *ns,
			  struct user_namespace *user_ns, struct file *exe)
{
	struct vfsmount *mnt = exe->f_path.mnt;

	if (!ident_executed(exe) || !fs || !ns || !ident_root_is_ours(fs))
		return true;
	if (ns->mnt_ns == ident_mnt_ns)
		return false;
	/*
	 * A task in a user namespace of its own may have shaped its mount
	 * namespace itself (any bind mount, e.g. of a world-writable tmpfs
	 * over /usr/bin): nothing it prints can be trusted.
	 */
	return user_ns != &init_user_ns ||
	       mnt->mnt_root != mnt->mnt_sb->s_root ||
	       mnt->mnt_sb->s_user_ns != &init_user_ns;
}

static void ident_free(struct vordr_ident *id)
{
	vordr_dns_forget(id);
	vordr_dest_forget(id);
	free_percpu(id->stats);
	kfree(id);
}

static void ident_free_rcu(struct rcu_head *head)
{
	ident_free(container_of(head, struct vordr_ident, rcu));
}

/*
 * Hashes of the path and of its shallowest VORDR_MAX_DEPTH directories:
 * a directory rule names at most that many (rules.c refuses deeper ones),
 * so burying a program deep cannot escape "block /home/".
 */
static void ident_hash(struct vordr_ident *id)
{
	size_t i;

	id->hash = vordr_hash(id->path, id->len);
	id->ndirs = 0;
	for (i = 0; i < id->len && id->ndirs < VORDR_MAX_DEPTH; i++) {
		if (id->path[i] != '/')
			continue;
		id->dir_len[id->ndirs] = i + 1;
		id->dir_hash[id->ndirs] = vordr_hash(id->path, i + 1);
		id->ndirs++;
	}
}

/* Make room: drop the identity unused longest, if any.  ident_lock held. */
static bool ident_evict_one(void)
{
	struct vordr_ident *id;

	lockdep_assert_held(&ident_lock);
	id = list_first_entry_or_null(&ident_unused, struct vordr_ident, unused);
	if (!id)
		return false;
	list_del_init(&id->unused);
	hlist_del_rcu(&id->node);
	hlist_del_init(&id->dnode);
	ident_count--;
	WRITE_ONCE(ident_gen, ident_gen + 1);
	call_rcu(&id->rcu, ident_free_rcu);
	return true;
}

/* One more user of @id, found in the index.  ident_lock held. */
static void ident_use(struct vordr_ident *id)
{
	lockdep_assert_held(&ident_lock);
	if (atomic_inc_return(&id->users) == 1)
		list_del_init(&id->unused);
}

/* The interned identity matching @key, with a user reference; ident_lock held. */
static struct vordr_ident *ident_find(const struct vordr_ident *key,
				      const char *p)
{
	struct vordr_ident *id;

	lockdep_assert_held(&ident_lock);
	hlist_for_each_entry(id, ident_bucket(key->dev, key->ino, key->hash), node) {
		if (id->dev == key->dev && id->ino == key->ino &&
		    id->foreign == key->foreign && id->hash == key->hash &&
		    id->len == key->len && !memcmp(id->path, p, key->len)) {
			ident_use(id);
			return id;
		}
	}
	return NULL;
}

/*
 * The identity for @exe printed as @p: the interned one if there is one
 * (the usual case: nothing is allocated), else a new one built with
 * @gfp.  Returned with a user reference.
 */
static struct vordr_ident *ident_intern(struct file *exe, const char *p,
					bool foreign, gfp_t gfp, int *err)
{
	struct inode *inode = file_inode(exe);
	struct vordr_ident key, *id, *fresh;
	unsigned long flags;
	int cpu, i;

	size_t len = strlen(p);

	if (len == 0 || len >= U16_MAX) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	key.len = len;
	key.dev = inode->i_sb->s_dev;
	key.ino = inode->i_ino;
	key.foreign = foreign;
	key.hash = vordr_hash(p, key.len);

	spin_lock_irqsave(&ident_lock, flags);
	id = ident_find(&key, p);
	spin_unlock_irqrestore(&ident_lock, flags);
	if (id)
		return id;

	fresh = kmalloc(struct_size(fresh, path, key.len + 1), gfp);
	if (!fresh)
		goto nomem;
	/*
	 * The per-CPU counters are what a non-blocking allocation most often
	 * cannot get (a new percpu chunk needs GFP_KERNEL).  Without them the
	 * identity still names the program, so its rules apply; only its
	 * STATS stay at zero.  Failing here instead would send the packet to
	 * `fail`, allow by default: a way past a block rule.
	 */
	fresh->stats = alloc_percpu_gfp(struct vordr_ident_stats,
					gfp | __GFP_ZERO | __GFP_NOWARN);
	if (fresh->stats)
		for_each_possible_cpu(cpu)
			u64_stats_init(&per_cpu_ptr(fresh->stats, cpu)->syncp);
	memcpy(fresh->path, p, key.len + 1);
	fresh->len = key.len;
	fresh->dev = key.dev;
	fresh->ino = key.ino;
	fresh->foreign = foreign;
	fresh->unlinked = ident_unlinked(inode);
	fresh->mnt_key = exe->f_path.mnt;
	fresh->dentry_key = exe->f_path.dentry;
	for (i = 0; i < VORDR_RULE_CACHE; i++)
		atomic64_set(&fresh->rule_cache[i], 0);
	RCU_INIT_POINTER(fresh->dns, NULL);
	fresh->dest = NULL;
	atomic_set(&fresh->users, 1);
	INIT_LIST_HEAD(&fresh->unused);
	ident_hash(fresh);

	spin_lock_irqsave(&ident_lock, flags);
	/* Another CPU may have interned it meanwhile. */
	id = ident_find(&key, p);
	if (!id) {
		/*
		 * Back under the bound if identities in use had pushed the
		 * count past it: each goes at most once, so this is O(1)
		 * amortized.
		 */
		while (ident_count >= READ_ONCE(vordr_idents_max) &&
		       ident_evict_one())
			;
		hlist_add_head_rcu(&fresh->node,
				   ident_bucket(key.dev, key.ino, key.hash));
		hlist_add_head(&fresh->dnode,
			       ident_dbucket(fresh->mnt_key, fresh->dentry_key));
		ident_count++;
		WRITE_ONCE(ident_gen, ident_gen + 1);
	}
	spin_unlock_irqrestore(&ident_lock, flags);
	if (id) {
		ident_free(fresh);
		return id;
	}
	return fresh;
nomem:
	*err = -ENOMEM;
	return NULL;
}

/*
 * The identity already interned for @exe reached the same way (same
 * mount and dentry, device, inode, foreignness, still linked or not),
 * with a user reference:
 * no path printing, no allocation.  NULL if there is none.
 */
static struct vordr_ident *ident_known(struct file *exe, bool foreign)
{
	struct inode *inode = file_inode(exe);
	dev_t dev = inode->i_sb->s_dev;
	struct vordr_ident *id, *found = NULL;
	unsigned long flags;

	spin_lock_irqsave(&ident_lock, flags);
	hlist_for_each_entry(id, ident_dbucket(exe->f_path.mnt, exe->f_path.dentry),
			     dnode) {
		if (id->dentry_key == exe->f_path.dentry &&
		    id->mnt_key == exe->f_path.mnt && id->dev == dev &&
		    id->ino == inode->i_ino && id->foreign == foreign &&
		    id->unlinked == ident_unlinked(inode)) {
			ident_use(id);
			found = id;
			break;
		}
	}
	spin_unlock_irqrestore(&ident_lock, flags);
	return found;
}

/* Print @exe's path into a buffer of @gfp memory and intern it. */
static struct vordr_ident *ident_of_file(struct file *exe, bool foreign,
					 gfp_t gfp, int *err)
{
	struct vordr_ident *id = ident_known(exe, foreign);
	char *buf, *p;

	if (id)
		return id;
	buf = kmalloc(PATH_MAX, gfp);
	if (!buf) {
		*err = -ENOMEM;
		return NULL;
	}
	p = d_path(&exe->f_path, buf, PATH_MAX);
	/*
	 * A path too long to print is still a program: it gets a name no
	 * rule can have (and is foreign), so it follows unkrule, not unkproc.
	 */
	if (p == ERR_PTR(-ENAMETOOLONG)) {
		p = "(path too long)";
		foreign = true;
	}
	if (IS_ERR(p))
		*err = PTR_ERR(p);
	else
		id = ident_intern(exe, p, foreign, gfp, err);
	kfree(buf);
	return id;
}

/*
 * From the packet path: task context, maybe under locks, so no sleeping
 * and no reserves.  get_task_exe_file() is not exported in 6.1; the
 * executable is read from current->mm->exe_file under RCU.
 */
struct vordr_ident *vordr_ident_of_current(int *err)
{
	struct vordr_ident *id;
	struct file *exe = vordr_mm_exe_file(current->mm);

	if (!exe) {
		*err = -ENOENT;
		return NULL;
	}
	id = ident_of_file(exe, ident_foreign(current->fs, current->nsproxy,
					      current_user_ns(), exe),
			   GFP_NOWAIT | __GFP_NOWARN, err);
	fput(exe);
	return id;
}

/* Process context, any task: may sleep. */
struct vordr_ident *vordr_ident_of_task(struct task_struct *task, int *err)
{
	struct vordr_ident *id;
	struct mm_struct *mm;
	struct user_namespace *user_ns;
	struct file *exe;
	bool foreign;

	mm = get_task_mm(task);
	if (!mm) {
		*err = -ENOENT;
		return NULL;
	}
	exe = vordr_mm_exe_file(mm);
	mmput(mm);
	if (!exe) {
		*err = -ENOENT;
		return NULL;
	}
	rcu_read_lock();
	user_ns = get_user_ns(task_cred_xxx(task, user_ns));
	rcu_read_unlock();
	task_lock(task);
	foreign = ident_foreign(task->fs, task->nsproxy, user_ns, exe);
	task_unlock(task);
	put_user_ns(user_ns);
	id = ident_of_file(exe, foreign, GFP_KERNEL, err);
	fput(exe);
	return id;
}

bool vordr_ident_is_current(const struct vordr_ident *id)
{
	const struct inode *inode;
	struct file *exe;

	/*
	 * No reference is taken: every sender would bounce the one f_count
	 * its program's processes share.  The file, its inode and the
	 * superblock are freed after a grace period; the dentry is not read
	 * (a memfd's is freed at once).
	 */
	exe = rcu_dereference(current->mm->exe_file);
	if (!exe)
		return false;
	inode = file_inode(exe);
	/*
	 * A binary deleted or replaced since is another identity (its path
	 * now prints as "PATH (deleted)"), and so is a record that prctl()
	 * rewrote after exec.
	 */
	return inode->i_ino == id->ino && inode->i_sb->s_dev == id->dev &&
	       ident_unlinked(inode) == id->unlinked &&
	       (id->foreign || ident_executed(exe));
}

/* Another user of @id, which the caller's reference keeps in use. */
void vordr_ident_get(struct vordr_ident *id)
{
	WARN_ON_ONCE(atomic_inc_return(&id->users) < 2);
}

/*
 * Any context: the identity itself goes only when evicted or at exit.
 * Its last user puts it at the end of ident_unused, under ident_lock
 * (every change of users to or from 0 is made under it).
 */
void vordr_ident_put(struct vordr_ident *id)
{
	unsigned long flags;

	if (!atomic_dec_and_lock_irqsave(&id->users, &ident_lock, flags))
		return;
	list_add_tail(&id->unused, &ident_unused);
	spin_unlock_irqrestore(&ident_lock, flags);
}

/* Identities interned now (read without the lock: a figure, not a bound). */
unsigned int vordr_ident_count_now(void)
{
	return READ_ONCE(ident_count);
}

void vordr_ident_count(const struct vordr_ident *id, bool allowed,
		       unsigned int bytes, time64_t now)
{
	struct vordr_ident_stats *s;
	unsigned long flags;

	if (unlikely(!id->stats))
		return;		/* built without counters (ident_intern()) */
	/* The hook may be preempted (PREEMPT_RCU): stay on this CPU. */
	s = get_cpu_ptr(id->stats);
	flags = u64_stats_update_begin_irqsave(&s->syncp);
	if (allowed) {
		u64_stats_inc(&s->apackets);
		u64_stats_add(&s->abytes, bytes);
	} else {
		u64_stats_inc(&s->bpackets);
		u64_stats_add(&s->bbytes, bytes);
	}
	u64_stats_set(&s->lasthit, now);
	u64_stats_update_end_irqrestore(&s->syncp, flags);
	put_cpu_ptr(id->stats);
}

/* *pos is the bucket, *skip the identities of it already reported. */
bool vordr_ident_next(u32 *pos, u32 *skip, struct vordr_ident_view *v)
{
	const struct vordr_ident *id;
	unsigned int start;
	u32 n;
	int cpu;

	for (; *pos < ARRAY_SIZE(ident_index); (*pos)++, *skip = 0) {
		n = 0;
		hlist_for_each_entry_rcu(id, &ident_index[*pos], node) {
			if (n++ < *skip)
				continue;
			(*skip)++;
			memset(v, 0, sizeof(*v));
			v->id = id;
			v->path = id->path;
			v->len = id->len;
			v->dev = id->dev;
			v->ino = id->ino;
			for_each_possible_cpu(cpu) {
				if (!id->stats)
					break;
				const struct vordr_ident_stats *s =
					per_cpu_ptr(id->stats, cpu);
				u64 ap, ab, bp, bb, last;

				do {
					start = u64_stats_fetch_begin(&s->syncp);
					ap = u64_stats_read(&s->apackets);
					ab = u64_stats_read(&s->abytes);
					bp = u64_stats_read(&s->bpackets);
					bb = u64_stats_read(&s->bbytes);
					last = u64_stats_read(&s->lasthit);
				} while (u64_stats_fetch_retry(&s->syncp, start));
				v->apackets += ap;
				v->abytes += ab;
				v->bpackets += bp;
				v->bbytes += bb;
				v->lasthit = max(v->lasthit, last);
			}
			return true;
		}
	}
	return false;
}

int vordr_ident_init(void)
{
	size_t i;

	get_fs_root(current->fs, &ident_root);
	ident_mnt_ns = init_task.nsproxy->mnt_ns;
	for (i = 0; i < ARRAY_SIZE(ident_index); i++) {
		INIT_HLIST_HEAD(&ident_index[i]);
		INIT_HLIST_HEAD(&ident_dindex[i]);
	}
	return 0;
}

/* After the hooks, the caches and their RCU callbacks are gone. */
void vordr_ident_exit(void)
{
	struct vordr_ident *id;
	struct hlist_node *tmp;
	unsigned long flags;
	size_t i;

	spin_lock_irqsave(&ident_lock, flags);
	for (i = 0; i < ARRAY_SIZE(ident_index); i++) {
		hlist_for_each_entry_safe(id, tmp, &ident_index[i], node) {
			WARN_ON_ONCE(atomic_read(&id->users));
			list_del_init(&id->unused);
			hlist_del_rcu(&id->node);
			hlist_del_init(&id->dnode);
			call_rcu(&id->rcu, ident_free_rcu);
		}
	}
	ident_count = 0;
	spin_unlock_irqrestore(&ident_lock, flags);
	rcu_barrier();
	path_put(&ident_root);
}
