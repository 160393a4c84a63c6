// The module's events (SPEC section 4): decoded from the addon's messages
// into one typed record, written as a console row and as one JSON object
// per line (--service).  Every name (verdict, reason, direction, protocol)
// comes from the schema through vocab.ts.

import fs from 'node:fs';
import { constGroup, constValue, type ConstGroupId, type Event, type EventLoss, type Message, type AttrValue } from './addon';
import type { Vocab } from './vocab';

export interface VordrEvent {
  /** When the daemon received it. */
  readonly time: Date;
  readonly verdict: string;
  readonly reason: string;
  readonly dir: string;
  readonly prot: string;
  /** 4 or 6. */
  readonly ip: 4 | 6;
  readonly saddr: string;
  readonly daddr: string;
  readonly sport: number;
  readonly dport: number;
  /** pid, uid, path, dev and ino are absent when the owner is unknown (path ''). */
  readonly pid: number | undefined;
  readonly uid: number | undefined;
  readonly path: string;
  readonly dev: number | undefined;
  readonly ino: bigint | undefined;
  /** Events like this one the module withheld (squelch) before it. */
  readonly count: number;
  /** The name the application's own DNS lookup gave the far end's address, while it lasts. */
  readonly name?: string;
  /** The rule that decided, when one did. */
  readonly rule?: { readonly path: string; readonly prot: string };
  /** What the daemon asks of an event, read off its numbers by defs.x's C identifiers. */
  readonly is: {
    /** Waiting for a prompt's answer (VALUE PENDING). */
    readonly pending: boolean;
    readonly blocked: boolean;
    /** Allowed because no rule names it (an `allow norule` row). */
    readonly noruleAllow: boolean;
    readonly inbound: boolean;
    /** The protocol has ports (TCP, UDP). */
    readonly ported: boolean;
    /** TCP: a connection (made outbound, accepted inbound), not datagrams. */
    readonly tcp: boolean;
  };
}

/** The addon's marker of events lost to a full receive buffer. */
export function isLost(e: Event): e is { readonly lost: true } & EventLoss {
  return (e as { lost?: unknown }).lost === true;
}

/** A loss as the daemon reports it: the addon's totals and the module's. */
export interface Loss {
  /** This listener's receive-buffer overruns, since it subscribed. */
  readonly overruns: number;
  /** Events its socket dropped, since it subscribed; undefined when unknown. */
  readonly drops: number | undefined;
  /** The module's evdrops counter (every listener, since load); undefined when unread. */
  readonly evdrops: bigint | undefined;
}

export function decodeLoss(e: EventLoss, evdrops?: bigint): Loss {
  return {
    overruns: typeof e.overruns === 'number' ? e.overruns : 0,
    drops: typeof e.drops === 'number' ? e.drops : undefined,
    evdrops,
  };
}

/** One line of --service output for a loss. */
export function lossJson(l: Loss, now: Date = new Date()): string {
  return JSON.stringify({
    time: now.toISOString(),
    lost: true,
    overruns: l.overruns,
    ...(l.drops !== undefined ? { drops: l.drops } : {}),
    ...(l.evdrops !== undefined ? { evdrops: Number(l.evdrops) } : {}),
  });
}

