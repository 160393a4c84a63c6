// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - the generic netlink family "vordr", expanded from defs.x.
 *
 * Every attribute is validated by the family policy (strict: unknown
 * attributes, attributes only the kernel sends, out-of-range numbers and
 * over-long strings are refused before a handler runs).  Mutations carry
 * GENL_ADMIN_PERM: CAP_NET_ADMIN in the initial user namespace, since the
 * rules apply to every namespace.  Nothing an unprivileged caller can send
 * changes who receives events: they go to the multicast group only.
 * Handlers run under genl_mutex; the rule table has its own writer lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/inetdevice.h>
#include <linux/kernel.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/ipv6.h>
#include <net/netlink.h>
#include <asm/unaligned.h>

#include "vordr.h"

#ifndef VORDR_SCHEMA_CRC
#error "VORDR_SCHEMA_CRC must be defined by the build (cksum of defs.x)"
#endif

#define VORDR_POL_IN_U8(lo, hi)		NLA_POLICY_RANGE(NLA_U8, lo, hi)
#define VORDR_POL_IN_U16(lo, hi)	NLA_POLICY_RANGE(NLA_U16, lo, hi)
#define VORDR_POL_IN_U32(lo, hi)	{ .type = NLA_U32 }
#define VORDR_POL_IN_U64(lo, hi)	{ .type = NLA_U64 }
#define VORDR_POL_IN_STRING(lo, hi)	{ .type = NLA_NUL_STRING, .len = (hi) }
#define VORDR_POL_IN_BINARY(lo, hi)	{ .type = NLA_BINARY, .len = (hi) }
#define VORDR_POL_OUT(lo, hi)		{ .type = NLA_REJECT }

