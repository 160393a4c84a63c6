// SPDX-License-Identifier: GPL-2.0-only
/*
 * vordr - who writes on a TCP socket.
 *
 * Data a program queues on a TCP connection may leave later from softirq,
 * when the peer opens its window or an ACK lets more than the congestion
 * window out, and current is then whoever was interrupted.  The netfilter
 * hook sees packets, not writers, so a program that only ever queues (the
 * peer's window already shut) on a connection it inherited or was passed
 * would have its data judged as the connection's known senders.  The
 * kernel's place to see the writer is the LSM hook socket_sendmsg, which a
 * module cannot register; in its stead a kprobe at the entry of TCP's own
 * send functions tells the known-socket cache of each writer, in its
 * process context, before its data is queued (vordr_hook_writer()).  The
 * socket's packets then get the strictest verdict of all who sent or wrote
 * on it (hook.c, vordr_strictest()).
 *
 * Only probes that ftrace carries are kept: at a function's entry
 * (__fentry__) the handler runs in the caller's context with preemption
 * off.  A breakpoint probe's handler runs in the int3 trap, NMI-like,
 * where the caches' locks must not be taken; on a kernel that offers only
 * those (no CONFIG_KPROBES_ON_FTRACE) the module loads without the watch
 * and says so in the kernel log.  The probes are removed before the caches
 * go: unregister_kprobes() waits for handlers still running.
 */
#include <linux/kprobes.h>
#include <linux/moduleparam.h>
#include <linux/ptrace.h>
#include <linux/version.h>
#include <net/sock.h>
#include "vordr.h"

#if IS_ENABLED(CONFIG_KPROBES)

static int watch_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct sock *sk = (struct sock *)regs_get_kernel_argument(regs, 0);

	if (!in_nmi() && sk && sk->sk_protocol == IPPROTO_TCP)
		vordr_hook_writer(sk);
	return 0;
}

/*
 * Every function that queues user data on a TCP socket, its struct sock
 * the first argument: sendmsg (write, send*, io_uring, kTLS, and since 6.5
 * splice and sendfile) and, before 6.5, sendpage (splice, sendfile, kTLS).
 */
static struct kprobe watch_probes[] = {
	{ .symbol_name = "tcp_sendmsg_locked", .pre_handler = watch_pre },
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
	{ .symbol_name = "do_tcp_sendpages", .pre_handler = watch_pre },
#endif
};

static struct kprobe *watch_list[ARRAY_SIZE(watch_probes)];
#endif

static bool watch_on;
module_param_named(writers_watched, watch_on, bool, 0444);
MODULE_PARM_DESC(writers_watched, "TCP writers are learnt as they queue data (read-only)");

/* At load only: the benchmark prices the watch with it off. */
static bool watch_wanted = true;
module_param_named(watch_writers, watch_wanted, bool, 0444);
MODULE_PARM_DESC(watch_writers, "learn TCP writers as they queue data (at load; default Y)");

#if IS_ENABLED(CONFIG_KPROBES)

void vordr_watch_init(void)
{
	unsigned int i;
	int err;

	if (!watch_wanted) {
		pr_warn("TCP writers not watched (watch_writers=0): data queued without a packet sent is judged as the socket's senders\n");
		return;
	}
	for (i = 0; i < ARRAY_SIZE(watch_probes); i++)
		watch_list[i] = &watch_probes[i];
	err = register_kprobes(watch_list, ARRAY_SIZE(watch_list));
	if (err) {
		pr_warn("TCP writers not watched (kprobe: %d): data queued without a packet sent is judged as the socket's senders\n",
			err);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(watch_probes); i++)
		if (!(watch_probes[i].flags & KPROBE_FLAG_FTRACE)) {
			unregister_kprobes(watch_list, ARRAY_SIZE(watch_list));
			pr_warn("TCP writers not watched (%s: no ftrace-based kprobe): data queued without a packet sent is judged as the socket's senders\n",
				watch_probes[i].symbol_name);
			return;
		}
	watch_on = true;
}

void vordr_watch_exit(void)
{
	if (watch_on)
		unregister_kprobes(watch_list, ARRAY_SIZE(watch_list));
	watch_on = false;
}

#else

void vordr_watch_init(void)
{
	pr_warn("TCP writers not watched (no CONFIG_KPROBES): data queued without a packet sent is judged as the socket's senders\n");
}

void vordr_watch_exit(void)
{
}

#endif
