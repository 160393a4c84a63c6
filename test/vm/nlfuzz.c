// SPDX-License-Identifier: GPL-2.0
/*
 * nlfuzz - a fuzzer for the generic netlink family of defs.x, and a
 * checker of what the family's rule table and flags hold.
 *
 *   nlfuzz fuzz [--count N] [--seed S] [--root] [--ns user|usernet|net]
 *               [--check-every N] [--events] [--from U] [--only U] [--hex]
 *   nlfuzz dump [--stable]
 *
 * fuzz sends N messages (default 10000), random and structure-aware,
 * built from the commands, attributes, flags and constants of defs.x
 * (included below with this file's own expansions: no number of the schema
 * is written here), over a raw NETLINK_GENERIC socket, reading every reply
 * without blocking so dumps never pile up.  Messages are grouped in units
 * (one send each, one to eight messages); unit U depends only on the seed
 * and U, so `--seed S --only U` sends exactly the unit that failed.
 *
 * Checks while fuzzing (the first failure stops the run, exit 1):
 *  - every reply is well formed (lengths, attributes, extack TLVs);
 *  - without --root (an unprivileged caller), no well-formed request for an
 *    ADMIN command is acknowledged as done, and the stable dump below is
 *    the same every --check-every messages (default 10000) and at the end
 *    as it was before the first message;
 *  - with --root, the dump is valid every --check-every messages (default
 *    1000) and at the end.
 * --ns: first unshare a user namespace (user), a user and a network
 * namespace (usernet, so the caller holds CAP_NET_ADMIN over both), or a
 * network namespace (net, root only).
 *
 * dump prints the module's state, one line each, after checking it:
 *   rule VERDICT PROT packets=P bytes=B last=L timeout=T life=LIFE PATH
 *   flag NAME VALUE          (writable flags: their value's name)
 *   ro NAME VALUE            (read-only counters; not with --stable)
 * PATH has bytes outside 0x21-0x7e and '\' as \xHH; --stable prints a
 * timeout as yes or -, not the seconds left.  Exit 1 if anything is
 * invalid: a rule with a field missing, repeated or of the wrong size, an
 * unknown verdict, protocol or LIFE, a path not absolute and canonical or
 * longer than the schema allows, two rules for one protocol and path, a
 * flag whose value it does not allow, a malformed reply, a page of
 * RULE_LIST or STATS with anything after its CURSOR message or a CURSOR
 * and no entry, a netlink dump (NLM_F_DUMP) of them not refused.
 * RULE_LIST and STATS are read a page a request (NLM_F_ACK), each request
 * sending back the CURSOR message that ended the page before; a listing
 * with a page flagged NLM_F_DUMP_INTR is read again from the start.
 *
 * Exit status: 0 clean, 1 a check failed, 2 usage or setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

/* ---- defs.x, expanded for this program --------------------------------- */

#define VORDR_VAL(x) VORDR_VALUE_##x
#define VORDR_V(x) (1ull << VORDR_VALUE_##x)

enum {
#define VORDR_CONST(group, id, value, ...) VORDR_##group##_##id = (value),
#include "../../defs.x"
};

enum {
	VORDR_FLAG_UNSPEC,
#define VORDR_FLAG(id, name, access, def, allowed) VORDR_FLAG_##id,
#include "../../defs.x"
	VORDR_FLAG_END
};
#define VORDR_FLAG_MAX (VORDR_FLAG_END - 1)

enum {
	VORDR_CMD_UNSPEC,
#define VORDR_CMD(id, name, perm, kind) VORDR_CMD_##id,
#include "../../defs.x"
	VORDR_CMD_END
};
#define VORDR_CMD_MAX (VORDR_CMD_END - 1)

enum {
	VORDR_A_UNSPEC,
#define VORDR_ATTR(id, name, type, dir, lo, hi) VORDR_A_##id,
#include "../../defs.x"
	VORDR_A_END
};
#define VORDR_A_MAX (VORDR_A_END - 1)

#define VORDR_FAMILY(n, v, g) \
	static const char fam_name[] = n; \
	static const unsigned int fam_version = (v); \
	static const char fam_group[] = g;
#include "../../defs.x"

enum atype { T_U8, T_U16, T_U32, T_U64, T_STRING, T_BINARY };
enum kind { K_DO, K_DUMP, K_EVENT };

#define IS_IN_IN 1
#define IS_IN_OUT 0
#define IS_ADMIN_ADMIN 1
#define IS_ADMIN_ANYONE 0
#define IS_RW_RW 1
#define IS_RW_RO 0

struct attr {
	const char *name, *id;
	int nr;
	enum atype type;
	bool in;
	long long lo, hi;
};

static const struct attr attrs[] = {
	{ "unspec", "UNSPEC", 0, T_BINARY, false, 0, 0 },
#define VORDR_ATTR(id, name, type, dir, lo, hi) \
	{ #name, #id, VORDR_A_##id, T_##type, IS_IN_##dir, (lo), (hi) },
#include "../../defs.x"
};

struct cmd {
	const char *name;
	int nr;
	bool admin;
	enum kind kind;
};

static const struct cmd cmds[] = {
	{ "unspec", 0, false, K_EVENT },
#define VORDR_CMD(id, name, perm, kind) \
	{ #name, VORDR_CMD_##id, IS_ADMIN_##perm, K_##kind },
#include "../../defs.x"
};

struct flag {
	const char *name;
	int nr;
	bool rw;
	unsigned long long def, allowed;
};

static const struct flag flags[] = {
	{ "unspec", 0, false, 0, 0 },
#define VORDR_FLAG(id, name, access, def, allowed) \
	{ #name, VORDR_FLAG_##id, IS_RW_##access, (def), (allowed) },
#include "../../defs.x"
};

struct cnst {
	const char *group, *id;
	long long value;
	const char *name;
};

#define FIRST_OF(a, ...) a
static const struct cnst consts[] = {
#define VORDR_CONST(group, id, value, ...) \
	{ #group, #id, (value), FIRST_OF(__VA_ARGS__, 0) },
#include "../../defs.x"
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

_Static_assert(N(attrs) == VORDR_A_MAX + 1, "attribute table indexed by number");
_Static_assert(N(cmds) == VORDR_CMD_MAX + 1, "command table indexed by number");
_Static_assert(N(flags) == VORDR_FLAG_MAX + 1, "flag table indexed by number");

/* Name of constant @v of @group, or NULL. */
static const char *const_name(const char *group, long long v)
{
	for (size_t i = 0; i < N(consts); i++)
		if (!strcmp(consts[i].group, group) && consts[i].value == v)
			return consts[i].name;
	return NULL;
}

/* ---- small helpers ------------------------------------------------------ */

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("nlfuzz: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A growable text buffer. */
struct text {
	char *p;
	size_t len, cap;
};

static void tprintf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf failed");
		if (t->p && t->len + n < t->cap) {
			t->len += n;
			return;
		}
		t->cap = (t->cap + n + 1) * 2;
		t->p = realloc(t->p, t->cap);
		if (!t->p)
			die("out of memory");
	}
}

static void tescape(struct text *t, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] > 0x20 && s[i] < 0x7f && s[i] != '\\')
			tprintf(t, "%c", s[i]);
		else
			tprintf(t, "\\x%02x", s[i]);
	}
}

/* ---- PRNG: splitmix64, one stream per unit ---------------------------- */

static uint64_t rs;

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
	rs += 0x9e3779b97f4a7c15ull;
	return mix(rs);
}

static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static bool chance(unsigned int pct)
{
	return below(100) < pct;
}

/* Uniform over bit lengths, so small and huge numbers both come up. */
static uint64_t logu(void)
{
	unsigned int bits = below(65);

	if (!bits)
		return 0;
	return (rnd() >> (64 - bits)) | (1ull << (bits - 1));
}

/* ---- netlink sockets ------------------------------------------------------ */

static uint16_t fam_id;
static uint32_t fam_group_id;
static uint32_t fam_maxattr;

static int nl_open(bool blocking)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int big = 1 << 20, one = 1;

	if (fd < 0)
		die("socket(NETLINK_GENERIC): %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		die("bind: %s", strerror(errno));
	/* Beyond rmem_max only root gets it; the smaller size is fine. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	if (blocking) {
		struct timeval tv = { .tv_sec = 20 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static int nl_send(int fd, const void *buf, size_t len)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	return sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

/* A message being built. */
struct msg {
	uint8_t *p;
	size_t len, cap;
	bool full;
};

static void *mput(struct msg *m, const void *d, size_t n)
{
	void *at;

	if (m->len + n > m->cap) {
		m->full = true;
		return NULL;
	}
	at = m->p + m->len;
	if (d)
		memcpy(at, d, n);
	else
		memset(at, 0, n);
	m->len += n;
	return at;
}

static void mpad(struct msg *m)
{
	size_t pad = NLMSG_ALIGN(m->len) - m->len;

	if (pad)
		mput(m, NULL, pad);
}

/* An attribute; returns its offset in the message, or -1. */
static long nla_put(struct msg *m, uint16_t type, const void *d, size_t n)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + n), .nla_type = type };
	size_t at = m->len;

	if (!mput(m, &a, sizeof(a)) || !mput(m, d, n))
		return -1;
	mpad(m);
	return (long)at;
}

static void msg_start(struct msg *m, uint16_t type, uint16_t flags, uint32_t seq,
		      uint8_t cmd, uint8_t version)
{
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq };
	struct genlmsghdr g = { .cmd = cmd, .version = version };

	mput(m, &h, sizeof(h));
	mput(m, &g, sizeof(g));
}

static void msg_end(struct msg *m, size_t start)
{
	((struct nlmsghdr *)(m->p + start))->nlmsg_len = (uint32_t)(m->len - start);
}

/* Iterates the attributes in [p, p + n); false at the end or on garbage. */
struct nla_it {
	const uint8_t *p;
	size_t n;
	bool bad;
};

static bool nla_next(struct nla_it *it, const struct nlattr **a)
{
	const struct nlattr *h = (const void *)it->p;

	if (it->n == 0)
		return false;
	if (it->n < NLA_HDRLEN || h->nla_len < NLA_HDRLEN || h->nla_len > it->n) {
		it->bad = true;
		return false;
	}
	*a = h;
	if ((size_t)NLA_ALIGN(h->nla_len) >= it->n) {
		it->n = 0;
	} else {
		it->p += NLA_ALIGN(h->nla_len);
		it->n -= NLA_ALIGN(h->nla_len);
	}
	return true;
}

static const void *nla_data(const struct nlattr *a)
{
	return (const uint8_t *)a + NLA_HDRLEN;
}

