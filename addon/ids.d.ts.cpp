/*
 * ids.d.ts.cpp - defs.x's C identifiers as TypeScript types.
 *
 * `npm run gen` expands this with the C preprocessor into addon/ids.d.ts
 * (not kept in git), so every schema.ids.KIND.ID the daemon names is
 * checked against defs.x when the daemon is compiled; the names and numbers
 * themselves come from the addon at run time.
 */
#define VORDR_CMD(id, name, perm, kind) | #id
export type CmdId = never
#include "defs.x"
;
#define VORDR_ATTR(id, name, type, dir, lo, hi) | #id
export type AttrId = never
#include "defs.x"
;
#define VORDR_FLAG(id, name, access, def, allowed) | #id
export type FlagId = never
#include "defs.x"
;
#define VORDR_CONST(group, id, value, ...) | [#group, #id]
export type ConstId = never
#include "defs.x"
;
export type ConstGroup = ConstId[0];
export type Ids = {
  readonly CMD: { readonly [K in CmdId]: string };
  readonly ATTR: { readonly [K in AttrId]: string };
  readonly FLAG: { readonly [K in FlagId]: string };
} & { readonly [G in ConstGroup]: { readonly [K in Extract<ConstId, [G, string]>[1]]: string } };