static const struct nla_policy vordr_policy[VORDR_A_MAX + 1] = {
#define VORDR_ATTR(id, name, type, dir, lo, hi) \
	[VORDR_A_##id] = VORDR_POL_##dir##_IF_##type(lo, hi),
#define VORDR_POL_IN_IF_U8	VORDR_POL_IN_U8
#define VORDR_POL_IN_IF_U16	VORDR_POL_IN_U16
#define VORDR_POL_IN_IF_U32	VORDR_POL_IN_U32
#define VORDR_POL_IN_IF_U64	VORDR_POL_IN_U64
#define VORDR_POL_IN_IF_STRING	VORDR_POL_IN_STRING
#define VORDR_POL_IN_IF_BINARY	VORDR_POL_IN_BINARY
#define VORDR_POL_OUT_IF_U8	VORDR_POL_OUT
#define VORDR_POL_OUT_IF_U16	VORDR_POL_OUT
#define VORDR_POL_OUT_IF_U32	VORDR_POL_OUT
#define VORDR_POL_OUT_IF_U64	VORDR_POL_OUT
#define VORDR_POL_OUT_IF_STRING	VORDR_POL_OUT
#define VORDR_POL_OUT_IF_BINARY	VORDR_POL_OUT
#include "defs.x"
};

static struct genl_family vordr_family;

static bool vordr_prot_known(u8 prot)
{
	switch (prot) {
#define VORDR_CONST(group, id, value, ...) VORDR_ONLY(PROT, group, case (value):)
#include "defs.x"
		return true;
	default:
		return false;
	}
}

static int vordr_nl_hello(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &vordr_family, 0, VORDR_CMD_HELLO);
	if (!hdr ||
	    nla_put_u32(msg, VORDR_A_VERSION, vordr_family.version) ||
	    nla_put_u32(msg, VORDR_A_SCHEMA, VORDR_SCHEMA_CRC)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/* A qualified rule's qualifiers, as RULE_ADD takes them. */
static int vordr_put_qual(struct sk_buff *skb, const struct vordr_qual *q)
{
	u8 ports[4 * VORDR_QPORTS_MAX];
	unsigned int i;

	if (q->user && nla_put_u32(skb, VORDR_A_QUSER, q->user - 1))
		return -EMSGSIZE;
	if (q->af && (nla_put(skb, VORDR_A_QADDR, q->af == AF_INET ? 4 : 16, &q->addr) ||
		      nla_put_u8(skb, VORDR_A_QPLEN, q->plen)))
		return -EMSGSIZE;
	if (nla_put_u8(skb, VORDR_A_QSIDE, q->side))
		return -EMSGSIZE;
	for (i = 0; i < q->nports; i++) {
		put_unaligned_le16(q->ports[i][0], ports + 4 * i);
		put_unaligned_le16(q->ports[i][1], ports + 4 * i + 2);
	}
	if (q->nports && nla_put(skb, VORDR_A_QPORTS, 4 * q->nports, ports))
		return -EMSGSIZE;
	if (q->nlen && nla_put_string(skb, VORDR_A_QNAME, q->name))
		return -EMSGSIZE;
	return 0;
}

/*
 * A name as QNAME takes it: labels of a-z, 0-9, '-' and '_', 1 to 63
 * bytes each, dotted, at most 253 bytes, no trailing dot; "*." first for
 * a domain.
 */
static bool vordr_qname_valid(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len > 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
	}
	if (!len || len > 253)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (!label)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* No bit of @q's address is set past its prefix. */
static bool vordr_qual_masked(const struct vordr_qual *q)
{
	struct in6_addr m;

	if (q->af == AF_INET)
		return !(q->addr.ip & ~inet_make_mask(q->plen));
	ipv6_addr_prefix(&m, &q->addr.in6, q->plen);
	return ipv6_addr_equal(&m, &q->addr.in6);
}

/*
 * A rule's qualifiers from @info into @q (zeroed first, so equal rules
 * compare equal byte for byte); *@has: it has any.  -EINVAL, said in
 * extack, for qualifiers that are not canonical: an address with bits
 * set past its prefix, ports not sorted and apart.
 */
static int vordr_get_qual(struct genl_info *info, struct vordr_qual *q, bool *has)
{
	struct nlattr **a = info->attrs;
	struct nlattr *addr = a[VORDR_A_QADDR], *ports = a[VORDR_A_QPORTS];
	unsigned int i, n, maxlen;

	memset(q, 0, sizeof(*q));
	*has = addr || a[VORDR_A_QPLEN] || a[VORDR_A_QSIDE] || ports || a[VORDR_A_QUSER] ||
	       a[VORDR_A_QNAME];
	if (!*has)
		return 0;
	if (a[VORDR_A_QUSER]) {
		u32 uid = nla_get_u32(a[VORDR_A_QUSER]);

		if (uid == U32_MAX) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QUSER], "not a user id");
			return -EINVAL;
		}
		q->user = uid + 1;
	}
	if (a[VORDR_A_QPLEN] && !addr) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QPLEN], "a prefix length needs an address");
		return -EINVAL;
	}
	if (addr) {
		if (nla_len(addr) != 4 && nla_len(addr) != 16) {
			NL_SET_ERR_MSG_ATTR(info->extack, addr, "an address is 4 or 16 bytes");
			return -EINVAL;
		}
		q->af = nla_len(addr) == 4 ? AF_INET : AF_INET6;
		memcpy(&q->addr, nla_data(addr), nla_len(addr));
		maxlen = nla_len(addr) * 8;
		q->plen = a[VORDR_A_QPLEN] ? nla_get_u8(a[VORDR_A_QPLEN]) : maxlen;
		if (q->plen > maxlen) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QPLEN], "prefix longer than the address");
			return -EINVAL;
		}
		if (q->af == AF_INET6 && ipv6_addr_v4mapped(&q->addr.in6)) {
			NL_SET_ERR_MSG_ATTR(info->extack, addr, "an IPv4-mapped address: give it as IPv4");
			return -EINVAL;
		}
		if (!vordr_qual_masked(q)) {
			NL_SET_ERR_MSG_ATTR(info->extack, addr, "address has bits set past its prefix");
			return -EINVAL;
		}
	}
	if (a[VORDR_A_QSIDE])
		q->side = nla_get_u8(a[VORDR_A_QSIDE]);
	if (a[VORDR_A_QNAME]) {
		const char *name = nla_data(a[VORDR_A_QNAME]);
		size_t len = strlen(name);

		if (addr) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QNAME], "a rule names an address or a name, not both");
			return -EINVAL;
		}
		if (q->side == VORDR_SIDE_FROM) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QNAME], "a name is a destination (to), not a peer (from)");
			return -EINVAL;
		}
		if (!vordr_qname_valid(name, len)) {
			NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QNAME],
					    "a name is lower-case dotted labels of a-z, 0-9, - and _ (\"*.\" first for a domain)");
			return -EINVAL;
		}
		q->nlen = len;
		memcpy(q->name, name, len);
	}
	if (ports) {
		const u8 *p = nla_data(ports);

		n = nla_len(ports) / 4;
		if (nla_len(ports) % 4 || !n || n > VORDR_QPORTS_MAX) {
			NL_SET_ERR_MSG_ATTR(info->extack, ports, "1 to 16 port ranges of 4 bytes each");
			return -EINVAL;
		}
		for (i = 0; i < n; i++) {
			u16 lo = get_unaligned_le16(p + 4 * i), hi = get_unaligned_le16(p + 4 * i + 2);

			if (lo > hi || (i && lo <= q->ports[i - 1][1] + 1)) {
				NL_SET_ERR_MSG_ATTR(info->extack, ports,
						    "port ranges must be sorted, apart and first <= last");
				return -EINVAL;
			}
			q->ports[i][0] = lo;
			q->ports[i][1] = hi;
		}
		q->nports = n;
	}
	/*
	 * A side names a port: without ports it means nothing (to and from
	 * match the same remote address), so equal rules compare equal.
	 */
	if (!q->nports)
		q->side = VORDR_SIDE_TO;
	/* A side alone qualifies nothing. */
	if (!q->af && !q->nports && !q->nlen)
		*has = q->user;
	return 0;
}