static size_t nla_plen(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

static uint64_t nla_uint(const struct nlattr *a)
{
	uint64_t v = 0;

	switch (nla_plen(a)) {
	case 1: v = *(const uint8_t *)nla_data(a); break;
	case 2: memcpy(&v, nla_data(a), 2); v = (uint16_t)v; break;
	case 4: { uint32_t x; memcpy(&x, nla_data(a), 4); v = x; break; }
	case 8: memcpy(&v, nla_data(a), 8); break;
	}
	return v;
}

/* ---- request / reply for the checker ------------------------------------ */

static uint8_t rbuf[1 << 18];

/*
 * Sends one request on a blocking socket and hands every reply message to
 * @cb until the ack (or NLMSG_DONE of a dump).  Returns the kernel's error
 * (0 or -errno); *intr is set when a dump part carried NLM_F_DUMP_INTR.
 */
typedef int (*reply_cb)(const struct nlmsghdr *h, void *arg);

static int nl_request(int fd, struct msg *m, reply_cb cb, void *arg, bool *intr, struct text *err)
{
	const struct nlmsghdr *req = (const void *)m->p;
	uint32_t seq = req->nlmsg_seq;
	bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
	int rc;

	rc = nl_send(fd, m->p, m->len);
	if (rc)
		return rc;
	for (;;) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
		const uint8_t *p = rbuf;

		if (n < 0) {
			tprintf(err, "recv: %s\n", strerror(errno));
			return -errno;
		}
		while (n > 0) {
			const struct nlmsghdr *h = (const void *)p;

			if (n < (ssize_t)NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN ||
			    h->nlmsg_len > n) {
				tprintf(err, "malformed reply: %zd bytes left, nlmsg_len %u\n",
					n, n >= 4 ? h->nlmsg_len : 0);
				return -EPROTO;
			}
			if (h->nlmsg_seq != seq) {
				/* a multicast event or an old reply: not ours */
			} else if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(*e)) {
					tprintf(err, "short NLMSG_ERROR\n");
					return -EPROTO;
				}
				if (!dump || e->error)
					return e->error;
			} else if (h->nlmsg_type == NLMSG_DONE) {
				if (dump) {
					int e = 0;

					if (h->nlmsg_len >= NLMSG_HDRLEN + sizeof(int))
						memcpy(&e, NLMSG_DATA(h), sizeof(e));
					return e;
				}
			} else {
				if (intr && (h->nlmsg_flags & NLM_F_DUMP_INTR))
					*intr = true;
				rc = cb(h, arg);
				if (rc)
					return rc;
			}
			p += NLMSG_ALIGN(h->nlmsg_len);
			n -= NLMSG_ALIGN(h->nlmsg_len);
		}
	}
}

static uint32_t check_seq = 1u << 31;

/* Resolves the family's id, maxattr and group id through nlctrl. */
struct family_info {
	struct text *err;
};

static int family_cb(const struct nlmsghdr *h, void *arg)
{
	struct family_info *fi = arg;
	const struct genlmsghdr *g = NLMSG_DATA(h);
	struct nla_it it = { .p = (const uint8_t *)(g + 1), .n = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN };
	const struct nlattr *a, *b, *c;

	if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
		return -EPROTO;
	while (nla_next(&it, &a)) {
		switch (a->nla_type & NLA_TYPE_MASK) {
		case CTRL_ATTR_FAMILY_ID:
			fam_id = (uint16_t)nla_uint(a);
			break;
		case CTRL_ATTR_MAXATTR:
			fam_maxattr = (uint32_t)nla_uint(a);
			break;
		case CTRL_ATTR_MCAST_GROUPS: {
			struct nla_it gi = { .p = nla_data(a), .n = nla_plen(a) };

			while (nla_next(&gi, &b)) {
				struct nla_it ci = { .p = nla_data(b), .n = nla_plen(b) };
				uint32_t id = 0;
				bool ours = false;

				while (nla_next(&ci, &c)) {
					if (c->nla_type == CTRL_ATTR_MCAST_GRP_ID)
						id = (uint32_t)nla_uint(c);
					if (c->nla_type == CTRL_ATTR_MCAST_GRP_NAME &&
					    !strncmp(nla_data(c), fam_group, nla_plen(c)))
						ours = true;
				}
				if (ours)
					fam_group_id = id;
			}
			break;
		}
		}
	}
	if (it.bad)
		tprintf(fi->err, "malformed nlctrl reply\n");
	return it.bad ? -EPROTO : 0;
}

static void resolve_family(void)
{
	uint8_t b[256];
	struct msg m = { .p = b, .cap = sizeof(b) };
	struct text err = { 0 };
	struct family_info fi = { .err = &err };
	int fd = nl_open(true), rc;

	msg_start(&m, GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, check_seq++, CTRL_CMD_GETFAMILY, 1);
	nla_put(&m, CTRL_ATTR_FAMILY_NAME, fam_name, sizeof(fam_name));
	msg_end(&m, 0);
	rc = nl_request(fd, &m, family_cb, &fi, NULL, &err);
	close(fd);
	if (rc || !fam_id)
		die("family %s not found (%s)%s%s: is the module loaded?", fam_name,
		    strerror(-rc), err.p ? ": " : "", err.p ? err.p : "");
	if (fam_maxattr != VORDR_A_MAX)
		die("the module's family has maxattr %u, defs.x %d: built from another schema",
		    fam_maxattr, VORDR_A_MAX);
	free(err.p);
}

/* ---- the checker ----------------------------------------------------------- */

struct rule_seen {
	uint8_t prot;
	char *path;
	char qual[200];	/* the qualifiers as dumped ("" for none) */
};

struct dump_state {
	struct text *out, *err;
	bool stable;
	int problems;
	struct rule_seen *seen;
	size_t nseen, capseen;
	/* flag_get */
	int want_flag;
	bool got_flag;
	uint64_t value;
	/* hello */
	bool got_hello;
};

static void problem(struct dump_state *d, const char *fmt, ...)
{
	va_list ap;
	char line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tprintf(d->err, "invalid: %s\n", line);
	d->problems++;
}

static bool path_canonical(const char *p, size_t n)
{
	if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../"))
		return false;
	if ((n >= 2 && !strcmp(p + n - 2, "/.")) || (n >= 3 && !strcmp(p + n - 3, "/..")))
		return false;
	return true;
}

static size_t type_size(enum atype t)
{
	switch (t) {
	case T_U8: return 1;
	case T_U16: return 2;
	case T_U32: return 4;
	case T_U64: return 8;
	default: return 0;
	}
}

/*
 * Collects a message's attributes by number: each at most once, of its
 * type's size (a string NUL-terminated at its end and nowhere else), and
 * only those in @allowed (PAD always).
 */
static bool collect(struct dump_state *d, const struct nlmsghdr *h, const char *what,
		    const struct nlattr **by, const int *allowed, size_t nallowed)
{
	const struct genlmsghdr *g = NLMSG_DATA(h);
	struct nla_it it;
	const struct nlattr *a;
	bool ok = true;

	memset(by, 0, sizeof(*by) * (VORDR_A_MAX + 1));
	if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) {
		problem(d, "%s: message shorter than its headers", what);
		return false;
	}
	it = (struct nla_it){ .p = (const uint8_t *)(g + 1), .n = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN };
	while (nla_next(&it, &a)) {
		int t = a->nla_type & NLA_TYPE_MASK;
		bool known = false;

		if (t == VORDR_A_PAD)
			continue;
		for (size_t i = 0; i < nallowed; i++)
			known |= allowed[i] == t;
		if (!known || t > VORDR_A_MAX) {
			problem(d, "%s: unexpected attribute %d", what, t);
			ok = false;
			continue;
		}
		if (by[t]) {
			problem(d, "%s: attribute %s twice", what, attrs[t].name);
			ok = false;
		}
		by[t] = a;
		if (type_size(attrs[t].type) && nla_plen(a) != type_size(attrs[t].type)) {
			problem(d, "%s: attribute %s has %zu bytes", what, attrs[t].name, nla_plen(a));
			ok = false;
			by[t] = NULL;
		}
		if (attrs[t].type == T_STRING &&
		    (nla_plen(a) < 1 || memchr(nla_data(a), 0, nla_plen(a)) !=
		     (const uint8_t *)nla_data(a) + nla_plen(a) - 1)) {
			problem(d, "%s: attribute %s is not one NUL-terminated string", what,
				attrs[t].name);
			ok = false;
			by[t] = NULL;
		}
	}
	if (it.bad) {
		problem(d, "%s: malformed attributes", what);
		ok = false;
	}
	return ok;
}

/*
 * A listed rule's qualifiers, checked (the module keeps them canonical:
 * defs.x QADDR) and written to @out as " q=ADDRHEX/PLEN side=S ports=LO-HI,..
 * user=U" ("" for an unqualified rule).
 */
