// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - names from the applications' own DNS lookups.
 *
 * A query an application sends (UDP to port 53; TCP to port 53 when the
 * message starts its segment) is remembered by its socket's cookie, its
 * transaction id, the server's address and port, and the hash of its
 * question.  An answer delivered to that very socket, from that server
 * and port, with that id and that question, is parsed before the socket
 * can read it: the A and AAAA records of the name asked (directly, or
 * through the answer's own CNAME chain) go into the identity's name table
 * until their TTL (capped at a day) and a grace of VORDR_DNS_GRACE
 * seconds run out.  An answer to a socket that did not ask, from another
 * address or port, or with another id or question, is never parsed.
 *
 * The parser trusts nothing in the message: every read is checked against
 * the message's end (skb_header_pointer, so a nonlinear skb is read where
 * it lies), a compression pointer must point before the name that uses
 * it and is followed at most DNS_JUMPS times, a name is at most 255 bytes
 * on the wire, and at most DNS_RRS records are looked at.
 *
 * Bounds: DNS_QSETS * DNS_QWAYS queries waiting (the oldest in a set
 * gives way); per identity VORDR_DNS_PER_IDENT (name, address) pairs, in
 * all vordr_dns_max: when full, the identity's oldest pair is dropped,
 * and a pair dropped before it expired is counted (flag dnsdrops).  A
 * table (2 KiB) is made for an identity on its first answer, at most
 * vordr_dns_max / 16 of them; an identity without one past that learns
 * nothing, counted the same way.
 *
 * Events read the table to name the far end of a packet
 * (vordr_dns_name()); rules by name (rules.c) ask it which names an
 * identity's own answers gave an address (vordr_dns_names()), and so a
 * name decides only for the identity that looked it up.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/jhash.h>
#include <linux/hash.h>
#include <linux/jiffies.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/ipv6.h>
#include <asm/unaligned.h>

#include "vordr.h"

#define DNS_HDR 12
#define DNS_NAME_MAX 255	/* on the wire, with the length bytes */
#define DNS_JUMPS 16		/* compression pointers followed per name */
#define DNS_RRS 64		/* answer records looked at */
#define DNS_CHAIN 8		/* names in a CNAME chain */
#define DNS_ADDRS 32		/* addresses taken from one answer */
#define DNS_TTL_MAX (24 * 3600)
#define DNS_QSETS 256
#define DNS_QWAYS 4
#define DNS_QLIFE (10 * HZ)	/* how long a query waits for its answer */

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1

unsigned int vordr_dns_max = 16384;

struct dns_query {
	u64 cookie;
	union nf_inet_addr server;
	unsigned long stamp;	/* jiffies when sent; 0: a free way */
	u32 qhash;
	u16 txid;
	u16 port;
	u8 af;
};

static struct dns_query dns_q[DNS_QSETS][DNS_QWAYS];
static DEFINE_SPINLOCK(dns_qlock);
static u32 dns_seed;
static atomic_t dns_count = ATOMIC_INIT(0);
static atomic_t dns_ntabs = ATOMIC_INIT(0);
/* Writers of a table: one of these, by the table's address (2 KiB tables). */
#define DNS_LOCKS 64
static spinlock_t dns_locks[DNS_LOCKS];
static atomic64_t dns_dropped = ATOMIC64_INIT(0);

struct vordr_dns_ent {
	struct rcu_head rcu;
	union nf_inet_addr addr;
	unsigned long expires;	/* jiffies; WRITE_ONCE when renewed */
	unsigned long added;
	u8 af;
	char name[];		/* lower case, dotted, NUL terminated */
};

struct vordr_dns_tab {
	struct vordr_dns_ent __rcu *e[VORDR_DNS_PER_IDENT];
};

static spinlock_t *dns_lock(const struct vordr_dns_tab *t)
{
	return &dns_locks[hash_ptr(t, ilog2(DNS_LOCKS))];
}

/* A message in an skb: [base, base + len). */
struct dns_msg {
	const struct sk_buff *skb;
	unsigned int base, len;
};

static const void *dns_read(const struct dns_msg *m, unsigned int off,
			    unsigned int n, void *buf)
{
	if (off > m->len || n > m->len - off)
		return NULL;
	return skb_header_pointer(m->skb, m->base + off, n, buf);
}

static bool dns_u16(const struct dns_msg *m, unsigned int off, u16 *v)
{
	__be16 b;
	const __be16 *p = dns_read(m, off, 2, &b);

	if (!p)
		return false;
	*v = ntohs(get_unaligned(p));
	return true;
}

