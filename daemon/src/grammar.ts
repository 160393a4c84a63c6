// The one command grammar (SPEC section 2), for the console, command files,
// standard input and the rules file alike.
//
// A line is tokenized (double-quoted words may hold blanks; `#` at the start
// of a word comments out the rest of the line), its first word picks an entry
// of COMMANDS, and the entry's parse turns the remaining words into a Command.
// The same entry's run carries the Command out against the kernel.
//
// Protocols, flags and flag values are words of the schema (vocab.ts), looked
// up at run time; the command words (allow, clear, query...) are the
// grammar's own.

import { Result, ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import { quote, ruleLine, sortRules, statsLines } from './format';
import { describeKernelError, isUnsupported, type KernelError, type Kernel } from './kernel';
import type { KernelQual } from './kqual';
import {
  QUALIFIER_USAGE, QUALIFIER_WORDS, hasQualifiers, parseDest, parseNet, parsePorts, parseUser, qualifierText, resolveQual, sideValues, systemPasswd,
  type QualifierWord, type Qualifiers,
} from './qualifiers';
import { type Flag, type LifeId, type ValueId, type Vocab } from './vocab';

// ---------------------------------------------------------------- tokens

export interface Token {
  readonly text: string;
  readonly quoted: boolean;
  /** 1-based column of the token's first character. */
  readonly column: number;
}

export type ParseError =
  | { kind: 'unterminated-quote'; column: number }
  | { kind: 'stray-quote'; column: number }
  | { kind: 'unknown-command'; word: string }
  | { kind: 'missing-argument'; command: string; what: string; usage: readonly string[] }
  | { kind: 'extra-arguments'; command: string; extra: string[]; hint?: string }
  | { kind: 'relative-path'; path: string }
  | { kind: 'bad-path'; path: string; why: string }
  | { kind: 'unknown-protocol'; word: string; known: string[] }
  | { kind: 'unknown-flag'; word: string; known: string[] }
  | { kind: 'read-only-flag'; flag: string }
  | { kind: 'bad-value'; flag: string; word: string; allowed: string[] }
  | { kind: 'bad-argument'; command: string; word: string; expected: string }
  | { kind: 'unquoted-blank'; command: string; path: string }
  | { kind: 'bad-duration'; word: string; why: string }
  | { kind: 'unsupported-qualifier'; command: string; word: string }
  | { kind: 'bad-qualifier'; command: string; word: string; why: string }
  | { kind: 'schema'; missing: string };

export function describeParseError(e: ParseError): string {
  switch (e.kind) {
    case 'unterminated-quote':
      return `unterminated quote starting at column ${e.column}; close the path with "`;
    case 'stray-quote':
      return `unexpected " at column ${e.column}; quote a whole word, like "/opt/My App/app"`;
    case 'unknown-command':
      return `unknown command '${e.word}'; 'help' lists the commands`;
    case 'missing-argument':
      return `${e.command}: missing ${e.what}; usage: ${e.usage.join(' | ')}`;
    case 'extra-arguments':
      return `${e.command}: extra arguments: ${e.extra.map(quote).join(' ')}${e.hint ? ` (${e.hint})` : ''}`;
    case 'relative-path':
      return `relative path ${quote(e.path)}; PATH must be absolute (start with /)`;
    case 'bad-path':
      return `bad path ${quote(e.path)}: ${e.why}`;
    case 'unknown-protocol':
      return `unknown protocol '${e.word}'; expected one of: ${e.known.join(', ')}`;
    case 'unknown-flag':
      return `unknown flag '${e.word}'; flags: ${e.known.join(', ')}`;
    case 'read-only-flag':
      return `flag ${e.flag} is read-only; read it with 'get ${e.flag}'`;
    case 'bad-value':
      return `bad value '${e.word}' for flag ${e.flag}; allowed: ${e.allowed.join(', ')}`;
    case 'bad-argument':
      return `${e.command}: unexpected '${e.word}'; expected ${e.expected}`;
    case 'unquoted-blank':
      return `${e.command}: a path with a blank must be quoted: ${quote(e.path)}`;
    case 'bad-duration':
      return `bad duration '${e.word}': ${e.why}; write a whole number and a unit, like 30s, 5m, 1h or 2d`;
    case 'unsupported-qualifier':
      return `${e.command}: the qualifier '${e.word}' is not supported yet; a rule may end with ${LIFETIME_USAGE}`;
    case 'bad-qualifier':
      return `${e.command}: ${e.word}: ${e.why}`;
    case 'schema':
      return `the module's schema has no ${e.missing}; rebuild the addon and the daemon from the same defs.x`;
  }
}

/** Splits a line into words; `#` at the start of a word ends the line. */
export function tokenize(line: string): Result<Token[], ParseError> {
  const tokens: Token[] = [];
  let i = 0;
  const n = line.length;
  const blank = (c: string | undefined) => c !== undefined && /\s/.test(c);
  while (i < n) {
    while (i < n && blank(line[i])) i++;
    if (i >= n || line[i] === '#') break;
    const start = i;
    if (line[i] === '"') {
      let text = '';
      i++;
      for (;;) {
        if (i >= n) return err({ kind: 'unterminated-quote', column: start + 1 });
        const c = line[i] as string;
        if (c === '"') break;
        if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) {
          text += line[i + 1];
          i += 2;
          continue;
        }
        text += c;
        i++;
      }
      i++;
      if (i < n && !blank(line[i])) return err({ kind: 'stray-quote', column: i + 1 });
      tokens.push({ text, quoted: true, column: start + 1 });
    } else {
      while (i < n && !blank(line[i])) {
        if (line[i] === '"') return err({ kind: 'stray-quote', column: i + 1 });
        i++;
      }
      tokens.push({ text: line.slice(start, i), quoted: false, column: start + 1 });
    }
  }
  return ok(tokens);
}