static void qual_check(struct dump_state *d, const struct nlattr *const *by, char *out, size_t size)
{
	const struct nlattr *addr = by[VORDR_A_QADDR], *ports = by[VORDR_A_QPORTS];
	const struct nlattr *plen = by[VORDR_A_QPLEN], *side = by[VORDR_A_QSIDE], *user = by[VORDR_A_QUSER];
	const struct nlattr *name = by[VORDR_A_QNAME];
	size_t o = 0;

	out[0] = 0;
	if (!addr && !ports && !user && !plen && !side && !name)
		return;
	if (name) {
		const char *n = nla_data(name);
		size_t len = strnlen(n, nla_plen(name));

		if (addr)
			problem(d, "rule with an address and a name");
		for (size_t i = 0; i < len; i++)
			if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') ||
			      strchr("-_.*", n[i])))
				problem(d, "rule name with byte 0x%02x", (unsigned char)n[i]);
		o += (size_t)snprintf(out + o, size - o, " name=%.*s", (int)(len < 100 ? len : 100), n);
	}
	if (!side)
		problem(d, "qualified rule without %s", attrs[VORDR_A_QSIDE].name);
	else if (!const_name("SIDE", (long long)nla_uint(side)))
		problem(d, "rule with side %" PRIu64, nla_uint(side));
	if (!addr && !ports && !user && !name)
		problem(d, "a rule with a side and no qualifier");
	if (addr) {
		const uint8_t *a = nla_data(addr);
		size_t n = nla_plen(addr);
		uint64_t bits = plen ? nla_uint(plen) : 0;
		static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

		if ((n != 4 && n != 16) || !plen || bits > 8 * n)
			problem(d, "rule address of %zu bytes, prefix %" PRIu64, n, bits);
		else if (n == 16 && !memcmp(a, mapped, sizeof(mapped)))
			problem(d, "rule with an IPv4-mapped address");
		for (size_t i = 0; i < n && i < 16; i++) {
			if (i * 8 + 8 > bits && (a[i] & (uint8_t)(0xff >> (bits > i * 8 ? bits - i * 8 : 0))))
				problem(d, "rule address with bits past its prefix /%" PRIu64, bits);
			o += (size_t)snprintf(out + o, size - o, "%s%02x", i ? "" : " q=", a[i]);
		}
		o += (size_t)snprintf(out + o, size - o, "/%" PRIu64, bits);
	} else if (plen) {
		problem(d, "rule with a prefix length and no address");
	}
	if (side && o < size)
		o += (size_t)snprintf(out + o, size - o, " side=%" PRIu64, nla_uint(side));
	if (ports) {
		const uint8_t *p = nla_data(ports);
		size_t n = nla_plen(ports);
		long last = -2;

		if (n % 4 || n == 0 || n > 64)
			problem(d, "rule ports of %zu bytes", n);
		for (size_t i = 0; i + 4 <= n && o < size; i += 4) {
			uint16_t lo, hi;

			memcpy(&lo, p + i, 2);
			memcpy(&hi, p + i + 2, 2);
			if (lo > hi || (long)lo <= last + 1)
				problem(d, "rule ports not sorted and apart: %u-%u after %ld", lo, hi, last);
			last = hi;
			o += (size_t)snprintf(out + o, size - o, "%s%u-%u", i ? "," : " ports=", lo, hi);
		}
	}
	if (user && o < size) {
		if (nla_uint(user) == UINT32_MAX)
			problem(d, "rule for user %" PRIu64, nla_uint(user));
		snprintf(out + o, size - o, " user=%" PRIu64, nla_uint(user));
	}
}

static int rule_cb(const struct nlmsghdr *h, void *arg)
{
	static const int allowed[] = {
		VORDR_A_PROT, VORDR_A_VERDICT, VORDR_A_PATH, VORDR_A_PACKETS,
		VORDR_A_BYTES, VORDR_A_LASTHIT, VORDR_A_TIMEOUT, VORDR_A_LIFE,
		VORDR_A_QADDR, VORDR_A_QPLEN, VORDR_A_QSIDE, VORDR_A_QPORTS, VORDR_A_QUSER,
		VORDR_A_QNAME,
	};
	static const int required[] = {
		VORDR_A_PROT, VORDR_A_VERDICT, VORDR_A_PATH, VORDR_A_PACKETS,
		VORDR_A_BYTES, VORDR_A_LASTHIT, VORDR_A_LIFE,
	};
	struct dump_state *d = arg;
	const struct nlattr *by[VORDR_A_MAX + 1];
	const struct genlmsghdr *g = NLMSG_DATA(h);
	const char *vname, *pname, *lname, *path;
	uint64_t verdict, prot, life;
	char qual[200];
	size_t len;

	if (h->nlmsg_type != fam_id || h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN ||
	    g->cmd != VORDR_CMD_RULE_LIST) {
		problem(d, "rule dump: message of type %u cmd %u", h->nlmsg_type,
			h->nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN ? g->cmd : 0);
		return 0;
	}
	if (!collect(d, h, "rule", by, allowed, N(allowed)))
		return 0;
	for (size_t i = 0; i < N(required); i++) {
		if (!by[required[i]]) {
			problem(d, "rule without %s", attrs[required[i]].name);
			return 0;
		}
	}
	verdict = nla_uint(by[VORDR_A_VERDICT]);
	prot = nla_uint(by[VORDR_A_PROT]);
	life = nla_uint(by[VORDR_A_LIFE]);
	path = nla_data(by[VORDR_A_PATH]);
	len = strlen(path);
	vname = const_name("VALUE", (long long)verdict);
	pname = const_name("PROT", (long long)prot);
	lname = const_name("LIFE", (long long)life);
	/* The verdicts a rule may hold are the VERDICT attribute's range. */
	if ((long long)verdict < attrs[VORDR_A_VERDICT].lo ||
	    (long long)verdict > attrs[VORDR_A_VERDICT].hi || !vname)
		problem(d, "rule with verdict %" PRIu64, verdict);
	if (!pname)
		problem(d, "rule with protocol %" PRIu64, prot);
	if (!lname)
		problem(d, "rule with life %" PRIu64, life);
	if ((long long)len < attrs[VORDR_A_PATH].lo || (long long)len > attrs[VORDR_A_PATH].hi)
		problem(d, "rule path of %zu bytes", len);
	else if (!path_canonical(path, len))
		problem(d, "rule path not absolute and canonical: %.200s", path);
	qual_check(d, by, qual, sizeof(qual));
	for (size_t i = 0; i < d->nseen; i++)
		if (d->seen[i].prot == prot && !strcmp(d->seen[i].path, path) &&
		    !strcmp(d->seen[i].qual, qual))
			problem(d, "two rules for %s %.200s%s", pname ? pname : "?", path, qual);
	if (d->nseen == d->capseen) {
		d->capseen = d->capseen ? 2 * d->capseen : 64;
		d->seen = realloc(d->seen, d->capseen * sizeof(*d->seen));
		if (!d->seen)
			die("out of memory");
	}
	d->seen[d->nseen].prot = (uint8_t)prot;
	d->seen[d->nseen].path = strdup(path);
	snprintf(d->seen[d->nseen].qual, sizeof(d->seen[d->nseen].qual), "%s", qual);
	d->nseen++;
	tprintf(d->out, "rule %s %s packets=%" PRIu64 " bytes=%" PRIu64 " last=%" PRIu64 " timeout=",
		vname ? vname : "?", pname ? pname : "?", nla_uint(by[VORDR_A_PACKETS]),
		nla_uint(by[VORDR_A_BYTES]), nla_uint(by[VORDR_A_LASTHIT]));
	if (!by[VORDR_A_TIMEOUT])
		tprintf(d->out, "-");
	else if (d->stable)
		tprintf(d->out, "yes");
	else
		tprintf(d->out, "%" PRIu64, nla_uint(by[VORDR_A_TIMEOUT]));
	tprintf(d->out, " life=%s%s ", lname ? lname : "?", qual);
	tescape(d->out, (const uint8_t *)path, len);
	tprintf(d->out, "\n");
	return 0;
}

static int flag_cb(const struct nlmsghdr *h, void *arg)
{
	static const int allowed[] = { VORDR_A_FLAG, VORDR_A_VALUE };
	struct dump_state *d = arg;
	const struct nlattr *by[VORDR_A_MAX + 1];
	const struct genlmsghdr *g = NLMSG_DATA(h);

	if (h->nlmsg_type != fam_id || h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN ||
	    g->cmd != VORDR_CMD_FLAG_GET) {
		problem(d, "flag_get: reply of type %u", h->nlmsg_type);
		return 0;
	}
	if (!collect(d, h, "flag_get", by, allowed, N(allowed)))
		return 0;
	if (!by[VORDR_A_FLAG] || !by[VORDR_A_VALUE] ||
	    (int)nla_uint(by[VORDR_A_FLAG]) != d->want_flag) {
		problem(d, "flag_get %d: reply without the flag or its value", d->want_flag);
		return 0;
	}
	d->got_flag = true;
	d->value = nla_uint(by[VORDR_A_VALUE]);
	return 0;
}

static int hello_cb(const struct nlmsghdr *h, void *arg)
{
	static const int allowed[] = { VORDR_A_VERSION, VORDR_A_SCHEMA };
	struct dump_state *d = arg;
	const struct nlattr *by[VORDR_A_MAX + 1];

	if (!collect(d, h, "hello", by, allowed, N(allowed)))
		return 0;
	if (!by[VORDR_A_VERSION] || nla_uint(by[VORDR_A_VERSION]) != fam_version ||
	    !by[VORDR_A_SCHEMA])
		problem(d, "hello: no version %u and schema", fam_version);
	d->got_hello = true;
	return 0;
}

static int stats_cb(const struct nlmsghdr *h, void *arg)
{
	static const int allowed[] = {
		VORDR_A_PATH, VORDR_A_DEV, VORDR_A_INO, VORDR_A_APACKETS, VORDR_A_ABYTES,
		VORDR_A_BPACKETS, VORDR_A_BBYTES, VORDR_A_LASTHIT,
	};
	struct dump_state *d = arg;
	const struct nlattr *by[VORDR_A_MAX + 1];

	if (collect(d, h, "stats", by, allowed, N(allowed)) && !by[VORDR_A_PATH])
		problem(d, "stats entry without a path");
	return 0;
}

static size_t req_start(struct msg *m, uint8_t cmd, bool dump)
{
	m->len = 0;
	msg_start(m, fam_id, NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK), check_seq++, cmd,
		  (uint8_t)fam_version);
	return 0;
}

/* The only attribute of @h if it is one CURSOR (a page's last message), else NULL. */
static const struct nlattr *cursor_of(const struct nlmsghdr *h)
{
	const struct genlmsghdr *g = NLMSG_DATA(h);
	const struct nlattr *a, *cur = NULL;
	struct nla_it it;
	int n = 0;

	if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
		return NULL;
	it = (struct nla_it){ .p = (const uint8_t *)(g + 1), .n = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN };
	while (nla_next(&it, &a)) {
		n++;
		if ((a->nla_type & NLA_TYPE_MASK) == VORDR_A_CURSOR)
			cur = a;
	}
	return n == 1 && !it.bad ? cur : NULL;
}

/* One page of a listing: entries to @cb, the cursor that ends it kept. */
struct page {
	reply_cb cb;
	struct dump_state *d;
	const char *what;
	uint8_t cursor[256];
	size_t cursor_len;
	bool has_cursor;
	unsigned int entries;
};

static int page_cb(const struct nlmsghdr *h, void *arg)
{
	struct page *pg = arg;
	const struct nlattr *cur = cursor_of(h);

	if (pg->has_cursor)
		problem(pg->d, "%s: a message after the page's CURSOR", pg->what);
	if (!cur) {
		pg->entries++;
		return pg->cb(h, pg->d);
	}
	if ((long long)nla_plen(cur) > attrs[VORDR_A_CURSOR].hi || nla_plen(cur) > sizeof(pg->cursor))
		problem(pg->d, "%s: a CURSOR of %zu bytes", pg->what, nla_plen(cur));
	pg->has_cursor = true;
	pg->cursor_len = nla_plen(cur) < sizeof(pg->cursor) ? nla_plen(cur) : sizeof(pg->cursor);
	memcpy(pg->cursor, nla_data(cur), pg->cursor_len);
	return 0;
}

