// The saved policy as the module loads it at boot (SPEC section 6).
//
// The rules file stays the one file a user edits.  What the boot path reads
// is derived from it: the policy file (default /var/lib/vordr/policy), a
// header and records, rewritten atomically whenever the daemon saves the
// rules file and whenever `vordr --load-policy` finds it stale (the rules
// file or the schema changed while no daemon ran).  The module never reads
// a file: bootPolicy() streams the records through one netlink transaction
// (defs.x POLICY_BEGIN), and the module checks their number and crc32 and
// swaps them in whole, or fails closed (mode enabled, unkrule block) and
// says why in its `policy` flag and its log.
//
// The file, integers little-endian:
//
//   header  "VORDRPOL" | u32 FORMAT | u32 schema crc (defs.x cksum, the
//           addon's) | u32 records | u32 crc32 of the records' bytes |
//           u32 crc32 of the rules file's bytes it was derived from
//   records one after another, each in the canonical encoding defs.x
//           defines next to POLICY_BEGIN (a rule: its command's number,
//           verdict, protocol, u16 length, path bytes, u16 qualifiers'
//           length and their bytes (kqual.ts); a flag: its command's
//           number, u16 flag, u64 value)
//
// crc32 is zlib's (the crc-32 package; the module's ~crc32_le(~0, ...)).

import fs from 'node:fs/promises';
import CRC32 from 'crc-32';
import { ResultAsync, err, ok, type Result } from 'neverthrow';
import { constValue, type Ids } from './addon';
import { describeParseError, parseLine } from './grammar';
import { describeKernelError, type Kernel, type KernelError } from './kernel';
import { qualBytes, qualFromBytes, type KernelQual } from './kqual';
import { resolveQual, sideValues, systemPasswd } from './qualifiers';
import { RulesDoc, resolveRulePath, writeDurable } from './rulesfile';
import type { Vocab } from './vocab';

export const DEFAULT_POLICY_FILE = '/var/lib/vordr/policy';
export const POLICY_MAGIC = Buffer.from('VORDRPOL', 'latin1');
/** The file's layout; a file of another one is derived again. */
export const POLICY_FORMAT = 3;
export const HEADER_SIZE = POLICY_MAGIC.length + 5 * 4;

/** A `policy` constant (defs.x POLICY) by its C identifier. */
export type PolicyId = keyof Ids['POLICY'];

export type PolicyRecord =
  | { kind: 'rule'; verdict: number; prot: number; path: string; qual?: KernelQual }
  | { kind: 'flag'; flag: number; value: bigint };

export interface PolicyHeader {
  format: number;
  schema: number;
  records: number;
  crc: number;
  source: number;
}

export interface Policy {
  header: PolicyHeader;
  records: PolicyRecord[];
}

/** Why a file cannot be loaded: a `policy` constant's name and a sentence. */
export interface PolicyFileError {
  reason: Extract<PolicyId, 'UNREADABLE' | 'BADFORMAT' | 'TRUNCATED'>;
  message: string;
}

export function crc32(b: Uint8Array): number {
  return CRC32.buf(b) >>> 0;
}

/** A record's kind byte: the number of the command that stages it. */
function cmdId(v: Vocab, id: 'RULE_ADD' | 'FLAG_SET'): number {
  const name = v.ids.CMD[id];
  const c = v.schema.commands[name];
  if (!c) throw new Error(`the addon's schema has no command ${name}`);
  return c.id;
}

/** The schema's SIDE TO: what a qualified rule without a side has. */
function sideTo(v: Vocab): number {
  return constValue(v.schema, 'SIDE', 'TO') ?? Number.NaN;
}

/** One record's canonical bytes. */
export function encodeRecord(r: PolicyRecord, v: Vocab): Buffer {
  if (r.kind === 'rule') {
    const p = Buffer.from(r.path, 'utf8');
    const b = Buffer.alloc(5 + p.length);
    b.writeUInt8(cmdId(v, 'RULE_ADD'), 0);
    b.writeUInt8(r.verdict, 1);
    b.writeUInt8(r.prot, 2);
    b.writeUInt16LE(p.length, 3);
    p.copy(b, 5);
    return Buffer.concat([b, qualBytes(r.qual, sideTo(v))]);
  }
  const b = Buffer.alloc(11);
  b.writeUInt8(cmdId(v, 'FLAG_SET'), 0);
  b.writeUInt16LE(r.flag, 1);
  b.writeBigUInt64LE(r.value, 3);
  return b;
}

