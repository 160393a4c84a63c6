/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vordr - per-application firewall.  Declarations shared by the module's
 * files, and the C expansion of defs.x.
 *
 * The packet path, in the order a reader should open the files:
 *   hook.c   netfilter entry: mode, protocol, owner, rule, verdict
 *   proto_*.c one file per protocol: header parsing
 *   ksc.c    known-socket cache: socket cookie -> owning task and executable
 *   asc.c    active-socket cache: finds a socket's owner in the process table
 *   ident.c  interned executables with their counters
 *   events.c events to the multicast group, squelch
 *   rules.c  circular rule table with a hash index
 *   netlink.c generic netlink family "vordr"
 *   main.c   flags, module parameters, init and exit
 */
#ifndef VORDR_H
#define VORDR_H

#include <linux/types.h>
#include <linux/rcupdate.h>
#include <linux/skbuff.h>
#include <linux/netfilter.h>
#include <linux/percpu.h>
#include <linux/uidgid.h>
#include <net/sock.h>

/* ---- defs.x, expanded for C -------------------------------------------- */

#define VORDR_VAL(x) VORDR_VALUE_##x
#define VORDR_V(x) (1u << VORDR_VALUE_##x)

/*
 * VORDR_ONLY(WANT, group, ...): the rest when @group is WANT, else
 * nothing; so a VORDR_CONST expansion can keep one group's constants and
 * a group added to defs.x later needs no line here.  WANT is a group
 * with a VORDR_IS_<WANT>_<WANT> probe below.
 */
