// The rules file as its user wrote it (SPEC section 2: "the rules file
// belongs to the user who edits it").
//
// A RulesDoc is the file's lines, each with its parse: a command, nothing
// (a blank or comment-only line), or a parse error (a line that failed to
// load, a protocol an older module does not know).  The console never
// regenerates the file: it edits the document (replace or append a rule's
// own line, drop a removed rule's lines, replace or append a flag's `set`
// line) and writes it back, so every comment, blank line, order, failed line
// and flag the user set survives.
//
// saveDoc() is the only writer.  It re-reads the file under a lock file (so
// two consoles, two processes, each apply their own edit to the other's
// latest file: nothing is lost, nothing is mixed), writes it with
// write-file-atomic (a unique temporary name per write, fsync, rename) and
// then fsyncs the directory so the rename itself is durable.  Within one
// process the saves are queued, one after the other.

import fs from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { quote, representable } from './format';
import { parseLine, type Command, type Parsed } from './grammar';
import type { KernelQual } from './kqual';
import { kernelQualKey, qualKeyOf, qualifierText, qualifiersOf, sideValues, systemPasswd, type Passwd, type Qualifiers } from './qualifiers';
import { type Flag, type Vocab } from './vocab';

export interface DocLine {
  text: string;
  /** null: blank or comment; undefined: the line does not parse. */
  readonly parsed: Parsed | null | undefined;
  /** A rule line's path as the kernel knows it (symbolic links resolved). */
  keyPath?: string;
  /** Its qualifiers' key (qualifiers.ts qualKeyOf; '' for none), once worked out. */
  keyQual?: string;
}

/**
 * A change to apply to the document. Rule paths are as the kernel has them
 * (resolved); qkey is the qualifiers' key (qualifiers.ts, '' for none).
 */
export type Edit =
  | { kind: 'rule'; verdict: number; prot: number; path: string; q?: Qualifiers; qkey: string }
  | { kind: 'clear-rule'; prot: number; path: string; qkey: string }
  | { kind: 'clear-path'; path: string }
  | { kind: 'clear-verdict'; verdict: number | undefined }
  | { kind: 'flag'; flag: Flag; value: number };

type RuleCmd = Extract<Command, { kind: 'rule' }>;

export const NEW_FILE_HEADER = [
  "# vordr rules: one command per line, in the grammar of 'help'.",
  '# The console appends the rules it adds and edits their own lines; edit freely.',
];

export function ruleText(r: { verdict: number; prot: number; path: string; q?: Qualifiers }, v: Vocab): string {
  const q = qualifierText(r.q);
  return `${v.valueName(r.verdict) ?? r.verdict} ${v.protName(r.prot)} ${quote(r.path)}${q ? ` ${q}` : ''}`;
}

export class RulesDoc {
  private constructor(
    readonly lines: DocLine[],
    /** The file existed when read. */
    readonly existed: boolean,
    private readonly v: Vocab,
  ) {}

  static parse(text: string | undefined, v: Vocab): RulesDoc {
    const raw = text === undefined ? [] : text.split(/\r?\n/);
    if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
    const lines = raw.map((t): DocLine => {
      const p = parseLine(t, v);
      return { text: t, parsed: p.isOk() ? p.value : undefined };
    });
    return new RulesDoc(lines, text !== undefined, v);
  }

  text(): string {
    return this.lines.length === 0 ? '' : this.lines.map((l) => l.text).join('\n') + '\n';
  }

  /** Rule lines, with their command. */
  rules(): { line: DocLine; cmd: RuleCmd }[] {
    const out: { line: DocLine; cmd: RuleCmd }[] = [];
    for (const line of this.lines) if (line.parsed?.command.kind === 'rule') out.push({ line, cmd: line.parsed.command });
    return out;
  }

  /** Fills each rule line's keyPath (the resolved path the kernel's rule has). */
  async resolveKeys(resolve: (p: string) => Promise<string>): Promise<void> {
    for (const { line, cmd } of this.rules()) line.keyPath = await resolve(cmd.path);
  }

  private static keyPathOf(line: DocLine, cmd: RuleCmd): string {
    return line.keyPath ?? cmd.path;
  }

  private passwd: Passwd | undefined;

  /** The line's qualifiers' key, worked out once (users looked up in passwd). */
  private keyQualOf(line: DocLine, cmd: RuleCmd): string {
    if (line.keyQual === undefined) {
      if (!cmd.q) line.keyQual = '';
      else {
        this.passwd ??= systemPasswd();
        line.keyQual = qualKeyOf(cmd.q, this.passwd, sideValues(this.v));
      }
    }
    return line.keyQual;
  }

