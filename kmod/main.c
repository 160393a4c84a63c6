// SPDX-License-Identifier: GPL-2.0
/*
 * vordr - per-application firewall: flags, module parameters, init, exit.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/percpu.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "vordr.h"

u32 vordr_flags[VORDR_FLAG_MAX + 1] = {
#define VORDR_FLAG(id, name, access, def, allowed) [VORDR_FLAG_##id] = (def),
#include "defs.x"
};

/* Values each flag accepts, as a mask of 1 << VORDR_VALUE_*; 0: read-only. */
static const u32 vordr_flag_allowed[VORDR_FLAG_MAX + 1] = {
#define VORDR_FLAG(id, name, access, def, allowed) [VORDR_FLAG_##id] = (allowed),
#include "defs.x"
};

static const char *const vordr_value_names[] = {
#define VORDR_CONST(group, id, value, name, ...) VORDR_ONLY(VALUE, group, [value] = name,)
#include "defs.x"
};

/* The index of @name in @names[0..n) (names by value), or false. */
bool vordr_named(const char *const *names, size_t n, const char *name, u8 *value)
{
	size_t i;

	for (i = 0; name && i < n; i++) {
		if (names[i] && !strcmp(name, names[i])) {
			*value = i;
			return true;
		}
	}
	return false;
}

/* The flag value or verdict canonically named @name (defs.x), or false. */
bool vordr_value_named(const char *name, u8 *value)
{
	return vordr_named(vordr_value_names, ARRAY_SIZE(vordr_value_names), name, value);
}

static time64_t vordr_loaded_at;
DEFINE_PER_CPU(u64, vordr_qpackets);

/* -EROFS: a read-only flag; -EINVAL: a value the flag does not take. */
int vordr_flag_check(enum vordr_flag f, u64 value)
{
	u32 allowed = f <= VORDR_FLAG_MAX ? vordr_flag_allowed[f] : 0;

	if (!allowed)
		return -EROFS;
	if (value >= 32 || !(allowed & (1u << value)))
		return -EINVAL;
	return 0;
}

int vordr_flag_set(enum vordr_flag f, u64 value)
{
	int err = vordr_flag_check(f, value);

	if (!err)
		WRITE_ONCE(vordr_flags[f], (u32)value);
	return err;
}

u64 vordr_flag_get(enum vordr_flag f)
{
	u64 sum = 0;
	int cpu;

	switch (f) {
	case VORDR_FLAG_UPTIME:
		return ktime_get_boottime_seconds() - vordr_loaded_at;
	case VORDR_FLAG_QPACKETS:
		for_each_possible_cpu(cpu)
			sum += per_cpu(vordr_qpackets, cpu);
		return sum;
	case VORDR_FLAG_EVDROPS:
		return vordr_events_dropped();
	case VORDR_FLAG_SQUELCHED:
		return vordr_events_squelched();
	case VORDR_FLAG_HELD:
		return vordr_asc_held();
	case VORDR_FLAG_HELDLOST:
		return vordr_asc_lost();
	case VORDR_FLAG_POLICY:
		return vordr_policy_state();
	case VORDR_FLAG_DNSDROPS:
		return vordr_dns_dropped();
	case VORDR_FLAG_DESTLOST:
		return atomic64_read(&vordr_dest_lost);
	default:
		return vordr_flag(f);
	}
}

/*
 * Module parameters: one per writable flag, named as in defs.x, taking a
 * value's name or alias ("enabled", "disable", "pending") or its number,
 * so modprobe.d can make the module enforce a policy from its first
 * packet.  Reading one shows the flag's current value.
 */
static int vordr_param_set(const char *val, const struct kernel_param *kp)
{
	enum vordr_flag f = (u32 *)kp->arg - vordr_flags;
	char buf[16];
	u32 v;

	strscpy(buf, val, sizeof(buf));
	strim(buf);
	if (kstrtou32(buf, 0, &v)) {
		static const struct { const char *alias; u32 value; } aliases[] = {
#define VORDR_ALIAS1(value, a) { a, value },
#define VORDR_ALIAS2(value, a, b) { a, value }, { b, value },
#define VORDR_ALIAS_PICK(_1, _2, m, ...) m
#define VORDR_CONST(group, id, value, ...) VORDR_ONLY(VALUE, group, \
	VORDR_ALIAS_PICK(__VA_ARGS__, VORDR_ALIAS2, VORDR_ALIAS1)(value, __VA_ARGS__))
#include "defs.x"
		};
		size_t i;

		for (i = 0; i < ARRAY_SIZE(aliases); i++)
			if (!strcmp(buf, aliases[i].alias))
				break;
		if (i == ARRAY_SIZE(aliases)) {
			pr_err("%s: unknown value '%s'\n", kp->name, buf);
			return -EINVAL;
		}
		v = aliases[i].value;
	}
	if (vordr_flag_set(f, v)) {
		pr_err("%s: value not allowed: '%s'\n", kp->name, buf);
		return -EINVAL;
	}
	return 0;
}

static int vordr_param_get(char *buffer, const struct kernel_param *kp)
{
	u32 v = READ_ONCE(*(u32 *)kp->arg);

	if (v < ARRAY_SIZE(vordr_value_names) && vordr_value_names[v])
		return sysfs_emit(buffer, "%s\n", vordr_value_names[v]);
	return sysfs_emit(buffer, "%u\n", v);
}