/*
 * Reads the listing @cmd (with a VERDICT filter if @verdict >= 0) page by
 * page, each request sending back the previous page's CURSOR; entries go
 * to @cb.  Returns the first error; *intr is set if a page was torn.
 */
static int read_pages(int fd, uint8_t cmd, int verdict, reply_cb cb, struct dump_state *d,
		      bool *intr, const char *what)
{
	uint8_t b[512];
	struct msg m = { .p = b, .cap = sizeof(b) };
	struct page pg = { .cb = cb, .d = d, .what = what };
	unsigned int pages;
	int rc;

	for (pages = 0; pages < 1u << 20; pages++) {
		req_start(&m, cmd, false);
		if (verdict >= 0) {
			uint8_t v = (uint8_t)verdict;

			nla_put(&m, VORDR_A_VERDICT, &v, sizeof(v));
		}
		if (pages)
			nla_put(&m, VORDR_A_CURSOR, pg.cursor, pg.cursor_len);
		msg_end(&m, 0);
		pg.has_cursor = false;
		pg.entries = 0;
		rc = nl_request(fd, &m, page_cb, &pg, intr, d->err);
		if (rc)
			return rc;
		if (!pg.has_cursor)
			return 0;
		if (!pg.entries) {
			problem(d, "%s: page %u holds a CURSOR and no entry", what, pages);
			return 0;
		}
	}
	problem(d, "%s: more than %u pages", what, pages);
	return 0;
}

/*
 * Reads and checks the whole state into @out; returns the number of
 * problems (written to @err).  A listing torn by a concurrent change is
 * read again.
 */
static int snapshot(bool stable, struct text *out, struct text *err)
{
	uint8_t b[128];
	struct msg m = { .p = b, .cap = sizeof(b) };
	struct dump_state d = { .out = out, .err = err, .stable = stable };
	int fd = nl_open(true), rc, tries;

	req_start(&m, VORDR_CMD_HELLO, false);
	msg_end(&m, 0);
	rc = nl_request(fd, &m, hello_cb, &d, NULL, err);
	if (rc || !d.got_hello)
		problem(&d, "hello: %s", rc ? strerror(-rc) : "no reply");

	for (tries = 0;; tries++) {
		size_t mark = out->len;
		int pmark = d.problems;
		bool intr = false;

		for (size_t i = 0; i < d.nseen; i++)
			free(d.seen[i].path);
		d.nseen = 0;
		rc = read_pages(fd, VORDR_CMD_RULE_LIST, -1, rule_cb, &d, &intr, "rule list");
		if (rc)
			problem(&d, "rule list: %s", strerror(-rc));
		if (!intr || tries == 20)
			break;
		out->len = mark;
		d.problems = pmark;
	}

	for (int f = 0; f <= VORDR_FLAG_MAX + 1; f++) {
		uint16_t f16 = (uint16_t)f;
		const struct flag *fl = f >= 1 && f <= VORDR_FLAG_MAX ? &flags[f] : NULL;

		req_start(&m, VORDR_CMD_FLAG_GET, false);
		nla_put(&m, VORDR_A_FLAG, &f16, sizeof(f16));
		msg_end(&m, 0);
		d.want_flag = f;
		d.got_flag = false;
		rc = nl_request(fd, &m, flag_cb, &d, NULL, err);
		if (!fl) {
			/* Outside the FLAG attribute's range: the policy refuses it. */
			if ((rc != -EINVAL && rc != -ERANGE) || d.got_flag)
				problem(&d, "flag_get %d answered %s", f, rc ? strerror(-rc) : "a value");
			continue;
		}
		if (rc || !d.got_flag) {
			problem(&d, "flag_get %s: %s", fl->name, rc ? strerror(-rc) : "no reply");
			continue;
		}
		if (fl->rw) {
			const char *vn = const_name("VALUE", (long long)d.value);

			if (d.value >= 64 || !(fl->allowed & (1ull << d.value)))
				problem(&d, "flag %s has value %" PRIu64 ", not allowed", fl->name,
					d.value);
			tprintf(out, "flag %s %s\n", fl->name, vn ? vn : "?");
		} else if (!stable) {
			tprintf(out, "ro %s %" PRIu64 "\n", fl->name, d.value);
		}
	}

	if (!stable) {
		rc = read_pages(fd, VORDR_CMD_STATS, -1, stats_cb, &d, NULL, "stats");
		if (rc)
			problem(&d, "stats: %s", strerror(-rc));
	}
	/* The listings are pages now: a netlink dump of them is refused. */
	for (int i = 0; i < 2; i++) {
		uint8_t cmd = i ? VORDR_CMD_STATS : VORDR_CMD_RULE_LIST;

		req_start(&m, cmd, true);
		msg_end(&m, 0);
		rc = nl_request(fd, &m, stats_cb, &d, NULL, err);
		if (rc != -EOPNOTSUPP)
			problem(&d, "a netlink dump of %s answered %s, not %s", cmds[cmd].name,
				rc ? strerror(-rc) : "done", strerror(EOPNOTSUPP));
	}
	close(fd);
	for (size_t i = 0; i < d.nseen; i++)
		free(d.seen[i].path);
	free(d.seen);
	return d.problems;
}

/* ---- message generation ------------------------------------------------------ */

static bool opt_root;

/* Paths every unit draws from, so deletes and re-adds find earlier rules. */
#define POOL 48
static char *pool[POOL];

static const char *const comps[] = {
	"usr", "bin", "curl", "python3", "nlfuzz", "x", "a b", "..", ".", "", "%41", "%",
	"\n", "\t", "\xff\xfe", "\xc3\xa9t\xc3\xa9", "-", "~", "*", "\\", "\"", "'", "#",
	"tmp", "lib", "sbin", ":", ",", "=", "\x7f", "\x01", "...", ".x", "x.", "very-long",
};

/* Appends @n bytes of path material to @s (capacity @cap); returns the length. */
static size_t path_comps(char *s, size_t len, size_t cap, unsigned int depth, bool odd)
{
	for (unsigned int i = 0; i < depth && len + 1 < cap; i++) {
		const char *c;
		char tmp[300];

		s[len++] = '/';
		if (odd && chance(30)) {
			size_t n = 1 + below(12);

			for (size_t j = 0; j < n; j++)
				tmp[j] = (char)(1 + below(255));
			tmp[n] = 0;
			c = tmp;
		} else if (chance(5)) {
			size_t n = 200 + below(60);

			memset(tmp, 'a' + below(26), n);
			tmp[n] = 0;
			c = tmp;
		} else {
			c = odd || chance(20) ? comps[below(N(comps))] : comps[below(6)];
		}
		for (; *c && len + 1 < cap; c++)
			s[len++] = *c;
	}
	s[len] = 0;
	return len;
}

/*
 * A path for a STRING attribute: mostly absolute and canonical, sometimes
 * of the exact lengths around the schema's limit, deeper than directory
 * rules may go, with odd bytes, not canonical, relative or empty.  *n is
 * its length without the NUL.
 */
static char *gen_path(char *s, size_t cap, size_t *n, long long hi)
{
	size_t len = 0;
	unsigned int r = below(100);

	if (r < 30 && pool[POOL - 1]) {
		strcpy(s, pool[below(POOL)]);
		len = strlen(s);
	} else if (r < 59) {
		len = path_comps(s, 0, cap, 1 + below(6), false);
	} else if (r < 69) {
		len = path_comps(s, 0, cap, 1 + below(6), true);
	} else if (r < 74) {
		/* around the length limit */
		long long want = hi - 2 + below(5);

		len = path_comps(s, 0, cap, 2, false);
		if (want > (long long)cap - 2)
			want = (long long)cap - 2;
		while ((long long)len < want) {
			s[len] = (len % 64 == 0) ? '/' : 'p';
			len++;
		}
		if (len > 1 && s[len - 1] == '/')
			s[len - 1] = 'q';
		s[len] = 0;
	} else if (r < 82) {
		/* deep: around the directory depth limit */
		unsigned int depth = 28 + below(10);

		for (unsigned int i = 0; i < depth && len + 3 < cap; i++) {
			s[len++] = '/';
			s[len++] = (char)('a' + below(26));
		}
		s[len] = 0;
	} else if (r < 90) {
		static const char *const bad[] = {
			"//", "/./", "/../", "/.", "/..", "x", "", ".", "./x", "../x", "//x",
		};
		const char *b = bad[below(N(bad))];

		len = path_comps(s, 0, cap, below(4), false);
		if (chance(50) || !len) {
			size_t bl = strlen(b);

			if (len + bl + 1 < cap) {
				memcpy(s + len, b, bl + 1);
				len += bl;
			}
		} else {
			memmove(s + strlen(b), s, len + 1);
			memcpy(s, b, strlen(b));
			len += strlen(b);
		}
	} else if (r < 95) {
		s[0] = '/';
		s[1] = 0;
		len = 1;
	} else {
		len = below(40);
		if (len >= cap)
			len = cap - 1;
		for (size_t i = 0; i < len; i++)
			s[i] = (char)(1 + below(255));
		s[len] = 0;
	}
	if (len > 1 && chance(25) && s[len - 1] != '/' && len + 1 < cap) {
		s[len++] = '/';
		s[len] = 0;
	}
	*n = len;
	return s;
}

static void make_pool(uint64_t seed)
{
	char s[8192];
	size_t n;

	rs = mix(seed ^ 0x706f6f6cull);
	for (int i = 0; i < POOL; i++) {
		if (chance(70)) {
			n = path_comps(s, 0, 1024, 1, false);
			n = path_comps(s, n, 1024, below(4), false);
			if (i % 3 == 0 && n + 1 < sizeof(s)) {
				s[n++] = '/';
				s[n] = 0;
			}
		} else {
			gen_path(s, sizeof(s), &n, attrs[VORDR_A_PATH].hi);
		}
		pool[i] = strdup(s);
	}
}

static const struct cnst *const_of_group(const char *group)
{
	size_t k = 0, pick;

	for (size_t i = 0; i < N(consts); i++)
		k += !strcmp(consts[i].group, group);
	if (!k)
		return NULL;
	pick = below((uint32_t)k);
	for (size_t i = 0; i < N(consts); i++)
		if (!strcmp(consts[i].group, group) && pick-- == 0)
			return &consts[i];
	return NULL;
}

static uint64_t type_max(enum atype t)
{
	switch (t) {
	case T_U8: return 0xff;
	case T_U16: return 0xffff;
	case T_U32: return 0xffffffffull;
	default: return ~0ull;
	}
}