// ---------------------------------------------------------------- commands

/**
 * How long a rule lasts (SPEC section 2).  'always' is the standing policy,
 * saved in the rules file; the others are the kernel's to end and are never
 * saved: 'for' expires after seconds, 'exit' goes with the netlink socket
 * that made it (however its process ends), 'reboot' with the machine.
 */
export type Lifetime = { kind: 'always' } | { kind: 'for'; seconds: number } | { kind: 'exit' } | { kind: 'reboot' };

export const ALWAYS: Lifetime = { kind: 'always' };

/** The kernel's life (defs.x LIFE, by C identifier) of each lifetime but 'for'. */
export const LIFE_IDS: { readonly [K in Exclude<Lifetime['kind'], 'for'>]: LifeId } = { always: 'ALWAYS', exit: 'EXIT', reboot: 'REBOOT' };

export const LIFETIME_USAGE = 'for TIME | until exit | until reboot';

export const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `30s`, `5m`, `1h`, `2d` as seconds, at most max. */
export function parseDuration(word: string, max: number): Result<number, ParseError> {
  const m = /^(\d+)([a-z]*)$/.exec(word);
  if (!m) return err({ kind: 'bad-duration', word, why: 'it is not a number with a unit' });
  const unit = DURATION_UNITS[m[2] as string];
  if (unit === undefined)
    return err({ kind: 'bad-duration', word, why: m[2] === '' ? 'the unit is missing' : `unknown unit '${m[2]}'` });
  const seconds = Number(m[1]) * unit;
  if (seconds <= 0) return err({ kind: 'bad-duration', word, why: 'it must be longer than zero' });
  if (!Number.isSafeInteger(seconds) || seconds > max)
    return err({ kind: 'bad-duration', word, why: `the longest is ${formatDuration(max)} (${max} s)` });
  return ok(seconds);
}

/** Seconds in the largest unit that divides them: 90 -> 90s, 3600 -> 1h. */
export function formatDuration(seconds: number): string {
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60]] as const) if (seconds % n === 0 && seconds >= n) return `${seconds / n}${u}`;
  return `${seconds}s`;
}

/** The words that end a rule line and recreate its lifetime ('' for always). */
export function lifetimeWords(l: Lifetime): string {
  switch (l.kind) {
    case 'always':
      return '';
    case 'for':
      return `for ${formatDuration(l.seconds)}`;
    case 'exit':
      return 'until exit';
    case 'reboot':
      return 'until reboot';
  }
}

export type Command =
  | { kind: 'rule'; verdict: number; prot: number; path: string; q?: Qualifiers; lifetime: Lifetime }
  | { kind: 'mode'; value: number }
  | { kind: 'clear-rule'; prot: number; path: string; q?: Qualifiers }
  | { kind: 'clear-path'; path: string }
  /** verdict undefined: every rule. */
  | { kind: 'clear-verdict'; verdict: number | undefined }
  | { kind: 'query'; verdict: number | undefined }
  | { kind: 'set'; flag: string; id: number; value: number }
  | { kind: 'get'; flag: string; id: number }
  | { kind: 'stats' }
  | { kind: 'save'; file: string | undefined }
  | { kind: 'load'; file: string }
  | { kind: 'help'; topic: string | undefined }
  | { kind: 'disconnect' }
  | { kind: 'quit' };

export type RunError =
  | KernelError
  | { kind: 'unsupported'; what: string }
  | { kind: 'no-rule'; path: string; prot: string | undefined; q?: Qualifiers }
  | { kind: 'bad-user'; message: string }
  | { kind: 'table-full' }
  | { kind: 'io'; op: string; path: string; code: string; message: string }
  | { kind: 'load-failed'; file: string; failed: number }
  | { kind: 'recursive-load'; file: string }
  | { kind: 'unrepresentable'; paths: string[] }
  /** The kernel took the change; the rules file could not (e.g. a full disk). */
  | { kind: 'not-saved'; what: string; file: string; code: string; message: string };

export function describeRunError(e: RunError): string {
  switch (e.kind) {
    case 'unsupported':
      return `${e.what} is not supported by this module yet`;
    case 'no-rule':
      return `no ${e.prot ? `${e.prot} ` : ''}rule for ${quote(e.path)}${e.q ? ` ${qualifierText(e.q)}` : ''}`;
    case 'bad-user':
      return e.message;
    case 'table-full':
      return 'the rule table is full; clear some rules first';
    case 'io':
      return `cannot ${e.op} ${e.path}: ${e.message}`;
    case 'load-failed':
      return `${e.failed} line${e.failed === 1 ? '' : 's'} of ${e.file} failed`;
    case 'recursive-load':
      return `${e.file} is already being loaded; a file cannot load itself`;
    case 'unrepresentable':
      return `cannot write a path with a line break as a command: ${e.paths.map((p) => JSON.stringify(p)).join(', ')}`;
    case 'not-saved':
      return `${e.what} is in force but not saved: cannot write ${e.file}: ${e.message}`;
    default:
      return describeKernelError(e);
  }
}