/** The whole file for records, derived from a rules file whose bytes had crc32 source. */
export function encodePolicy(records: readonly PolicyRecord[], source: number, v: Vocab): Buffer {
  const body = Buffer.concat(records.map((r) => encodeRecord(r, v)));
  const h = Buffer.alloc(HEADER_SIZE);
  POLICY_MAGIC.copy(h, 0);
  let o = POLICY_MAGIC.length;
  for (const n of [POLICY_FORMAT, v.schema.family.schemaCrc >>> 0, records.length, crc32(body), source >>> 0]) {
    h.writeUInt32LE(n, o);
    o += 4;
  }
  return Buffer.concat([h, body]);
}

/** The header alone (bootPolicy decides from it whether the file is stale). */
export function parseHeader(b: Buffer): Result<PolicyHeader, PolicyFileError> {
  if (b.length < HEADER_SIZE) {
    if (b.length === 0 || POLICY_MAGIC.subarray(0, Math.min(b.length, POLICY_MAGIC.length)).equals(b.subarray(0, POLICY_MAGIC.length)))
      return err({ reason: 'TRUNCATED', message: `it ends after ${b.length} bytes, inside its ${HEADER_SIZE}-byte header` });
    return err({ reason: 'BADFORMAT', message: 'it does not start with VORDRPOL: not a vordr policy file' });
  }
  if (!b.subarray(0, POLICY_MAGIC.length).equals(POLICY_MAGIC))
    return err({ reason: 'BADFORMAT', message: 'it does not start with VORDRPOL: not a vordr policy file' });
  const u = (i: number) => b.readUInt32LE(POLICY_MAGIC.length + 4 * i);
  return ok({ format: u(0), schema: u(1), records: u(2), crc: u(3), source: u(4) });
}

/**
 * The file's records as they are: nothing here checks the count or the
 * crc (the module does, over exactly what it receives).  A record of a
 * kind it does not know, or one the file ends inside, is an error.
 */
export function parsePolicy(b: Buffer, v: Vocab): Result<Policy, PolicyFileError> {
  const h = parseHeader(b);
  if (h.isErr()) return err(h.error);
  if (h.value.format !== POLICY_FORMAT) return err({ reason: 'BADFORMAT', message: `its format is ${h.value.format}, this vordr reads ${POLICY_FORMAT}` });
  const rule = cmdId(v, 'RULE_ADD');
  const flag = cmdId(v, 'FLAG_SET');
  const records: PolicyRecord[] = [];
  let o = HEADER_SIZE;
  const truncated = (): Result<Policy, PolicyFileError> =>
    err({ reason: 'TRUNCATED', message: `it ends inside record ${records.length + 1} (byte ${o} of ${b.length})` });
  while (o < b.length) {
    const kind = b.readUInt8(o);
    if (kind === rule) {
      if (o + 5 > b.length) return truncated();
      const len = b.readUInt16LE(o + 3);
      if (o + 5 + len > b.length) return truncated();
      const bytes = b.subarray(o + 5, o + 5 + len);
      if (bytes.includes(0)) return err({ reason: 'BADFORMAT', message: `record ${records.length + 1} has a path with a NUL byte` });
      const q = qualFromBytes(b, o + 5 + len);
      if (typeof q === 'string') {
        if (o + 5 + len >= b.length || q.startsWith('it ends')) return truncated();
        return err({ reason: 'BADFORMAT', message: `record ${records.length + 1} (byte ${o}): ${q}` });
      }
      const r: PolicyRecord = { kind: 'rule', verdict: b.readUInt8(o + 1), prot: b.readUInt8(o + 2), path: bytes.toString('utf8') };
      records.push(q.qual === undefined ? r : { ...r, qual: q.qual });
      o = q.end;
    } else if (kind === flag) {
      if (o + 11 > b.length) return truncated();
      records.push({ kind: 'flag', flag: b.readUInt16LE(o + 1), value: b.readBigUInt64LE(o + 3) });
      o += 11;
    } else {
      return err({ reason: 'BADFORMAT', message: `record ${records.length + 1} (byte ${o}) is of no kind this vordr knows (${kind})` });
    }
  }
  return ok({ header: h.value, records });
}