enum quality { Q_VALID, Q_EDGE, Q_WILD };

/*
 * A clean message is a well-formed request for one of the schema's
 * commands with valid values only, so that root's run changes the table
 * and flags and unprivileged runs reach every permission check.
 */
static bool clean;

static bool mut(unsigned int pct)
{
	return !clean && chance(pct);
}

static enum quality pick_quality(void)
{
	unsigned int r = below(100);

	return r < 70 ? Q_VALID : r < 90 ? Q_EDGE : Q_WILD;
}

/*
 * A number for integer attribute @a: in its range, one of the constants
 * of the group named like it (PROT, VALUE), or of @flag's allowed values
 * for VALUE; at an edge; or anything.
 */
static uint64_t int_value(const struct attr *a, enum quality q, int flag)
{
	uint64_t max = type_max(a->type);
	bool range = a->in && a->lo < a->hi;
	const struct cnst *c = const_of_group(a->id);

	if (q == Q_VALID) {
		if (a->nr == VORDR_A_VALUE && flag >= 1 && flag <= VORDR_FLAG_MAX &&
		    flags[flag].allowed && chance(85)) {
			uint64_t m = flags[flag].allowed;
			unsigned int k = __builtin_popcountll(m), pick = below(k);

			for (unsigned int b = 0; b < 64; b++)
				if ((m >> b & 1) && pick-- == 0)
					return b;
		}
		if (c && chance(80))
			return (uint64_t)c->value;
		if (range)
			return (uint64_t)a->lo + below((uint32_t)(a->hi - a->lo + 1));
		return logu() & max;
	}
	if (q == Q_EDGE) {
		uint64_t e[] = {
			(uint64_t)a->lo, (uint64_t)a->hi, (uint64_t)a->lo - 1, (uint64_t)a->hi + 1,
			0, 1, max, max - 1, max >> 1, 31, 32, 63, 64, VORDR_FLAG_MAX + 1,
			c ? (uint64_t)c->value + 1 : 2, 365ull * 24 * 3600, 365ull * 24 * 3600 + 1,
		};

		return e[below(N(e))] & max;
	}
	return rnd() & max;
}

static void put_int(struct msg *m, uint16_t type, uint64_t v, size_t size)
{
	uint8_t b[16] = { 0 };

	memcpy(b, &v, size > 8 ? 8 : size);
	nla_put(m, type, b, size);
}

/*
 * Cursors the kernel sent (the last message of a RULE_LIST or STATS page),
 * a few of each listing, to send back as they came or forged.
 */
#define CURSORS 8
static struct {
	uint8_t b[64];
	size_t len;
} cursors[2][CURSORS];
static unsigned int ncursors[2];
static uint64_t cursors_kept, cursors_sent, cursors_forged;
static int unit_cmd;    /* the command of the message being built */

static int cursor_slot(int cmd)
{
	return cmd == VORDR_CMD_STATS ? 1 : cmd == VORDR_CMD_RULE_LIST ? 0 : -1;
}

static void cursor_keep(int cmd, const struct nlattr *a)
{
	int s = cursor_slot(cmd);
	unsigned int i;

	if (s < 0 || nla_plen(a) > sizeof(cursors[0][0].b))
		return;
	cursors_kept++;
	i = ncursors[s] < CURSORS ? ncursors[s] : below(CURSORS);
	if (ncursors[s] < CURSORS)
		ncursors[s]++;
	cursors[s][i].len = nla_plen(a);
	memcpy(cursors[s][i].b, nla_data(a), nla_plen(a));
}

/*
 * A CURSOR: one the kernel sent for this listing, as it came (Q_VALID), or
 * forged from one (words set to edges or random, bits flipped, another
 * listing's, cut or lengthened), or random bytes of any length.
 */
static void put_cursor(struct msg *m, uint16_t type, enum quality q)
{
	int s = cursor_slot(unit_cmd);
	uint8_t b[80];
	size_t n;

	if (s < 0 || chance(15))
		s = (int)below(2);
	if (!ncursors[s] || (q != Q_VALID && chance(20))) {
		n = below((uint32_t)attrs[VORDR_A_CURSOR].hi + 8);
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rnd();
		cursors_forged++;
		nla_put(m, type, b, n);
		return;
	}
	{
		unsigned int i = below(ncursors[s]);

		n = cursors[s][i].len;
		memcpy(b, cursors[s][i].b, n);
	}
	if (q == Q_VALID) {
		cursors_sent++;
		nla_put(m, type, b, n);
		return;
	}
	cursors_forged++;
	for (unsigned int k = 1 + below(3); k; k--) {
		static const uint32_t words[] = {
			0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu, 0xfffffffeu, 1u << 16,
		};
		uint32_t w = chance(60) ? words[below(N(words))] : (uint32_t)rnd();

		switch (below(4)) {
		case 0: /* a word (gen, position, skip) set to an edge */
			if (n >= 4)
				memcpy(b + 4 * below((uint32_t)n / 4), &w, 4);
			break;
		case 1: /* a word moved on or back a little */
			if (n >= 4) {
				size_t at = 4 * below((uint32_t)n / 4);
				uint32_t v;

				memcpy(&v, b + at, 4);
				v += chance(50) ? 1 + below(64) : -(1 + below(64));
				memcpy(b + at, &v, 4);
			}
			break;
		case 2: /* bits flipped */
			if (n)
				b[below((uint32_t)n)] ^= (uint8_t)(1 + below(255));
			break;
		default: /* cut or lengthened */
			if (chance(50) && n)
				n -= 1 + below((uint32_t)n);
			else
				for (unsigned int j = 1 + below(8); j && n < sizeof(b); j--)
					b[n++] = (uint8_t)rnd();
			break;
		}
	}
	nla_put(m, type, b, n);
}

/*
 * A valid QADDR (4 or 16 bytes, not IPv4-mapped; valid with no QPLEN, or
 * with one that its zero low bytes allow) or QPORTS (1-4 ranges, sorted
 * and apart).
 */
static void put_qual(struct msg *m, uint16_t type, int nr)
{
	uint8_t b[16] = { 0 };
	size_t n = 0;

	if (nr == VORDR_A_QADDR) {
		n = chance(50) ? 4 : 16;
		for (size_t i = 0; i < n / 2; i++)
			b[i] = (uint8_t)(1 + below(250));
	} else {
		uint16_t lo = (uint16_t)(1 + below(1000));

		for (unsigned int k = 1 + below(4); k; k--, n += 4) {
			uint16_t hi = (uint16_t)(lo + below(50));

			memcpy(b + n, &lo, 2);
			memcpy(b + n + 2, &hi, 2);
			lo = (uint16_t)(hi + 2 + below(100));
		}
	}
	nla_put(m, type, b, n);
}

/*
 * One attribute @a: its value of the right size, or (wrong types) of
 * another size, or a string without a NUL, or with bytes after the NUL.
 */
static void put_attr(struct msg *m, const struct attr *a, enum quality q, int flag,
		     uint16_t type_bits)
{
	static char s[8200];
	uint16_t type = (uint16_t)(a->nr | type_bits);
	size_t n;

	if (a->nr == VORDR_A_CURSOR) {
		put_cursor(m, type, q);
		return;
	}
	if (q == Q_VALID && a->nr == VORDR_A_QNAME) {
		char name[40];

		snprintf(name, sizeof(name), "%sn%u.vordr.test", chance(30) ? "*." : "", below(1000));
		nla_put(m, type, name, strlen(name) + 1);
		return;
	}
	if (q == Q_VALID && (a->nr == VORDR_A_QADDR || a->nr == VORDR_A_QPORTS)) {
		put_qual(m, type, a->nr);
		return;
	}
	switch (a->type) {
	case T_U8:
	case T_U16:
	case T_U32:
	case T_U64: {
		size_t size = type_size(a->type);

		if (q == Q_WILD && chance(40)) {
			static const size_t sizes[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 16 };

			size = sizes[below(N(sizes))];
		}
		put_int(m, type, int_value(a, q, flag), size);
		break;
	}
	case T_STRING: {
		long long hi = a->hi > 0 ? a->hi : 64;

		if (clean && pool[POOL - 1] && chance(60)) {
			strcpy(s, pool[below(POOL)]);
			n = strlen(s);
		} else if (clean) {
			n = path_comps(s, 0, 1024, 1 + below(5), false);
		} else {
			gen_path(s, sizeof(s) - 16, &n, hi);
		}
		if (q == Q_WILD && chance(50)) {
			unsigned int r = below(4);

			if (r == 0) {
				nla_put(m, type, s, n);                   /* no NUL */
			} else if (r == 1) {
				memcpy(s + n + 1, "tail", 5);             /* bytes after the NUL */
				nla_put(m, type, s, n + 6);
			} else if (r == 2 && n > 2) {
				s[1 + below((uint32_t)n - 1)] = 0;        /* NUL inside */
				nla_put(m, type, s, n + 1);
			} else {
				nla_put(m, type, s, 0);                   /* empty */
			}
		} else {
			nla_put(m, type, s, n + 1);
		}
		break;
	}
	case T_BINARY: {
		uint8_t b[64];

		n = below(a->hi + 8 < 64 ? (uint32_t)a->hi + 8 : 64);
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rnd();
		nla_put(m, type, b, n);
		break;
	}
	}
}

/* The mutations leave attributes unaligned: no struct access there. */
static void set_nla_len(struct msg *m, size_t at, uint16_t len)
{
	memcpy(m->p + at + offsetof(struct nlattr, nla_len), &len, sizeof(len));
}

/* Attributes nested to @depth levels, with random contents. */
static void put_garbage_nest(struct msg *m, unsigned int depth)
{
	size_t at = m->len;
	struct nlattr h = { .nla_type = (uint16_t)(NLA_F_NESTED | below(VORDR_A_MAX + 3)) };
	unsigned int k = below(5);

	if (!mput(m, &h, sizeof(h)))
		return;
	for (unsigned int i = 0; i < k; i++) {
		if (depth && chance(40)) {
			put_garbage_nest(m, depth - 1);
		} else {
			uint8_t b[24];
			size_t n = below(sizeof(b));

			for (size_t j = 0; j < n; j++)
				b[j] = (uint8_t)rnd();
			nla_put(m, (uint16_t)below(VORDR_A_MAX + 3), b, n);
		}
	}
	if (m->full)
		return;
	set_nla_len(m, at, (uint16_t)(m->len - at));
}

/*
 * The attributes each command's handler reads (kmod/netlink.c), so that
 * valid requests reach the table; the generator also sends any others.
 */
