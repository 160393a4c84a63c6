// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - the saved policy's load: one transaction over netlink.
 *
 * The module loads with no rules and the flags of its parameters (the
 * packaged modprobe.d closes it: mode enabled, unkrule block), whatever
 * the saved policy holds, so its load never fails because of the policy.
 * The daemon (vordr --load-policy) then streams the derived policy file:
 * POLICY_BEGIN with the records' number and crc32, the records (RULE_ADD
 * and FLAG_SET with STAGE), POLICY_COMMIT.  The records are staged, never
 * applied one by one; the commit checks the number and the crc32 of what
 * came (defs.x: the canonical bytes, the same the file holds) and swaps
 * the staged rule table in whole, then sets the staged flags.  Anything
 * else fails closed and says why (flag policy, kernel log).
 *
 * The transaction belongs to the socket that began it, and goes with it
 * (vordr_policy_release, from the netlink notifier): a loader killed
 * mid-stream leaves nothing behind.  policy_lock guards it: handlers run
 * under genl_mutex already, the release does not.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/crc32.h>
#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/unaligned.h>

#include "vordr.h"

struct vordr_txn {
	const struct net *net;	/* the owner, compared, never dereferenced */
	u32 portid;
	u32 records;		/* as announced */
	u32 crc;		/* as announced (zlib's crc32) */
	u32 received;		/* records staged */
	u32 sum;		/* crc32_le() state over what was staged */
	u8 failed;		/* a VORDR_POLICY_* already known bad, or 0 */
	struct vordr_rules_stage *stage;
	DECLARE_BITMAP(set, VORDR_FLAG_MAX + 1);
	u64 value[VORDR_FLAG_MAX + 1];
};

static DEFINE_MUTEX(policy_lock);
static struct vordr_txn *policy_txn;
static u32 policy_state = VORDR_POLICY_NONE;

static const char *const policy_names[] = {
#define VORDR_CONST(group, id, value, name, ...) VORDR_ONLY(POLICY, group, [value] = name,)
#include "defs.x"
};

u32 vordr_policy_state(void)
{
	return READ_ONCE(policy_state);
}

static void txn_free(struct vordr_txn *t)
{
	if (!t)
		return;
	vordr_rules_stage_free(t->stage);
	kfree(t);
}

/* Drop the open transaction; policy_lock held. */
static void txn_drop(void)
{
	struct vordr_txn *t = policy_txn;

	lockdep_assert_held(&policy_lock);
	policy_txn = NULL;
	txn_free(t);
}

static bool txn_owner(const struct vordr_txn *t, const struct net *net, u32 portid)
{
	return t && t->net == net && t->portid == portid;
}

/* This socket's transaction, or an ERR_PTR; policy_lock held. */
static struct vordr_txn *txn_of(const struct net *net, u32 portid)
{
	if (!policy_txn)
		return ERR_PTR(-ENOENT);
	if (!txn_owner(policy_txn, net, portid))
		return ERR_PTR(-EBUSY);
	return policy_txn;
}

/* Fail closed for @reason; policy_lock held. */
static void policy_fail_closed(u8 reason)
{
	lockdep_assert_held(&policy_lock);
	vordr_flag_set(VORDR_FLAG_MODE, VORDR_VALUE_ENABLED);
	vordr_flag_set(VORDR_FLAG_UNKRULE, VORDR_VALUE_BLOCK);
	WRITE_ONCE(policy_state, reason);
	pr_warn_ratelimited("saved policy not loaded (%s): failing closed, mode %s, unkrule %s\n",
			    reason < ARRAY_SIZE(policy_names) && policy_names[reason] ?
			    policy_names[reason] : "?", "enabled", "block");
}

int vordr_policy_begin(const struct net *net, u32 portid, u32 records, u32 crc)
{
	struct vordr_txn *t;

	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	t->stage = vordr_rules_stage_new();
	if (!t->stage) {
		kfree(t);
		return -ENOMEM;
	}
	t->net = net;
	t->portid = portid;
	t->records = records;
	t->crc = crc;
	t->sum = ~0u;
	mutex_lock(&policy_lock);
	if (policy_txn && !txn_owner(policy_txn, net, portid)) {
		mutex_unlock(&policy_lock);
		txn_free(t);
		return -EBUSY;
	}
	/* The same socket beginning again starts over. */
	txn_drop();
	policy_txn = t;
	mutex_unlock(&policy_lock);
	return 0;
}

