// The contract of the native addon (addon/), and the one place it is loaded.
//
// Every name and number the daemon uses (commands, attributes, flags,
// constants and their aliases) comes from `schema`, which the addon expands
// from defs.x; nothing here repeats one.

import path from 'node:path';
import { Result, err, ok } from 'neverthrow';

export type AttrType = 'u8' | 'u16' | 'u32' | 'u64' | 'string' | 'binary';
export type AttrValue = number | bigint | string | Buffer;
export type Message = Record<string, AttrValue>;

export interface Constant {
  readonly value: number;
  /** The canonical name first, then the aliases the grammar accepts. */
  readonly aliases: readonly string[];
}

export interface FlagDef {
  readonly id: number;
  readonly writable: boolean;
  readonly default: number;
  /** Canonical value names (constants.value) the flag accepts. */
  readonly allowed: readonly string[];
}

export interface Schema {
  readonly family: {
    readonly name: string;
    readonly version: number;
    readonly group: string;
    readonly schemaCrc: number;
  };
  readonly commands: Readonly<Record<string, {
    readonly id: number;
    readonly admin: boolean;
    readonly kind: 'do' | 'dump' | 'event';
  }>>;
  readonly attrs: Readonly<Record<string, {
    readonly id: number;
    readonly type: AttrType;
    readonly input: boolean;
    readonly lo: number;
    readonly hi: number;
  }>>;
  readonly constants: Readonly<Record<string, Readonly<Record<string, Constant>>>>;
  readonly flags: Readonly<Record<string, FlagDef>>;
}

/** What a rejected request carries (kernel errors, with extack text). */
export interface AddonError extends Error {
  errno?: number;
  code?: string;
  attr?: string;
}

export interface Connection {
  /** Throws TypeError synchronously on bad arguments. */
  request(command: string, attrs?: Message): Promise<Message[]>;
  subscribe(cb: (event: Message) => void): void;
  unsubscribe(): void;
  close(): void;
}

export interface Addon {
  readonly schema: Schema;
  /** Rejects with code ENOENT when the kernel module is not loaded. */
  open(): Promise<Connection>;
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