static int vordr_put_rule(struct sk_buff *skb, const struct vordr_rule_view *rv)
{
	if (rv->qual && vordr_put_qual(skb, rv->qual))
		return -EMSGSIZE;
	if (nla_put_u8(skb, VORDR_A_PROT, rv->prot) ||
	    nla_put_u8(skb, VORDR_A_VERDICT, rv->verdict) ||
	    nla_put_u8(skb, VORDR_A_LIFE, rv->life) ||
	    nla_put(skb, VORDR_A_PATH, rv->len + 1, rv->path) ||
	    nla_put_u64_64bit(skb, VORDR_A_PACKETS, rv->packets, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_BYTES, rv->bytes, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_LASTHIT, rv->lasthit, VORDR_A_PAD) ||
	    (rv->timeout && nla_put_u32(skb, VORDR_A_TIMEOUT, rv->timeout)))
		return -EMSGSIZE;
	return 0;
}

/* Multicast one message with command @cmd; false if undelivered. */
static bool vordr_mc(u8 cmd, const struct vordr_rule_view *rv)
{
	struct sk_buff *msg;
	void *hdr;

	/* The rule's path, its qualifiers (a name up to 256 bytes) and the rest. */
	msg = genlmsg_new(rv ? nla_total_size(rv->len + 1) + 640 : 0, GFP_ATOMIC);
	if (!msg)
		return false;
	hdr = genlmsg_put(msg, 0, 0, &vordr_family, 0, cmd);
	if (!hdr || (rv && vordr_put_rule(msg, rv))) {
		nlmsg_free(msg);
		return false;
	}
	genlmsg_end(msg, hdr);
	return vordr_netlink_event(msg);
}

/*
 * rchngq: after a change, the whole rule table to the events group: a
 * RULE_CLEAR message (no attributes) says a table follows, then one
 * RULE_LIST message per rule.  Messages that cannot be sent count in
 * evdrops.
 */
static void vordr_rules_changed(void)
{
	struct vordr_rule_view rv;
	u32 pos = 0;

	if (vordr_flag(VORDR_FLAG_RCHNGQ) != VORDR_VALUE_ENABLED ||
	    !vordr_netlink_listening())
		return;
	if (!vordr_mc(VORDR_CMD_RULE_CLEAR, NULL))
		vordr_events_lost();
	rcu_read_lock();
	for (; vordr_rule_next(&pos, true, 0, &rv); pos++)
		if (!vordr_mc(VORDR_CMD_RULE_LIST, &rv))
			vordr_events_lost();
	rcu_read_unlock();
}

/* A policy transaction's answer to a record or a step, with its message. */
static int vordr_nl_txn_err(struct genl_info *info, int err)
{
	if (err == -EBUSY)
		NL_SET_ERR_MSG(info->extack, "another socket is loading a policy");
	else if (err == -ENOENT)
		NL_SET_ERR_MSG(info->extack, "no policy transaction: POLICY_BEGIN first");
	return err;
}

