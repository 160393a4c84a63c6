// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - events: what the packet path decided, to every listener of the
 * "events" multicast group (in the initial network namespace, where the
 * console runs; rules and events cover every namespace).
 *
 * Sent from the packet path without waiting: the message is built with
 * GFP_ATOMIC and multicast; when nobody listens nothing is built.  An
 * event that cannot be delivered (no memory, a listener's buffer full)
 * is counted in evdrops.  With squelch enabled, an application's repeats
 * (same executable, protocol, direction and verdict) within a second are
 * withheld, counted in squelched, and the next event sent for it carries
 * how many were withheld in COUNT.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/jhash.h>
#include <linux/jiffies.h>
#include <linux/spinlock.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "vordr.h"

#define SQ_BITS 8

struct vordr_squelch {
	spinlock_t lock;
	u32 key;
	u32 withheld;
	unsigned long until;
};

static struct vordr_squelch squelch[1 << SQ_BITS];
static atomic64_t ev_dropped = ATOMIC64_INIT(0);
static atomic64_t ev_squelched = ATOMIC64_INIT(0);

u64 vordr_events_dropped(void)
{
	return atomic64_read(&ev_dropped);
}

void vordr_events_lost(void)
{
	atomic64_inc(&ev_dropped);
}

u64 vordr_events_squelched(void)
{
	return atomic64_read(&ev_squelched);
}

/* Whether to send; *count is how many like it were withheld before. */
static bool vordr_squelch_pass(const struct vordr_pkt *pkt,
			       const struct vordr_owner *owner, u8 verdict,
			       u32 *count)
{
	u32 key = jhash_3words(owner && owner->id ? owner->id->hash : 0,
			       pkt->prot | pkt->dir << 8 | verdict << 16,
			       owner && owner->id ? (u32)owner->id->ino : 0, 0);
	struct vordr_squelch *sq = &squelch[key & ((1u << SQ_BITS) - 1)];
	unsigned long flags;
	bool pass = true;

	*count = 0;
	spin_lock_irqsave(&sq->lock, flags);
	if (sq->key == key && time_before(jiffies, sq->until)) {
		sq->withheld++;
		pass = false;
	} else {
		if (sq->key == key)
			*count = sq->withheld;
		sq->key = key;
		sq->withheld = 0;
		sq->until = jiffies + HZ;
	}
	spin_unlock_irqrestore(&sq->lock, flags);
	if (!pass)
		atomic64_inc(&ev_squelched);
	return pass;
}

static int vordr_event_fill(struct sk_buff *msg, const struct vordr_pkt *pkt,
			    const struct vordr_owner *owner,
			    const struct vordr_rule *rule, u8 verdict, u8 reason,
			    u32 count, const char *name)
{
	int alen = pkt->af == AF_INET ? 4 : 16;
	const struct vordr_ident *id = owner ? owner->id : NULL;
	const char *rpath;
	u8 rprot;

	if (nla_put_u8(msg, VORDR_A_VERDICT, verdict) ||
	    nla_put_u8(msg, VORDR_A_REASON, reason) ||
	    nla_put_u8(msg, VORDR_A_DIR, pkt->dir) ||
	    nla_put_u8(msg, VORDR_A_PROT, pkt->prot) ||
	    nla_put_u8(msg, VORDR_A_AF, pkt->af) ||
	    nla_put(msg, VORDR_A_SADDR, alen, &pkt->saddr) ||
	    nla_put(msg, VORDR_A_DADDR, alen, &pkt->daddr) ||
	    nla_put_u16(msg, VORDR_A_SPORT, pkt->sport) ||
	    nla_put_u16(msg, VORDR_A_DPORT, pkt->dport) ||
	    nla_put_u32(msg, VORDR_A_COUNT, count))
		return -EMSGSIZE;
	if (owner && owner->id &&
	    (nla_put_u32(msg, VORDR_A_PID, owner->pid) ||
	     nla_put_u32(msg, VORDR_A_UID, from_kuid_munged(&init_user_ns, owner->uid))))
		return -EMSGSIZE;
	if (id && (nla_put(msg, VORDR_A_PATH, id->len + 1, id->path) ||
		   nla_put_u32(msg, VORDR_A_DEV, id->dev) ||
		   nla_put_u64_64bit(msg, VORDR_A_INO, id->ino, VORDR_A_PAD)))
		return -EMSGSIZE;
	if (name && nla_put_string(msg, VORDR_A_NAME, name))
		return -EMSGSIZE;
	if (rule) {
		rpath = vordr_rule_path(rule, &rprot);
		if (nla_put_string(msg, VORDR_A_RPATH, rpath) ||
		    nla_put_u8(msg, VORDR_A_RPROT, rprot))
			return -EMSGSIZE;
	}
	return 0;
}

void vordr_event(const struct vordr_pkt *pkt, const struct vordr_owner *owner,
		 const struct vordr_rule *rule, u8 verdict, u8 reason)
{
	const struct vordr_ident *id = owner ? owner->id : NULL;
	const char *name = NULL;
	struct sk_buff *msg;
	size_t size;
	u32 count = 0;
	u8 rprot;
	void *hdr;

	if (!vordr_netlink_listening())
		return;
	if (vordr_flag(VORDR_FLAG_SQUELCH) == VORDR_VALUE_ENABLED &&
	    !vordr_squelch_pass(pkt, owner, verdict, &count))
		return;

	size = 6 * nla_total_size(1) + 2 * nla_total_size(16) +
	       2 * nla_total_size(2) + 4 * nla_total_size(4) +
	       nla_total_size_64bit(8);
	if (id) {
		size += nla_total_size(id->len + 1);
		/* Under the hook's RCU read side, as the table's entries are. */
		name = vordr_dns_name(id, pkt->af, pkt->dir == VORDR_DIR_OUT ?
				      &pkt->daddr : &pkt->saddr);
		if (name)
			size += nla_total_size(strlen(name) + 1);
	}
	if (rule)
		size += nla_total_size(strlen(vordr_rule_path(rule, &rprot)) + 1);
	msg = genlmsg_new(size, GFP_ATOMIC);
	if (!msg)
		goto dropped;
	hdr = vordr_netlink_event_put(msg);
	if (!hdr || vordr_event_fill(msg, pkt, owner, rule, verdict, reason, count, name)) {
		nlmsg_free(msg);
		goto dropped;
	}
	genlmsg_end(msg, hdr);
	if (vordr_netlink_event(msg))
		return;
dropped:
	vordr_events_lost();
}

int vordr_events_init(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(squelch); i++)
		spin_lock_init(&squelch[i].lock);
	return 0;
}