static const struct kernel_param_ops vordr_param_ops = {
	.set = vordr_param_set,
	.get = vordr_param_get,
};

#define VORDR_FLAG(id, name, access, def, allowed) VORDR_PARAM_##access(id, name)
#define VORDR_PARAM_RW(id, name) \
	module_param_cb(name, &vordr_param_ops, &vordr_flags[VORDR_FLAG_##id], 0444); \
	MODULE_PARM_DESC(name, "boot value of the " #name " flag");
#define VORDR_PARAM_RO(id, name)
#include "defs.x"
#undef VORDR_PARAM_RW
#undef VORDR_PARAM_RO

static int vordr_rules_max_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err = kstrtouint(val, 0, &v);

	if (err)
		return err;
	if (v < 1 || v > (1u << 20))
		return -ERANGE;
	*(unsigned int *)kp->arg = v;
	return 0;
}

static const struct kernel_param_ops vordr_rules_max_ops = {
	.set = vordr_rules_max_set,
	.get = param_get_uint,
};

module_param_cb(rules_max, &vordr_rules_max_ops, &vordr_rules_max, 0444);
MODULE_PARM_DESC(rules_max, "capacity of the rule table (1 to 1048576)");

/* Sizes of the caches, fixed at load: README (Memory) bounds the module by them. */
static int vordr_size_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err = kstrtouint(val, 0, &v);

	if (err)
		return err;
	if (v < 1 || v > (1u << 24))
		return -ERANGE;
	*(unsigned int *)kp->arg = v;
	return 0;
}

static const struct kernel_param_ops vordr_size_ops = {
	.set = vordr_size_set,
	.get = param_get_uint,
};

module_param_cb(ksc_max, &vordr_size_ops, &vordr_ksc_max, 0444);
MODULE_PARM_DESC(ksc_max, "known-socket entries in all, each weighed by the identities it names (1 to 16777216)");
module_param_cb(ksc_user_max, &vordr_size_ops, &vordr_ksc_user_max, 0444);
MODULE_PARM_DESC(ksc_user_max, "known-socket entries per user and kind (1 to 16777216)");
module_param_cb(idents_max, &vordr_size_ops, &vordr_idents_max, 0444);
MODULE_PARM_DESC(idents_max, "identities kept when unused (1 to 16777216)");
module_param_cb(dns_max, &vordr_size_ops, &vordr_dns_max, 0444);
MODULE_PARM_DESC(dns_max, "names learnt from DNS answers, (name, address) pairs in all (1 to 16777216)");

/* What the caches hold now: read-only figures. */
static int vordr_now_set(const char *val, const struct kernel_param *kp)
{
	return -EPERM;
}

static int vordr_now_get(char *buf, const struct kernel_param *kp)
{
	unsigned int (*now)(void) = kp->arg;

	return sysfs_emit(buf, "%u\n", now());
}

static const struct kernel_param_ops vordr_now_ops = {
	.set = vordr_now_set,
	.get = vordr_now_get,
};

module_param_cb(ksc_entries, &vordr_now_ops, vordr_ksc_count_now, 0444);
MODULE_PARM_DESC(ksc_entries, "known-socket entries now, each weighed by the identities it names (read-only)");
module_param_cb(idents, &vordr_now_ops, vordr_ident_count_now, 0444);
MODULE_PARM_DESC(idents, "identities interned now (read-only)");
module_param_cb(dns_names, &vordr_now_ops, vordr_dns_count_now, 0444);
MODULE_PARM_DESC(dns_names, "(name, address) pairs learnt from DNS answers now (read-only)");

static int __init vordr_init(void)
{
	int err;

	vordr_loaded_at = ktime_get_boottime_seconds();
	vordr_dns_init();

	/* The rules come later, from the saved policy (policy.c): never from here. */
	err = vordr_rules_init();
	if (err)
		goto err_out;
	err = vordr_ident_init();
	if (err)
		goto err_rules;
	err = vordr_ksc_init();
	if (err)
		goto err_ident;
	err = vordr_asc_init();
	if (err)
		goto err_ksc;
	err = vordr_events_init();
	if (err)
		goto err_asc;
	err = vordr_netlink_init();
	if (err)
		goto err_asc;
	err = vordr_hook_init();
	if (err)
		goto err_netlink;
	vordr_watch_init();

	pr_info("loaded: mode %s, %u rules at most\n",
		vordr_value_names[READ_ONCE(vordr_flags[VORDR_FLAG_MODE])], vordr_rules_max);
	return 0;

err_netlink:
	vordr_netlink_exit();
err_asc:
	vordr_asc_exit();
err_ksc:
	vordr_ksc_exit();
err_ident:
	vordr_ident_exit();
err_rules:
	vordr_rules_exit();
err_out:
	return err;
}

static void __exit vordr_exit(void)
{
	/* Hooks first: once they are gone no packet can reach the tables. */
	vordr_watch_exit();
	vordr_hook_exit();
	vordr_netlink_exit();
	vordr_asc_exit();
	vordr_ksc_exit();
	vordr_ident_exit();
	vordr_rules_exit();
	pr_info("unloaded\n");
}

module_init(vordr_init);
module_exit(vordr_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vordr: per-application firewall");
MODULE_AUTHOR("vordr developers");