/** Where command output goes. */
export interface Output {
  write(text: string): unknown;
}

/** What a command runs against; script.ts provides it. */
export interface Context {
  readonly kernel: Kernel;
  readonly vocab: Vocab;
  readonly out: Output;
  /** Writes the rules as a command file (script.ts: atomic). */
  save(file: string | undefined): ResultAsync<string, RunError>;
  /** Runs a command file through the same runner. */
  load(file: string): ResultAsync<void, RunError>;
  /** Adds a rule in the kernel (and, for 'always', to the rules file); returns the confirmation line. */
  applyRule(r: { verdict: number; prot: number; path: string; q?: Qualifiers; lifetime: Lifetime }): ResultAsync<string, RunError>;
  /** A confirmation line (the console prints it; a script does not). */
  say(line: string): void;
  /** A rule path as the kernel has it: symbolic links resolved. */
  resolvePath(path: string): Promise<string>;
}

/** After a command, go on or stop the script/console. */
export type Next = 'continue' | 'stop';

export interface Entry<C extends Command = Command> {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly usage: readonly string[];
  readonly summary: string;
  parse(args: readonly Token[], v: Vocab): Result<C, ParseError>;
  run(cmd: C, ctx: Context): ResultAsync<Next, RunError>;
}

const CONTINUE = (): Next => 'continue';

// ---------------------------------------------------------------- argument helpers

function modeFlag(v: Vocab): Result<Flag, ParseError> {
  const f = v.flag(v.ids.FLAG.MODE);
  return f === undefined ? err({ kind: 'schema', missing: `flag '${v.ids.FLAG.MODE}'` }) : ok(f);
}

/** A VALUE constant's number by its C identifier. */
function schemaValueOf(v: Vocab, id: ValueId): Result<number, ParseError> {
  const n = v.valueOf(id);
  return n === undefined ? err({ kind: 'schema', missing: `value '${v.ids.VALUE[id]}'` }) : ok(n);
}

function isProtWord(t: Token, v: Vocab): boolean {
  return !t.quoted && v.prot(t.text) !== undefined;
}

function protArg(t: Token, v: Vocab): Result<number, ParseError> {
  const byName = t.quoted ? undefined : v.prot(t.text);
  if (byName !== undefined) return ok(byName);
  const attr = v.schema.attrs[v.ids.ATTR.PROT];
  if (!t.quoted && /^\d+$/.test(t.text) && attr && Number(t.text) >= attr.lo && Number(t.text) <= attr.hi)
    return ok(Number(t.text));
  return err({ kind: 'unknown-protocol', word: t.text, known: v.protNames() });
}

function pathArg(t: Token, v: Vocab): Result<string, ParseError> {
  const p = t.text;
  if (p === '') return err({ kind: 'bad-path', path: p, why: 'it is empty' });
  if (!p.startsWith('/')) return err({ kind: 'relative-path', path: p });
  if (p.includes('\0')) return err({ kind: 'bad-path', path: p, why: 'it contains a NUL character' });
  if (Buffer.byteLength(p) > v.pathMax)
    return err({ kind: 'bad-path', path: p, why: `it is longer than ${v.pathMax} bytes` });
  return ok(p);
}

function noMore(command: string, args: readonly Token[], from: number, hint?: string): Result<void, ParseError> {
  if (args.length <= from) return ok(undefined);
  const extra = args.slice(from).map((t) => t.text);
  return err(hint ? { kind: 'extra-arguments', command, extra, hint } : { kind: 'extra-arguments', command, extra });
}

/** Words a rule may go on with after PATH (SPEC section 2). */
const QUALIFIERS: ReadonlySet<string> = new Set(['to', 'from', 'port', 'user', 'for', 'until']);

/**
 * `[PROT] PATH` after allow/block/clear, at least one word; rest: the words
 * after PATH.  An unquoted PATH followed by words that start no qualifier is
 * a path with a blank that was not quoted.
 */
