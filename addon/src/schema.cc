// SPDX-License-Identifier: GPL-2.0
//
// schema.cc - defs.x expanded into the tables the addon walks.

#include "schema.h"

#include <cstring>
#include <linux/genetlink.h>

namespace vordr {
namespace {

// Turn defs.x's bare words into the addon's vocabulary.
constexpr bool is_input_IN = true;
constexpr bool is_input_OUT = false;
constexpr bool is_admin_ADMIN = true;
constexpr bool is_admin_ANYONE = false;
constexpr bool is_writable_RW = true;
constexpr bool is_writable_RO = false;

const AttrDesc vordr_attrs[] = {
	{nullptr, 0, AttrType::BINARY, false, 0, 0},
#define VORDR_ATTR(id, name, type, dir, lo, hi) \
	{#name, VORDR_A_##id, AttrType::type, is_input_##dir, (lo), (hi)},
#include "defs.x"
#undef VORDR_ATTR
};
static_assert(sizeof(vordr_attrs) / sizeof(vordr_attrs[0]) == VORDR_A_MAX + 1,
	      "attribute table indexed by id");

const CmdDesc vordr_cmds[] = {
#define VORDR_CMD(id, name, perm, kind) \
	{#name, VORDR_CMD_##id, is_admin_##perm, Kind::kind},
#include "defs.x"
#undef VORDR_CMD
};

#define VORDR_FAMILY(n, v, g) const char vordr_name[] = n; \
	constexpr uint32_t vordr_version = (v); const char vordr_group[] = g;
#include "defs.x"
#undef VORDR_FAMILY

// nlctrl, from <linux/genetlink.h>.  family_name's hi is deliberately above
// the kernel's GENL_NAMSIZ - 1 so the tests can provoke the kernel's own
// policy rejection (and its extended ack) through this code.
const AttrDesc ctrl_attrs[] = {
	{nullptr, 0, AttrType::BINARY, false, 0, 0},
	{"family_id", CTRL_ATTR_FAMILY_ID, AttrType::U16, true, 0, 0},
	{"family_name", CTRL_ATTR_FAMILY_NAME, AttrType::STRING, true, 1, 255},
	{"version", CTRL_ATTR_VERSION, AttrType::U32, false, 0, 0},
	{"hdrsize", CTRL_ATTR_HDRSIZE, AttrType::U32, false, 0, 0},
	{"maxattr", CTRL_ATTR_MAXATTR, AttrType::U32, false, 0, 0},
	{"ops", CTRL_ATTR_OPS, AttrType::BINARY, false, 0, 0},
	{"mcast_groups", CTRL_ATTR_MCAST_GROUPS, AttrType::BINARY, false, 0, 0},
	{"policy", CTRL_ATTR_POLICY, AttrType::BINARY, false, 0, 0},
	{"op_policy", CTRL_ATTR_OP_POLICY, AttrType::BINARY, false, 0, 0},
	{"op", CTRL_ATTR_OP, AttrType::U32, true, 0, 0},
};

const CmdDesc ctrl_cmds[] = {
	{"newfamily", CTRL_CMD_NEWFAMILY, false, Kind::EVENT},
	{"delfamily", CTRL_CMD_DELFAMILY, false, Kind::EVENT},
	{"getfamily", CTRL_CMD_GETFAMILY, false, Kind::DUMP},
	{"newmcast_grp", CTRL_CMD_NEWMCAST_GRP, false, Kind::EVENT},
	{"delmcast_grp", CTRL_CMD_DELMCAST_GRP, false, Kind::EVENT},
	{"getpolicy", CTRL_CMD_GETPOLICY, false, Kind::DUMP},
};

}  // namespace

const FamilyDesc vordr_family = {
	vordr_name, vordr_version, vordr_group,
	vordr_attrs, sizeof(vordr_attrs) / sizeof(vordr_attrs[0]),
	vordr_cmds, sizeof(vordr_cmds) / sizeof(vordr_cmds[0]),
};

const FamilyDesc ctrl_family = {
	"nlctrl", 2, "notify",
	ctrl_attrs, sizeof(ctrl_attrs) / sizeof(ctrl_attrs[0]),
	ctrl_cmds, sizeof(ctrl_cmds) / sizeof(ctrl_cmds[0]),
};

const ConstDesc vordr_consts[] = {
#define VORDR_CONST(group, id, value, ...) \
	{#group, VORDR_##group##_##id, {__VA_ARGS__, nullptr}},
#include "defs.x"
#undef VORDR_CONST
};
const size_t vordr_nconsts = sizeof(vordr_consts) / sizeof(vordr_consts[0]);

const FlagDesc vordr_flags[] = {
#define VORDR_FLAG(id, name, access, def, allowed) \
	{#name, VORDR_FLAG_##id, is_writable_##access, (def), (allowed)},
#include "defs.x"
#undef VORDR_FLAG
};
const size_t vordr_nflags = sizeof(vordr_flags) / sizeof(vordr_flags[0]);

const IdDesc vordr_ids[] = {
#define VORDR_CMD(id, name, perm, kind) {"CMD", #id, #name},
#include "defs.x"
#define VORDR_ATTR(id, name, type, dir, lo, hi) {"ATTR", #id, #name},
#include "defs.x"
#define VORDR_FLAG(id, name, access, def, allowed) {"FLAG", #id, #name},
#include "defs.x"
#define VORDR_CONST_NAME(name, ...) name
#define VORDR_CONST(group, id, value, ...) {#group, #id, VORDR_CONST_NAME(__VA_ARGS__, 0)},
#include "defs.x"
#undef VORDR_CONST_NAME
};
const size_t vordr_nids = sizeof(vordr_ids) / sizeof(vordr_ids[0]);

const char *type_name(AttrType t)
{
	switch (t) {
	case AttrType::U8: return "u8";
	case AttrType::U16: return "u16";
	case AttrType::U32: return "u32";
	case AttrType::U64: return "u64";
	case AttrType::STRING: return "string";
	case AttrType::BINARY: return "binary";
	}
	return "binary";
}

const char *kind_name(Kind k)
{
	switch (k) {
	case Kind::DO: return "do";
	case Kind::DUMP: return "dump";
	case Kind::EVENT: return "event";
	}
	return "do";
}

const AttrDesc *find_attr(const FamilyDesc &f, uint16_t id)
{
	if (id == 0 || id >= f.nattrs)
		return nullptr;
	return &f.attrs[id];
}

const AttrDesc *find_attr(const FamilyDesc &f, const char *name)
{
	for (size_t i = 1; i < f.nattrs; i++)
		if (!strcmp(f.attrs[i].name, name))
			return &f.attrs[i];
	return nullptr;
}

const CmdDesc *find_cmd(const FamilyDesc &f, const char *name)
{
	for (size_t i = 0; i < f.ncmds; i++)
		if (!strcmp(f.cmds[i].name, name))
			return &f.cmds[i];
	return nullptr;
}

const CmdDesc *find_cmd(const FamilyDesc &f, uint8_t id)
{
	for (size_t i = 0; i < f.ncmds; i++)
		if (f.cmds[i].id == id)
			return &f.cmds[i];
	return nullptr;
}

}  // namespace vordr
