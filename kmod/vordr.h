/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vordr - per-application firewall.  Declarations shared by the module's
 * files, and the C expansion of defs.x.
 *
 * The packet path, in the order a reader should open the files:
 *   hook.c   netfilter entry: mode, protocol, owner, rule, verdict
 *   ksc.c    known-socket cache: socket cookie -> owning executable
 *   rules.c  circular rule table with a hash index
 *   netlink.c generic netlink family "vordr"
 *   main.c   flags, module parameters, init and exit
 */
#ifndef VORDR_H
#define VORDR_H

#include <linux/types.h>
#include <linux/rcupdate.h>
#include <linux/skbuff.h>

/* ---- defs.x, expanded for C -------------------------------------------- */

#define VORDR_VAL(x) VORDR_VALUE_##x
#define VORDR_V(x) (1u << VORDR_VALUE_##x)

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
u64 vordr_flag_get(enum vordr_flag f);
void vordr_count_packet(void);

/* ---- identity and known-socket cache (ksc.c) ---------------------------- */

#define VORDR_MAX_DEPTH 32

/*
 * Who owns a socket: the executable's path as d_path() printed it (a
 * deleted file ends in " (deleted)" and so never matches a rule for its
 * successor), its device and inode, and the hashes of the path and of the
 * deepest VORDR_MAX_DEPTH directory prefixes (ending in '/') so rule
 * lookup hashes nothing on the packet path.  d_path() prints relative to
 * the task's root, which an unprivileged user can change (chroot or a
 * bind mount in a user and mount namespace of its own): a path printed
 * under any root but the one the module was loaded in is marked foreign
 * and matches no rule.  Immutable once published.
 */
struct vordr_ident {
	dev_t dev;
	unsigned long ino;
	pid_t pid;
	kuid_t uid;
	u32 hash;
	u16 len;
	u8 ndirs;
	bool foreign;	/* path printed under another root: matches no rule */
	u16 dir_len[VORDR_MAX_DEPTH];
	u32 dir_hash[VORDR_MAX_DEPTH];
	char path[];
};

int vordr_ksc_init(void);
void vordr_ksc_exit(void);
const struct vordr_ident *vordr_ksc_find(struct sock *sk);
const struct vordr_ident *vordr_ksc_learn(struct sock *sk, int *err);

/* ---- rules (rules.c) ---------------------------------------------------- */

struct vordr_rule;

struct vordr_rule_view {
	u8 prot;
	u8 verdict;
	u16 len;
	const char *path;
	u64 packets;
	u64 bytes;
	u64 lasthit;
};

extern unsigned int vordr_rules_max;

int vordr_rules_init(void);
void vordr_rules_exit(void);
u32 vordr_hash(const char *s, u16 len);
const struct vordr_rule *vordr_rule_match(const struct vordr_ident *id, u8 prot);
u8 vordr_rule_hit(const struct vordr_rule *r, unsigned int bytes);
u32 vordr_rules_gen(void);
int vordr_rule_add(u8 prot, const char *path, u8 verdict);
int vordr_rule_del(const char *path, bool any_prot, u8 prot);
void vordr_rule_clear(bool all, u8 verdict);
/* Under rcu_read_lock(): the next rule at or after *pos, or false. */
bool vordr_rule_next(u32 *pos, bool all, u8 verdict, struct vordr_rule_view *v);

/* ---- netfilter (hook.c) and netlink (netlink.c) ------------------------- */

int vordr_hook_init(void);
void vordr_hook_exit(void);
int vordr_netlink_init(void);
void vordr_netlink_exit(void);

#endif /* VORDR_H */
