/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What differs between the kernels vordr is built for: Debian 12's 6.1 and
 * Ubuntu 24.04's 6.8.  Since 6.7 (commit 0ede61d8589c, "file: convert to
 * SLAB_TYPESAFE_BY_RCU") a struct file may be reused while RCU readers still
 * see it, so a reference is taken on the slot the pointer came from, not on
 * the pointer: get_file_rcu() takes the slot, and the descriptor walk returns
 * the file with its reference (task_lookup_next_fdget_rcu()).
 */
#ifndef VORDR_COMPAT_H
#define VORDR_COMPAT_H

#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/rcupdate.h>
#include <linux/version.h>

/* @mm's executable with a reference, or NULL (get_mm_exe_file() is not exported). */
static inline struct file *vordr_mm_exe_file(struct mm_struct *mm)
{
	struct file *exe;

	rcu_read_lock();
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	exe = get_file_rcu(&mm->exe_file);
#else
	exe = rcu_dereference(mm->exe_file);
	if (exe && !get_file_rcu(exe))
		exe = NULL;
#endif
	rcu_read_unlock();
	return exe;
}

/*
 * @task's next open file from descriptor *@fd on, with a reference (fput()
 * it), or NULL when there are no more; *@fd is its descriptor.  Under
 * rcu_read_lock().  A file being closed as it is read is skipped.
 */
static inline struct file *vordr_task_next_file(struct task_struct *task, unsigned int *fd)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	return task_lookup_next_fdget_rcu(task, fd);
#else
	struct file *file;

	for (;; (*fd)++) {
		file = task_lookup_next_fd_rcu(task, fd);
		if (!file || get_file_rcu(file))
			return file;
	}
#endif
}

#endif /* VORDR_COMPAT_H */