function protPath(
  command: string,
  args: readonly Token[],
  v: Vocab,
): Result<{ prot: number | undefined; path: string; rest: readonly Token[] }, ParseError> {
  const [first, second] = args;
  if (first === undefined) return err({ kind: 'missing-argument', command, what: 'PATH', usage: [`${command} [PROT] PATH`] });
  type PP = { prot: number | undefined; path: string; rest: readonly Token[] };
  const withPath = (prot: number | undefined, t: Token, rest: readonly Token[]): Result<PP, ParseError> =>
    pathArg(t, v).andThen((path): Result<PP, ParseError> => {
      const next = rest[0];
      if (next !== undefined && !t.quoted && !(QUALIFIERS.has(next.text) && !next.quoted)) {
        // `allow /usr/bin/curl tcp`: the protocol after the path.
        if (rest.length === 1 && isProtWord(next, v))
          return err({ kind: 'extra-arguments', command, extra: [next.text], hint: 'PROT comes before PATH' });
        // A second absolute path is a second argument, not the rest of a name.
        if (next.text.startsWith('/')) return err({ kind: 'extra-arguments', command, extra: rest.map((x) => x.text) });
        const words = [t];
        for (const x of rest) {
          if (QUALIFIERS.has(x.text) && !x.quoted) break;
          words.push(x);
        }
        return err({ kind: 'unquoted-blank', command, path: words.map((w) => w.text).join(' ') });
      }
      return ok({ prot, path, rest });
    });
  if (second === undefined) {
    if (isProtWord(first, v))
      return err({ kind: 'missing-argument', command, what: `PATH after protocol '${first.text}'`, usage: [`${command} ${first.text} PATH`] });
    return withPath(undefined, first, []);
  }
  if (first.text.startsWith('/') && !isProtWord(first, v)) return withPath(undefined, first, args.slice(1));
  return protArg(first, v).andThen((prot) => withPath(prot, second, args.slice(2)));
}

/** The longest `for TIME` the module takes: its timeout attribute's bound. */
function maxTimeout(v: Vocab): number {
  const a = v.schema.attrs[v.ids.ATTR.TIMEOUT];
  if (!a) return 0;
  if (a.hi > 0) return a.hi;
  const bits = { u8: 8, u16: 16, u32: 32, u64: 53 }[a.type as 'u8' | 'u16' | 'u32' | 'u64'];
  return bits === undefined ? 0 : 2 ** bits - 1;
}

/**
 * `[to DEST | from PEER] [port PORTS] [user USER]` after PATH, in that
 * order; the words after them (a lifetime) in rest.
 */
function qualifiersArg(command: string, args: readonly Token[]): Result<{ q?: Qualifiers; rest: readonly Token[] }, ParseError> {
  const q: { -readonly [K in keyof Qualifiers]: Qualifiers[K] } = {};
  let i = 0;
  let rank = 0;
  const order: Record<QualifierWord, number> = { to: 1, from: 1, port: 2, user: 3 };
  for (;;) {
    const w = args[i];
    if (w === undefined || w.quoted || !(QUALIFIER_WORDS as readonly string[]).includes(w.text)) break;
    const word = w.text as QualifierWord;
    const arg = args[i + 1];
    if (order[word] <= rank) {
      const why = order[word] === 1 && rank === 1 ? "a rule has 'to' or 'from', not both" : `qualifiers go in the order ${QUALIFIER_USAGE}`;
      return err({ kind: 'bad-qualifier', command, word, why });
    }
    if (arg === undefined)
      return err({ kind: 'missing-argument', command, what: `${word === 'to' ? 'DEST' : word === 'from' ? 'PEER' : word === 'port' ? 'PORTS' : 'USER'} after ${word}`, usage: [`${command} [PROT] PATH ${QUALIFIER_USAGE} [${LIFETIME_USAGE}]`] });
    rank = order[word];
    const bad = (why: string): Result<never, ParseError> => err({ kind: 'bad-qualifier', command, word, why });
    if (word === 'to') {
      const d = parseDest(arg.text);
      if (d.isErr()) return bad(d.error);
      q.to = d.value;
    } else if (word === 'from') {
      const n = parseNet(arg.text);
      if (n.isErr()) return bad(n.error);
      q.from = n.value;
    } else if (word === 'port') {
      const p = parsePorts(arg.text);
      if (p.isErr()) return bad(p.error);
      q.ports = p.value;
    } else {
      const u = parseUser(arg.text);
      if (u.isErr()) return bad(u.error);
      q.user = u.value;
    }
    i += 2;
  }
  return ok(hasQualifiers(q) ? { q, rest: args.slice(i) } : { rest: args.slice(i) });
}

/** `port` on a protocol without ports (icmp) would never match: refused. */
function portsFit(command: string, prot: number, q: Qualifiers | undefined, v: Vocab): Result<void, ParseError> {
  if (q?.ports?.length && prot === v.prot(v.ids.PROT.ICMP))
    return err({ kind: 'bad-qualifier', command, word: 'port', why: `an ${v.protName(prot)} rule has no ports; use tcp, udp or any` });
  return ok(undefined);
}