/*
 * The name at *@off, dotted and in lower case into @out (at least
 * DNS_NAME_MAX bytes), its length into *@outlen; *@off moves past it
 * where it lies (the first pointer ends it).  False for anything not a
 * well-formed name within the message.
 */
static bool dns_name(const struct dns_msg *m, unsigned int *off, char *out,
		     unsigned int *outlen)
{
	unsigned int pos = *off, n = 0, wire = 0, jumps = 0, lowest = *off;
	bool jumped = false;
	u8 lbuf[64];

	for (;;) {
		const u8 *p;
		u8 l, b2;
		unsigned int i;

		p = dns_read(m, pos, 1, &l);
		if (!p)
			return false;
		l = *p;
		if ((l & 0xc0) == 0xc0) {
			u16 to;

			p = dns_read(m, pos + 1, 1, &b2);
			if (!p)
				return false;
			to = (l & 0x3f) << 8 | *p;
			/*
			 * Strictly backwards, before every byte of this name
			 * read so far, and never into the header.
			 */
			if (to < DNS_HDR || to >= lowest || ++jumps > DNS_JUMPS)
				return false;
			if (!jumped)
				*off = pos + 2;
			jumped = true;
			pos = lowest = to;
			continue;
		}
		if (l & 0xc0)
			return false;	/* 0x40, 0x80: not names */
		wire += l + 1;
		if (wire > DNS_NAME_MAX)
			return false;
		if (!l)
			break;
		p = dns_read(m, pos + 1, l, lbuf);
		if (!p)
			return false;
		if (n)
			out[n++] = '.';
		for (i = 0; i < l; i++) {
			u8 c = p[i];

			/* Printable ASCII but '.', which would make another name. */
			if (c <= ' ' || c >= 0x7f || c == '.')
				return false;
			out[n++] = c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
		}
		pos += l + 1;
	}
	if (!jumped)
		*off = pos + 1;
	out[n] = '\0';
	*outlen = n;
	return true;
}

static u32 dns_hash(const char *name, unsigned int len)
{
	return jhash(name, len, dns_seed);
}

static struct dns_query *dns_set(u64 cookie, u16 txid)
{
	return dns_q[jhash_3words((u32)cookie, (u32)(cookie >> 32), txid, dns_seed) % DNS_QSETS];
}

static bool dns_addr_eq(u8 af, const union nf_inet_addr *a, const union nf_inet_addr *b)
{
	return af == AF_INET ? a->ip == b->ip : ipv6_addr_equal(&a->in6, &b->in6);
}

/*
 * Where the DNS message of a TCP or UDP packet starts and how long it is;
 * false when there is none to read (a TCP segment that does not start
 * with a whole message).
 */
static bool dns_locate(const struct sk_buff *skb, const struct vordr_pkt *pkt,
		       struct dns_msg *m)
{
	unsigned int off;

	m->skb = skb;
	if (pkt->prot == VORDR_PROT_UDP) {
		off = pkt->thoff + sizeof(struct udphdr);
		if (off > skb->len)
			return false;
		m->base = off;
		m->len = skb->len - off;
	} else {
		struct tcphdr th;
		const struct tcphdr *t = skb_header_pointer(skb, pkt->thoff, sizeof(th), &th);
		__be16 lb;
		const __be16 *l;

		if (!t)
			return false;
		off = pkt->thoff + t->doff * 4;
		l = skb_header_pointer(skb, off, 2, &lb);
		if (!l || off + 2 > skb->len)
			return false;
		m->base = off + 2;
		m->len = ntohs(get_unaligned(l));
		if (m->len > skb->len - m->base)
			return false;	/* not whole in this segment */
	}
	return m->len >= DNS_HDR;
}

/*
 * What parsing one message needs, per CPU, used with bottom halves off
 * (LOCAL_IN runs in softirq already; LOCAL_OUT may not): nothing is
 * allocated per packet.
 */
struct dns_scratch {
	char qname[DNS_NAME_MAX];
	char name[DNS_NAME_MAX];
	u32 chain[DNS_CHAIN];
	struct {
		union nf_inet_addr addr;
		u32 ttl;
		u8 af;
	} a[DNS_ADDRS];
};

static DEFINE_PER_CPU(struct dns_scratch, dns_scratch);

/* An application's query: remembered, for its answer. */
static void dns_query(const struct sk_buff *skb, const struct vordr_pkt *pkt, u64 cookie,
		      struct dns_scratch *s)
{
	struct dns_query *set, *q, *old;
	struct dns_msg m;
	unsigned int off = DNS_HDR, len;
	u16 txid, flags, qd;
	unsigned long flags_irq;
	u32 h;
	int i;