/**
 * The records a rules file stands for: every lasting rule that parsed
 * (paths as the kernel has them: symbolic links resolved, as the document's
 * keyPath says when filled), in the file's order, then every writable
 * flag: the value the file sets, else the schema's default, so that a
 * loaded policy leaves no flag at the closed boot value by accident.
 */
export function derive(doc: RulesDoc, v: Vocab): PolicyRecord[] {
  const out: PolicyRecord[] = [];
  const passwd = systemPasswd();
  const side = sideValues(v);
  for (const { line, cmd } of doc.rules()) {
    if (cmd.lifetime.kind !== 'always') continue;
    // A user this machine does not have: the line is left out, as one that does not parse (unparsedLines).
    const q = resolveQual(cmd.q, passwd, side);
    if (q.isErr()) continue;
    const r: PolicyRecord = { kind: 'rule', verdict: cmd.verdict, prot: cmd.prot, path: line.keyPath ?? cmd.path };
    out.push(q.value ? { ...r, qual: q.value } : r);
  }
  const set = new Map([...doc.flagValues()].map(([f, value]) => [f.id, value]));
  const flags = v
    .flagNames()
    .map((n) => v.flag(n))
    .filter((f) => f !== undefined && f.writable)
    .sort((a, b) => a!.id - b!.id);
  for (const f of flags) out.push({ kind: 'flag', flag: f!.id, value: BigInt(set.get(f!.id) ?? f!.default) });
  return out;
}

/**
 * resolveRulePath() for many paths: each parent directory is resolved
 * once (rules share directories), then the leaf is looked at once; the
 * answer is the same (a path that cannot be resolved stays as written).
 */
export function pathResolver(): (p: string) => Promise<string> {
  const dirs = new Map<string, Promise<string | null>>();
  const realDir = (d: string): Promise<string | null> => {
    let r = dirs.get(d);
    if (!r) {
      r = fs.realpath(d).then(
        (x) => x,
        () => null,
      );
      dirs.set(d, r);
    }
    return r;
  };
  return async (p) => {
    const isDir = p.endsWith('/') && p.length > 1;
    const q = isDir ? p.slice(0, -1) : p;
    const cut = q.lastIndexOf('/');
    if (cut < 0 || q === '/') return (await resolveRulePath(p)).path;
    const parent = await realDir(cut === 0 ? '/' : q.slice(0, cut));
    if (parent === null) return p;
    const joined = (parent === '/' ? '' : parent) + q.slice(cut);
    try {
      const st = await fs.lstat(joined);
      const real = st.isSymbolicLink() ? await fs.realpath(joined) : joined;
      return isDir && real !== '/' ? `${real}/` : real;
    } catch {
      return p;
    }
  };
}

/** Lookups in flight at once while resolving a document's rule paths. */
const RESOLVE_WINDOW = 32;

/** The policy file's bytes for the rules file's bytes (undefined: there is none). */
export async function deriveFile(rulesText: Buffer | undefined, v: Vocab): Promise<Buffer> {
  const doc = RulesDoc.parse(rulesText === undefined ? undefined : rulesText.toString('utf8'), v);
  const resolve = pathResolver();
  const rules = doc.rules();
  for (let i = 0; i < rules.length; i += RESOLVE_WINDOW)
    await Promise.all(
      rules.slice(i, i + RESOLVE_WINDOW).map(async ({ line, cmd }) => {
        line.keyPath = await resolve(cmd.path);
      }),
    );
  return encodePolicy(derive(doc, v), crc32(rulesText ?? Buffer.alloc(0)), v);
}