/** `[for TIME | until exit | until reboot]` at the end of a rule. */
function lifetimeArg(command: string, rest: readonly Token[], v: Vocab): Result<Lifetime, ParseError> {
  const [word, arg] = rest;
  if (word === undefined) return ok(ALWAYS);
  if (!word.quoted && (QUALIFIER_WORDS as readonly string[]).includes(word.text))
    return err({ kind: 'bad-qualifier', command, word: word.text, why: `qualifiers go before the lifetime: ${command} [PROT] PATH ${QUALIFIER_USAGE} [${LIFETIME_USAGE}]` });
  if (word.quoted || !QUALIFIERS.has(word.text))
    return noMore(command, rest, 0, `a rule may end with ${LIFETIME_USAGE}`).map(() => ALWAYS);
  if (word.text === 'for') {
    if (arg === undefined) return err({ kind: 'missing-argument', command, what: 'TIME after for', usage: [`${command} [PROT] PATH for TIME`] });
    const max = maxTimeout(v);
    if (max === 0) return err({ kind: 'schema', missing: `attribute ${v.ids.ATTR.TIMEOUT}` });
    return parseDuration(arg.text, max).andThen((seconds) =>
      noMore(command, rest, 2).map((): Lifetime => ({ kind: 'for', seconds })),
    );
  }
  if (word.text === 'until') {
    if (arg === undefined || arg.quoted || (arg.text !== 'exit' && arg.text !== 'reboot'))
      return arg === undefined
        ? err({ kind: 'missing-argument', command, what: 'exit or reboot after until', usage: [`${command} [PROT] PATH until exit|reboot`] })
        : err({ kind: 'bad-argument', command, word: arg.text, expected: "'exit' or 'reboot' after until" });
    return noMore(command, rest, 2).map((): Lifetime => ({ kind: arg.text === 'exit' ? 'exit' : 'reboot' }));
  }
  return err({ kind: 'unsupported-qualifier', command, word: word.text });
}

// ---------------------------------------------------------------- run helpers

function ruleRun(cmd: Extract<Command, { kind: 'rule' }>, ctx: Context): ResultAsync<Next, RunError> {
  return ctx.applyRule(cmd).map((line) => {
    ctx.say(line);
    return CONTINUE();
  });
}

/** Removes the rule by the path it was added with (resolved), or as written. */
function delResolved(ctx: Context, path: string, prot: number | undefined, q?: KernelQual): ResultAsync<void, KernelError> {
  return ResultAsync.fromSafePromise(ctx.resolvePath(path)).andThen((real) =>
    ctx.kernel
      .ruleDel(real, prot, q)
      .orElse((e) => (real !== path && e.kind === 'kernel' && e.code === 'ENOENT' ? ctx.kernel.ruleDel(path, prot, q) : errAsync(e))),
  );
}

function modeRun(cmd: Extract<Command, { kind: 'mode' }>, ctx: Context): ResultAsync<Next, RunError> {
  const f = ctx.vocab.flag(ctx.vocab.ids.FLAG.MODE);
  if (!f) return errAsync({ kind: 'unsupported', what: `flag '${ctx.vocab.ids.FLAG.MODE}'` });
  return ctx.kernel.flagSet(f.id, cmd.value).map(CONTINUE);
}

/**
 * The grammar's verdict words (SPEC section 2, E7's command language):
 * commands, each standing for a rule's verdict and, alone, a mode.
 */
export const ALLOW = 'allow';
export const BLOCK = 'block';
export type VerdictWord = typeof ALLOW | typeof BLOCK;

/** What each verdict word stands for in the schema, by C identifier. */
export const VERDICT_WORDS: { readonly [W in VerdictWord]: { readonly verdict: ValueId; readonly mode: ValueId } } = {
  [ALLOW]: { verdict: 'ALLOW', mode: 'DISABLED' },
  [BLOCK]: { verdict: 'BLOCK', mode: 'BLOCK' },
};

function isVerdictWord(w: string): w is VerdictWord {
  return w === ALLOW || w === BLOCK;
}

/** `allow`/`block`: a rule with a path, the mode without. */
function verdictEntry(word: VerdictWord, meaning: string): Entry<Extract<Command, { kind: 'rule' | 'mode' }>> {
  const ids = VERDICT_WORDS[word];
  return {
    name: word,
    aliases: [],
    usage: [`${word} [PROT] PATH ${QUALIFIER_USAGE} [${LIFETIME_USAGE}]`, word],
    summary: `${word} PATH's traffic (PROT omitted: any); without PATH, the whole machine: ${meaning}`,
    parse: (args, v) => {
      if (args.length === 0)
        return modeFlag(v).andThen(() => schemaValueOf(v, ids.mode)).map((value) => ({ kind: 'mode' as const, value }));
      return schemaValueOf(v, ids.verdict).andThen((verdict) =>
        protPath(word, args, v).andThen(({ prot, path, rest }) =>
          (prot === undefined ? schemaProt(v) : ok(prot)).andThen((p) =>
            qualifiersArg(word, rest).andThen(({ q, rest: tail }) =>
              portsFit(word, p, q, v).andThen(() =>
                lifetimeArg(word, tail, v).map((lifetime) => ({ kind: 'rule' as const, verdict, prot: p, path, ...(q ? { q } : {}), lifetime })),
              ),
            ),
          ),
        ),
      );
    },
    run: (cmd, ctx) => (cmd.kind === 'rule' ? ruleRun(cmd, ctx) : modeRun(cmd, ctx)),
  };
}

function schemaProt(v: Vocab): Result<number, ParseError> {
  const p = v.prot(v.ids.PROT.ANY);
  return p === undefined ? err({ kind: 'schema', missing: `protocol '${v.ids.PROT.ANY}'` }) : ok(p);
}

const CLEAR_ALL = 'all';

// ---------------------------------------------------------------- the table