  /** The key of a rule line: protocol, path as the kernel has it, qualifiers. */
  private keyOf(line: DocLine, cmd: RuleCmd): string {
    return `${cmd.prot} ${RulesDoc.keyPathOf(line, cmd)} ${this.keyQualOf(line, cmd)}`;
  }

  /** The value each writable flag ends up with when the file is loaded, for the flags it sets. */
  flagValues(): Map<Flag, number> {
    const m = new Map<Flag, number>();
    for (const line of this.lines) {
      const c = line.parsed?.command;
      if (c?.kind === 'set') {
        const f = this.v.flag(c.flag);
        if (f?.writable) m.set(f, c.value);
      } else if (c?.kind === 'mode') {
        const f = modeFlagOf(this.v);
        if (f) m.set(f, c.value);
      }
    }
    return m;
  }

  apply(e: Edit): void {
    const v = this.v;
    switch (e.kind) {
      case 'rule': {
        const key = `${e.prot} ${e.path} ${e.qkey}`;
        const same = this.rules().filter(({ line, cmd }) => cmd.lifetime.kind === 'always' && this.keyOf(line, cmd) === key);
        const text = ruleText(e, v);
        const first = same[0];
        if (first) {
          // Its own line keeps its place; later duplicates would override it on load.
          if (first.cmd.verdict !== e.verdict || first.line.text.trim() === '') this.replace(first.line, text, e.path, e.qkey);
          for (const d of same.slice(1)) this.remove(d.line);
        } else this.append(text, e.path, e.qkey);
        return;
      }
      case 'clear-rule': {
        const key = `${e.prot} ${e.path} ${e.qkey}`;
        for (const { line, cmd } of this.rules()) if (this.keyOf(line, cmd) === key) this.remove(line);
        return;
      }
      case 'clear-path':
        for (const { line, cmd } of this.rules()) if (RulesDoc.keyPathOf(line, cmd) === e.path) this.remove(line);
        return;
      case 'clear-verdict':
        for (const { line, cmd } of this.rules()) if (e.verdict === undefined || cmd.verdict === e.verdict) this.remove(line);
        return;
      case 'flag': {
        const text = `set ${e.flag.name} ${v.valueName(e.value) ?? e.value}`;
        const mode = modeFlagOf(v);
        let last: DocLine | undefined;
        for (const line of this.lines) {
          const c = line.parsed?.command;
          if ((c?.kind === 'set' && c.id === e.flag.id) || (c?.kind === 'mode' && mode?.id === e.flag.id)) last = line;
        }
        const p = parseLine(text, v);
        if (last) {
          const i = this.lines.indexOf(last);
          this.lines[i] = { text, parsed: p.isOk() ? p.value : undefined };
        } else {
          this.appendLine({ text, parsed: p.isOk() ? p.value : undefined });
        }
        return;
      }
    }
  }

  /**
   * `save`: the file made to say what the kernel holds, in the file's own
   * words.  lasting: the kernel's standing rules (key path, verdict);
   * flags: each writable flag's current value; keep: rule keys that failed
   * to load (their lines stay).
   */
  reconcile(lasting: readonly { prot: number; path: string; verdict: number; qual?: KernelQual }[], flags: ReadonlyMap<Flag, number>, keep: ReadonlySet<string>): void {
    const v = this.v;
    const side = sideValues(v);
    const keyed = lasting.map((r) => ({ r, qkey: kernelQualKey(r.qual, side) }));
    const byKey = new Map(keyed.map((x) => [`${x.r.prot} ${x.r.path} ${x.qkey}`, x.r]));
    const covered = new Set<string>();
    for (const { line, cmd } of this.rules()) {
      if (cmd.lifetime.kind !== 'always') continue;
      const key = this.keyOf(line, cmd);
      const r = byKey.get(key);
      if (r === undefined || covered.has(key)) {
        if (!keep.has(key) || covered.has(key)) this.remove(line);
        continue;
      }
      covered.add(key);
      if (r.verdict !== cmd.verdict) this.replace(line, ruleText({ ...cmd, verdict: r.verdict }, v), RulesDoc.keyPathOf(line, cmd), this.keyQualOf(line, cmd));
    }
    const set = this.flagValues();
    const fresh = !this.existed && this.lines.length === 0;
    for (const [f, value] of flags) if (fresh || (set.has(f) && set.get(f) !== value)) this.apply({ kind: 'flag', flag: f, value });
    this.passwd ??= systemPasswd();
    for (const { r, qkey } of keyed) {
      if (covered.has(`${r.prot} ${r.path} ${qkey}`)) continue;
      const q = qualifiersOf(r.qual, this.passwd, side);
      this.append(ruleText({ ...r, ...(q ? { q } : {}) }, v), r.path, qkey);
    }
  }