	if (!dns_locate(skb, pkt, &m) || !dns_u16(&m, 0, &txid) ||
	    !dns_u16(&m, 2, &flags) || !dns_u16(&m, 4, &qd))
		return;
	if ((flags & 0x8000) || ((flags >> 11) & 0xf) || qd != 1)
		return;	/* an answer, not a standard query, or not one question */
	if (!dns_name(&m, &off, s->qname, &len))
		return;
	h = dns_hash(s->qname, len);

	set = dns_set(cookie, txid);
	spin_lock_irqsave(&dns_qlock, flags_irq);
	old = &set[0];
	for (i = 0; i < DNS_QWAYS; i++) {
		q = &set[i];
		if (!q->stamp || (q->cookie == cookie && q->txid == txid)) {
			old = q;
			break;
		}
		if (time_before(q->stamp, old->stamp))
			old = q;
	}
	old->cookie = cookie;
	old->txid = txid;
	old->qhash = h;
	old->af = pkt->af;
	old->server = pkt->daddr;
	old->port = pkt->dport;
	old->stamp = jiffies | 1;
	spin_unlock_irqrestore(&dns_qlock, flags_irq);
}

/* Whether @q waits for an answer to @cookie with @txid, from @pkt's source. */
static bool dns_match(const struct dns_query *q, u64 cookie, u16 txid,
		      const struct vordr_pkt *pkt)
{
	return q->stamp && q->cookie == cookie && q->txid == txid &&
	       q->af == pkt->af && q->port == pkt->sport &&
	       dns_addr_eq(pkt->af, &q->server, &pkt->saddr) &&
	       !time_after(jiffies, q->stamp + DNS_QLIFE);
}

/* The query this answer is for, taken out of the table; false if none. */
static bool dns_take(u64 cookie, u16 txid, u32 qhash, const struct vordr_pkt *pkt)
{
	struct dns_query *set = dns_set(cookie, txid);
	unsigned long flags;
	bool found = false;
	int i;

	spin_lock_irqsave(&dns_qlock, flags);
	for (i = 0; i < DNS_QWAYS; i++) {
		struct dns_query *q = &set[i];

		if (!dns_match(q, cookie, txid, pkt) || q->qhash != qhash)
			continue;
		q->stamp = 0;
		found = true;
		break;
	}
	spin_unlock_irqrestore(&dns_qlock, flags);
	return found;
}

/* Whether a query waits for this answer, without taking it. */
static bool dns_waiting(u64 cookie, u16 txid, const struct vordr_pkt *pkt)
{
	struct dns_query *set = dns_set(cookie, txid);
	unsigned long flags;
	bool found = false;
	int i;

	spin_lock_irqsave(&dns_qlock, flags);
	for (i = 0; i < DNS_QWAYS && !found; i++)
		found = dns_match(&set[i], cookie, txid, pkt);
	spin_unlock_irqrestore(&dns_qlock, flags);
	return found;
}

/* @id's table, made on first use; NULL without memory. */
static struct vordr_dns_tab *dns_tab(struct vordr_ident *id)
{
	struct vordr_dns_tab *t = rcu_dereference(id->dns), *fresh;

	if (t)
		return t;
	if (atomic_inc_return(&dns_ntabs) > READ_ONCE(vordr_dns_max) / 16 + 1)
		goto none;
	fresh = kzalloc(sizeof(*fresh), GFP_ATOMIC | __GFP_NOWARN);
	if (!fresh)
		goto none;
	t = cmpxchg((struct vordr_dns_tab __force **)&id->dns, NULL, fresh);
	if (t) {
		kfree(fresh);
		atomic_dec(&dns_ntabs);
		return t;
	}
	return fresh;
none:
	atomic_dec(&dns_ntabs);
	return NULL;
}