export const COMMANDS: readonly Entry[] = [
  verdictEntry(ALLOW, 'every packet passes, nothing is enforced') as Entry,
  verdictEntry(BLOCK, 'every packet is dropped') as Entry,
  {
    name: 'clear',
    aliases: [],
    usage: [`clear PROT PATH ${QUALIFIER_USAGE}`, 'clear PATH', `clear ${ALLOW}|${BLOCK}|${CLEAR_ALL}`],
    summary: 'remove one rule, every rule for PATH, or all allow/block/all rules',
    parse: (args, v) => {
      const [first] = args;
      if (first === undefined)
        return err({ kind: 'missing-argument', command: 'clear', what: 'what to clear', usage: COMMANDS_BY_NAME.get('clear')?.usage ?? [] });
      const keyword = !first.quoted && (first.text === CLEAR_ALL || isVerdictWord(first.text));
      if (keyword && !isProtWord(first, v)) {
        const more = noMore('clear', args, 1);
        if (more.isErr()) return err(more.error);
      }
      if (!first.quoted && args.length === 1) {
        if (first.text === CLEAR_ALL) return ok({ kind: 'clear-verdict', verdict: undefined });
        if (isVerdictWord(first.text))
          return schemaValueOf(v, VERDICT_WORDS[first.text].verdict).map((verdict) => ({ kind: 'clear-verdict', verdict }));
        if (!first.text.startsWith('/') && !isProtWord(first, v))
          return err({ kind: 'bad-argument', command: 'clear', word: first.text, expected: `PROT PATH, an absolute PATH, ${ALLOW}, ${BLOCK} or ${CLEAR_ALL}` });
      }
      return protPath('clear', args, v).andThen(({ prot, path, rest }) =>
        qualifiersArg('clear', rest).andThen(({ q, rest: tail }): Result<Command, ParseError> => {
          if (q && prot === undefined)
            return err({ kind: 'bad-qualifier', command: 'clear', word: rest[0]?.text ?? '', why: `a qualified rule is cleared with its protocol: clear PROT PATH ${QUALIFIER_USAGE}` });
          if (prot !== undefined) {
            const fit = portsFit('clear', prot, q, v);
            if (fit.isErr()) return err(fit.error);
          }
          return noMore('clear', tail, 0).map((): Command =>
            prot === undefined ? { kind: 'clear-path', path } : { kind: 'clear-rule', prot, path, ...(q ? { q } : {}) },
          );
        }),
      );
    },
    run: (cmd, ctx) => {
      switch (cmd.kind) {
        case 'clear-rule': {
          const kq = resolveQual(cmd.q, systemPasswd(), sideValues(ctx.vocab));
          if (kq.isErr()) return errAsync({ kind: 'bad-user', message: kq.error });
          return delResolved(ctx, cmd.path, cmd.prot, kq.value)
            .mapErr((e): RunError => (e.kind === 'kernel' && e.code === 'ENOENT' ? { kind: 'no-rule', path: cmd.path, prot: ctx.vocab.protName(cmd.prot), q: cmd.q } : e))
            .map(CONTINUE);
        }
        case 'clear-path':
          return delResolved(ctx, cmd.path, undefined)
            .mapErr((e): RunError => (e.kind === 'kernel' && e.code === 'ENOENT' ? { kind: 'no-rule', path: cmd.path, prot: undefined } : e))
            .map(CONTINUE);
        case 'clear-verdict':
          return ctx.kernel.ruleClear(cmd.verdict).map(CONTINUE);
        default:
          return okAsync(CONTINUE());
      }
    },
  },
  {
    name: 'enable',
    aliases: [],
    usage: ['enable'],
    summary: 'the whole machine: rules are enforced',
    parse: (args, v) =>
      noMore('enable', args, 0).andThen(() =>
        modeFlag(v).andThen(() => schemaValueOf(v, 'ENABLED')).map((value): Command => ({ kind: 'mode', value })),
      ),
    run: (cmd, ctx) => (cmd.kind === 'mode' ? modeRun(cmd, ctx) : okAsync(CONTINUE())),
  },
  {
    name: 'query',
    aliases: [],
    usage: ['query', `query ${ALLOW}`, `query ${BLOCK}`],
    summary: "print the mode and the rules (all, or one verdict's) with their counters",
    parse: (args, v) => {
      const [first] = args;
      if (first === undefined) return ok({ kind: 'query', verdict: undefined });
      const word = first.text;
      if (first.quoted || !isVerdictWord(word))
        return err({ kind: 'bad-argument', command: 'query', word, expected: `${ALLOW} or ${BLOCK}` });
      return noMore('query', args, 1).andThen(() => schemaValueOf(v, VERDICT_WORDS[word].verdict)).map((verdict): Command => ({ kind: 'query', verdict }));
    },
    run: (cmd, ctx) => (cmd.kind === 'query' ? query(cmd.verdict, ctx) : okAsync(CONTINUE())),
  },
  {
    name: 'set',
    aliases: [],
    usage: ['set FLAG VALUE'],
    summary: "change a module flag ('help set' lists them)",
    parse: (args, v) => {
      const [name, value] = args;
      if (name === undefined) return err({ kind: 'missing-argument', command: 'set', what: 'FLAG', usage: ['set FLAG VALUE'] });
      const f = v.flag(name.text);
      if (f === undefined) return err({ kind: 'unknown-flag', word: name.text, known: v.flagNames() });
      if (!f.writable) return err({ kind: 'read-only-flag', flag: f.name });
      if (value === undefined)
        return err({ kind: 'missing-argument', command: 'set', what: `VALUE for flag ${f.name}`, usage: [`set ${f.name} ${f.allowed.join('|') || 'NUMBER'}`] });
      return flagValue(f, value.text, v).andThen((n) =>
        noMore('set', args, 2).map((): Command => ({ kind: 'set', flag: f.name, id: f.id, value: n })),
      );
    },
    run: (cmd, ctx) => (cmd.kind === 'set' ? ctx.kernel.flagSet(cmd.id, cmd.value).map(CONTINUE) : okAsync(CONTINUE())),
  },
  {
    name: 'get',
    aliases: [],
    usage: ['get FLAG'],
    summary: "print a module flag ('help set' lists them)",
    parse: (args, v) => {
      const [name] = args;
      if (name === undefined) return err({ kind: 'missing-argument', command: 'get', what: 'FLAG', usage: ['get FLAG'] });
      const f = v.flag(name.text);
      if (f === undefined) return err({ kind: 'unknown-flag', word: name.text, known: v.flagNames() });
      return noMore('get', args, 1).map((): Command => ({ kind: 'get', flag: f.name, id: f.id }));
    },
    run: (cmd, ctx) => {
      if (cmd.kind !== 'get') return okAsync(CONTINUE());
      return ctx.kernel.flagGet(cmd.id).map((value) => {
        ctx.out.write(`${cmd.flag}: ${flagValueName(ctx.vocab, cmd.flag, value)}\n`);
        return CONTINUE();
      });
    },
  },
  {
    name: 'stats',
    aliases: [],
    usage: ['stats'],
    summary: 'per-application counters: packets and bytes allowed and blocked, and by destination',
    parse: (args) => noMore('stats', args, 0).map((): Command => ({ kind: 'stats' })),
    run: (_cmd, ctx) =>
      ctx.kernel
        .stats()
        .andThen((stats) =>
          ctx.kernel
            .dests()
            // A module without DESTS still has its per-application counters.
            .orElse((e) => (isUnsupported(e) ? okAsync([]) : errAsync(e)))
            .map((dests) => ({ stats, dests })),
        )
        .mapErr((e): RunError => (isUnsupported(e) ? { kind: 'unsupported', what: 'stats' } : e))
        .map(({ stats, dests }) => {
          ctx.out.write(stats.length === 0 ? 'no traffic counted yet\n' : statsLines(stats, dests, ctx.vocab).join('\n') + '\n');
          return CONTINUE();
        }),
  },
  {
    name: 'save',
    aliases: [],
    usage: ['save [FILE]'],
    summary: 'write the rules as a command file (default /etc/vordr/rules)',
    parse: (args) => noMore('save', args, 1).map((): Command => ({ kind: 'save', file: args[0]?.text })),
    run: (cmd, ctx) => (cmd.kind === 'save' ? ctx.save(cmd.file).map(CONTINUE) : okAsync(CONTINUE())),
  },
  {
    name: 'load',
    aliases: [],
    usage: ['load FILE'],
    summary: 'run a command file',
    parse: (args) => {
      const [file] = args;
      if (file === undefined) return err({ kind: 'missing-argument', command: 'load', what: 'FILE', usage: ['load FILE'] });
      return noMore('load', args, 1).map((): Command => ({ kind: 'load', file: file.text }));
    },
    run: (cmd, ctx) => (cmd.kind === 'load' ? ctx.load(cmd.file).map(CONTINUE) : okAsync(CONTINUE())),
  },
  {
    name: 'help',
    aliases: [],
    usage: ['help [COMMAND]'],
    summary: 'list the commands, or show how to use one',
    parse: (args) => {
      const [topic] = args;
      if (topic !== undefined && !COMMANDS_BY_NAME.has(topic.text)) return err({ kind: 'unknown-command', word: topic.text });
      return noMore('help', args, 1).map((): Command => ({ kind: 'help', topic: topic?.text }));
    },
    run: (cmd, ctx) => {
      if (cmd.kind === 'help') ctx.out.write(help(cmd.topic, ctx.vocab));
      return okAsync(CONTINUE());
    },
  },
  {
    name: 'disconnect',
    aliases: ['bye'],
    usage: ['disconnect', 'bye'],
    summary: 'detach from the module and exit; the module keeps enforcing',
    parse: (args) => noMore('disconnect', args, 0).map((): Command => ({ kind: 'disconnect' })),
    run: () => okAsync<Next, RunError>('stop'),
  },
  {
    name: 'quit',
    aliases: [],
    usage: ['quit'],
    summary: 'leave the console (in a command file: stop reading it)',
    parse: (args) => noMore('quit', args, 0).map((): Command => ({ kind: 'quit' })),
    run: () => okAsync<Next, RunError>('stop'),
  },
];