struct recipe {
	int cmd;
	int need[3];
	int opt[8];
};

static const struct recipe recipes[] = {
	{ VORDR_CMD_RULE_ADD, { VORDR_A_PROT, VORDR_A_PATH, VORDR_A_VERDICT },
	  { VORDR_A_TIMEOUT, VORDR_A_LIFE, VORDR_A_QADDR, VORDR_A_QPLEN, VORDR_A_QSIDE,
	    VORDR_A_QPORTS, VORDR_A_QUSER, VORDR_A_QNAME } },
	{ VORDR_CMD_RULE_DEL, { VORDR_A_PATH }, { VORDR_A_PROT, VORDR_A_QADDR, VORDR_A_QPORTS,
						  VORDR_A_QUSER } },
	{ VORDR_CMD_RULE_CLEAR, { 0 }, { VORDR_A_VERDICT } },
	{ VORDR_CMD_RULE_LIST, { 0 }, { VORDR_A_VERDICT, VORDR_A_CURSOR } },
	{ VORDR_CMD_STATS, { 0 }, { VORDR_A_CURSOR } },
	{ VORDR_CMD_FLAG_SET, { VORDR_A_FLAG, VORDR_A_VALUE }, { 0 } },
	{ VORDR_CMD_FLAG_GET, { VORDR_A_FLAG }, { 0 } },
};

static const struct recipe *recipe_of(int cmd)
{
	for (size_t i = 0; i < N(recipes); i++)
		if (recipes[i].cmd == cmd)
			return &recipes[i];
	return NULL;
}

/* A command number: mostly the schema's, weighted by who sends. */
static int pick_cmd(void)
{
	unsigned int r = below(100);

	if (r < 4)
		return 0;
	if (r < 8)
		return VORDR_CMD_MAX + 1 + below(256 - VORDR_CMD_MAX - 1);
	if (opt_root) {
		/* Mostly changes; clearing all rarely, so that tables grow. */
		if (r < 48)
			return VORDR_CMD_RULE_ADD;
		if (r < 62)
			return VORDR_CMD_RULE_DEL;
		if (r < 76)
			return VORDR_CMD_FLAG_SET;
		r = 1 + below(VORDR_CMD_MAX);
		return r == VORDR_CMD_RULE_CLEAR && chance(90) ? VORDR_CMD_RULE_LIST : (int)r;
	}
	return 1 + below(VORDR_CMD_MAX);
}

/* What a unit's messages were, to judge their acks. */
struct sent {
	uint32_t seq;
	bool admin;     /* a well-formed request for an ADMIN command */
};

static struct {
	uint64_t units, msgs, bytes, send_err, replies, acks_ok, errors, dumps_done,
		 multicast, overruns, reopen;
	uint64_t err_by[140];
} st;

static int unit_flag;   /* the FLAG attribute of the message being built */

/*
 * One message at m->len: header, attributes and mutations.  Returns true
 * when it is well formed (its length honest), so the kernel parses exactly
 * what was built.
 */
static bool gen_msg(struct msg *m, uint32_t seq, struct sent *sent)
{
	size_t start = m->len;
	int cmd = pick_cmd();
	const struct cmd *c = cmd >= 1 && cmd <= VORDR_CMD_MAX ? &cmds[cmd] : NULL;
	const struct recipe *rc = recipe_of(cmd);
	uint16_t type = fam_id, fl;
	uint8_t version = (uint8_t)fam_version, reserved = 0;
	bool honest = true, req = true;

	clean = c && c->kind != K_EVENT && chance(opt_root ? 45 : 20);
	unit_cmd = cmd;
	fl = NLM_F_REQUEST;
	/* The listings are paged requests: NLM_F_DUMP only as a mutation. */
	if (chance(70) || (clean && c->kind == K_DUMP))
		fl |= NLM_F_ACK;
	if (mut(25)) {
		static const uint16_t fx[] = {
			NLM_F_DUMP, NLM_F_ROOT, NLM_F_MATCH, NLM_F_ECHO, NLM_F_ATOMIC,
			NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND, NLM_F_ACK,
			NLM_F_MULTI, NLM_F_DUMP_INTR, NLM_F_DUMP_FILTERED,
		};
		unsigned int k = 1 + below(3);

		for (unsigned int i = 0; i < k; i++)
			fl ^= fx[below(N(fx))];
	}
	if (mut(5))
		fl &= (uint16_t)~NLM_F_REQUEST;
	if (mut(2))
		fl = (uint16_t)rnd();
	req = fl & NLM_F_REQUEST;
	if (mut(3)) {
		static const uint16_t types[] = {
			NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN, GENL_ID_CTRL,
		};
		type = types[below(N(types))];
	}
	if (mut(5))
		version = (uint8_t)rnd();
	if (mut(4))
		reserved = (uint8_t)(1 + below(255));

	/* truncated headers: part of nlmsghdr + genlmsghdr only */
	if (mut(2)) {
		uint8_t b[NLMSG_HDRLEN + GENL_HDRLEN];
		struct nlmsghdr *h = (void *)b;
		size_t n = below(sizeof(b));

		memset(b, 0, sizeof(b));
		h->nlmsg_len = chance(50) ? (uint32_t)n : (uint32_t)below(sizeof(b) + 8);
		h->nlmsg_type = type;
		h->nlmsg_flags = fl;
		h->nlmsg_seq = seq;
		b[NLMSG_HDRLEN] = (uint8_t)cmd;
		mput(m, b, n);
		mpad(m);
		sent->seq = seq;
		sent->admin = false;
		return false;
	}

	msg_start(m, type, fl, seq, (uint8_t)cmd, version);
	if (m->full)
		return false;
	((struct genlmsghdr *)(m->p + start + NLMSG_HDRLEN))->reserved = reserved;

	unit_flag = -1;
	if (rc && (clean || chance(65))) {
		for (int i = 0; i < 3; i++) {
			int a = rc->need[i];

			if (!a || mut(4))
				continue;
			/* FLAG comes first, so that VALUE can be one it allows */
			if (a == VORDR_A_FLAG) {
				enum quality q = clean ? Q_VALID : pick_quality();
				uint64_t v = int_value(&attrs[a], q, -1);

				put_int(m, (uint16_t)a, v, q == Q_WILD && chance(30) ? 4 : 2);
				unit_flag = (int)v;
				continue;
			}
			put_attr(m, &attrs[a], clean ? Q_VALID : pick_quality(), unit_flag, 0);
		}
		for (int i = 0; i < (int)N(rc->opt); i++)
			if (rc->opt[i] && chance(35))
				put_attr(m, &attrs[rc->opt[i]], clean ? Q_VALID : pick_quality(),
					 unit_flag, 0);
	} else {
		/* any attributes of the schema, IN and OUT */
		unsigned int k = below(5);

		for (unsigned int i = 0; i < k; i++) {
			const struct attr *a = &attrs[1 + below(VORDR_A_MAX)];

			if (!a->in && chance(70))
				continue;
			put_attr(m, a, pick_quality(), unit_flag, 0);
			if (a->nr == VORDR_A_FLAG)
				unit_flag = -1;
		}
	}

	/* mutations */
	if (mut(30)) {
		unsigned int k = 1 + below(3);

		for (unsigned int i = 0; i < k; i++) {
			switch (below(11)) {
			case 0: /* unknown attribute numbers */
				put_int(m, (uint16_t)(chance(50) ? VORDR_A_MAX + 1 + below(8) :
						      below(NLA_TYPE_MASK + 1)), rnd(), below(9));
				break;
			case 1: /* attribute 0 */
				put_int(m, 0, rnd(), below(9));
				break;
			case 2: /* an attribute twice */
				put_attr(m, &attrs[1 + below(VORDR_A_MAX)], Q_VALID, unit_flag, 0);
				break;
			case 3: /* nested garbage */
				put_garbage_nest(m, 3);
				break;
			case 4: /* byte-order or nested bit on a plain attribute */
				put_attr(m, &attrs[1 + below(VORDR_A_MAX)], pick_quality(), unit_flag,
					 chance(50) ? NLA_F_NESTED : NLA_F_NET_BYTEORDER);
				break;
			case 5: { /* nla_len short, long or odd on the last attribute */
				struct nlattr h = { .nla_type = (uint16_t)(1 + below(VORDR_A_MAX)) };
				size_t at = m->len;
				uint8_t b[16];

				for (size_t j = 0; j < sizeof(b); j++)
					b[j] = (uint8_t)rnd();
				if (mput(m, &h, sizeof(h)) && mput(m, b, below(sizeof(b)))) {
					static const uint16_t lens[] = { 0, 1, 2, 3, 5, 7, 9, 0xffff, 0x1000 };

					set_nla_len(m, at, chance(50) ? lens[below(N(lens))] :
						    (uint16_t)rnd());
				}
				break;
			}
			case 6: /* trailing bytes, not a whole attribute */
				mput(m, "\x05\x00\x01", 1 + below(3));
				break;
			case 7: { /* flip bytes after the netlink header */
				size_t body = m->len - start;

				for (unsigned int j = 1 + below(4); j && body > NLMSG_HDRLEN; j--)
					m->p[start + NLMSG_HDRLEN + below((uint32_t)(body - NLMSG_HDRLEN))] ^=
						(uint8_t)(1 + below(255));
				break;
			}
			case 8: /* cut the message short */
				if (m->len - start > NLMSG_HDRLEN)
					m->len -= below((uint32_t)(m->len - start - NLMSG_HDRLEN));
				break;
			case 9: /* an out-only attribute the kernel would send */
				for (int j = 0; j < 4; j++) {
					const struct attr *a = &attrs[1 + below(VORDR_A_MAX)];

					if (!a->in) {
						put_attr(m, a, pick_quality(), -1, 0);
						break;
					}
				}
				break;
			default: /* a huge string in any attribute */
				if (chance(50)) {
					static char big[8192];
					size_t n = 4090 + below(12);

					memset(big, '/', 1);
					memset(big + 1, 'z', n - 1);
					big[n] = 0;
					nla_put(m, (uint16_t)(1 + below(VORDR_A_MAX)), big, n + (chance(80)));
				}
				break;
			}
		}
	}
	if (m->full)
		return false;
	msg_end(m, start);

	/* bogus nlmsg_len */
	if (mut(7)) {
		struct nlmsghdr *h = (void *)(m->p + start);
		uint32_t len = h->nlmsg_len;
		static const uint32_t lens[] = {
			0, 1, NLMSG_HDRLEN - 1, NLMSG_HDRLEN, NLMSG_HDRLEN + 1,
			NLMSG_HDRLEN + GENL_HDRLEN - 1, 0xffffffffu, 0x80000000u,
		};

		switch (below(4)) {
		case 0: h->nlmsg_len = lens[below(N(lens))]; break;
		case 1: h->nlmsg_len = len - 1 - below(len > 1 ? len - 1 : 1); break;
		case 2: h->nlmsg_len = len + 1 + below(64); break;
		default: h->nlmsg_len = (uint32_t)rnd(); break;
		}
		honest = h->nlmsg_len == len;
	}
	mpad(m);
	sent->seq = seq;
	/* by the command the kernel reads: a mutation may have flipped it */
	cmd = m->len - start >= NLMSG_HDRLEN + GENL_HDRLEN ? m->p[start + NLMSG_HDRLEN] : 0;
	sent->admin = honest && req && type == fam_id && cmd >= 1 && cmd <= VORDR_CMD_MAX &&
		      cmds[cmd].admin;
	return honest;
}