/* RULE_ADD with STAGE: a record of the sender's policy transaction. */
static int vordr_nl_stage_rule(struct genl_info *info, u8 prot, const char *path,
			       const struct vordr_qual *q)
{
	struct nlattr **a = info->attrs;
	int err;

	if (a[VORDR_A_TIMEOUT] || (a[VORDR_A_LIFE] &&
				   nla_get_u8(a[VORDR_A_LIFE]) != VORDR_LIFE_ALWAYS)) {
		vordr_policy_reject(genl_info_net(info), info->snd_portid);
		NL_SET_ERR_MSG(info->extack, "a policy holds lasting rules only");
		return -EINVAL;
	}
	err = vordr_policy_rule(genl_info_net(info), info->snd_portid, prot, path,
				nla_get_u8(a[VORDR_A_VERDICT]), q);
	if (err == -ENOSPC)
		NL_SET_ERR_MSG(info->extack, "policy has more rules than rules_max");
	/* E2BIG, not ENOSPC: the table is not full, one key of it is. */
	if (err == -E2BIG)
		NL_SET_ERR_MSG(info->extack, "more than 64 rules for one path, user and address");
	if (err == -EDOM) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_PATH],
				    "directory rule deeper than 32 levels");
		err = -EINVAL;
	}
	return vordr_nl_txn_err(info, err);
}

static int vordr_nl_rule_add(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **a = info->attrs;
	struct vordr_qual q;
	const char *path;
	bool has;
	u8 prot;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, VORDR_A_PROT) ||
	    GENL_REQ_ATTR_CHECK(info, VORDR_A_PATH) ||
	    GENL_REQ_ATTR_CHECK(info, VORDR_A_VERDICT))
		return -EINVAL;
	prot = nla_get_u8(a[VORDR_A_PROT]);
	if (!vordr_prot_known(prot)) {
		if (a[VORDR_A_STAGE])
			vordr_policy_reject(genl_info_net(info), info->snd_portid);
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_PROT], "unknown protocol");
		return -EINVAL;
	}
	path = nla_data(a[VORDR_A_PATH]);
	if (!vordr_path_valid(path)) {
		if (a[VORDR_A_STAGE])
			vordr_policy_reject(genl_info_net(info), info->snd_portid);
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_PATH],
				    "path must be absolute and canonical");
		return -EINVAL;
	}
	err = vordr_get_qual(info, &q, &has);
	if (!err && q.nports && prot == VORDR_PROT_ICMP) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_QPORTS], "an icmp rule has no ports");
		err = -EINVAL;
	}
	if (err) {
		if (a[VORDR_A_STAGE])
			vordr_policy_reject(genl_info_net(info), info->snd_portid);
		return err;
	}
	if (a[VORDR_A_STAGE])
		return vordr_nl_stage_rule(info, prot, path, has ? &q : NULL);
	/* An EXIT rule belongs to the socket that sent this request. */
	err = vordr_rule_add(prot, path, nla_get_u8(a[VORDR_A_VERDICT]),
			     a[VORDR_A_TIMEOUT] ? nla_get_u32(a[VORDR_A_TIMEOUT]) : 0,
			     a[VORDR_A_LIFE] ? nla_get_u8(a[VORDR_A_LIFE]) : VORDR_LIFE_ALWAYS,
			     genl_info_net(info), info->snd_portid, has ? &q : NULL);
	if (err == -ENOSPC)
		NL_SET_ERR_MSG(info->extack, "rule table is full (module parameter rules_max)");
	/* E2BIG, not ENOSPC: the table is not full, one key of it is. */
	if (err == -E2BIG)
		NL_SET_ERR_MSG(info->extack, "more than 64 rules for one path, user and address");
	if (err == -ERANGE)
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_TIMEOUT],
				    "timeout longer than a year");
	if (err == -EDOM) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_PATH],
				    "directory rule deeper than 32 levels");
		err = -EINVAL;
	}
	if (!err)
		vordr_rules_changed();
	return err;
}

