// A rule's qualifiers as the module keeps them (defs.x: QADDR, QPLEN,
// QSIDE, QPORTS, QUSER): how they travel in RULE_ADD, RULE_DEL and
// RULE_LIST, and their canonical bytes in a policy record (defs.x, next to
// POLICY_BEGIN). The grammar's words (`to`, `from`, `port`, `user`) are
// made into these elsewhere; this file knows only the wire.

import type { Message } from './addon';
import type { Schema } from './addon';

type Attrs = Schema['ids']['ATTR'];

export interface KernelQual {
  /** The remote address, 4 or 16 bytes in network order. */
  readonly addr?: Buffer;
  /** Its prefix length (absent with an address: all of it). */
  readonly plen?: number;
  /** A value of the schema's SIDE constants: which port `ports` names. */
  readonly side?: number;
  /** Port ranges [first, last], sorted and apart. */
  readonly ports?: readonly (readonly [number, number])[];
  /** The socket owner's uid. */
  readonly user?: number;
  /** A name the application's lookups resolve ("example.com"), or a domain ("*.example.com"). */
  readonly name?: string;
}

/** Whether q qualifies anything at all. */
export function isQualified(q: KernelQual | undefined): q is KernelQual {
  return q !== undefined && (q.addr !== undefined || (q.ports !== undefined && q.ports.length > 0) || q.user !== undefined || q.name !== undefined);
}

/** q's request attributes (nothing for an unqualified rule). */
export function qualAttrs(q: KernelQual | undefined, A: Attrs): Record<string, number | string | Buffer | undefined> {
  if (!isQualified(q)) return {};
  let ports: Buffer | undefined;
  if (q.ports !== undefined && q.ports.length > 0) {
    ports = Buffer.alloc(4 * q.ports.length);
    q.ports.forEach(([lo, hi], i) => {
      ports?.writeUInt16LE(lo, 4 * i);
      ports?.writeUInt16LE(hi, 4 * i + 2);
    });
  }
  return {
    [A.QADDR]: q.addr,
    [A.QPLEN]: q.addr !== undefined ? (q.plen ?? q.addr.length * 8) : undefined,
    [A.QSIDE]: q.side,
    [A.QPORTS]: ports,
    [A.QUSER]: q.user,
    [A.QNAME]: q.name,
  };
}

/** The qualifiers a RULE_LIST (or rchngq) message carries, if any. */
export function qualOf(r: Message, A: Attrs): KernelQual | undefined {
  const addr = r[A.QADDR];
  const plen = r[A.QPLEN];
  const side = r[A.QSIDE];
  const ports = r[A.QPORTS];
  const user = r[A.QUSER];
  const name = r[A.QNAME];
  if (addr === undefined && side === undefined && ports === undefined && user === undefined && name === undefined) return undefined;
  const q: { -readonly [K in keyof KernelQual]: KernelQual[K] } = {};
  if (Buffer.isBuffer(addr)) {
    q.addr = addr;
    q.plen = typeof plen === 'number' ? plen : addr.length * 8;
  }
  if (typeof side === 'number') q.side = side;
  if (Buffer.isBuffer(ports)) {
    const list: [number, number][] = [];
    for (let o = 0; o + 4 <= ports.length; o += 4) list.push([ports.readUInt16LE(o), ports.readUInt16LE(o + 2)]);
    q.ports = list;
  }
  if (typeof user === 'number') q.user = user;
  if (typeof name === 'string') q.name = name;
  return q;
}

/**
 * The canonical bytes of a rule record's qualifiers, with their leading
 * u16 length (0 alone for an unqualified rule): u32 user + 1 (0: any),
 * u8 address length, the address, u8 prefix length, u8 side, u8 ranges,
 * each u16 first, u16 last, u8 name length, the name; little-endian.
 */
export function qualBytes(q: KernelQual | undefined, sideTo: number): Buffer {
  if (!isQualified(q)) return Buffer.from([0, 0]);
  const addr = q.addr ?? Buffer.alloc(0);
  const ports = q.ports ?? [];
  const name = Buffer.from(q.name ?? '', 'latin1');
  const b = Buffer.alloc(2 + 4 + 1 + addr.length + 3 + 4 * ports.length + 1 + name.length);
  let o = 0;
  b.writeUInt16LE(b.length - 2, o);
  o += 2;
  b.writeUInt32LE(q.user === undefined ? 0 : q.user + 1, o);
  o += 4;
  b.writeUInt8(addr.length, o++);
  addr.copy(b, o);
  o += addr.length;
  b.writeUInt8(q.addr !== undefined ? (q.plen ?? addr.length * 8) : 0, o++);
  // A side names a port: without ports the module keeps `to`.
  b.writeUInt8(ports.length === 0 ? sideTo : (q.side ?? sideTo), o++);
  b.writeUInt8(ports.length, o++);
  for (const [lo, hi] of ports) {
    b.writeUInt16LE(lo, o);
    b.writeUInt16LE(hi, o + 2);
    o += 4;
  }
  b.writeUInt8(name.length, o++);
  name.copy(b, o);
  return b;
}

/** Reads qualBytes' encoding at b[o]; the qualifiers and where they end, or a reason. */
export function qualFromBytes(b: Buffer, o: number): { qual?: KernelQual; end: number } | string {
  if (o + 2 > b.length) return 'it ends before its qualifiers';
  const len = b.readUInt16LE(o);
  const end = o + 2 + len;
  if (len === 0) return { end };
  if (end > b.length) return 'it ends inside its qualifiers';
  if (len < 9) return 'its qualifiers are too short';
  let p = o + 2;
  const user1 = b.readUInt32LE(p);
  p += 4;
  const alen = b.readUInt8(p++);
  if (alen !== 0 && alen !== 4 && alen !== 16) return `its address is ${alen} bytes`;
  if (p + alen + 3 > end) return 'its qualifiers are too short';
  const addr = alen ? Buffer.from(b.subarray(p, p + alen)) : undefined;
  p += alen;
  const plen = b.readUInt8(p++);
  const side = b.readUInt8(p++);
  const n = b.readUInt8(p++);
  if (p + 4 * n + 1 > end) return 'its port ranges run past its qualifiers';
  const ports: [number, number][] = [];
  for (let i = 0; i < n; i++, p += 4) ports.push([b.readUInt16LE(p), b.readUInt16LE(p + 2)]);
  const nlen = b.readUInt8(p++);
  if (p + nlen !== end) return 'its name does not fill its qualifiers';
  const name = nlen ? b.subarray(p, p + nlen).toString('latin1') : undefined;
  const q: { -readonly [K in keyof KernelQual]: KernelQual[K] } = { side };
  if (addr) {
    q.addr = addr;
    q.plen = plen;
  }
  if (n) q.ports = ports;
  if (user1) q.user = user1 - 1;
  if (name !== undefined) q.name = name;
  return { qual: q, end };
}

/** A key telling qualified rules apart (equal for equal qualifiers). */
export function qualKey(q: KernelQual | undefined, sideTo: number): string {
  return qualBytes(q, sideTo).toString('hex');
}