const COMMANDS_BY_NAME: ReadonlyMap<string, Entry> = new Map(
  COMMANDS.flatMap((e) => [e.name, ...e.aliases].map((n) => [n, e] as const)),
);

// ---------------------------------------------------------------- flags

function flagValue(f: Flag, word: string, v: Vocab): Result<number, ParseError> {
  const allowed = f.allowed.length > 0 ? [...f.allowed] : ['a number'];
  const bad = err<number, ParseError>({ kind: 'bad-value', flag: f.name, word, allowed });
  const n = v.value(word) ?? (/^\d+$/.test(word) ? Number(word) : undefined);
  if (n === undefined || !Number.isSafeInteger(n)) return bad;
  if (f.allowedValues.length > 0 && !f.allowedValues.includes(n)) return bad;
  return ok(n);
}

/** A writable flag's value by its canonical name; a read-only one as a number. */
export function flagValueName(v: Vocab, flag: string, value: bigint): string {
  const f = v.flag(flag);
  // A read-only flag whose values are a group of constants named like it (policy).
  const group = f && !f.writable ? v.schema.constants[flag] : undefined;
  if (group) for (const [name, c] of Object.entries(group)) if (BigInt(c.value) === value) return name;
  if (!f || !f.writable || f.allowedValues.length === 0) return value.toString();
  return v.valueName(value) ?? value.toString();
}