static int vordr_nl_rule_del(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **a = info->attrs;
	bool any = !a[VORDR_A_PROT];
	struct vordr_qual q;
	bool has;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, VORDR_A_PATH))
		return -EINVAL;
	err = vordr_get_qual(info, &q, &has);
	if (err)
		return err;
	if (has && any) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_PATH],
				    "a qualified rule is removed with its protocol");
		return -EINVAL;
	}
	err = vordr_rule_del(nla_data(a[VORDR_A_PATH]), any,
			     any ? 0 : nla_get_u8(a[VORDR_A_PROT]), has ? &q : NULL);
	if (err == -ENOMEM)
		return err;
	if (err == -ENOENT)
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_PATH], "no such rule");
	if (!err)
		vordr_rules_changed();
	return err;
}

static int vordr_nl_rule_clear(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *v = info->attrs[VORDR_A_VERDICT];

	vordr_rule_clear(!v, v ? nla_get_u8(v) : 0);
	vordr_rules_changed();
	return 0;
}

/*
 * RULE_LIST and STATS: pages, not netlink dumps.  A dump keeps its state
 * (and a reference on this module, netlink_dump_control.module) in the
 * reader's socket until the reader has read it all, so any user holding a
 * dump open, or starting one with a full receive buffer, would stop root
 * unloading the module.  A page is answered at once, within the request
 * (genlmsg_unicast, never waiting for the reader), and nothing is kept:
 * the reply ends with a message holding only a CURSOR while more follow,
 * and the next request sends it back.  A cursor from before a change of
 * the table gets its page flagged NLM_F_DUMP_INTR, as a dump's next part
 * would be.
 */
/*
 * What a page is asked for; nlmsg_new() may round the buffer up (a page
 * holds about 32 KiB on x86-64), and a page fills whatever room it has.
 */
#define VORDR_PAGE (16 * 1024)

struct vordr_cursor {
	u32 gen;	/* the table's generation the listing started at */
	u32 pos;	/* rules: the slot; stats: the bucket */
	u32 skip;	/* stats: identities of that bucket already sent */
	u32 sub;	/* dests: the identity's rows already sent */
};

/* No room left on the page for another entry and the cursor after it. */
static bool vordr_page_full(const struct sk_buff *skb)
{
	return skb_tailroom(skb) < nla_total_size(sizeof(struct vordr_cursor)) +
				   GENL_HDRLEN + NLMSG_HDRLEN;
}

/* The request's cursor, or a fresh one at @gen; -EINVAL if malformed. */
static int vordr_cursor_get(struct genl_info *info, u32 gen, struct vordr_cursor *c)
{
	struct nlattr *a = info->attrs[VORDR_A_CURSOR];

	memset(c, 0, sizeof(*c));
	c->gen = gen;
	if (!a)
		return 0;
	if (nla_len(a) != sizeof(*c)) {
		NL_SET_ERR_MSG_ATTR(info->extack, a, "not a cursor this module sent");
		return -EINVAL;
	}
	memcpy(c, nla_data(a), sizeof(*c));
	return 0;
}

static void *vordr_page_put(struct sk_buff *skb, struct genl_info *info, u8 cmd)
{
	return genlmsg_put(skb, info->snd_portid, info->snd_seq, &vordr_family,
			   NLM_F_MULTI, cmd);
}

/*
 * Ends page @skb: the cursor message if @more, the torn flag if the
 * table moved from @c->gen (@gen now), and sends it.  Consumes @skb.
 */
static int vordr_page_send(struct sk_buff *skb, struct genl_info *info, u8 cmd,
			   const struct vordr_cursor *c, u32 gen, bool more,
			   bool empty)
{
	struct nlmsghdr *nlh;
	void *hdr;

	if (more && empty) {
		/* Not even one entry fitted: say so rather than loop. */
		nlmsg_free(skb);
		return -EMSGSIZE;
	}
	if (more) {
		hdr = vordr_page_put(skb, info, cmd);
		if (!hdr || nla_put(skb, VORDR_A_CURSOR, sizeof(*c), c)) {
			nlmsg_free(skb);
			return -EMSGSIZE;
		}
		genlmsg_end(skb, hdr);
	}
	if (c->gen != gen && skb->len) {
		nlh = nlmsg_hdr(skb);
		nlh->nlmsg_flags |= NLM_F_DUMP_INTR;
	}
	return genlmsg_unicast(genl_info_net(info), skb, info->snd_portid);
}