  private replace(line: DocLine, text: string, keyPath: string, keyQual?: string): void {
    const i = this.lines.indexOf(line);
    const p = parseLine(text, this.v);
    if (i >= 0) this.lines[i] = { text, parsed: p.isOk() ? p.value : undefined, keyPath, ...(keyQual === undefined ? {} : { keyQual }) };
  }

  private remove(line: DocLine): void {
    const i = this.lines.indexOf(line);
    if (i >= 0) this.lines.splice(i, 1);
  }

  private append(text: string, keyPath: string, keyQual?: string): void {
    const p = parseLine(text, this.v);
    this.appendLine({ text, parsed: p.isOk() ? p.value : undefined, keyPath, ...(keyQual === undefined ? {} : { keyQual }) });
  }

  private appendLine(l: DocLine): void {
    if (!this.existed && this.lines.length === 0) for (const h of NEW_FILE_HEADER) this.lines.push({ text: h, parsed: null });
    this.lines.push(l);
  }

  /** Lines that cannot be written as one line each (a path with a line break). */
  unrepresentable(): string[] {
    return this.rules()
      .map(({ cmd }) => cmd.path)
      .filter((p) => !representable(p));
  }
}

/** The flag a bare `enable`/`block`/`allow` sets. */
export function modeFlagOf(v: Vocab): Flag | undefined {
  return v.flag(v.ids.FLAG.MODE);
}

// ---------------------------------------------------------------- writing

export interface LockOptions {
  /** How long to wait for another writer, ms. */
  readonly waitMs?: number;
}

/** A lock file without a pid older than this is a claim its writer never finished. */
const STALE_EMPTY_MS = 5000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/**
 * An O_EXCL lock file next to the file, holding the owner's pid.  A lock
 * whose process is gone (killed mid-save) is taken over.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lock = `${file}.lock`;
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const deadline = Date.now() + (opts.waitMs ?? 10000);
  for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
    try {
      const fh = await fs.open(lock, 'wx', 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
      } catch (e) {
        // A full disk: give the claim back, the save cannot be made.
        await fh.close().catch(() => undefined);
        await fs.unlink(lock).catch(() => undefined);
        throw e;
      }
      await fh.close();
      break;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
      const owner = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim());
      const age = await fs.stat(lock).then((st) => Date.now() - st.mtimeMs, () => 0);
      // Dead owner, or a claim never completed (no pid) long ago.
      if ((Number.isInteger(owner) && owner > 0 && !alive(owner)) || (owner === 0 && age > STALE_EMPTY_MS)) {
        // The owner died mid-save (SIGKILL): remove its lock and claim
        // again.  Two waiters may both see it dead; the second unlink can
        // then remove the first one's fresh claim, a window of one check
        // that only a writer killed mid-save opens.
        await fs.unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) {
        const err = new Error(`another vordr has held ${lock} for ${opts.waitMs ?? 10000} ms (pid ${owner || 'unknown'})`) as Error & { code: string };
        err.code = 'ELOCKED';
        throw err;
      }
      await sleep(wait);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.unlink(lock).catch(() => undefined);
  }
}

/** Writes text (or bytes) to file atomically (write-file-atomic) and makes the rename durable. */
export async function writeDurable(file: string, text: string | Buffer): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, typeof text === 'string' ? { encoding: 'utf8', fsync: true } : { fsync: true });
  // The rename is durable once the directory is; some file systems refuse
  // to fsync a directory, which is no reason to fail the save.
  try {
    const d = await fs.open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    /* see above */
  }
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * A rule's path as the kernel sees the executable: symbolic links resolved
 * (a directory keeps its trailing slash).  missing: nothing is there (yet).
 */
export async function resolveRulePath(p: string): Promise<{ path: string; missing: boolean }> {
  const dir = p.endsWith('/') && p.length > 1;
  try {
    const real = await fs.realpath(dir ? p.slice(0, -1) : p);
    return { path: dir && real !== '/' ? `${real}/` : real, missing: false };
  } catch (e) {
    return { path: p, missing: (e as { code?: string }).code === 'ENOENT' || (e as { code?: string }).code === 'ENOTDIR' };
  }
}