/* ---- replies while fuzzing --------------------------------------------------- */

#define BATCH_MAX 16
static unsigned int opt_batch = BATCH_MAX;

/* Messages in one send: often one, else up to --batch. */
static unsigned int unit_size(void)
{
	return opt_batch < 2 || chance(40) ? 1 : 2 + below(opt_batch - 1);
}

static struct sent unit_sent[BATCH_MAX];
static unsigned int unit_nsent;
static uint64_t cur_unit;
static char violation[1024];

static void violate(const char *fmt, ...)
{
	va_list ap;

	if (violation[0])
		return;
	va_start(ap, fmt);
	vsnprintf(violation, sizeof(violation), fmt, ap);
	va_end(ap);
}

/*
 * A RULE_LIST or STATS message the kernel sent: a page's CURSOR is kept to
 * send back; an entry (of a page, whatever cursor asked for it, or of an
 * rchngq table) is checked as the dump checks it, two rules for one
 * protocol and path within one page included.
 */
static void check_listed(const struct nlmsghdr *h, uint8_t cmd)
{
	static struct text out, err;
	static struct dump_state d = { .out = &out, .err = &err, .stable = true };
	static uint32_t seq;
	const struct nlattr *cur = cursor_of(h);

	if (cur) {
		if (!h->nlmsg_seq && !h->nlmsg_pid)
			violate("a CURSOR multicast (cmd %u)", cmd);
		cursor_keep(cmd, cur);
		return;
	}
	if (!h->nlmsg_seq || h->nlmsg_seq != seq) {
		for (size_t i = 0; i < d.nseen; i++)
			free(d.seen[i].path);
		d.nseen = 0;
	}
	seq = h->nlmsg_seq;
	out.len = 0;
	err.len = 0;
	d.problems = 0;
	if (cmd == VORDR_CMD_RULE_LIST)
		rule_cb(h, &d);
	else
		stats_cb(h, &d);
	if (d.problems)
		violate("%s entry (seq %u): %.600s", cmds[cmd].name, h->nlmsg_seq, err.p);
}

static void check_reply(const struct nlmsghdr *h)
{
	st.replies++;
	if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(h);
		size_t off, n;
		int err;

		if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(*e)) {
			violate("NLMSG_ERROR of %u bytes", h->nlmsg_len);
			return;
		}
		err = -e->error;
		if (err < 0 || err >= (int)N(st.err_by)) {
			violate("NLMSG_ERROR with error %d", e->error);
			return;
		}
		st.err_by[err]++;
		if (!err) {
			st.acks_ok++;
			for (unsigned int i = 0; i < unit_nsent && !opt_root; i++)
				if (unit_sent[i].seq == h->nlmsg_seq && unit_sent[i].admin)
					violate("an unprivileged request for an admin command was "
						"acknowledged as done (seq %u)", h->nlmsg_seq);
		} else {
			st.errors++;
		}
		if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
			return;
		/* extack TLVs follow the request (unless capped), padded */
		off = NLMSG_HDRLEN + sizeof(*e);
		if (!(h->nlmsg_flags & NLM_F_CAPPED))
			off += NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN);
		if (off > h->nlmsg_len) {
			violate("extack beyond the message (%zu > %u)", off, h->nlmsg_len);
			return;
		}
		n = h->nlmsg_len - off;
		{
			struct nla_it it = { .p = (const uint8_t *)h + off, .n = n };
			const struct nlattr *a;

			while (nla_next(&it, &a)) {
				if (a->nla_type == NLMSGERR_ATTR_MSG &&
				    (!nla_plen(a) || ((const char *)nla_data(a))[nla_plen(a) - 1]))
					violate("extack message not NUL-terminated");
				if (a->nla_type == NLMSGERR_ATTR_OFFS &&
				    (nla_plen(a) != 4 || nla_uint(a) >= e->msg.nlmsg_len))
					violate("extack offset %" PRIu64 " outside the request of %u bytes",
						nla_uint(a), e->msg.nlmsg_len);
			}
			if (it.bad)
				violate("malformed extack attributes");
		}
		return;
	}
	if (h->nlmsg_type == NLMSG_DONE) {
		st.dumps_done++;
		return;
	}
	if (h->nlmsg_type == fam_id || h->nlmsg_type == GENL_ID_CTRL) {
		const struct genlmsghdr *g = NLMSG_DATA(h);
		struct nla_it it;
		const struct nlattr *a;

		if (h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) {
			violate("reply of type %u shorter than its headers", h->nlmsg_type);
			return;
		}
		if (!h->nlmsg_seq && !h->nlmsg_pid)
			st.multicast++;
		it = (struct nla_it){ .p = (const uint8_t *)(g + 1), .n = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN };
		while (nla_next(&it, &a))
			;
		if (it.bad)
			violate("reply (type %u cmd %u) with malformed attributes", h->nlmsg_type, g->cmd);
		if (h->nlmsg_type == fam_id && (g->cmd == 0 || g->cmd > VORDR_CMD_MAX))
			violate("reply with command %u", g->cmd);
		if (h->nlmsg_type == fam_id && !it.bad &&
		    (g->cmd == VORDR_CMD_RULE_LIST || g->cmd == VORDR_CMD_STATS))
			check_listed(h, g->cmd);
		return;
	}
	violate("reply of unexpected type %u", h->nlmsg_type);
}

static void drain(int fd)
{
	for (;;) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
		const uint8_t *p = rbuf;

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == ENOBUFS) {
				st.overruns++;
				continue;
			}
			if (errno == EINTR)
				continue;
			die("recv: %s", strerror(errno));
		}
		while (n > 0) {
			const struct nlmsghdr *h = (const void *)p;

			if (n < (ssize_t)NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > n) {
				violate("kernel sent a malformed message (%zd bytes, nlmsg_len %u)", n,
					n >= 4 ? h->nlmsg_len : 0);
				return;
			}
			check_reply(h);
			if ((ssize_t)NLMSG_ALIGN(h->nlmsg_len) >= n)
				break;
			p += NLMSG_ALIGN(h->nlmsg_len);
			n -= (ssize_t)NLMSG_ALIGN(h->nlmsg_len);
		}
	}
}

/* ---- namespaces ---------------------------------------------------------------- */

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		die("%s: %s", path, strerror(errno));
	close(fd);
}

static void enter_ns(const char *ns)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];
	int flags;

	if (!strcmp(ns, "user"))
		flags = CLONE_NEWUSER;
	else if (!strcmp(ns, "usernet"))
		flags = CLONE_NEWUSER | CLONE_NEWNET;
	else if (!strcmp(ns, "net"))
		flags = CLONE_NEWNET;
	else
		die("--ns: user, usernet or net, not %s", ns);
	if (unshare(flags))
		die("unshare(%s): %s", ns, strerror(errno));
	if (flags & CLONE_NEWUSER) {
		snprintf(map, sizeof(map), "0 %u 1", uid);
		write_file("/proc/self/uid_map", map);
		write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1", gid);
		write_file("/proc/self/gid_map", map);
	}
}

/* ---- main -------------------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr,
		"usage: nlfuzz fuzz [--count N] [--seed S] [--root] [--ns user|usernet|net]\n"
		"                   [--check-every N] [--events] [--from U] [--only U] [--hex]\n"
		"       nlfuzz dump [--stable]\n");
	return 2;
}

static int cmd_dump(bool stable)
{
	struct text out = { 0 }, err = { 0 };
	int problems;

	resolve_family();
	problems = snapshot(stable, &out, &err);
	if (out.p)
		fputs(out.p, stdout);
	if (err.p)
		fputs(err.p, stderr);
	return problems ? 1 : 0;
}

static bool opt_dry;

static int ignore_cb(const struct nlmsghdr *h, void *arg)
{
	(void)h;
	(void)arg;
	return 0;
}

/*
 * --root: rules with paths as long as the schema allows and life exit, on
 * a socket of their own held to the end, so that RULE_LIST spans pages
 * (real cursors to send back and to forge) and goes when the run does.
 * Added again at every check (RULE_CLEAR takes them); errors are fine.
 */
#define BALLAST 8
static void ballast(int fd)
{
	static char path[8200];
	uint8_t b[8400];
	struct msg m = { .p = b, .cap = sizeof(b) };
	struct text err = { 0 };
	uint8_t prot = 0, verdict = (uint8_t)attrs[VORDR_A_VERDICT].lo, life = VORDR_LIFE_EXIT;
	size_t n;

	for (size_t i = 0; i < N(consts); i++)
		if (!strcmp(consts[i].group, "PROT")) {
			prot = (uint8_t)consts[i].value;
			break;
		}
	for (int i = 0; i < BALLAST; i++) {
		n = (size_t)snprintf(path, sizeof(path), "/nlfuzz/ballast/%d/", i);
		while ((long long)n < attrs[VORDR_A_PATH].hi && n < sizeof(path) - 1)
			path[n++] = 'b';
		path[n] = 0;
		req_start(&m, VORDR_CMD_RULE_ADD, false);
		nla_put(&m, VORDR_A_PROT, &prot, sizeof(prot));
		nla_put(&m, VORDR_A_VERDICT, &verdict, sizeof(verdict));
		nla_put(&m, VORDR_A_LIFE, &life, sizeof(life));
		nla_put(&m, VORDR_A_PATH, path, n + 1);
		msg_end(&m, 0);
		nl_request(fd, &m, ignore_cb, NULL, NULL, &err);
	}
	free(err.p);
}