static int vordr_nl_rule_list(struct sk_buff *req, struct genl_info *info)
{
	struct nlattr *v = info->attrs[VORDR_A_VERDICT];
	struct vordr_rule_view rv;
	struct vordr_cursor c;
	struct sk_buff *skb;
	bool more, empty = true;
	void *hdr;
	int err;

	err = vordr_cursor_get(info, vordr_rules_gen(), &c);
	if (err)
		return err;
	skb = nlmsg_new(VORDR_PAGE, GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	rcu_read_lock();
	for (; (more = vordr_rule_next(&c.pos, !v, v ? nla_get_u8(v) : 0, &rv)); c.pos++) {
		if (vordr_page_full(skb))
			break;
		hdr = vordr_page_put(skb, info, VORDR_CMD_RULE_LIST);
		if (!hdr)
			break;
		if (vordr_put_rule(skb, &rv) ||
		    vordr_page_full(skb)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		empty = false;
	}
	rcu_read_unlock();
	return vordr_page_send(skb, info, VORDR_CMD_RULE_LIST, &c, vordr_rules_gen(),
			       more, empty);
}

/* @iv's executable and counters (STATS, and each DESTS row). */
static int vordr_put_counts(struct sk_buff *skb, const struct vordr_ident_view *iv,
			    u64 ap, u64 ab, u64 bp, u64 bb, u64 last)
{
	if (nla_put(skb, VORDR_A_PATH, iv->len + 1, iv->path) ||
	    nla_put_u32(skb, VORDR_A_DEV, iv->dev) ||
	    nla_put_u64_64bit(skb, VORDR_A_INO, iv->ino, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_APACKETS, ap, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_ABYTES, ab, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_BPACKETS, bp, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_BBYTES, bb, VORDR_A_PAD) ||
	    nla_put_u64_64bit(skb, VORDR_A_LASTHIT, last, VORDR_A_PAD))
		return -EMSGSIZE;
	return 0;
}

/* Every executable seen, with its counters. */
static int vordr_nl_stats(struct sk_buff *req, struct genl_info *info)
{
	struct vordr_ident_view iv;
	struct vordr_cursor c;
	struct sk_buff *skb;
	bool more, empty = true;
	u32 npos, nskip;
	void *hdr;
	int err;

	/* Identities come and go from the packet path: flag a torn listing. */
	err = vordr_cursor_get(info, vordr_ident_gen(), &c);
	if (err)
		return err;
	skb = nlmsg_new(VORDR_PAGE, GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	rcu_read_lock();
	for (;;) {
		npos = c.pos;
		nskip = c.skip;
		more = vordr_ident_next(&npos, &nskip, &iv);
		if (!more)
			break;
		hdr = vordr_page_put(skb, info, VORDR_CMD_STATS);
		if (!hdr)
			break;
		if (vordr_put_counts(skb, &iv, iv.apackets, iv.abytes, iv.bpackets, iv.bbytes,
				     iv.lasthit) ||
		    vordr_page_full(skb)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		empty = false;
		c.pos = npos;
		c.skip = nskip;
	}
	rcu_read_unlock();
	return vordr_page_send(skb, info, VORDR_CMD_STATS, &c, vordr_ident_gen(),
			       more, empty);
}

/* One DESTS row of @iv's identity; -EMSGSIZE when the page is full. */
static int vordr_put_dest(struct sk_buff *skb, const struct vordr_ident_view *iv,
			  const struct vordr_dest_view *dv)
{
	const struct vordr_dest *d = &dv->d;
	const char *name;

	if (vordr_put_counts(skb, iv, d->c.ap, d->c.ab, d->c.bp, d->c.bb, d->last))
		return -EMSGSIZE;
	if (dv->other)
		return nla_put_u32(skb, VORDR_A_COUNT, dv->folded);
	if (nla_put_u8(skb, VORDR_A_PROT, d->key.prot) ||
	    nla_put_u8(skb, VORDR_A_AF, d->key.af) ||
	    nla_put(skb, VORDR_A_DADDR, d->key.af == AF_INET ? 4 : 16, &d->key.addr) ||
	    nla_put_u8(skb, VORDR_A_QSIDE, d->key.side) ||
	    nla_put_u16(skb, VORDR_A_DPORT, d->key.port))
		return -EMSGSIZE;
	name = vordr_dns_name(iv->id, d->key.af, &d->key.addr);
	if (name && nla_put_string(skb, VORDR_A_NAME, name))
		return -EMSGSIZE;
	return 0;
}

/* Every executable's destinations (dest.c), a page at a time. */
static int vordr_nl_dests(struct sk_buff *req, struct genl_info *info)
{
	struct vordr_ident_view iv;
	struct vordr_dest_view dv;
	struct vordr_cursor c;
	struct sk_buff *skb;
	bool more = false, empty = true, full = false;
	u32 npos, nskip;
	void *hdr;
	int err;

	err = vordr_cursor_get(info, vordr_ident_gen(), &c);
	if (err)
		return err;
	skb = nlmsg_new(VORDR_PAGE, GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	rcu_read_lock();
	while (!full) {
		npos = c.pos;
		nskip = c.skip;
		more = vordr_ident_next(&npos, &nskip, &iv);
		if (!more)
			break;
		for (;; c.sub++) {
			if (!vordr_dest_get(iv.id, c.sub, &dv))
				break;
			hdr = vordr_page_put(skb, info, VORDR_CMD_DESTS);
			if (!hdr || vordr_put_dest(skb, &iv, &dv) || vordr_page_full(skb)) {
				if (hdr)
					genlmsg_cancel(skb, hdr);
				full = true;
				break;
			}
			genlmsg_end(skb, hdr);
			empty = false;
		}
		if (full)
			break;
		/* The next identity, from its first row. */
		c.pos = npos;
		c.skip = nskip;
		c.sub = 0;
	}
	rcu_read_unlock();
	return vordr_page_send(skb, info, VORDR_CMD_DESTS, &c, vordr_ident_gen(),
			       more, empty);
}

bool vordr_netlink_listening(void)
{
	return genl_has_listeners(&vordr_family, &init_net, 0);
}

void *vordr_netlink_event_put(struct sk_buff *msg)
{
	return genlmsg_put(msg, 0, 0, &vordr_family, 0, VORDR_CMD_EVENT);
}

/* Consumes @msg.  -ESRCH: the last listener left meanwhile, not a loss. */
bool vordr_netlink_event(struct sk_buff *msg)
{
	int err = genlmsg_multicast_netns(&vordr_family, &init_net, msg, 0, 0,
					  GFP_ATOMIC);

	return !err || err == -ESRCH;
}

static int vordr_nl_flag_set(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **a = info->attrs;
	int err;

	if (GENL_REQ_ATTR_CHECK(info, VORDR_A_FLAG) ||
	    GENL_REQ_ATTR_CHECK(info, VORDR_A_VALUE))
		return -EINVAL;
	if (a[VORDR_A_STAGE]) {
		err = vordr_policy_flag(genl_info_net(info), info->snd_portid,
					nla_get_u16(a[VORDR_A_FLAG]),
					nla_get_u64(a[VORDR_A_VALUE]));
		if (err == -EROFS || err == -EINVAL) {
			NL_SET_ERR_MSG(info->extack, "not a value this flag can be set to");
			return -EINVAL;
		}
		return vordr_nl_txn_err(info, err);
	}
	err = vordr_flag_set(nla_get_u16(a[VORDR_A_FLAG]),
			     nla_get_u64(a[VORDR_A_VALUE]));
	if (err == -EROFS) {
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_FLAG], "flag is read-only");
		return -EINVAL;
	}
	if (err)
		NL_SET_ERR_MSG_ATTR(info->extack, a[VORDR_A_VALUE],
				    "value not allowed for this flag");
	return err;
}

static int vordr_nl_flag_get(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	u16 flag;
	void *hdr;

	if (GENL_REQ_ATTR_CHECK(info, VORDR_A_FLAG))
		return -EINVAL;
	flag = nla_get_u16(info->attrs[VORDR_A_FLAG]);
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &vordr_family, 0, VORDR_CMD_FLAG_GET);
	if (!hdr ||
	    nla_put_u16(msg, VORDR_A_FLAG, flag) ||
	    nla_put_u64_64bit(msg, VORDR_A_VALUE, vordr_flag_get(flag),
			      VORDR_A_PAD)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int vordr_nl_policy_begin(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, VORDR_A_RECORDS) ||
	    GENL_REQ_ATTR_CHECK(info, VORDR_A_CRC))
		return -EINVAL;
	return vordr_nl_txn_err(info, vordr_policy_begin(genl_info_net(info), info->snd_portid,
							 nla_get_u32(info->attrs[VORDR_A_RECORDS]),
							 nla_get_u32(info->attrs[VORDR_A_CRC])));
}

static int vordr_nl_policy_commit(struct sk_buff *skb, struct genl_info *info)
{
	u8 why = 0;
	int err = vordr_policy_commit(genl_info_net(info), info->snd_portid, &why);

	if (err == -EBADMSG && why == VORDR_POLICY_BADSUM)
		NL_SET_ERR_MSG(info->extack, "policy records do not match their crc32: failed closed");
	else if (err == -EBADMSG && why == VORDR_POLICY_BADCOUNT)
		NL_SET_ERR_MSG(info->extack, "policy records are not as many as announced: failed closed");
	else if (err == -EBADMSG)
		NL_SET_ERR_MSG(info->extack, "a policy record was refused: failed closed");
	if (!err)
		vordr_rules_changed();
	return vordr_nl_txn_err(info, err);
}

static int vordr_nl_policy_fail(struct sk_buff *skb, struct genl_info *info)
{
	if (GENL_REQ_ATTR_CHECK(info, VORDR_A_POLICY))
		return -EINVAL;
	return vordr_nl_txn_err(info, vordr_policy_fail(genl_info_net(info), info->snd_portid,
							nla_get_u8(info->attrs[VORDR_A_POLICY])));
}

#define VORDR_PERM_ADMIN	GENL_ADMIN_PERM
#define VORDR_PERM_ANYONE	0

static const struct genl_ops vordr_ops[] = {
#define VORDR_CMD(id, name, perm, kind) VORDR_OP_##kind(id, name, perm)
#define VORDR_OP_DO(id, name, perm) { \
	.cmd = VORDR_CMD_##id, \
	.flags = VORDR_PERM_##perm, \
	.doit = vordr_nl_##name, \
},
/* Paged requests, not dumps: see vordr_nl_rule_list(). */
#define VORDR_OP_DUMP(id, name, perm) { \
	.cmd = VORDR_CMD_##id, \
	.flags = VORDR_PERM_##perm, \
	.doit = vordr_nl_##name, \
},
#define VORDR_OP_EVENT(id, name, perm)
#include "defs.x"
};