/* @name looked up by @id gave @addr, for @ttl seconds. */
static void dns_learn(struct vordr_ident *id, u8 af, const union nf_inet_addr *addr,
		      const char *name, unsigned int len, u32 ttl)
{
	unsigned long now = jiffies, expires;
	struct vordr_dns_tab *t = dns_tab(id);
	struct vordr_dns_ent *e, *fresh;
	unsigned long added = 0, flags;
	int i, slot, empty = -1, expired = -1, oldest = -1;

	if (!t) {
		atomic64_inc(&dns_dropped);
		return;
	}
	expires = now + (unsigned long)(min_t(u32, ttl, DNS_TTL_MAX) + VORDR_DNS_GRACE) * HZ;
	spin_lock_irqsave(dns_lock(t), flags);
	for (i = 0; i < VORDR_DNS_PER_IDENT; i++) {
		e = rcu_dereference_protected(t->e[i], lockdep_is_held(dns_lock(t)));
		if (!e) {
			if (empty < 0)
				empty = i;
		} else if (e->af == af && dns_addr_eq(af, &e->addr, addr) &&
			   !strcmp(e->name, name)) {
			/* Known: it lasts as long as its latest answer says. */
			if (time_after(expires, e->expires))
				WRITE_ONCE(e->expires, expires);
			goto out;
		} else if (time_after_eq(now, e->expires)) {
			expired = i;
		} else if (oldest < 0 || time_before(e->added, added)) {
			oldest = i;
			added = e->added;
		}
	}
	if (expired >= 0) {
		slot = expired;
	} else if (empty >= 0 && atomic_read(&dns_count) < READ_ONCE(vordr_dns_max)) {
		slot = empty;
	} else {
		/* Full, here or in all: this identity's oldest gives way. */
		atomic64_inc(&dns_dropped);
		if (oldest < 0)
			goto out;
		slot = oldest;
	}
	fresh = kmalloc(struct_size(fresh, name, len + 1), GFP_ATOMIC | __GFP_NOWARN);
	if (!fresh) {
		atomic64_inc(&dns_dropped);
		goto out;
	}
	fresh->addr = *addr;
	fresh->af = af;
	fresh->added = now;
	fresh->expires = expires;
	memcpy(fresh->name, name, len + 1);
	e = rcu_dereference_protected(t->e[slot], lockdep_is_held(dns_lock(t)));
	rcu_assign_pointer(t->e[slot], fresh);
	if (e)
		kfree_rcu(e, rcu);
	else
		atomic_inc(&dns_count);
out:
	spin_unlock_irqrestore(dns_lock(t), flags);
}


/*
 * An answer for the socket @cookie of @id: its addresses learnt if it
 * answers a query that socket sent, from where it was sent.
 */
static void dns_answer(const struct sk_buff *skb, const struct vordr_pkt *pkt,
		       u64 cookie, struct vordr_ident *id, struct dns_scratch *s)
{
	unsigned int off = DNS_HDR, qlen, nlen, i, j, nchain = 1, naddr = 0;
	u16 txid, flags, qd, an, type, class, rdlen;
	struct dns_msg m;
	u32 h;

	if (!dns_locate(skb, pkt, &m) || !dns_u16(&m, 0, &txid) ||
	    !dns_u16(&m, 2, &flags) || !dns_u16(&m, 4, &qd) || !dns_u16(&m, 6, &an))
		return;
	/* An answer to a standard query, no error, one question. */
	if (!(flags & 0x8000) || ((flags >> 11) & 0xf) || (flags & 0xf) || qd != 1)
		return;
	if (!dns_waiting(cookie, txid, pkt))
		return;	/* nothing asked it: not parsed at all */
	if (!dns_name(&m, &off, s->qname, &qlen) || !dns_u16(&m, off, &type) ||
	    !dns_u16(&m, off + 2, &class))
		return;
	off += 4;
	if (class != DNS_CLASS_IN || (type != DNS_TYPE_A && type != DNS_TYPE_AAAA))
		return;
	s->chain[0] = dns_hash(s->qname, qlen);
	for (i = 0; i < an && i < DNS_RRS; i++) {
		bool ours = false;
		u8 ttlb[4];
		const u8 *tp;
		u32 ttl;

		if (!dns_name(&m, &off, s->name, &nlen) || !dns_u16(&m, off, &type) ||
		    !dns_u16(&m, off + 2, &class) || !(tp = dns_read(&m, off + 4, 4, ttlb)) ||
		    !dns_u16(&m, off + 8, &rdlen))
			return;
		ttl = get_unaligned_be32(tp);
		off += 10;
		if (off > m.len || rdlen > m.len - off)
			return;
		h = dns_hash(s->name, nlen);
		for (j = 0; j < nchain; j++)
			ours |= s->chain[j] == h;
		if (ours && class == DNS_CLASS_IN) {
			if (type == DNS_TYPE_CNAME && nchain < DNS_CHAIN) {
				unsigned int t = off;

				if (!dns_name(&m, &t, s->name, &nlen) || t != off + rdlen)
					return;
				s->chain[nchain++] = dns_hash(s->name, nlen);
			} else if ((type == DNS_TYPE_A && rdlen == 4) ||
				   (type == DNS_TYPE_AAAA && rdlen == 16)) {
				if (naddr < DNS_ADDRS) {
					u8 abuf[16];
					const u8 *ap = dns_read(&m, off, rdlen, abuf);

					if (!ap)
						return;
					memset(&s->a[naddr].addr, 0, sizeof(s->a[naddr].addr));
					memcpy(&s->a[naddr].addr, ap, rdlen);
					s->a[naddr].ttl = ttl;
					s->a[naddr].af = type == DNS_TYPE_A ? AF_INET : AF_INET6;
					naddr++;
				}
			}
		}
		off += rdlen;
	}
	/* Parsed whole: it is the answer, and the query is done. */
	if (!dns_take(cookie, txid, s->chain[0], pkt))
		return;
	for (i = 0; i < naddr; i++)
		dns_learn(id, s->a[i].af, &s->a[i].addr, s->qname, qlen, s->a[i].ttl);
}