function num(v: AttrValue | undefined): number {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

function opt(v: AttrValue | undefined): number | undefined {
  return v === undefined ? undefined : num(v);
}

/** An address attribute as text: dotted IPv4, RFC 5952 IPv6. */
export function formatAddr(v: AttrValue | undefined): string {
  if (!Buffer.isBuffer(v)) return '';
  const b = Buffer.from(v);
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) return b.toString('hex');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  // RFC 5952: the longest run of two or more zero groups becomes ::
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function named(v: Vocab, group: ConstGroupId, n: number): string {
  const g = constGroup(v.schema, group);
  for (const [name, c] of Object.entries(g)) if (c.value === n) return name;
  return String(n);
}

/** 6 for the platform's AF_INET6 (from the addon), else 4; without it, by the address's length. */
function ipVersion(v: Vocab, af: number, daddr: AttrValue | undefined): 4 | 6 {
  const p = v.schema.platform;
  if (p) return af === p.af.inet6 ? 6 : 4;
  return daddr instanceof Uint8Array && daddr.length === 16 ? 6 : 4;
}

export function decodeEvent(m: Message, v: Vocab, now: Date = new Date()): VordrEvent {
  const A = v.ids.ATTR;
  const S = v.schema;
  const af = num(m[A.AF]);
  const rpath = m[A.RPATH];
  const name = m[A.NAME];
  const verdict = num(m[A.VERDICT]);
  const prot = num(m[A.PROT]);
  const ino = m[A.INO];
  return {
    time: now,
    verdict: named(v, 'VALUE', verdict),
    reason: named(v, 'REASON', num(m[A.REASON])),
    dir: named(v, 'DIR', num(m[A.DIR])),
    prot: v.protName(prot),
    ip: ipVersion(v, af, m[A.DADDR]),
    saddr: formatAddr(m[A.SADDR]),
    daddr: formatAddr(m[A.DADDR]),
    sport: num(m[A.SPORT]),
    dport: num(m[A.DPORT]),
    pid: opt(m[A.PID]),
    uid: opt(m[A.UID]),
    path: typeof m[A.PATH] === 'string' ? (m[A.PATH] as string) : '',
    dev: opt(m[A.DEV]),
    ino: typeof ino === 'bigint' ? ino : ino === undefined ? undefined : BigInt(num(ino)),
    count: num(m[A.COUNT]),
    ...(typeof name === 'string' && name !== '' ? { name } : {}),
    ...(typeof rpath === 'string' ? { rule: { path: rpath, prot: v.protName(num(m[A.RPROT])) } } : {}),
    is: {
      pending: verdict === constValue(S, 'VALUE', 'PENDING'),
      blocked: verdict === constValue(S, 'VALUE', 'BLOCK'),
      noruleAllow: verdict === constValue(S, 'VALUE', 'ALLOW') && num(m[A.REASON]) === constValue(S, 'REASON', 'NORULE'),
      inbound: num(m[A.DIR]) === constValue(S, 'DIR', 'IN'),
      ported: prot === constValue(S, 'PROT', 'TCP') || prot === constValue(S, 'PROT', 'UDP'),
      tcp: prot === constValue(S, 'PROT', 'TCP'),
    },
  };
}

/**
 * The far end of the packet: where an outbound one goes, where an inbound
 * one comes from; with the name the application looked it up as, when it
 * did: `example.com:443 (93.184.216.34)`.
 */
export function peer(e: VordrEvent): string {
  const outbound = !e.is.inbound;
  const a = outbound ? e.daddr : e.saddr;
  const p = outbound ? e.dport : e.sport;
  const host = e.ip === 6 ? `[${a}]` : a;
  if (e.name === undefined) return e.is.ported ? `${host}:${p}` : host;
  return e.is.ported ? `${e.name}:${p} (${a})` : `${e.name} (${a})`;
}

/** The application's short name: the executable's file name. */
export function appName(path: string): string {
  if (path === '') return '?';
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base === '' ? path : base;
}

/** uid -> user name from /etc/passwd, read once; the number when unknown. */
export class Users {
  private names: Map<number, string> | undefined;
  constructor(private readonly passwd = '/etc/passwd') {}
  name(uid: number | undefined): string {
    if (uid === undefined) return '?';
    if (!this.names) {
      this.names = new Map();
      try {
        for (const line of fs.readFileSync(this.passwd, 'utf8').split('\n')) {
          const f = line.split(':');
          if (f.length >= 3 && f[0] && /^\d+$/.test(f[2] ?? '')) this.names.set(Number(f[2]), f[0]);
        }
      } catch {
        // No passwd: numbers it is.
      }
    }
    return this.names.get(uid) ?? String(uid);
  }
}

export function clock(d: Date): string {
  return d.toTimeString().slice(0, 8);
}

/** Column widths of the events pane; the header and the rows share them. */
const COLUMNS = [
  ['time', 8],
  ['app', 16],
  ['pid', 7],
  ['user', 8],
  ['dir', 3],
  ['prot', 4],
  ['destination', 30],
  ['verdict', 7],
  ['reason', 0],
] as const;

function row(cells: readonly string[]): string {
  return cells
    .map((c, i) => {
      const w = COLUMNS[i]?.[1] ?? 0;
      if (w === 0) return c;
      return c.length > w ? `${c.slice(0, w - 1)}~` : c.padEnd(w);
    })
    .join(' ');
}

export const EVENT_HEADER = row(COLUMNS.map(([n]) => n));

export function eventRow(e: VordrEvent, users: Users): string {
  const reason = e.rule ? `${e.reason} ${e.rule.prot} ${e.rule.path}` : e.reason;
  const more = e.count > 0 ? ` (+${e.count} squelched)` : '';
  return row([clock(e.time), appName(e.path), e.pid === undefined ? '?' : String(e.pid), users.name(e.uid), e.dir, e.prot, peer(e), e.verdict, reason + more]);
}

/** eventJson()'s fields, in its order, and what each holds (docs/COMMANDS.md is made from it; a unit test checks eventJson against it). */
export const EVENT_FIELDS: { readonly [field: string]: string } = {
  time: 'when the daemon received it (ISO 8601, UTC)',
  verdict: 'what the module did with the packet',
  reason: 'why: a rule, no rule (unkrule), unknown process (unkproc), unknown protocol (unkprot), a failure (fail), or the mode',
  dir: 'out (the application sends) or in (it receives)',
  prot: 'the protocol',
  ip: '4 or 6',
  src: 'source address',
  sport: 'source port (0 without ports)',
  dst: 'destination address',
  dport: 'destination port (0 without ports)',
  pid: 'the owning process',
  uid: 'its user id',
  user: 'its user name',
  path: 'its executable',
  dev: 'the executable\'s device number',
  ino: 'the executable\'s inode number (a string: it may exceed 2^53)',
  count: 'events like this one squelch withheld before it',
  name: 'the name the application\'s own DNS lookup gave the far end\'s address (dst going out, src coming in), when it did',
  rule: 'the rule that decided, when one did: { path, prot }',
};

/** One line of --service output. */
export function eventJson(e: VordrEvent, users: Users): string {
  return JSON.stringify({
    time: e.time.toISOString(),
    verdict: e.verdict,
    reason: e.reason,
    dir: e.dir,
    prot: e.prot,
    ip: e.ip,
    src: e.saddr,
    sport: e.sport,
    dst: e.daddr,
    dport: e.dport,
    // The owner, when the module knows it.
    ...(e.pid !== undefined ? { pid: e.pid } : {}),
    ...(e.uid !== undefined ? { uid: e.uid, user: users.name(e.uid) } : {}),
    ...(e.path !== '' ? { path: e.path } : {}),
    ...(e.dev !== undefined ? { dev: e.dev } : {}),
    ...(e.ino !== undefined ? { ino: e.ino.toString() } : {}),
    count: e.count,
    ...(e.name !== undefined ? { name: e.name } : {}),
    ...(e.rule ? { rule: e.rule } : {}),
  });
}
