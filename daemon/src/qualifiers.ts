// A rule's qualifiers in the grammar's words (SPEC section 2):
//
//   [to DEST | from PEER] [port PORTS] [user USER]
//
// DEST and PEER: an IPv4 or IPv6 address or CIDR prefix (ip-address reads
// and prints them; an IPv4-mapped IPv6 address is the IPv4 one, the form
// the module matches). PORTS: 443, 8000-8100, 80,443 (sorted and merged).
// USER: a name or a number, looked up in /etc/passwd when the rule goes to
// the module. Parsed and printed here; kqual.ts is their wire form.

import fs from 'node:fs';
import { Address4, Address6 } from 'ip-address';
import { err, ok, type Result } from 'neverthrow';
import { constValue } from './addon';
import { isQualified, qualKey, type KernelQual } from './kqual';
import type { Vocab } from './vocab';

/** A remote address or prefix: its bytes (masked) and prefix length. */
export interface Net {
  readonly addr: Buffer;
  readonly plen: number;
}

/** A remote end by name: a host, or a domain (the name and every name below it: `*.example.com`). */
export interface Host {
  readonly name: string;
  readonly domain: boolean;
}

export function isHost(d: Net | Host | undefined): d is Host {
  return d !== undefined && (d as Partial<Host>).name !== undefined;
}

export interface Qualifiers {
  /** An address or prefix, or a name the application's own lookups resolve. */
  readonly to?: Net | Host;
  readonly from?: Net;
  /** [first, last], sorted and apart. */
  readonly ports?: readonly (readonly [number, number])[];
  /** As written: a user name or a uid. */
  readonly user?: string;
}

/** The qualifier words, in the order a rule takes them. */
export const QUALIFIER_WORDS = ['to', 'from', 'port', 'user'] as const;
export type QualifierWord = (typeof QUALIFIER_WORDS)[number];
export const QUALIFIER_USAGE = '[to DEST | from PEER] [port PORTS] [user USER]';
/** The most port ranges a rule holds (the module's bound). */
export const MAX_PORT_RANGES = 16;

const USER_RE = /^[a-z_][a-z0-9_.-]*\$?$/i;
const NAME_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?\.?$/i;

/**
 * DEST: an address, a prefix, a host name or a domain (`*.example.com`),
 * lower-cased, without a trailing dot.
 */
export function parseDest(word: string): Result<Net | Host, string> {
  const n = parseNet(word);
  if (n.isOk() || !NAME_RE.test(word) || !/[a-z]/i.test(word)) return n;
  const lower = word.toLowerCase().replace(/\.$/, '');
  const domain = lower.startsWith('*.');
  const name = domain ? lower.slice(2) : lower;
  if (name.length > 253) return err(`'${word}': a name is at most 253 bytes`);
  return ok({ name, domain });
}

export function formatDest(d: Net | Host): string {
  return isHost(d) ? `${d.domain ? '*.' : ''}${d.name}` : formatNet(d);
}

/** PEER (and an address in general): an address or a prefix with no bit set past it. */
export function parseNet(word: string): Result<Net, string> {
  const slash = word.indexOf('/');
  const host = slash < 0 ? word : word.slice(0, slash);
  const lenText = slash < 0 ? undefined : word.slice(slash + 1);
  if (lenText !== undefined && !/^\d{1,3}$/.test(lenText)) return err(`'${word}': the prefix length after '/' is a number`);
  let a: Address4 | Address6;
  try {
    a = host.includes(':') ? new Address6(host) : new Address4(host);
  } catch {
    if (NAME_RE.test(word) && /[a-z]/i.test(word)) return err(`'${word}' is a name: 'from' takes an address or a prefix (10.0.0.0/8, 2001:db8::/32)`);
    return err(`'${word}' is not an IPv4 or IPv6 address or prefix`);
  }
  // The module sees an IPv4-mapped address's packets as IPv4 ones.
  const mapped = a instanceof Address6 && a.is4();
  if (a instanceof Address6 && mapped) a = a.to4();
  const bits = a instanceof Address4 ? 32 : 128;
  const plen = lenText === undefined ? bits : Number(lenText) - (mapped ? 96 : 0);
  if (plen < 0) return err(`'${word}': an IPv4-mapped prefix is at least /96`);
  if (plen > bits) return err(`'${word}': an IPv${bits === 32 ? 4 : 6} prefix is at most /${bits}`);
  const full = a instanceof Address4 ? Buffer.from(a.toArray()) : bytes16(a.toUnsignedByteArray());
  const masked = mask(full, plen);
  if (!masked.equals(full)) return err(`'${word}' has bits set past its prefix: the network is ${formatNet({ addr: masked, plen })}`);
  return ok({ addr: full, plen });
}

