// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - active-socket cache (asc): finds who holds a socket.
 *
 * Asked only on a known-socket cache miss where current cannot be the
 * owner (softirq, inbound packets): the listening socket of a server that
 * has not sent anything yet, a socket whose entry was evicted, sockets
 * that existed before the module was loaded.  The packet path only queues
 * the socket's cookie (a spinlock, no allocation, no sleeping); a work
 * item walks the process table in process context, bounded by
 * ASC_BUDGET descriptors per walk, and records every owner it finds,
 * or "nobody" for the rest, in the known-socket cache.
 *
 * Every reference taken is dropped on every path: files (get_file_rcu,
 * fput), tasks (get_task_struct, put_task_struct), mms (get_task_mm,
 * mmput, in ident.c).  Task locks are taken only here, in process context.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/net.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/cred.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>
#include <net/sock.h>

#include "vordr.h"

#define ASC_WANT 64		/* cookies waiting for one walk */
#define ASC_BUDGET (1u << 18)	/* descriptors looked at per walk */

static DEFINE_SPINLOCK(asc_lock);
static u64 asc_want[ASC_WANT];	/* asc_lock */
static unsigned int asc_nwant;	/* asc_lock */
static bool asc_dead;		/* asc_lock: module going away */

/* The work item's own copies: it never runs twice at once. */
static u64 asc_cookie[ASC_WANT];
static struct task_struct *asc_task[ASC_WANT];
static kuid_t asc_uid[ASC_WANT];

static void asc_walk(struct work_struct *work);
static DECLARE_WORK(asc_work, asc_walk);

void vordr_asc_request(u64 cookie)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&asc_lock, flags);
	if (asc_dead)
		goto out;
	for (i = 0; i < asc_nwant; i++)
		if (asc_want[i] == cookie)
			goto out;
	/* Full: the next packet of this socket asks again. */
	if (asc_nwant < ASC_WANT) {
		asc_want[asc_nwant++] = cookie;
		schedule_work(&asc_work);
	}
out:
	spin_unlock_irqrestore(&asc_lock, flags);
}

/* Under rcu_read_lock(): match @task's sockets against the wanted cookies. */
static unsigned int asc_scan_task(struct task_struct *task, unsigned int n,
				  unsigned int left, unsigned int *budget)
{
	unsigned int fd, i;
	struct file *file;

	for (fd = 0; left && *budget; fd++, (*budget)--) {
		struct socket *sock;
		u64 cookie;

		file = task_lookup_next_fd_rcu(task, &fd);
		if (!file)
			break;
		/* Hold the file so that its socket cannot be released. */
		if (!get_file_rcu(file))
			continue;
		sock = sock_from_file(file);
		cookie = sock && sock->sk ? atomic64_read(&sock->sk->sk_cookie) : 0;
		fput(file);
		if (!cookie)
			continue;
		for (i = 0; i < n; i++) {
			if (asc_task[i] || asc_cookie[i] != cookie)
				continue;
			get_task_struct(task);
			asc_task[i] = task;
			asc_uid[i] = task_euid(task);
			left--;
		}
	}
	return left;
}

static void asc_walk(struct work_struct *work)
{
	unsigned int budget = ASC_BUDGET, n, i, left;
	struct task_struct *g, *p;
	struct vordr_ident *id;
	int err;

	spin_lock_irq(&asc_lock);
	n = asc_nwant;
	memcpy(asc_cookie, asc_want, n * sizeof(asc_want[0]));
	asc_nwant = 0;
	spin_unlock_irq(&asc_lock);
	if (!n)
		return;
	memset(asc_task, 0, sizeof(asc_task));

	left = n;
	/*
	 * Every thread with a file table of its own: a leader that exited
	 * early has none, and a thread may have unshared its own.
	 */
	rcu_read_lock();
	for_each_process_thread(g, p) {
		if ((p->flags & PF_KTHREAD) ||
		    (p != g && READ_ONCE(p->files) == READ_ONCE(g->files)))
			continue;
		left = asc_scan_task(p, n, left, &budget);
		if (!left || !budget)
			goto walked;
	}
walked:
	rcu_read_unlock();

	for (i = 0; i < n; i++) {
		p = asc_task[i];
		if (!p) {
			vordr_ksc_offer(asc_cookie[i], NULL, 0, INVALID_UID);
			continue;
		}
		id = vordr_ident_of_task(p, &err);
		vordr_ksc_offer(asc_cookie[i], id, id ? task_tgid_nr(p) : 0,
				id ? asc_uid[i] : INVALID_UID);
		put_task_struct(p);
	}
}

int vordr_asc_init(void)
{
	return 0;
}

/* After the hooks are gone: nothing queues any more. */
void vordr_asc_exit(void)
{
	spin_lock_irq(&asc_lock);
	asc_dead = true;
	asc_nwant = 0;
	spin_unlock_irq(&asc_lock);
	cancel_work_sync(&asc_work);
}