/**
 * Derives the policy file from the rules file's bytes and writes it
 * atomically (write-file-atomic, then the directory's fsync).
 */
export async function writeDerived(policyFile: string, rulesText: Buffer | undefined, v: Vocab): Promise<Buffer> {
  const bytes = await deriveFile(rulesText, v);
  await writeDurable(policyFile, bytes);
  return bytes;
}

/** The lines of a rules file that do not parse, with why (1-based line numbers). */
function unparsedLines(text: Buffer | undefined, v: Vocab): { line: number; message: string }[] {
  const out: { line: number; message: string }[] = [];
  for (const [i, line] of (text?.toString('utf8') ?? '').split('\n').entries()) {
    const p = parseLine(line, v);
    if (p.isErr()) out.push({ line: i + 1, message: describeParseError(p.error) });
    else if (p.value?.command.kind === 'rule') {
      const q = resolveQual(p.value.command.q, systemPasswd(), sideValues(v));
      if (q.isErr()) out.push({ line: i + 1, message: q.error });
    }
  }
  return out;
}

export interface PolicyPaths {
  readonly rulesFile: string;
  readonly policyFile: string;
}

export interface Loaded {
  rules: number;
  flags: number;
  /** The policy file was derived again first (stale or missing). */
  derived: boolean;
  /** When derived: the rules file's lines that did not parse (not in force), from the bytes derived. */
  unparsed: readonly { readonly line: number; readonly message: string }[];
  /** In all, and of it deriving the file again (0 when not) and the transaction. */
  ms: number;
  deriveMs: number;
  streamMs: number;
}

export type BootError =
  /** The file could not be loaded; the module was told (POLICY_FAIL) and failed closed. */
  | { kind: 'file'; reason: string; message: string; failed: Result<void, KernelError> }
  /** The module refused the load (a record, the count, the crc32): it failed closed. */
  | { kind: 'refused'; state: string; message: string }
  | { kind: 'kernel'; error: KernelError };

export function describeBootError(e: BootError, file: string): string {
  switch (e.kind) {
    case 'file':
      return (
        `cannot load the saved policy ${file}: ${e.message} (${e.reason}); the module fails closed (mode enabled, unkrule block)` +
        (e.failed.isErr() ? `, but telling it so failed: ${describeKernelError(e.failed.error)}` : '') +
        `; remove the file and run 'vordr --load-policy' to derive it afresh from the rules file`
      );
    case 'refused':
      return `the module refused the saved policy ${file} (${e.state}): ${e.message}; it fails closed (mode enabled, unkrule block)`;
    case 'kernel':
      return `loading the saved policy ${file}: ${describeKernelError(e.error)}`;
  }
}

async function readMaybe(file: string): Promise<{ bytes?: Buffer; error?: string }> {
  try {
    return { bytes: await fs.readFile(file) };
  } catch (e) {
    const x = e as { code?: string; message?: string };
    return x.code === 'ENOENT' ? {} : { error: `${x.code ?? 'error'}: ${(x.message ?? String(e)).replace(/^[A-Z]+: /, '')}` };
  }
}

/** Requests in flight at once while streaming (the addon keeps them in order). */
const WINDOW = 64;

/** The name of a `policy` constant of the schema, by value. */
export function policyStateName(v: Vocab, value: number | bigint): string {
  for (const [id, name] of Object.entries(v.ids.POLICY) as [PolicyId, string][])
    if (BigInt(policyConst(v, id) ?? -1) === BigInt(value)) return name;
  return String(value);
}

function policyConst(v: Vocab, id: PolicyId): number | undefined {
  return constValue(v.schema, 'POLICY', id);
}

/**
 * The saved policy into the module, at boot or after the module was
 * loaded again: the policy file derived again first if it is missing or
 * stale (its recorded rules-file crc32 or schema is not the current one),
 * then streamed through one transaction.  A file that cannot be read or
 * parsed is reported to the module (POLICY_FAIL), which fails closed.
 */