/*
 * A TCP or UDP packet to or from port 53 that was let through, on @sk of
 * @id: a query remembered, or an answer parsed.
 */
void vordr_dns_see(const struct sk_buff *skb, const struct vordr_pkt *pkt,
		   struct sock *sk, struct vordr_ident *id)
{
	if ((pkt->prot != VORDR_PROT_UDP && pkt->prot != VORDR_PROT_TCP) ||
	    pkt->broken || pkt->frag || pkt->later || !sk_fullsock(sk))
		return;
	local_bh_disable();
	if (pkt->dir == VORDR_DIR_OUT && pkt->dport == VORDR_DNS_PORT)
		dns_query(skb, pkt, vordr_sk_cookie(sk), this_cpu_ptr(&dns_scratch));
	else if (pkt->dir == VORDR_DIR_IN && pkt->sport == VORDR_DNS_PORT)
		dns_answer(skb, pkt, vordr_sk_cookie(sk), id, this_cpu_ptr(&dns_scratch));
	local_bh_enable();
}

/*
 * The name @id looked up last that gave @addr and has not expired, or
 * NULL.  Under RCU, and valid until its end.
 */
const char *vordr_dns_name(const struct vordr_ident *id, u8 af,
			   const union nf_inet_addr *addr)
{
	const struct vordr_dns_tab *t = rcu_dereference(id->dns);
	const struct vordr_dns_ent *e, *best = NULL;
	unsigned long now = jiffies;
	int i;

	if (!t)
		return NULL;
	for (i = 0; i < VORDR_DNS_PER_IDENT; i++) {
		e = rcu_dereference(t->e[i]);
		if (!e || e->af != af || !dns_addr_eq(af, &e->addr, addr) ||
		    time_after_eq(now, READ_ONCE(e->expires)))
			continue;
		if (!best || time_after(e->added, best->added))
			best = e;
	}
	return best ? best->name : NULL;
}

/*
 * Up to @max names @id looked up that gave @addr and have not expired,
 * into @names (newest first not promised).  Under RCU, valid until its end.
 */
unsigned int vordr_dns_names(const struct vordr_ident *id, u8 af,
			     const union nf_inet_addr *addr, const char **names,
			     unsigned int max)
{
	const struct vordr_dns_tab *t = rcu_dereference(id->dns);
	const struct vordr_dns_ent *e;
	unsigned long now = jiffies;
	unsigned int n = 0;
	int i;

	if (!t)
		return 0;
	for (i = 0; i < VORDR_DNS_PER_IDENT && n < max; i++) {
		e = rcu_dereference(t->e[i]);
		if (!e || e->af != af || !dns_addr_eq(af, &e->addr, addr) ||
		    time_after_eq(now, READ_ONCE(e->expires)))
			continue;
		names[n++] = e->name;
	}
	return n;
}

/* @id's table, freed with it (no reader left). */
void vordr_dns_forget(struct vordr_ident *id)
{
	struct vordr_dns_tab *t = rcu_dereference_protected(id->dns, 1);
	int i;

	if (!t)
		return;
	for (i = 0; i < VORDR_DNS_PER_IDENT; i++) {
		struct vordr_dns_ent *e = rcu_dereference_protected(t->e[i], 1);

		if (e) {
			atomic_dec(&dns_count);
			kfree(e);
		}
	}
	kfree(t);
	atomic_dec(&dns_ntabs);
}

u64 vordr_dns_dropped(void)
{
	return atomic64_read(&dns_dropped);
}

void vordr_dns_init(void)
{
	int i;

	for (i = 0; i < DNS_LOCKS; i++)
		spin_lock_init(&dns_locks[i]);
	dns_seed = get_random_u32();
}

unsigned int vordr_dns_count_now(void)
{
	return atomic_read(&dns_count);
}
