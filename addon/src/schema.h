// SPDX-License-Identifier: GPL-2.0
//
// schema.h - the C++ view of defs.x.
//
// The enums carry the same names the kernel module uses, so a reader can
// grep one name across kmod/ and addon/.  The tables describe a generic
// netlink family in a form the wire code and the JS bindings walk; nothing
// here repeats a name or a number from defs.x.

#ifndef VORDR_ADDON_SCHEMA_H
#define VORDR_ADDON_SCHEMA_H

#include <cstddef>
#include <cstdint>

// Constants of every group in one enum: VORDR_VALUE_ENABLED, VORDR_PROT_TCP...
enum vordr_const : unsigned {
#define VORDR_CONST(group, id, value, ...) VORDR_##group##_##id = (value),
#include "defs.x"
#undef VORDR_CONST
};

enum vordr_flag {
	VORDR_FLAG_UNSPEC__,
#define VORDR_FLAG(id, name, access, def, allowed) VORDR_FLAG_##id,
#include "defs.x"
#undef VORDR_FLAG
	VORDR_FLAG_LAST__,
};
#define VORDR_FLAG_MAX (VORDR_FLAG_LAST__ - 1)

enum vordr_cmd {
	VORDR_CMD_UNSPEC__,
#define VORDR_CMD(id, name, perm, kind) VORDR_CMD_##id,
#include "defs.x"
#undef VORDR_CMD
	VORDR_CMD_LAST__,
};
#define VORDR_CMD_MAX (VORDR_CMD_LAST__ - 1)

enum vordr_attr {
	VORDR_A_UNSPEC__,
#define VORDR_ATTR(id, name, type, dir, lo, hi) VORDR_A_##id,
#include "defs.x"
#undef VORDR_ATTR
	VORDR_A_LAST__,
};
#define VORDR_A_MAX (VORDR_A_LAST__ - 1)

// What defs.x asks a consumer to define before it expands flags and
// attributes.
#define VORDR_VAL(X) VORDR_VALUE_##X
#define VORDR_V(X) (1u << VORDR_VALUE_##X)
// The group VORDR_VAL() and VORDR_V() draw from, spelled as defs.x does.
#define VORDR_VALUE_GROUP "VALUE"

namespace vordr {

// The vocabulary of defs.x's TYPE, DIR, PERM, KIND and ACCESS arguments.
enum class AttrType { U8, U16, U32, U64, STRING, BINARY };
enum class Kind { DO, DUMP, EVENT };

struct AttrDesc {
	const char *name;
	uint16_t id;
	AttrType type;
	bool input;
	int64_t lo, hi;
};

struct CmdDesc {
	const char *name;
	uint8_t id;
	bool admin;
	Kind kind;
};

struct ConstDesc {
	const char *group;	// as written in defs.x: "VALUE", "PROT"...
	unsigned value;
	const char *names[8];	// canonical first, NULL-terminated
};

struct FlagDesc {
	const char *name;
	uint16_t id;
	bool writable;
	uint64_t def;
	uint64_t allowed;	// bit mask over VORDR_VALUE_*
};

// A generic netlink family as the wire code sees it.  attrs is indexed by
// attribute id (attrs[id].id == id; entry 0 unused) so decoding is O(1).
struct FamilyDesc {
	const char *name;
	uint32_t version;
	const char *group;
	const AttrDesc *attrs;
	size_t nattrs;		// entries in attrs, including 0
	const CmdDesc *cmds;
	size_t ncmds;
};

extern const FamilyDesc vordr_family;
// The kernel's own controller, "nlctrl": used to resolve families and, by
// the tests, to exercise the request machinery on a host without vordr.
extern const FamilyDesc ctrl_family;

extern const ConstDesc vordr_consts[];
extern const size_t vordr_nconsts;
extern const FlagDesc vordr_flags[];
extern const size_t vordr_nflags;

// Every entry of defs.x by its C identifier: kind ("CMD", "ATTR", "FLAG",
// or a constant's group), the ID as written (RULE_ADD), and its name
// (rule_add).  The daemon names what it uses by these IDs, as C does with
// VORDR_CMD_RULE_ADD, and never by the name or number itself.
struct IdDesc {
	const char *kind;
	const char *id;
	const char *name;
};
extern const IdDesc vordr_ids[];
extern const size_t vordr_nids;

const char *type_name(AttrType t);
const char *kind_name(Kind k);
const AttrDesc *find_attr(const FamilyDesc &f, uint16_t id);
const AttrDesc *find_attr(const FamilyDesc &f, const char *name);
const CmdDesc *find_cmd(const FamilyDesc &f, const char *name);
const CmdDesc *find_cmd(const FamilyDesc &f, uint8_t id);

}  // namespace vordr

#endif