static const struct genl_multicast_group vordr_mcgrps[] = {
#define VORDR_FAMILY(fname, fversion, group) { .name = group },
#include "defs.x"
};

static struct genl_family vordr_family __ro_after_init = {
#define VORDR_FAMILY(fname, fversion, group) .name = fname, .version = fversion,
#include "defs.x"
	.maxattr = VORDR_A_MAX,
	.policy = vordr_policy,
	/*
	 * resv_start_op stays 0: every command is validated strictly, with
	 * the header's reserved field checked (genl_family_rcv_msg()).
	 */
	.netnsok = true,
	.module = THIS_MODULE,
	.ops = vordr_ops,
	.n_ops = ARRAY_SIZE(vordr_ops),
	.mcgrps = vordr_mcgrps,
	.n_mcgrps = ARRAY_SIZE(vordr_mcgrps),
};

/*
 * A netlink socket is being released (netlink_release(): process context,
 * no netlink lock held; the blocking notifier chain's rwsem is taken for
 * reading, and rules_lock is never held around anything that takes it):
 * the until-exit rules it added go, whichever way its process ended.
 */
static int vordr_nl_release(struct notifier_block *nb, unsigned long event,
			    void *ptr)
{
	const struct netlink_notify *n = ptr;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC)
		return NOTIFY_DONE;
	if (vordr_rules_release(n->net, n->portid))
		vordr_rules_changed();
	vordr_policy_release(n->net, n->portid);
	return NOTIFY_DONE;
}

static struct notifier_block vordr_release_nb = {
	.notifier_call = vordr_nl_release,
};

int vordr_netlink_init(void)
{
	int err = netlink_register_notifier(&vordr_release_nb);

	if (err)
		return err;
	err = genl_register_family(&vordr_family);
	if (err)
		netlink_unregister_notifier(&vordr_release_nb);
	return err;
}

void vordr_netlink_exit(void)
{
	/*
	 * The notifier first: a release handled after the family is gone
	 * would announce to a group id no longer ours.  An until-exit rule
	 * whose socket closes in between is cleared with the table.
	 */
	netlink_unregister_notifier(&vordr_release_nb);
	genl_unregister_family(&vordr_family);
	vordr_policy_exit();
}