export async function bootPolicy(kernel: Kernel, v: Vocab, paths: PolicyPaths): Promise<Result<Loaded, BootError>> {
  const t0 = process.hrtime.bigint();
  const fail = async (reason: PolicyFileError['reason'], message: string): Promise<Result<Loaded, BootError>> => {
    const value = policyConst(v, reason);
    const failed: Result<void, KernelError> =
      value === undefined ? err({ kind: 'addon-mismatch', missing: [`constant ${v.ids.POLICY[reason]}`] }) : await kernel.policyFail(value);
    return err({ kind: 'file', reason: v.ids.POLICY[reason], message, failed });
  };

  const rules = await readMaybe(paths.rulesFile);
  let policy = await readMaybe(paths.policyFile);
  let derived = false;
  if (policy.error !== undefined) return fail('UNREADABLE', policy.error);
  const header = policy.bytes ? parseHeader(policy.bytes) : undefined;
  const stale =
    policy.bytes === undefined ||
    (header?.isOk() === true &&
      (header.value.format !== POLICY_FORMAT ||
        header.value.schema !== v.schema.family.schemaCrc >>> 0 ||
        (rules.error === undefined && header.value.source !== crc32(rules.bytes ?? Buffer.alloc(0)))));
  const tDerive = process.hrtime.bigint();
  if (stale) {
    if (rules.error !== undefined) return fail('UNREADABLE', `it is ${policy.bytes ? 'stale' : 'missing'} and the rules file ${paths.rulesFile} cannot be read (${rules.error})`);
    try {
      policy = { bytes: await writeDerived(paths.policyFile, rules.bytes, v) };
      derived = true;
    } catch (e) {
      // Still loadable from memory: the module gets the rules file's policy.
      policy = { bytes: await deriveFile(rules.bytes, v) };
      derived = true;
      process.emitWarning(`cannot write ${paths.policyFile}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const deriveMs = derived ? Number((process.hrtime.bigint() - tDerive) / 1000000n) : 0;
  const parsed = parsePolicy(policy.bytes ?? Buffer.alloc(0), v);
  if (parsed.isErr()) return fail(parsed.error.reason, parsed.error.message);
  const { header: h, records } = parsed.value;

  const refused = async (e: KernelError): Promise<BootError> => {
    if (e.kind !== 'kernel') return { kind: 'kernel', error: e };
    const flag = v.flag(v.ids.FLAG.POLICY);
    const state = flag ? await kernel.flagGet(flag.id) : undefined;
    return { kind: 'refused', state: state?.isOk() ? policyStateName(v, state.value) : 'unknown', message: describeKernelError(e) };
  };
  const tStream = process.hrtime.bigint();
  const begun = await kernel.policyBegin(h.records, h.crc);
  if (begun.isErr()) return err({ kind: 'kernel', error: begun.error });
  const send = (r: PolicyRecord) => (r.kind === 'rule' ? kernel.stageRule(r.prot, r.path, r.verdict, r.qual) : kernel.stageFlag(r.flag, r.value));
  for (let i = 0; i < records.length; i += WINDOW) {
    const sent = await ResultAsync.combine(records.slice(i, i + WINDOW).map(send));
    if (sent.isErr()) {
      const e = sent.error;
      // A record the addon will not even send (a verdict or protocol out of range): not a file this vordr wrote.
      if (e.kind === 'bad-request') return fail('BADFORMAT', `a record cannot be sent: ${e.message}`);
      if (e.kind !== 'kernel' || e.code === 'EBUSY' || e.code === 'ENOENT') return err({ kind: 'kernel', error: e });
      // A record the module refused: it fails closed, told so.
      const rejected = policyConst(v, 'REJECTED');
      if (rejected !== undefined) await kernel.policyFail(rejected);
      return err(await refused(e));
    }
  }
  const committed = await kernel.policyCommit();
  if (committed.isErr()) return err(await refused(committed.error));
  const ruleCount = records.filter((r) => r.kind === 'rule').length;
  const now = process.hrtime.bigint();
  const unparsed = derived ? unparsedLines(rules.bytes, v) : [];
  return ok({ rules: ruleCount, flags: records.length - ruleCount, derived, unparsed, ms: Number((now - t0) / 1000000n), deriveMs, streamMs: Number((now - tStream) / 1000000n) });
}