static int cmd_fuzz(uint64_t count, uint64_t seed, uint64_t check_every, bool events,
		    uint64_t from, int64_t only, bool hex)
{
	static uint8_t buf[1 << 17];
	struct text base = { 0 }, now = { 0 }, err = { 0 };
	uint64_t next_check = check_every, checks = 0, last_ok = 0;
	bool checked = false;
	double t0, t1;
	int fd, bfd = -1;

	if (opt_dry) {
		/* no kernel: only build the units (--hex prints them) */
		fam_id = GENL_MIN_ID;
		make_pool(seed);
		for (uint64_t u = 0; st.msgs < count; u++) {
			struct msg m = { .p = buf, .cap = sizeof(buf) };
			unsigned int k;

			rs = mix(seed ^ mix(u + 1));
			k = unit_size();
			for (unit_nsent = 0; unit_nsent < k && !m.full; unit_nsent++)
				gen_msg(&m, (uint32_t)(u << 4 | unit_nsent), &unit_sent[unit_nsent]);
			st.msgs += unit_nsent;
			st.units++;
			st.bytes += m.len;
			if (hex && (only < 0 || u == (uint64_t)only)) {
				fprintf(stderr, "unit %" PRIu64 " (%zu bytes):", u, m.len);
				for (size_t j = 0; j < m.len; j++)
					fprintf(stderr, "%s%02x", j % 32 ? "" : "\n  ", m.p[j]);
				fputc('\n', stderr);
			}
		}
		printf("nlfuzz: dry run: messages=%" PRIu64 " units=%" PRIu64 " bytes=%" PRIu64 "\n",
		       st.msgs, st.units, st.bytes);
		return 0;
	}
	resolve_family();
	printf("nlfuzz: seed 0x%016" PRIx64 " count %" PRIu64 " as uid %u%s (family %s id %u)\n",
	       seed, count, getuid(), opt_root ? " (root's run)" : "", fam_name, fam_id);
	fflush(stdout);
	if (snapshot(true, &base, &err)) {
		fprintf(stderr, "nlfuzz: the state is invalid before the first message:\n%s", err.p);
		return 1;
	}
	make_pool(seed);
	if (opt_root) {
		bfd = nl_open(true);
		ballast(bfd);
	}
	fd = nl_open(false);
	t0 = now_ms();
	for (uint64_t u = 0; st.msgs < count || only >= 0; u++) {
		struct msg m = { .p = buf, .cap = sizeof(buf) };
		unsigned int k, i;
		bool all_honest = true;
		int rc;

		if (only >= 0 && u > (uint64_t)only)
			break;
		rs = mix(seed ^ mix(u + 1));
		/* socket options change every 64 units */
		if (u % 64 == 0) {
			uint64_t save = rs;
			int v;

			rs = mix(seed ^ mix(u) ^ 0x6f7074ull);
			v = chance(80);
			setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &v, sizeof(v));
			v = chance(50);
			setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &v, sizeof(v));
			v = chance(50);
			setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &v, sizeof(v));
			if (events && fam_group_id) {
				/* the events group, for a quarter of the run */
				v = (int)fam_group_id;
				setsockopt(fd, SOL_NETLINK,
					   chance(25) ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP,
					   &v, sizeof(v));
			}
			rs = save;
		}
		k = unit_size();
		unit_nsent = 0;
		for (i = 0; i < k && !m.full; i++) {
			bool honest = gen_msg(&m, (uint32_t)(u << 4 | i), &unit_sent[unit_nsent]);

			/* after a dishonest length the kernel reads the rest its own way */
			if (!all_honest)
				unit_sent[unit_nsent].admin = false;
			all_honest &= honest;
			unit_nsent++;
		}
		if ((only >= 0 && u != (uint64_t)only) || u < from) {
			st.msgs += unit_nsent;
			continue;
		}
		if (hex) {
			fprintf(stderr, "unit %" PRIu64 " (%zu bytes):", u, m.len);
			for (size_t j = 0; j < m.len; j++)
				fprintf(stderr, "%s%02x", j % 32 ? "" : "\n  ", m.p[j]);
			fputc('\n', stderr);
		}
		cur_unit = u;
		rc = nl_send(fd, m.p, m.len);
		st.units++;
		st.msgs += unit_nsent;
		st.bytes += m.len;
		if (rc) {
			/* the kernel refusing a send is fine (an empty one: ENODATA) */
			st.send_err++;
			if (rc == -EBADF || rc == -ENOTSOCK || rc == -EFAULT)
				violate("send: %s", strerror(-rc));
		}
		/* sometimes leave a dump running and close the socket under it */
		if (chance(1) && !hex) {
			close(fd);
			fd = nl_open(false);
			st.reopen++;
		} else {
			drain(fd);
		}
		checked = false;
		if (!violation[0] && st.msgs >= next_check) {
			checked = true;
			next_check += check_every;
			checks++;
			now.len = 0;
			err.len = 0;
			if (now.p)
				now.p[0] = 0;
			/*
			 * A dump part is read under RCU while another root caller
			 * may change the table: a rule moved meanwhile can show
			 * twice.  What is invalid stays so when read again.
			 */
			for (int tries = 0; snapshot(true, &now, &err); tries++) {
				if (!opt_root || tries == 3) {
					violate("the state is invalid after unit %" PRIu64 ":\n%s", u, err.p);
					break;
				}
				now.len = 0;
				err.len = 0;
			}
			if (!violation[0] && !opt_root &&
			    (now.len != base.len || memcmp(now.p, base.p, base.len)))
				violate("the state changed by unit %" PRIu64 " (checked after every %"
					PRIu64 " messages); before:\n%s\nafter:\n%s", u, check_every,
					base.p ? base.p : "", now.p ? now.p : "");
			if (!violation[0])
				last_ok = u;
			if (bfd >= 0)
				ballast(bfd);
		}
		if (violation[0] && checked) {
			/* the state holds what every unit so far did */
			fprintf(stderr, "nlfuzz: FAILED at the check after unit %" PRIu64
				" (message %" PRIu64 "; the previous check passed after unit %"
				PRIu64 "; reproduce with --seed 0x%016" PRIx64 " --count %" PRIu64
				"%s --check-every 1): %s\n", u, st.msgs, last_ok, seed, st.msgs,
				opt_root ? " --root" : "", violation);
			return 1;
		}
		if (violation[0]) {
			fprintf(stderr, "nlfuzz: FAILED at unit %" PRIu64 " (message %" PRIu64
				"; reproduce with --seed 0x%016" PRIx64 " --only %" PRIu64
				"%s --hex): %s\n", u, st.msgs, seed, u,
				opt_root ? " --root" : "", violation);
			/* cursors come from earlier replies: --only may build another unit */
			fprintf(stderr, "unit %" PRIu64 " as sent (%zu bytes):", u, m.len);
			for (size_t j = 0; j < m.len; j++)
				fprintf(stderr, "%s%02x", j % 32 ? "" : "\n  ", m.p[j]);
			fputc('\n', stderr);
			return 1;
		}
	}
	close(fd);
	/* the final check, on the state every message has seen */
	for (int tries = 0;; tries++) {
		now.len = 0;
		err.len = 0;
		if (!snapshot(true, &now, &err))
			break;
		if (!opt_root || tries == 3) {
			fprintf(stderr, "nlfuzz: FAILED: the state is invalid at the end:\n%s", err.p);
			return 1;
		}
	}
	if (!opt_root && (now.len != base.len || memcmp(now.p, base.p, base.len))) {
		fprintf(stderr, "nlfuzz: FAILED: the state changed; before:\n%s\nafter:\n%s",
			base.p ? base.p : "", now.p ? now.p : "");
		return 1;
	}
	checks++;
	t1 = now_ms();
	printf("nlfuzz: done messages=%" PRIu64 " units=%" PRIu64 " bytes=%" PRIu64
	       " ms=%.0f per10k_ms=%.0f replies=%" PRIu64 " acks_ok=%" PRIu64 " errors=%" PRIu64
	       " dumps_done=%" PRIu64 " multicast=%" PRIu64 " overruns=%" PRIu64
	       " send_errors=%" PRIu64 " reopened=%" PRIu64 " checks=%" PRIu64
	       " cursors_kept=%" PRIu64 " cursors_sent=%" PRIu64 " cursors_forged=%" PRIu64 "\n",
	       st.msgs, st.units, st.bytes, t1 - t0, st.msgs ? (t1 - t0) * 1e4 / st.msgs : 0,
	       st.replies, st.acks_ok, st.errors, st.dumps_done, st.multicast, st.overruns,
	       st.send_err, st.reopen, checks, cursors_kept, cursors_sent, cursors_forged);
	printf("nlfuzz: errors by errno:");
	for (size_t e = 1; e < N(st.err_by); e++)
		if (st.err_by[e])
			printf(" %s=%" PRIu64, strerrorname_np((int)e) ? strerrorname_np((int)e) : "?",
			       st.err_by[e]);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t count = 10000, seed = 0, check_every = 0, from = 0;
	int64_t only = -1;
	bool have_seed = false, stable = false, events = false, hex = false;
	const char *ns = NULL;

	if (argc < 2)
		return usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--root")) {
			opt_root = true;
		} else if (!strcmp(a, "--dry")) {
			opt_dry = true;
		} else if (!strcmp(a, "--stable")) {
			stable = true;
		} else if (!strcmp(a, "--events")) {
			events = true;
		} else if (!strcmp(a, "--hex")) {
			hex = true;
		} else if (v && !strcmp(a, "--count")) {
			count = strtoull(v, NULL, 0), i++;
		} else if (v && !strcmp(a, "--seed")) {
			seed = strtoull(v, NULL, 0), have_seed = true, i++;
		} else if (v && !strcmp(a, "--check-every")) {
			check_every = strtoull(v, NULL, 0), i++;
		} else if (v && !strcmp(a, "--from")) {
			from = strtoull(v, NULL, 0), i++;
		} else if (v && !strcmp(a, "--only")) {
			only = (int64_t)strtoull(v, NULL, 0), i++;
		} else if (v && !strcmp(a, "--batch")) {
			opt_batch = (unsigned int)strtoul(v, NULL, 0), i++;
			if (!opt_batch || opt_batch > BATCH_MAX)
				die("--batch: 1 to %d", BATCH_MAX);
		} else if (v && !strcmp(a, "--ns")) {
			ns = v, i++;
		} else {
			return usage();
		}
	}
	if (!strcmp(argv[1], "dump"))
		return cmd_dump(stable);
	if (strcmp(argv[1], "fuzz"))
		return usage();
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = mix((uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
			   (uint64_t)getpid() << 32);
	}
	if (!check_every)
		check_every = opt_root ? 1000 : 10000;
	if (ns)
		enter_ns(ns);
	return cmd_fuzz(count, seed, check_every, events, from, only, hex);
}
