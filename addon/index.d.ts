// SPDX-License-Identifier: GPL-2.0
//
// Types of the vordr native addon.  Every name and number in `schema` is
// expanded from defs.x by the addon at build time; nothing here repeats one.

import type { Ids } from './ids';

/// <reference types="node" />

export type AttrType = 'u8' | 'u16' | 'u32' | 'u64' | 'string' | 'binary';
export type CommandKind = 'do' | 'dump' | 'event';

/**
 * A decoded attribute value: u64 -> bigint, u8/u16/u32 -> number,
 * string -> string (without its NUL), binary -> Buffer.
 */
export type AttrValue = number | bigint | string | Buffer;

/**
 * What request() accepts for one attribute: u8/u16/u32 a number (integer in
 * the type's range), u64 a number (safe integer) or bigint, string a string
 * without NUL of at most `hi` UTF-8 bytes, binary a Buffer of at most `hi`
 * bytes.  An attribute whose value is `undefined` is left out.
 */
export type AttrInput = number | bigint | string | Buffer | Uint8Array | undefined;

/** One message's attributes, by schema name; unknown ids are skipped. */
export type Message = Record<string, AttrValue>;

/**
 * What an event socket lost, counted since subscribe().  `overruns`: the
 * times its receive buffer overflowed (ENOBUFS); `drops`: the messages the
 * kernel dropped for it (its socket's drop counter, /proc/net/netlink),
 * absent when that cannot be read.
 */
export interface EventLoss {
  readonly overruns: number;
  readonly drops?: number;
}

/**
 * A multicast event, or the marker of events lost to a buffer overrun,
 * placed where the loss was noticed, with the totals so far.  Delivery
 * goes on after it.
 */
export type Event = Message | ({ readonly lost: true } & EventLoss);

export interface CommandInfo {
  readonly id: number;
  /** Needs CAP_NET_ADMIN. */
  readonly admin: boolean;
  readonly kind: CommandKind;
}

export interface AttrInfo {
  readonly id: number;
  readonly type: AttrType;
  /** Accepted from userspace (request() rejects the others). */
  readonly input: boolean;
  /** u8/u16 input: accepted range; string/binary: hi is the longest length. */
  readonly lo: number;
  readonly hi: number;
}

export interface Constant {
  readonly value: number;
  /** Every accepted spelling, the canonical name first. */
  readonly aliases: readonly string[];
}

export interface FlagInfo {
  readonly id: number;
  /** RW (FLAG_SET) rather than a read-only counter. */
  readonly writable: boolean;
  readonly default: number;
  /** Canonical names of constants.value entries the flag accepts. */
  readonly allowed: readonly string[];
}

export interface Schema {
  /**
   * Every defs.x entry by its C identifier: ids.CMD.RULE_ADD is
   * 'rule_add', ids.VALUE.ENABLED is 'enabled'.  The types come from defs.x
   * (ids.d.ts, generated), so a lookup of an ID defs.x lacks does not compile.
   */
  readonly ids: Ids;
  readonly family: {
    readonly name: string;
    readonly version: number;
    /** The multicast group events are sent to. */
    readonly group: string;
    /** cksum(1) of defs.x; the module reports its own in HELLO. */
    readonly schemaCrc: number;
  };
  /** By defs.x's lowercase name, e.g. 'rule_add'. */
  readonly commands: { readonly [name: string]: CommandInfo };
  readonly attrs: { readonly [name: string]: AttrInfo };
  /** By lowercased group ('value', 'prot', 'reason', 'dir'), then canonical name. */
  readonly constants: { readonly [group: string]: { readonly [name: string]: Constant } };
  readonly flags: { readonly [name: string]: FlagInfo };
  /**
   * Numbers of the platform (not defs.x) from the system headers: address
   * families (events' AF attribute) and capability bits.
   */
  readonly platform?: {
    readonly af: { readonly inet: number; readonly inet6: number };
    readonly cap: { readonly net_admin: number };
  };
}

/** A rejected request or open(). */
export interface VordrError extends Error {
  /** Positive errno; absent for ECLOSED. */
  errno?: number;
  /** 'EPERM', 'EINVAL', 'ENOENT', ... or 'ECLOSED' after close(). */
  code: string;
  /** The kernel's extended-ack message when it sent one, else strerror. */
  message: string;
  /** Schema name of the attribute the kernel's extended ack points at. */
  attr?: string;
  /** Schema name of a required attribute the kernel says is missing. */
  missingAttr?: string;
}

export interface Connection {
  /**
   * Sends a 'do' or 'dump' command.  Throws TypeError synchronously for an
   * unknown command, an event, an unknown or kernel-only attribute, a value
   * of the wrong type or out of range.  Resolves, for 'do', on the kernel's
   * ack with [] or [reply]; for 'dump', with every reply.  Rejects with a
   * VordrError.
   */
  request(command: string, attrs?: Readonly<Record<string, AttrInput>>): Promise<Message[]>;
  /**
   * Delivers every event of the family's multicast group to `callback` (on
   * a socket of its own); calling it again replaces the callback.  Throws
   * when closed or when the family has no such group.
   */
  subscribe(callback: (event: Event) => void): void;
  unsubscribe(): void;
  /** The event socket's losses so far (zeros when not subscribed). */
  readonly eventLoss: EventLoss;
  /** Rejects pending requests with code 'ECLOSED'; idempotent. */
  close(): void;
  readonly familyId: number;
  /** The version the kernel's family reports. */
  readonly familyVersion: number;
  /** The multicast group's id, or null when the family has none. */
  readonly groupId: number | null;
  readonly closed: boolean;
}

export const schema: Schema;

/**
 * Opens a connection to the vordr family.  Rejects with code 'ENOENT' when
 * the kernel module is not loaded.
 */
export function open(): Promise<Connection>;

/**
 * What watch() reports: the vordr family registered (the module loaded:
 * present) or unregistered (unloaded), or the `{lost: true}` marker when
 * the watch's socket overran (then the state is unknown: ask open()).
 */
export type FamilyChange =
  | { readonly family: string; readonly present: boolean; readonly familyId?: number }
  | ({ readonly lost: true } & EventLoss);

/**
 * Watches the generic netlink controller (nlctrl's "notify" group) for the
 * vordr family coming and going.  Resolves with the connection carrying the
 * watch; its close() ends it.  Works whether or not the module is loaded.
 */
export function watch(callback: (change: FamilyChange) => void): Promise<Connection>;

/**
 * sd_notify(3): sends `state` ("READY=1", "STATUS=...", newline-separated
 * assignments) to the service manager.  True when sent; false, doing
 * nothing, when NOTIFY_SOCKET is unset.  Throws a VordrError on failure.
 */
export function notify(state: string): boolean;

/**
 * Decodes one generic netlink message (nlmsghdr + genlmsghdr + attributes)
 * against the vordr schema.  Throws an Error with code 'EBADMSG' on
 * malformed input, TypeError when not given a Buffer/Uint8Array.
 */
export function decode(buf: Uint8Array): Message;

/**
 * Test hook: open() with the schema `schemaName` ('vordr' or 'nlctrl') against
 * the kernel family `kernelFamily` (default: the same name).
 */
export function _openFamily(schemaName: string, kernelFamily?: string): Promise<Connection>;