int vordr_policy_rule(const struct net *net, u32 portid, u8 prot,
		      const char *path, u8 verdict, const struct vordr_qual *q)
{
	struct vordr_txn *t;
	u16 len = strnlen(path, U16_MAX);
	u8 head[5] = { VORDR_CMD_RULE_ADD, verdict, prot };
	u8 qual[2 + VORDR_QUAL_BYTES_MAX];
	size_t qlen = q ? vordr_qual_bytes(q, qual + 2) : 0;
	int err;

	put_unaligned_le16(qlen, qual);

	mutex_lock(&policy_lock);
	t = txn_of(net, portid);
	if (IS_ERR(t)) {
		mutex_unlock(&policy_lock);
		return PTR_ERR(t);
	}
	err = vordr_rules_stage_add(t->stage, prot, path, verdict, q);
	if (err) {
		if (!t->failed)
			t->failed = VORDR_POLICY_REJECTED;
	} else {
		put_unaligned_le16(len, head + 3);
		t->sum = crc32_le(t->sum, head, sizeof(head));
		t->sum = crc32_le(t->sum, path, len);
		t->sum = crc32_le(t->sum, qual, 2 + qlen);
		t->received++;
	}
	mutex_unlock(&policy_lock);
	return err;
}

int vordr_policy_flag(const struct net *net, u32 portid, enum vordr_flag f, u64 value)
{
	struct vordr_txn *t;
	u8 rec[11] = { VORDR_CMD_FLAG_SET };
	int err;

	mutex_lock(&policy_lock);
	t = txn_of(net, portid);
	if (IS_ERR(t)) {
		mutex_unlock(&policy_lock);
		return PTR_ERR(t);
	}
	err = vordr_flag_check(f, value);
	if (err) {
		if (!t->failed)
			t->failed = VORDR_POLICY_REJECTED;
	} else {
		put_unaligned_le16(f, rec + 1);
		put_unaligned_le64(value, rec + 3);
		t->sum = crc32_le(t->sum, rec, sizeof(rec));
		t->received++;
		__set_bit(f, t->set);
		t->value[f] = value;
	}
	mutex_unlock(&policy_lock);
	return err;
}

void vordr_policy_reject(const struct net *net, u32 portid)
{
	mutex_lock(&policy_lock);
	if (txn_owner(policy_txn, net, portid) && !policy_txn->failed)
		policy_txn->failed = VORDR_POLICY_REJECTED;
	mutex_unlock(&policy_lock);
}

/* The staged flags, right after the swap (under rules_lock). */
static void policy_apply_flags(void *arg)
{
	const struct vordr_txn *t = arg;
	unsigned int f;

	for_each_set_bit(f, t->set, VORDR_FLAG_MAX + 1)
		vordr_flag_set(f, t->value[f]);
}

int vordr_policy_commit(const struct net *net, u32 portid, u8 *why)
{
	struct vordr_rules_stage *stage;
	struct vordr_txn *t;
	u8 reason = 0;

	mutex_lock(&policy_lock);
	t = txn_of(net, portid);
	if (IS_ERR(t)) {
		mutex_unlock(&policy_lock);
		return PTR_ERR(t);
	}
	if (t->failed)
		reason = t->failed;
	else if (t->received != t->records)
		reason = VORDR_POLICY_BADCOUNT;
	else if (~t->sum != t->crc)
		reason = VORDR_POLICY_BADSUM;
	if (reason) {
		if (reason == VORDR_POLICY_BADCOUNT)
			pr_warn_ratelimited("saved policy: %u records announced, %u received\n",
					    t->records, t->received);
		else if (reason == VORDR_POLICY_BADSUM)
			pr_warn_ratelimited("saved policy: crc32 %08x announced, %08x received\n",
					    t->crc, ~t->sum);
		txn_drop();
		policy_fail_closed(reason);
		mutex_unlock(&policy_lock);
		*why = reason;
		return -EBADMSG;
	}
	policy_txn = NULL;
	stage = t->stage;
	t->stage = NULL;
	/* Rules first, then the flags: a packet in between sees the new rules closed. */
	vordr_rules_swap(stage, policy_apply_flags, t);
	WRITE_ONCE(policy_state, VORDR_POLICY_LOADED);
	pr_info("saved policy loaded: %u records\n", t->received);
	mutex_unlock(&policy_lock);
	txn_free(t);
	return 0;
}

int vordr_policy_fail(const struct net *net, u32 portid, u8 reason)
{
	mutex_lock(&policy_lock);
	if (policy_txn && !txn_owner(policy_txn, net, portid)) {
		mutex_unlock(&policy_lock);
		return -EBUSY;
	}
	txn_drop();
	policy_fail_closed(reason);
	mutex_unlock(&policy_lock);
	return 0;
}

void vordr_policy_release(const struct net *net, u32 portid)
{
	struct vordr_txn *t = NULL;

	mutex_lock(&policy_lock);
	if (txn_owner(policy_txn, net, portid)) {
		t = policy_txn;
		policy_txn = NULL;
	}
	mutex_unlock(&policy_lock);
	txn_free(t);
}

/* After the family and the notifier are gone. */
void vordr_policy_exit(void)
{
	mutex_lock(&policy_lock);
	txn_drop();
	mutex_unlock(&policy_lock);
}