/** An IPv6 address's bytes: ip-address leaves out leading zero bytes. */
function bytes16(b: number[]): Buffer {
  const v = Buffer.from(b);
  return v.length >= 16 ? v.subarray(v.length - 16) : Buffer.concat([Buffer.alloc(16 - v.length), v]);
}

function mask(b: Buffer, plen: number): Buffer {
  const m = Buffer.from(b);
  for (let i = 0; i < m.length; i++) {
    const keep = Math.max(0, Math.min(8, plen - 8 * i));
    m[i] = m[i]! & (0xff << (8 - keep)) & 0xff;
  }
  return m;
}

export function formatNet(n: Net): string {
  const a = n.addr.length === 4 ? Address4.fromHex(n.addr.toString('hex')) : Address6.fromUnsignedByteArray([...n.addr]);
  const text = a.correctForm();
  return n.plen === n.addr.length * 8 ? text : `${text}/${n.plen}`;
}

/** PORTS: 443, 8000-8100, 80,443: sorted and merged. */
export function parsePorts(word: string): Result<[number, number][], string> {
  const ranges: [number, number][] = [];
  for (const part of word.split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return err(`'${word}' is not a port list (443, 8000-8100, 80,443)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535) return err(`'${part}': ports are 1 to 65535`);
    if (lo > hi) return err(`'${part}': the first port is after the last`);
    ranges.push([lo, hi]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  if (merged.length > MAX_PORT_RANGES) return err(`'${word}': at most ${MAX_PORT_RANGES} port ranges`);
  return ok(merged);
}

export function formatPorts(p: readonly (readonly [number, number])[]): string {
  return p.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(',');
}

export function parseUser(word: string): Result<string, string> {
  if (/^\d{1,10}$/.test(word)) {
    const n = Number(word);
    if (n >= 0xffffffff) return err(`'${word}' is not a user id`);
    return ok(String(n));
  }
  if (!USER_RE.test(word) || word.length > 32) return err(`'${word}' is not a user name or number`);
  return ok(word);
}

/** The qualifiers as words, canonical: parsing them gives them back. */
export function qualifierText(q: Qualifiers | undefined): string {
  if (!q) return '';
  const w: string[] = [];
  if (q.to) w.push(`to ${formatDest(q.to)}`);
  if (q.from) w.push(`from ${formatNet(q.from)}`);
  if (q.ports?.length) w.push(`port ${formatPorts(q.ports)}`);
  if (q.user !== undefined) w.push(`user ${q.user}`);
  return w.join(' ');
}

export function hasQualifiers(q: Qualifiers | undefined): q is Qualifiers {
  return q !== undefined && (q.to !== undefined || q.from !== undefined || (q.ports?.length ?? 0) > 0 || q.user !== undefined);
}

// ---- users ------------------------------------------------------------------------

/** name -> uid and uid -> name from a passwd file's text. */
export interface Passwd {
  uid(name: string): number | undefined;
  name(uid: number): string | undefined;
}

export function parsePasswd(text: string): Passwd {
  const byName = new Map<string, number>();
  const byUid = new Map<number, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || !f[0] || !/^\d+$/.test(f[2] ?? '')) continue;
    const uid = Number(f[2]);
    if (!byName.has(f[0])) byName.set(f[0], uid);
    if (!byUid.has(uid)) byUid.set(uid, f[0]);
  }
  return { uid: (n) => byName.get(n), name: (u) => byUid.get(u) };
}

let cached: { at: number; passwd: Passwd } | undefined;

/**
 * The machine's /etc/passwd, read again when a second has passed (users
 * come and go; a listing of 10,000 rules reads it once).
 */
export function systemPasswd(file = '/etc/passwd'): Passwd {
  const now = Date.now();
  if (file === '/etc/passwd' && cached && now - cached.at < 1000) return cached.passwd;
  let passwd: Passwd;
  try {
    passwd = parsePasswd(fs.readFileSync(file, 'utf8'));
  } catch {
    passwd = parsePasswd('');
  }
  if (file === '/etc/passwd') cached = { at: now, passwd };
  return passwd;
}

/** The module's form of q: USER looked up (an unknown name is an error), the side named. */
export function resolveQual(q: Qualifiers | undefined, passwd: Passwd, side: { to: number; from: number }): Result<KernelQual | undefined, string> {
  if (!hasQualifiers(q)) return ok(undefined);
  let user: number | undefined;
  if (q.user !== undefined) {
    user = /^\d+$/.test(q.user) ? Number(q.user) : passwd.uid(q.user);
    if (user === undefined) return err(`no user '${q.user}' on this machine`);
  }
  const dest = q.to ?? q.from;
  const net = isHost(dest) ? undefined : dest;
  const k: { -readonly [K in keyof KernelQual]: KernelQual[K] } = {};
  if (net) {
    k.addr = net.addr;
    k.plen = net.plen;
  }
  if (isHost(dest)) k.name = `${dest.domain ? '*.' : ''}${dest.name}`;
  if (q.ports?.length) k.ports = q.ports;
  if (user !== undefined) k.user = user;
  // The side names a port: without ports `from X` and `to X` are one rule, as the module keeps it.
  if (q.ports?.length) k.side = q.from ? side.from : side.to;
  else if (dest) k.side = side.to;
  return ok(k);
}

/** The grammar's form of a rule the module lists: a user by name where passwd has one. */
export function qualifiersOf(k: KernelQual | undefined, passwd: Passwd, side: { to: number; from: number }): Qualifiers | undefined {
  if (!k) return undefined;
  const q: { -readonly [K in keyof Qualifiers]: Qualifiers[K] } = {};
  if (k.addr) {
    const n = { addr: k.addr, plen: k.plen ?? k.addr.length * 8 };
    if (k.side === side.from) q.from = n;
    else q.to = n;
  }
  if (k.name !== undefined) q.to = k.name.startsWith('*.') ? { name: k.name.slice(2), domain: true } : { name: k.name, domain: false };
  if (k.ports?.length) q.ports = k.ports;
  if (k.user !== undefined) q.user = passwd.name(k.user) ?? String(k.user);
  return hasQualifiers(q) ? q : undefined;
}

/** The schema's SIDE values (defs.x): which port a qualified rule names. */
export function sideValues(v: Vocab): { to: number; from: number } {
  return { to: constValue(v.schema, 'SIDE', 'TO') ?? Number.NaN, from: constValue(v.schema, 'SIDE', 'FROM') ?? Number.NaN };
}

/** The key telling a module rule's qualifiers apart: '' for none, else their canonical bytes. */
export function kernelQualKey(k: KernelQual | undefined, side: { to: number }): string {
  return isQualified(k) ? qualKey(k, side.to) : '';
}

/**
 * The same key for a rule as written: its user looked up (one passwd does
 * not know keys nothing in the module can have).
 */
export function qualKeyOf(q: Qualifiers | undefined, passwd: Passwd, side: { to: number; from: number }): string {
  const k = resolveQual(q, passwd, side);
  return k.isOk() ? kernelQualKey(k.value, side) : `unresolved ${qualifierText(q)}`;
}