#define VORDR_PP_SECOND(a, b, ...) b
#define VORDR_PP_IS(probe) VORDR_PP_SECOND(probe, 0, ~)
#define VORDR_PP_CAT(a, b) VORDR_PP_CAT_(a, b)
#define VORDR_PP_CAT_(a, b) a##b
#define VORDR_PP_IF_1(...) __VA_ARGS__
#define VORDR_PP_IF_0(...)
#define VORDR_ONLY(want, group, ...) \
	VORDR_PP_CAT(VORDR_PP_IF_, VORDR_PP_IS(VORDR_IS_##want##_##group))(__VA_ARGS__)
#define VORDR_IS_VALUE_VALUE ~, 1
#define VORDR_IS_PROT_PROT ~, 1
#define VORDR_IS_POLICY_POLICY ~, 1

enum {
#define VORDR_CONST(group, id, value, ...) VORDR_##group##_##id = (value),
#include "defs.x"
};

enum vordr_flag {
	VORDR_FLAG_UNSPEC,
#define VORDR_FLAG(id, name, access, def, allowed) VORDR_FLAG_##id,
#include "defs.x"
	__VORDR_FLAG_LAST
};

#define VORDR_FLAG_MAX (__VORDR_FLAG_LAST - 1)

enum vordr_cmd {
	VORDR_CMD_UNSPEC,
#define VORDR_CMD(id, name, perm, kind) VORDR_CMD_##id,
#include "defs.x"
	__VORDR_CMD_LAST
};

#define VORDR_CMD_MAX (__VORDR_CMD_LAST - 1)

enum vordr_attr {
	VORDR_A_UNSPEC,
#define VORDR_ATTR(id, name, type, dir, lo, hi) VORDR_A_##id,
#include "defs.x"
	__VORDR_A_LAST
};

#define VORDR_A_MAX (__VORDR_A_LAST - 1)


/* ---- flags (main.c) ----------------------------------------------------- */

/*
 * Current flag values, indexed by enum vordr_flag.  Written only by
 * netlink FLAG_SET (serialized by genl) and module parameters at load;
 * read locklessly with READ_ONCE on the packet path.
 */
extern u32 vordr_flags[VORDR_FLAG_MAX + 1];

static inline u32 vordr_flag(enum vordr_flag f)
{
	return READ_ONCE(vordr_flags[f]);
}

int vordr_flag_set(enum vordr_flag f, u64 value);
/* What vordr_flag_set() would answer, changing nothing. */
int vordr_flag_check(enum vordr_flag f, u64 value);
bool vordr_named(const char *const *names, size_t n, const char *name, u8 *value);
bool vordr_value_named(const char *name, u8 *value);
u64 vordr_flag_get(enum vordr_flag f);

DECLARE_PER_CPU(u64, vordr_qpackets);

/* One more packet seen (qpackets). */
static inline void vordr_count_packet(void)
{
	this_cpu_inc(vordr_qpackets);
}

/* ---- identities (ident.c) --------------------------------------------- */

#define VORDR_MAX_DEPTH 32
#define VORDR_RULE_CACHE 3		/* tcp, udp, icmp */

struct vordr_ident_stats;
struct vordr_dns_tab;
struct vordr_dest_tab;

/*
 * An executable: its path as d_path() printed it (a deleted file ends in
 * " (deleted)" and so never matches a rule for its successor at that
 * path), its device and inode, and the hashes of the path and of the
 * deepest VORDR_MAX_DEPTH directory prefixes (ending in '/') so rule
 * lookup hashes nothing on the packet path.  d_path() prints relative to
 * the task's root, which an unprivileged user can change (chroot, or a
 * bind mount in a user and mount namespace of its own): a path printed
 * under any root but the one the module was loaded in is marked foreign
 * and matches no rule.
 *
 * Interned: one per (device, inode, path, foreign), shared by every
 * socket it owns, carrying the executable's per-CPU counters (STATS).
 * Immutable once published but for the counters, @users and the
 * rule cache (rules.c).
 */
struct vordr_ident {
	struct hlist_node node;		/* in the identity index, under RCU */
	struct hlist_node dnode;	/* by mount and dentry: ident_lock */
	struct list_head unused;	/* while no owner names it: ident_lock */
	struct rcu_head rcu;
	atomic_t users;			/* owners (ksc entries) naming it */
	/* Where the file was reached, compared (never dereferenced) to find
	 * an interned identity without printing the path again. */
	const void *mnt_key, *dentry_key;
	struct vordr_ident_stats __percpu *stats;
	dev_t dev;
	unsigned long ino;
	u32 hash;
	u16 len;
	u8 ndirs;
	bool foreign;	/* path printed under another root: matches no rule */
	bool unlinked;	/* the file was deleted or replaced when interned */
	/* The rule last matched per protocol (rules.c: vordr_rule_match). */
	atomic64_t rule_cache[VORDR_RULE_CACHE];
	/* The names its lookups gave addresses (dns.c), made on first use. */
	struct vordr_dns_tab __rcu *dns;
	/* Where its packets went (dest.c), made on first use. */
	struct vordr_dest_tab *dest;
	u16 dir_len[VORDR_MAX_DEPTH];
	u32 dir_hash[VORDR_MAX_DEPTH];
	char path[];
};

struct vordr_ident_view {
	const struct vordr_ident *id;	/* under the caller's RCU section */
	const char *path;
	u16 len;
	dev_t dev;
	unsigned long ino;
	u64 apackets, abytes, bpackets, bbytes, lasthit;
};

/* Unused identities beyond this many go (module parameter idents_max). */
extern unsigned int vordr_idents_max;

int vordr_ident_init(void);
void vordr_ident_exit(void);
unsigned int vordr_ident_count_now(void);
/* The identity of @task's executable, with a user reference; may sleep. */
struct vordr_ident *vordr_ident_of_task(struct task_struct *task, int *err);
/* The same for current, from the packet path: never sleeps. */
struct vordr_ident *vordr_ident_of_current(int *err);
void vordr_ident_put(struct vordr_ident *id);
void vordr_ident_get(struct vordr_ident *id);
/* Count a packet of @bytes against @id, at @now (real-time seconds). */
void vordr_ident_count(const struct vordr_ident *id, bool allowed,
		       unsigned int bytes, time64_t now);
/* Under rcu_read_lock(): the next identity at or after *pos, or false. */
bool vordr_ident_next(u32 *pos, u32 *skip, struct vordr_ident_view *v);
/* Changes when an identity is added or evicted (STATS dump consistency). */
u32 vordr_ident_gen(void);
/*
 * Whether current runs the executable @id names (device and inode).
 * Caller in an RCU read-side section (netfilter hooks are).
 */
bool vordr_ident_is_current(const struct vordr_ident *id);

/* ---- known-socket cache (ksc.c) and active-socket cache (asc.c) -------- */

/* Executables a TCP socket keeps besides its latest sender's. */
#define VORDR_OWNER_ALSO 3

/*
 * Who owns a socket: the task that sent its first packet (or that the
 * active-socket cache found holding it), and its executable.  A NULL
 * @id records that no owner could be found, at @stamp (jiffies).
 *
 * A TCP socket also keeps every other executable that has sent on it
 * (@also; @crowded: more than fit): data one of them queued may leave
 * with another's packet or from softirq, so each packet is judged by the
 * strictest of their verdicts (hook.c).
 */
struct vordr_owner {
	struct vordr_ident *id;
	struct vordr_ident *also[VORDR_OWNER_ALSO];
	u8 nalso;
	bool crowded;
	bool sender;	/* @id sent on it (not found holding it) */
	pid_t pid;
	kuid_t uid;
	unsigned long stamp;
};

/* vordr_ksc_set() @how */
#define VORDR_KSC_DERIVED 1	/* from a listener: counted apart from learnt ones */
#define VORDR_KSC_KEEP 2	/* keep the executables that sent on it (TCP) */
#define VORDR_KSC_SENDER 4	/* @id is the sender's, current's */

/* Known-socket entries in all (ksc_max), and per user and kind (ksc_user_max). */
extern unsigned int vordr_ksc_max, vordr_ksc_user_max;

int vordr_ksc_init(void);
void vordr_ksc_exit(void);
unsigned int vordr_ksc_count_now(void);
u64 vordr_sk_cookie_new(struct sock *sk);

/* @sk's cookie: one handed out on first use, never to another socket. */
static inline u64 vordr_sk_cookie(struct sock *sk)
{
	u64 cookie = atomic64_read(&sk->sk_cookie);

	return likely(cookie) ? cookie : vordr_sk_cookie_new(sk);
}
const struct vordr_owner *vordr_ksc_find(u64 cookie);
/*
 * Record @id (reference taken over, may be NULL) as the owner of @sk,
 * whose cookie is @cookie; @how: VORDR_KSC_*.
 */
const struct vordr_owner *vordr_ksc_set(struct sock *sk, u64 cookie,
					struct vordr_ident *id, pid_t pid,
					kuid_t uid, unsigned int how);
/* Whether @o names current's executable (caller under RCU). */
bool vordr_owner_is_current(const struct vordr_owner *o);
/* The same, but an owner learnt meanwhile (a known identity) is kept. */
void vordr_ksc_offer(u64 cookie, struct vordr_ident *id, pid_t pid, kuid_t uid);

int vordr_asc_init(void);
void vordr_asc_exit(void);
/*
 * Ask for the owner of @sk (its cookie: @cookie) to be found in the
 * process table, the tasks of the user who opened it first.  False: too
 * many searches are under way (the next packet asks again).
 */
bool vordr_asc_request(struct sock *sk, u64 cookie);
/*
 * Hold inbound @skb while @cookie's owner is looked up: true if it was
 * taken (the hook returns NF_STOLEN); it comes back through @hook, in the
 * same chain, once the search ends or ASC_HOLD_TIME passes.  False (a
 * bound reached, or @skb is that replay): it follows unkproc, counted.
 */
bool vordr_asc_hold(struct sk_buff *skb, const struct nf_hook_state *state,
		    u64 cookie, nf_hookfn *hook);
u64 vordr_asc_held(void);	/* datagrams held (flag held) */
u64 vordr_asc_lost(void);	/* ... or not, that followed unkproc (heldlost) */

/* ---- rules (rules.c) ---------------------------------------------------- */

struct vordr_rule;

/*
 * A rule's qualifiers (defs.x: QADDR, QPLEN, QSIDE, QPORTS, QUSER).  Kept
 * canonical, so two equal rules compare equal byte for byte: the address
 * masked to @plen and zero past its family's length, the ports sorted,
 * apart and zero past @nports.
 */
#define VORDR_QPORTS_MAX 16
#define VORDR_QNAME_MAX 255	/* "*." and a 253-byte name */
struct vordr_qual {
	u32 user;			/* uid + 1; 0: any user */
	u8 af;				/* AF_INET, AF_INET6; 0: any address */
	u8 plen;			/* prefix length */
	u8 side;			/* VORDR_SIDE_*: which port @ports names */
	u8 nports;			/* ranges in @ports; 0: any port */
	union nf_inet_addr addr;
	u16 ports[VORDR_QPORTS_MAX][2];	/* first, last */
	u8 nlen;			/* @name's length; 0: no name */
	char name[VORDR_QNAME_MAX + 1];	/* "host" or "*.domain", NUL padded */
};

/* Canonical bytes (defs.x, next to POLICY_BEGIN): at most this many. */
#define VORDR_QUAL_BYTES_MAX (4 + 1 + 16 + 3 + 4 * VORDR_QPORTS_MAX + 1 + VORDR_QNAME_MAX)
size_t vordr_qual_bytes(const struct vordr_qual *q, u8 *buf);

/* A rule keeps its qualifiers to the end of its name: no 256-byte tail for a rule without one. */
static inline size_t vordr_qual_size(const struct vordr_qual *q)
{
	return offsetof(struct vordr_qual, name) + q->nlen + 1;
}

struct vordr_rule_view {
	u8 prot;
	u32 timeout;	/* seconds left; 0: never expires */
	u8 verdict;
	u8 life;	/* VORDR_LIFE_* */
	u16 len;
	const char *path;
	u64 packets;
	u64 bytes;
	u64 lasthit;
	const struct vordr_qual *qual;	/* NULL: none */
};

extern unsigned int vordr_rules_max;

int vordr_rules_init(void);
void vordr_rules_exit(void);
u32 vordr_hash(const char *s, u16 len);
struct vordr_pkt;
const struct vordr_rule *vordr_rule_match(struct vordr_ident *id,
					  const struct vordr_pkt *pkt, kuid_t uid);
u8 vordr_rule_verdict(const struct vordr_rule *r);
u8 vordr_rule_hit(const struct vordr_rule *r, unsigned int bytes, time64_t now);
int vordr_rules_uniform(u8 unkrule);
u32 vordr_rules_gen(void);
/* @net and @portid: the netlink socket an EXIT rule belongs to. */
int vordr_rule_add(u8 prot, const char *path, u8 verdict, u32 timeout,
		   u8 life, const struct net *net, u32 portid,
		   const struct vordr_qual *q);
unsigned int vordr_rules_release(const struct net *net, u32 portid);
const char *vordr_rule_path(const struct vordr_rule *r, u8 *prot);
bool vordr_path_valid(const char *p);

/* A whole rule table built apart, then swapped in (a policy load). */
struct vordr_rules_stage;
struct vordr_rules_stage *vordr_rules_stage_new(void);
void vordr_rules_stage_free(struct vordr_rules_stage *s);
int vordr_rules_stage_add(struct vordr_rules_stage *s, u8 prot, const char *path,
			  u8 verdict, const struct vordr_qual *q);
void vordr_rules_swap(struct vordr_rules_stage *s, void (*then)(void *), void *arg);

/* The longest rule timeout: a year. */
#define VORDR_TIMEOUT_MAX (366u * 24 * 3600)
/* @q: that qualified rule only (with @prot); NULL: the unqualified one. */
int vordr_rule_del(const char *path, bool any_prot, u8 prot,
		   const struct vordr_qual *q);
void vordr_rule_clear(bool all, u8 verdict);
/* Under rcu_read_lock(): the next rule at or after *pos, or false. */
bool vordr_rule_next(u32 *pos, bool all, u8 verdict, struct vordr_rule_view *v);

/* ---- packets (hook.c) and protocols (proto_*.c) ------------------------ */

/* A packet as the decision sees it. */
struct vordr_pkt {
	/* The hook's, as netfilter gave it: its net, in (inbound) and hook. */
	const struct nf_hook_state *state;
	unsigned int thoff;		/* transport header offset */
	unsigned int len;
	u8 af;				/* AF_INET or AF_INET6 */
	u8 dir;				/* VORDR_DIR_* */
	u8 ipproto;			/* the transport's IANA number */
	u8 prot;			/* VORDR_PROT_*, or ipproto if unknown */
	u16 sport, dport;		/* host order; ICMP: type and code */
	bool bare;			/* TCP: a segment without payload */
	bool syn;			/* TCP: an outbound SYN, no ACK */
	bool frag;			/* IPv6: a first fragment, not the whole */
	bool later;			/* a fragment after the first */
	bool broken;			/* no transport header to read */
	bool sk_ref;			/* lookup_in took a reference */
	bool sk_hand;			/* lookup_in: may be handed over */
	bool failed;			/* finding the owner ran out of memory */
	bool wait;			/* drop until the owner is found */
	u64 hold;			/* hold for this cookie's owner */
	union nf_inet_addr saddr, daddr;
};

/*
 * A protocol submodule: how to read the transport header, and which of
 * its packets belong to the network rather than to any application.
 */
struct vordr_proto {
	u8 prot;
	/* Fill sport and dport; false: the header is truncated. */
	bool (*parse)(const struct sk_buff *skb, struct vordr_pkt *pkt);
	/* Packets always let through (IPv6 neighbour discovery). */
	bool (*infrastructure)(const struct vordr_pkt *pkt);
	/*
	 * The socket an inbound packet without skb->sk is for, or NULL.
	 * Sets pkt->sk_ref if the caller must drop a reference, and
	 * pkt->sk_hand if the protocol's receive function would find the
	 * same socket again and may take it from skb->sk instead (no
	 * reference: freed after a grace period).
	 */
	struct sock *(*lookup_in)(struct sk_buff *skb, struct vordr_pkt *pkt);
};

/* nf_sk_lookup_slow for @pkt's family: established, then listening; ICMP errors. */
struct sock *vordr_lookup_slow(struct sk_buff *skb, struct vordr_pkt *pkt);

/* Called directly for the common protocols (INDIRECT_CALL_*). */
bool vordr_tcp_parse(const struct sk_buff *skb, struct vordr_pkt *pkt);
bool vordr_udp_parse(const struct sk_buff *skb, struct vordr_pkt *pkt);
struct sock *vordr_udp_lookup(struct sk_buff *skb, struct vordr_pkt *pkt);

extern const struct vordr_proto vordr_proto_tcp;
extern const struct vordr_proto vordr_proto_udp;
extern const struct vordr_proto vordr_proto_udplite;
extern const struct vordr_proto vordr_proto_icmp;
extern const struct vordr_proto vordr_proto_icmpv6;

/* ---- where an executable's packets went (dest.c) ------------------------ */

#define VORDR_DEST_PER_IDENT 24

/* A destination: remote address, protocol, the service's port and its side (VORDR_SIDE_*). */
struct vordr_dest_key {
	union nf_inet_addr addr;
	u16 port;
	u8 af, prot, side;
};

struct vordr_dest_counts {
	u64 ap, ab, bp, bb;	/* allowed, blocked: packets, bytes */
};

struct vordr_dest {
	struct vordr_dest_key key;
	struct vordr_dest_counts c;
	time64_t last;
	u64 err;		/* score of the row it replaced (dest.c) */
};

struct vordr_dest_view {
	struct vordr_dest d;
	bool other;		/* the sum of destinations pushed out */
	u32 folded;		/* how many went into it */
};

/* Packets whose destination could not be kept (no memory for a table). */
extern atomic64_t vordr_dest_lost;

void vordr_dest_add(struct vordr_ident *id, const struct vordr_dest_key *k,
		    const struct vordr_dest_counts *c, time64_t last, u64 total);
bool vordr_dest_get(const struct vordr_ident *id, u32 i, struct vordr_dest_view *v);
void vordr_dest_forget(struct vordr_ident *id);
/*
 * Counts @pkt against the flow of @o's known-socket entry (ksc.c);
 * @service: its socket listens (or is a connection request to it), so its
 * own port names the destination.
 */
void vordr_ksc_count(const struct vordr_owner *o, const struct vordr_pkt *pkt,
		     bool service, bool allowed, time64_t now);

/* ---- names from DNS answers (dns.c) ------------------------------------- */

#define VORDR_DNS_PORT 53
#define VORDR_DNS_PER_IDENT 256	/* (name, address) pairs per identity */
#define VORDR_DNS_GRACE 3	/* seconds a pair outlives its TTL */

/* (name, address) pairs in all (module parameter dns_max). */
extern unsigned int vordr_dns_max;

void vordr_dns_init(void);
void vordr_dns_see(const struct sk_buff *skb, const struct vordr_pkt *pkt,
		   struct sock *sk, struct vordr_ident *id);
const char *vordr_dns_name(const struct vordr_ident *id, u8 af,
			   const union nf_inet_addr *addr);
unsigned int vordr_dns_names(const struct vordr_ident *id, u8 af,
			     const union nf_inet_addr *addr, const char **names,
			     unsigned int max);
void vordr_dns_forget(struct vordr_ident *id);
u64 vordr_dns_dropped(void);
unsigned int vordr_dns_count_now(void);

/* ---- events (events.c) --------------------------------------------------- */

int vordr_events_init(void);
void vordr_event(const struct vordr_pkt *pkt, const struct vordr_owner *owner,
		 const struct vordr_rule *rule, u8 verdict, u8 reason);
u64 vordr_events_dropped(void);
void vordr_events_lost(void);
u64 vordr_events_squelched(void);

/* ---- netfilter (hook.c) and netlink (netlink.c) ------------------------- */

int vordr_hook_init(void);
void vordr_hook_exit(void);
void vordr_hook_writer(struct sock *sk);
void vordr_watch_init(void);
void vordr_watch_exit(void);
int vordr_netlink_init(void);
void vordr_netlink_exit(void);
/* Send @msg (a built event) to the events group; false if undelivered. */
bool vordr_netlink_event(struct sk_buff *msg);
void *vordr_netlink_event_put(struct sk_buff *msg);
bool vordr_netlink_listening(void);

/* ---- the saved policy's load (policy.c) --------------------------------- */

/*
 * A policy transaction, owned by the netlink socket @net/@portid that
 * began it.  -EBUSY: another socket's is open; -ENOENT: this socket has
 * none.  Serialized by the caller (genl) and policy_lock (the release).
 */
int vordr_policy_begin(const struct net *net, u32 portid, u32 records, u32 crc);
int vordr_policy_rule(const struct net *net, u32 portid, u8 prot,
		      const char *path, u8 verdict, const struct vordr_qual *q);
int vordr_policy_flag(const struct net *net, u32 portid, enum vordr_flag f, u64 value);
/* A record this socket sent was refused before it could be staged. */
void vordr_policy_reject(const struct net *net, u32 portid);
/* 0, or -EBADMSG with *why set: the load failed closed. */
int vordr_policy_commit(const struct net *net, u32 portid, u8 *why);
int vordr_policy_fail(const struct net *net, u32 portid, u8 reason);
void vordr_policy_release(const struct net *net, u32 portid);
void vordr_policy_exit(void);
u32 vordr_policy_state(void);

#endif /* VORDR_H */
