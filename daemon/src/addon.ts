// The contract of the native addon (addon/), and the one place it is loaded.
//
// Every name and number the daemon uses (commands, attributes, flags,
// constants and their aliases) comes from `schema`, which the addon expands
// from defs.x; nothing here repeats one.

import path from 'node:path';
import { Result, err, ok } from 'neverthrow';

// The types are addon/index.d.ts's own: one declaration of the contract.
import type * as Native from '../../addon';

export type AttrType = Native.AttrType;
export type AttrValue = Native.AttrValue;
export type Message = Native.Message;
export type Event = Native.Event;
export type EventLoss = Native.EventLoss;
export type Constant = Native.Constant;
export type FlagDef = Native.FlagInfo;
export type Schema = Native.Schema;
export type Ids = Native.Schema['ids'];
export type AddonError = Native.VordrError;
export type Connection = Native.Connection;
export type FamilyChange = Native.FamilyChange;

/** A constant group of defs.x by its C identifier (VALUE, PROT, LIFE...). */
export type ConstGroupId = Exclude<keyof Ids, 'CMD' | 'ATTR' | 'FLAG'>;

/** A constant group by its C identifier: schema.constants keys groups lowercased (PROT -> prot). */
export function constGroup(schema: Schema, group: string): { readonly [name: string]: Constant } {
  return schema.constants[group.toLowerCase()] ?? {};
}

/** A constant's number by its group's and its own C identifier. */
export function constValue<G extends ConstGroupId>(schema: Schema, group: G, id: keyof Ids[G]): number | undefined {
  const name = (schema.ids[group] as Readonly<Record<PropertyKey, string>>)[id];
  return name === undefined ? undefined : constGroup(schema, group)[name]?.value;
}

/**
 * What schema.ids names but the rest of the schema lacks ('command
 * rule_list', 'constant life always'): an addon at odds with itself, or
 * one whose ids the daemon was not built for.
 */
export function schemaGaps(schema: Schema): string[] {
  if (!schema.ids) return ['schema ids'];
  const gaps: string[] = [];
  for (const [kind, entries] of Object.entries(schema.ids) as [string, Readonly<Record<string, string>>][]) {
    for (const name of Object.values(entries)) {
      const has =
        kind === 'CMD' ? name in schema.commands
        : kind === 'ATTR' ? name in schema.attrs
        : kind === 'FLAG' ? name in schema.flags
        : name in constGroup(schema, kind);
      if (!has) gaps.push(`${kind === 'CMD' ? 'command' : kind === 'ATTR' ? 'attribute' : kind === 'FLAG' ? 'flag' : `constant ${kind.toLowerCase()}`} ${name}`);
    }
  }
  return gaps;
}

/** The part of the addon the daemon uses. */
export interface Addon {
  readonly schema: Schema;
  /** Rejects with code ENOENT when the kernel module is not loaded. */
  open(): Promise<Connection>;
  /** The vordr family coming and going (the module loaded, unloaded). */
  watch?(callback: (change: FamilyChange) => void): Promise<Connection>;
  /** sd_notify(3); false (a no-op) without NOTIFY_SOCKET. */
  notify?(state: string): boolean;
}

export type LoadError = { kind: 'addon-missing'; path: string; message: string };

/** addon/ as seen from daemon/dist/addon.js (the compiled file). */
export const ADDON_PATH = path.join(__dirname, '..', '..', 'addon');

export function loadAddon(where: string = ADDON_PATH): Result<Addon, LoadError> {
  return tryLoad(where);
}

function tryLoad(where: string): Result<Addon, LoadError> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(where) as Partial<Addon>;
    if (typeof addon?.open !== 'function' || typeof addon.schema !== 'object')
      return err({ kind: 'addon-missing', path: where, message: 'it does not export schema and open()' });
    return ok(addon as Addon);
  } catch (e) {
    return err({ kind: 'addon-missing', path: where, message: e instanceof Error ? e.message.split('\n')[0] ?? '' : String(e) });
  }
}