// ---------------------------------------------------------------- query, help

function query(verdict: number | undefined, ctx: Context): ResultAsync<Next, RunError> {
  const mode = ctx.vocab.flag(ctx.vocab.ids.FLAG.MODE);
  if (!mode) return errAsync({ kind: 'unsupported', what: `flag '${ctx.vocab.ids.FLAG.MODE}'` });
  return ctx.kernel
    .flagGet(mode.id)
    .andThen((value) => ctx.kernel.ruleList(verdict).map((rules) => ({ value, rules })))
    .andThen(({ value, rules }) => {
      // What the saved policy's last load did (a module without the flag: nothing said).
      const policy = ctx.vocab.flag(ctx.vocab.ids.FLAG.POLICY);
      if (!policy) return okAsync({ value, rules, policy: undefined });
      return ctx.kernel.flagGet(policy.id).map((p) => ({ value, rules, policy: flagValueName(ctx.vocab, policy.name, p) }));
    })
    .map(({ value, rules, policy }) => {
      const lines = [`${mode.name}: ${flagValueName(ctx.vocab, mode.name, value)}`];
      if (policy !== undefined) lines.push(`${ctx.vocab.ids.FLAG.POLICY}: ${policy}`);
      for (const r of sortRules(rules)) lines.push(ruleLine(r, ctx.vocab));
      ctx.out.write(lines.join('\n') + '\n');
      return CONTINUE();
    });
}

/** A writable flag's allowed values, each with its other spellings (help, docs/COMMANDS.md). */
export function flagValueWords(v: Vocab, f: Flag): { readonly name: string; readonly aliases: readonly string[] }[] {
  return f.allowed.map((a) => ({ name: a, aliases: v.valueAliases(a).filter((x) => x !== a) }));
}

function flagHelp(v: Vocab): string[] {
  const width = Math.max(0, ...v.flagNames().map((n) => n.length));
  return v.flagNames().map((n) => {
    const f = v.flag(n) as Flag;
    const name = n.padEnd(width);
    if (!f.writable) return `  ${name}  (read-only)`;
    const words = flagValueWords(v, f).map((w) => (w.aliases.length ? `${w.name} (${w.aliases.join(', ')})` : w.name));
    const def = v.valueName(f.default);
    return `  ${name}  ${words.join(' | ')}${def ? `  [default ${def}]` : ''}`;
  });
}

export function help(topic: string | undefined, v: Vocab): string {
  if (topic === undefined) {
    const rows = COMMANDS.flatMap((e) => e.usage.map((u, i) => [u, i === 0 ? e.summary : ''] as const));
    const width = Math.max(...rows.map(([u]) => u.length));
    return [
      'commands:',
      ...rows.map(([u, s]) => (s ? `  ${u.padEnd(width)}  ${s}` : `  ${u}`)),
      `PROT: ${v.protNames().join(', ')} (omitted: ${v.ids.PROT.ANY}); PATH: absolute, "quoted" if it has blanks, ending in / for a directory`,
      'every command, flag, event field and exit code: docs/COMMANDS.md (vordr --reference)',
      '',
    ].join('\n');
  }
  const e = COMMANDS_BY_NAME.get(topic);
  if (!e) return `unknown command '${topic}'\n`;
  const lines = [...e.usage.map((u) => `usage: ${u}`), `  ${e.summary}`];
  if (e.name === 'set' || e.name === 'get') lines.push('flags:', ...flagHelp(v));
  if (isVerdictWord(e.name) || e.name === 'clear')
    lines.push(`PROT: ${v.protNames().join(', ')}`);
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------- parsing a line

export interface Parsed {
  readonly command: Command;
  readonly entry: Entry;
}

/** null for a blank or comment-only line. */
export function parseLine(line: string, v: Vocab): Result<Parsed | null, ParseError> {
  return tokenize(line).andThen((tokens): Result<Parsed | null, ParseError> => {
    const [word, ...args] = tokens;
    if (word === undefined) return ok(null);
    const entry = word.quoted ? undefined : COMMANDS_BY_NAME.get(word.text);
    if (!entry) return err({ kind: 'unknown-command', word: word.text });
    return entry.parse(args, v).map((command) => ({ command, entry }));
  });
}

export function runParsed(p: Parsed, ctx: Context): ResultAsync<Next, RunError> {
  return p.entry.run(p.command, ctx);
}
