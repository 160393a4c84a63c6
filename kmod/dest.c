// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - where each executable's packets went (DESTS): per identity, its
 * packets and bytes allowed and blocked by destination, most used first
 * in the daemon's `stats`.
 *
 * Nothing is looked up per packet.  A known-socket entry (ksc.c) counts
 * the packets of its socket's flow (the first remote address and ports it
 * saw) in four atomics on the entry the hook already holds; the counts
 * are added to the identity's destination table when the entry goes
 * (socket closed, evicted, another owner) and, for sockets that live on,
 * by the cache's sweep (every entry within KSC_SWEEP_ROUNDS seconds): a
 * listing is at most that late, never short.  Only a packet of a socket
 * to another peer than its first (an unconnected datagram socket talking
 * to several) is added to the table on the packet path, under its lock.
 *
 * A destination is the remote address, the protocol and the service's
 * port: the remote port for a connection this end made, this end's own
 * port (side "from") for one it accepted (a socket derived from a
 * listener) and for a datagram socket answering from a lower,
 * non-ephemeral port.
 *
 * Bounded: a table (about 2 KiB, made on an identity's first count) holds
 * VORDR_DEST_PER_IDENT destinations, kept by Metwally's space-saving: a
 * new one past that takes the place of the row with the least score (its
 * packets plus the score of the row it had itself replaced), and the
 * table's "other" row sums what the rows pushed out had counted and how
 * many went there, so no packet's count is lost and any destination with
 * more than 1/VORDR_DEST_PER_IDENT of the identity's packets keeps a row.
 * A row's counts are exact from when it came in.  A socket's flow counts
 * come in batches (the sweep's, its last when it goes) with the flow's
 * total so far: a flow whose total is still below the least score goes to
 * "other" rather than push out a busier row (counted there as a
 * destination once, on its first batch).  The table goes with its
 * identity (ident.c); one that cannot be allocated (GFP_ATOMIC) loses the
 * counts it would have held, counted in vordr_dest_lost.
 */
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#include "vordr.h"

struct vordr_dest_tab {
	spinlock_t lock;
	u32 n;				/* destinations in @d */
	u32 folded;			/* destinations pushed into @other */
	u32 hint;			/* the row last added to: tried first */
	struct vordr_dest other;	/* their sums; @other.key unused */
	struct vordr_dest d[VORDR_DEST_PER_IDENT];
};

atomic64_t vordr_dest_lost = ATOMIC64_INIT(0);

/* Keys are made whole by ksc_flow_key() (zeroed first, padding too) and copied whole. */
static bool dest_key_eq(const struct vordr_dest_key *a, const struct vordr_dest_key *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static void dest_sum(struct vordr_dest *d, const struct vordr_dest_counts *c, time64_t last)
{
	d->c.ap += c->ap;
	d->c.ab += c->ab;
	d->c.bp += c->bp;
	d->c.bb += c->bb;
	if (last > d->last)
		d->last = last;
}

static struct vordr_dest_tab *dest_tab(struct vordr_ident *id)
{
	struct vordr_dest_tab *t = READ_ONCE(id->dest), *fresh;

	if (likely(t))
		return t;
	fresh = kzalloc(sizeof(*fresh), GFP_ATOMIC | __GFP_NOWARN);
	if (!fresh)
		return NULL;
	spin_lock_init(&fresh->lock);
	t = cmpxchg(&id->dest, NULL, fresh);
	if (t) {
		kfree(fresh);
		return t;
	}
	return fresh;
}

static u64 dest_score(const struct vordr_dest *d)
{
	return d->c.ap + d->c.bp + d->err;
}

/*
 * Adds @c, last counted at @last, to @id's row for @k; @total: all the
 * packets @c's source (a socket's flow) has counted there, @c's included,
 * or 0 for a lone packet.  Any context.
 */
void vordr_dest_add(struct vordr_ident *id, const struct vordr_dest_key *k,
		    const struct vordr_dest_counts *c, time64_t last, u64 total)
{
	struct vordr_dest_tab *t;
	struct vordr_dest *d = NULL;
	unsigned long flags;
	unsigned int i, least = 0;

	if (!c->ap && !c->bp)
		return;
	t = dest_tab(id);
	if (!t) {
		atomic64_add(c->ap + c->bp, &vordr_dest_lost);
		return;
	}
	spin_lock_irqsave(&t->lock, flags);
	/* A server's, or a client's, sockets come to one row after another. */
	if (likely(t->hint < t->n && dest_key_eq(&t->d[t->hint].key, k))) {
		dest_sum(&t->d[t->hint], c, last);
		spin_unlock_irqrestore(&t->lock, flags);
		return;
	}
	for (i = 0; i < t->n; i++) {
		if (dest_key_eq(&t->d[i].key, k)) {
			d = &t->d[i];
			break;
		}
		if (dest_score(&t->d[i]) < dest_score(&t->d[least]))
			least = i;
	}
	if (!d && t->n < VORDR_DEST_PER_IDENT) {
		d = &t->d[t->n++];
		memset(d, 0, sizeof(*d));
		memcpy(&d->key, k, sizeof(*k));
	} else if (!d && total && total < dest_score(&t->d[least])) {
		/*
		 * All a socket's flow has counted, less than any row kept;
		 * a destination more for "other" on its first batch only.
		 */
		d = &t->other;
		if (total == c->ap + c->bp)
			t->folded++;
	} else if (!d) {
		/* Full: the least scored gives way to the newcomer, into "other". */
		u64 err = dest_score(&t->d[least]);

		dest_sum(&t->other, &t->d[least].c, t->d[least].last);
		t->folded++;
		d = &t->d[least];
		memset(d, 0, sizeof(*d));
		memcpy(&d->key, k, sizeof(*k));
		d->err = err;
	}
	if (d != &t->other)
		t->hint = d - t->d;
	dest_sum(d, c, last);
	spin_unlock_irqrestore(&t->lock, flags);
}

/*
 * Row @i of @id's table into @v (@i == its rows: "other", if anything
 * went there).  False past the end.  Under RCU (the table goes with @id).
 */
bool vordr_dest_get(const struct vordr_ident *id, u32 i, struct vordr_dest_view *v)
{
	struct vordr_dest_tab *t = READ_ONCE(id->dest);
	unsigned long flags;
	bool ok = true;

	if (!t)
		return false;
	spin_lock_irqsave(&t->lock, flags);
	if (i < t->n) {
		v->d = t->d[i];
		v->other = false;
		v->folded = 0;
	} else if (i == t->n && t->folded) {
		v->d = t->other;
		v->other = true;
		v->folded = t->folded;
	} else {
		ok = false;
	}
	spin_unlock_irqrestore(&t->lock, flags);
	return ok;
}

/* @id goes: no reader is left (its RCU grace period has passed). */
void vordr_dest_forget(struct vordr_ident *id)
{
	kfree(id->dest);
	id->dest = NULL;
}
