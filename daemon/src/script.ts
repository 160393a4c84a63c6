// Runs lines of the grammar: a command file (-f FILE, `load FILE`), standard
// input, or one console line at a time.
//
// A script is parsed whole before anything runs, and every line that does not
// parse is reported as `FILE:LINE: error: ...` up front.  Those lines are not
// run, but the lines that did parse still run, in order.  We chose this over
// refusing the whole file because the rules file is loaded at boot: one typo
// (or a protocol an older module does not know) must not leave every other
// application without its rules.  The failures are collected, reported all,
// and make the script's result (and vordr's exit status) a failure.
//
// `quit` and `disconnect` stop the script they are in; in a file run by
// `load`, they stop that file only.

import fs from 'node:fs/promises';
import path from 'node:path';
import { ResultAsync, err, errAsync, ok, okAsync, type Result } from 'neverthrow';
import { quote, sortRules } from './format';
import {
  describeParseError,
  describeRunError,
  parseLine,
  runParsed,
  type Context,
  type Next,
  type Output,
  type ParseError,
  type Command,
  type Parsed,
  type RunError,
  type Lifetime,
  LIFE_IDS,
  lifetimeWords,
} from './grammar';
import type { Kernel, KernelError, Rule } from './kernel';
import type { KernelQual } from './kqual';
import { kernelQualKey, qualKeyOf, resolveQual, sideValues, systemPasswd, type Qualifiers } from './qualifiers';
import { crc32, derive, encodePolicy } from './policy';
import { RulesDoc, modeFlagOf, readIfExists, resolveRulePath, ruleText, withLock, writeDurable, type Edit } from './rulesfile';
import { flagValueName } from './grammar';
import type { Flag, Vocab } from './vocab';

export const DEFAULT_RULES_FILE = '/etc/vordr/rules';

/** Commands that change the module's state, which the console saves after. */
const CHANGES: ReadonlySet<string> = new Set(['rule', 'mode', 'clear-rule', 'clear-path', 'clear-verdict', 'set', 'load']);

/** A rule's identity in the table: one rule per protocol and path. */
/** A rule's key: protocol, path as the kernel has it, qualifiers' key (qualifiers.ts; '' for none). */
export function ruleKey(prot: number, path: string, qkey = ''): string {
  return `${prot} ${path} ${qkey}`;
}

export type LineError = { kind: 'parse'; error: ParseError } | { kind: 'run'; error: RunError };

export interface Failure {
  readonly source: string;
  readonly line: number;
  readonly error: LineError;
  readonly message: string;
}

export interface ScriptResult {
  readonly failures: readonly Failure[];
  /** A quit/disconnect ended the script before its last line. */
  readonly stopped: boolean;
}

export interface RunnerOptions {
  readonly kernel: Kernel;
  readonly vocab: Vocab;
  /** query/get/help output. */
  readonly out: Output;
  /** `FILE:LINE: error: ...` reports. */
  readonly err: Output;
  readonly rulesFile?: string;
  /** The policy file derived from the rules file with each save (policy.ts); none when undefined. */
  readonly policyFile?: string;
  /** After every console line that changes the module, save the rules file. */
  readonly autosave?: boolean;
  /** Resolves relative FILEs of save/load. */
  readonly cwd?: string;
  /**
   * Asks the interactive console's user a yes/no question (a bare `block`
   * or `allow` switches the whole machine).  Without it (commands read
   * from standard input, files) they run as E7 wrote them.
   */
  readonly confirm?: (question: string) => Promise<boolean>;
  readonly now?: () => Date;
}

/** What a mode means, for the confirmation and its question. */
function modeMeaning(v: Vocab, value: number): string {
  if (value === v.valueOf('BLOCK')) return 'every packet is dropped';
  if (value === v.valueOf('DISABLED')) return 'every packet passes, nothing is enforced';
  return 'rules are enforced';
}

/** The one line a console change (other than a rule, see applyRule) prints. */
function confirmation(cmd: Command, v: Vocab): string {
  switch (cmd.kind) {
    case 'mode':
      return `mode: ${v.valueName(cmd.value) ?? cmd.value} (${modeMeaning(v, cmd.value)})`;
    case 'clear-rule':
      return `removed the ${v.protName(cmd.prot)} rule for ${quote(cmd.path)}`;
    case 'clear-path':
      return `removed every rule for ${quote(cmd.path)}`;
    case 'clear-verdict':
      return cmd.verdict === undefined ? 'removed every rule' : `removed every ${v.valueName(cmd.verdict) ?? cmd.verdict} rule`;
    case 'set':
      return `${cmd.flag}: ${flagValueName(v, cmd.flag, BigInt(cmd.value))}`;
    case 'load':
      return `loaded ${cmd.file}`;
    default:
      return 'done';
  }
}

export function describeLineError(e: LineError): string {
  return e.kind === 'parse' ? describeParseError(e.error) : describeRunError(e.error);
}

export function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function ioError(op: string, file: string, e: unknown): RunError {
  const x = (e ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof x.code === 'string' ? x.code : '';
  const raw = typeof x.message === 'string' ? x.message : String(e);
  // Node's messages repeat the path and syscall: keep the reason only.
  const message = raw.replace(/^[A-Z]+: /, '').replace(/, \w+( '.*')?$/, '');
  return { kind: 'io', op, path: file, code, message };
}

export function readLines(file: string): ResultAsync<string[], RunError> {
  return ResultAsync.fromPromise(fs.readFile(file, 'utf8'), (e) => ioError('read', file, e)).map(splitLines);
}

export class Runner {
  private readonly loading: string[] = [];
  /**
   * Rules this runner made 'until exit' (ruleKey).  The kernel removes them
   * when this process's socket closes; kept here for the console's display
   * (and endSession) until it reads Rule.life instead.
   */
  readonly session = new Map<string, { prot: number; path: string; kq?: KernelQual }>();
  /** Confirmation lines go to out when set (a console line); a script stays quiet. */
  private speaking = false;
  /** Inside a script (start-up, -f, load): rules are saved once after it, not one by one. */
  private scriptDepth = 0;

  constructor(private readonly opts: RunnerOptions) {}

  /** Where this runner reports errors. */
  get errOutput(): Output {
    return this.opts.err;
  }

  private context(): Context {
    return {
      kernel: this.opts.kernel,
      vocab: this.opts.vocab,
      out: this.opts.out,
      save: (file) => this.save(file),
      load: (file) => this.load(file),
      applyRule: (r) => this.applyRule(r),
      resolvePath: async (p) => (await resolveRulePath(p)).path,
      say: (line) => {
        if (this.speaking) this.opts.out.write(`${line}\n`);
      },
    };
  }

  private resolve(file: string): string {
    return path.resolve(this.opts.cwd ?? process.cwd(), file);
  }

  private report(f: Failure): void {
    this.opts.err.write(`${f.source}:${f.line}: error: ${f.message}\n`);
  }

  /** Runs a whole script; see the comment at the top of this file. */
  async runLines(lines: readonly string[], source: string): Promise<ScriptResult> {
    const failures: Failure[] = [];
    const parsed: { line: number; p: Parsed }[] = [];
    lines.forEach((text, i) => {
      parseLine(text, this.opts.vocab).match(
        (p) => {
          if (p) parsed.push({ line: i + 1, p });
        },
        (error) => {
          const f: Failure = { source, line: i + 1, error: { kind: 'parse', error }, message: describeParseError(error) };
          failures.push(f);
          this.report(f);
        },
      );
    });
    let stopped = false;
    const ctx = this.context();
    const speaking = this.speaking;
    this.speaking = false;
    this.scriptDepth++;
    try {
      for (const [i, { line, p }] of parsed.entries()) {
        const r = await runParsed(p, ctx);
        if (r.isOk() && this.collecting) this.collecting.push(...(await this.editsFor(p.command)));
        if (r.isErr()) {
          const f: Failure = { source, line, error: { kind: 'run', error: r.error }, message: describeRunError(r.error) };
          failures.push(f);
          this.report(f);
        } else if (r.value === 'stop') {
          stopped = i < parsed.length - 1;
          break;
        }
      }
    } finally {
      this.speaking = speaking;
      this.scriptDepth--;
    }
    failures.sort((a, b) => a.line - b.line);
    if (failures.length > 0) {
      const which = failures.map((f) => f.line).join(', ');
      this.opts.err.write(`${source}: ${failures.length} line${failures.length === 1 ? '' : 's'} failed (line${failures.length === 1 ? '' : 's'} ${which})\n`);
    }
    return { failures, stopped };
  }

  /**
   * One line typed in the console: errors are returned for the console to
   * print; a change prints one confirmation line.  A bare `block` or
   * `allow` (the whole machine drops or passes everything) is asked first.
   */
  async runLine(text: string): Promise<Result<Next, LineError>> {
    const parsed = parseLine(text, this.opts.vocab);
    if (parsed.isErr()) return err({ kind: 'parse', error: parsed.error });
    if (parsed.value === null) return ok('continue');
    const cmd = parsed.value.command;
    if (cmd.kind === 'mode' && cmd.value !== this.opts.vocab.valueOf('ENABLED')) {
      const word = text.trim().split(/\s+/)[0] ?? '';
      const mode = this.opts.vocab.valueName(cmd.value) ?? String(cmd.value);
      if (this.opts.confirm && !(await this.opts.confirm(`Switch the whole machine to mode ${mode}: ${modeMeaning(this.opts.vocab, cmd.value)}?`))) {
        this.opts.out.write(`${word}: cancelled; the mode is unchanged\n`);
        return ok('continue');
      }
    }
    this.speaking = true;
    let r: Result<Next, RunError>;
    let collected: Edit[] | undefined;
    if (cmd.kind === 'load' && this.opts.autosave) this.collecting = collected = [];
    try {
      r = await runParsed(parsed.value, this.context());
    } finally {
      this.speaking = false;
      if (collected) this.collecting = undefined;
    }
    if (r.isOk() && CHANGES.has(cmd.kind) && cmd.kind !== 'rule') {
      if (cmd.kind === 'clear-rule') {
        const real = (await resolveRulePath(cmd.path)).path;
        this.session.delete(ruleKey(cmd.prot, real, qualKeyOf(cmd.q, systemPasswd(), sideValues(this.opts.vocab))));
      }
      if (cmd.kind === 'clear-path' || cmd.kind === 'clear-verdict')
        for (const [k, s] of this.session) if (cmd.kind === 'clear-verdict' || s.path === cmd.path) this.session.delete(k);
      const said = confirmation(cmd, this.opts.vocab);
      if (this.opts.autosave) {
        const edits = cmd.kind === 'load' ? (collected ?? []) : await this.editsFor(cmd);
        const saved = await this.record(edits, said);
        if (saved.isErr()) return err({ kind: 'run', error: saved.error });
        this.opts.out.write(`${said}${edits.length > 0 ? ` (saved in ${saved.value})` : ''}\n`);
      } else this.opts.out.write(`${said}\n`);
    }
    return r.mapErr((error): LineError => ({ kind: 'run', error }));
  }

  /**
   * Adds a rule in the kernel with its lifetime; an 'always' rule made by
   * a console (autosave, not inside a script) is also recorded in the rules
   * file: its own line replaced, or appended.  PATH is resolved to the file
   * a symbolic link names (the module sees the executable's real path).
   * Returns the one line that confirms it; a rule the kernel took but the
   * file could not is a 'not-saved' error: the rule is in force.
   */
  applyRule(r: { verdict: number; prot: number; path: string; q?: Qualifiers; lifetime: Lifetime }): ResultAsync<string, RunError> {
    const v = this.opts.vocab;
    const side = sideValues(v);
    const resolved = resolveQual(r.q, systemPasswd(), side);
    if (resolved.isErr()) return errAsync({ kind: 'bad-user', message: `${ruleText(r, v)}: ${resolved.error}` });
    const kq = resolved.value;
    const qkey = kernelQualKey(kq, side);
    return ResultAsync.fromSafePromise(resolveRulePath(r.path)).andThen(({ path: real, missing }) => {
      const key = ruleKey(r.prot, real, qkey);
      const text = [ruleText({ ...r, path: real }, v), lifetimeWords(r.lifetime)].filter((x) => x).join(' ');
      const notes: string[] = [];
      if (real !== r.path) notes.push(`${quote(r.path)} is a symbolic link: the rule names the file it resolves to, ${quote(real)}`);
      if (missing) notes.push(`warning: ${quote(r.path)} does not exist; the rule is added as written`);
      const line = (saved: string) => [`added: ${text}${saved}`, ...notes].join('; ');
      return this.kernelAdd(r.prot, real, r.verdict, r.lifetime, kq)
        .mapErr((e): RunError => {
          this.failedKeys.add(key);
          return e.kind === 'kernel' && e.code === 'ENOSPC' ? { kind: 'table-full' } : e;
        })
        .andThen(() => this.afterAdd(r.verdict))
        .andThen(() => {
          this.failedKeys.delete(key);
          if (r.lifetime.kind === 'exit') this.session.set(key, { prot: r.prot, path: real, ...(kq ? { kq } : {}) });
          else this.session.delete(key);
          if (r.lifetime.kind === 'reboot') this.untilReboot.add(key);
          else this.untilReboot.delete(key);
          if (r.lifetime.kind !== 'always') return okAsync<string, RunError>(line(' (temporary: not saved)'));
          const edit: Edit = { kind: 'rule', verdict: r.verdict, prot: r.prot, path: real, ...(r.q ? { q: r.q } : {}), qkey };
          if (this.collecting) {
            this.collecting.push(edit);
            return okAsync<string, RunError>(line(''));
          }
          if (!this.opts.autosave || this.scriptDepth > 0) return okAsync<string, RunError>(line(''));
          return this.record([edit], `the rule ${text}`).map((file) => line(` (saved in ${file})`));
        });
    });
  }

  /** The kernel's part of a rule: 'for' expires there, 'exit' and 'reboot' are its lives. */
  private kernelAdd(prot: number, path: string, verdict: number, l: Lifetime, qual?: KernelQual): ResultAsync<void, KernelError> {
    const q = qual ? { qual } : {};
    if (l.kind === 'for') return this.opts.kernel.ruleAdd(prot, path, verdict, { timeout: l.seconds, ...q });
    if (l.kind === 'always') return this.opts.kernel.ruleAdd(prot, path, verdict, q);
    const life = this.opts.vocab.lifeOf(LIFE_IDS[l.kind]);
    if (life === undefined) return errAsync({ kind: 'addon-mismatch', missing: [`constant ${this.opts.vocab.ids.LIFE[LIFE_IDS[l.kind]]}`] });
    return this.opts.kernel.ruleAdd(prot, path, verdict, { life, ...q });
  }

  /**
   * The first block rule of a session while unknown applications are
   * allowed: say once what a path rule does not catch (issue 15).
   */
  private afterAdd(verdict: number): ResultAsync<void, RunError> {
    const v = this.opts.vocab;
    const unkrule = v.flag(v.ids.FLAG.UNKRULE);
    if (this.noted || verdict !== v.valueOf('BLOCK') || !unkrule || this.scriptDepth > 0) return okAsync(undefined);
    return this.opts.kernel
      .flagGet(unkrule.id)
      .map((value) => {
        if (Number(value) !== v.valueOf('ALLOW')) return;
        this.noted = true;
        const deny = unkrule.allowed.filter((a) => a !== v.ids.VALUE.ALLOW);
        this.opts.out.write(
          `note: a block rule names a path; a copy or hard link of the program, one started through the ELF loader (ld.so) or a renamed binary is not caught. ` +
            `With ${unkrule.name} ${v.valueName(value) ?? value}, whatever has no rule passes: default-deny (${deny.map((d) => `'set ${unkrule.name} ${d}'`).join(' or ')}) is the security boundary.\n`,
        );
      })
      .orElse(() => okAsync<void, RunError>(undefined));
  }

  private noted = false;
  /** Rule keys whose add failed (a line that failed to load): save keeps their lines. */
  private readonly failedKeys = new Set<string>();
  /** While a console's `load` or --set runs: the edits to record once it is done. */
  private collecting: Edit[] | undefined;
  private saving: Promise<unknown> = Promise.resolve();
  private readonly untilReboot = new Set<string>();

  /**
   * Runs lines (--set) and records their changes in the rules file, as a
   * console line would; the failures are reported as SOURCE:LINE.
   */
  async runAndRecord(lines: readonly string[], source: string): Promise<{ result: ScriptResult; saved: Result<string, RunError> }> {
    const edits: Edit[] = [];
    const outer = this.collecting;
    this.collecting = edits;
    let result: ScriptResult;
    try {
      result = await this.runLines(lines, source);
    } finally {
      this.collecting = outer;
    }
    const saved = await this.record(edits, `${source} ${lines.join('; ')}`);
    return { result, saved };
  }

  /** The rules-file edits a change other than a rule's add stands for (paths as the kernel has them). */
  private async editsFor(cmd: Command): Promise<Edit[]> {
    const v = this.opts.vocab;
    switch (cmd.kind) {
      case 'clear-rule':
        return [{ kind: 'clear-rule', prot: cmd.prot, path: (await resolveRulePath(cmd.path)).path, qkey: qualKeyOf(cmd.q, systemPasswd(), sideValues(v)) }];
      case 'clear-path':
        return [{ kind: 'clear-path', path: (await resolveRulePath(cmd.path)).path }];
      case 'clear-verdict':
        return [{ kind: 'clear-verdict', verdict: cmd.verdict }];
      case 'set': {
        const f = v.flag(cmd.flag);
        return f ? [{ kind: 'flag', flag: f, value: cmd.value }] : [];
      }
      case 'mode': {
        const f = modeFlagOf(v);
        return f ? [{ kind: 'flag', flag: f, value: cmd.value }] : [];
      }
      default:
        return [];
    }
  }

  /** Removes the rules that were to last until the console exits. */
  async endSession(): Promise<void> {
    for (const [k, r] of this.session) {
      await this.opts.kernel.ruleDel(r.path, r.prot, r.kq);
      this.session.delete(k);
    }
  }

  /** Runs a command file; its own failures are reported as FILE:LINE. */
  runFile(file: string): ResultAsync<ScriptResult, RunError> {
    const where = this.resolve(file);
    return ResultAsync.fromPromise(fs.realpath(where), (e) => ioError('read', file, e)).andThen((real) => {
      if (this.loading.includes(real)) return errAsync<ScriptResult, RunError>({ kind: 'recursive-load', file });
      return readLines(where).andThen((lines) => {
        this.loading.push(real);
        return ResultAsync.fromSafePromise(
          this.runLines(lines, file).finally(() => {
            this.loading.pop();
          }),
        );
      });
    });
  }

  private load(file: string): ResultAsync<void, RunError> {
    return this.runFile(file).andThen((r) =>
      r.failures.length > 0 ? errAsync<void, RunError>({ kind: 'load-failed', file, failed: r.failures.length }) : okAsync<void, RunError>(undefined),
    );
  }

  /**
   * `save [FILE]`: the file made to say what the module holds, in the file's
   * own words (comments, order, failed lines and the flags it sets kept; a
   * new file gets every writable flag).  Only lasting rules are written.
   */
  private save(file: string | undefined): ResultAsync<string, RunError> {
    const target = file === undefined ? this.rulesFile() : this.resolve(file);
    const v = this.opts.vocab;
    let count = 0;
    return this.saveDoc(target, undefined, (doc) =>
      this.lastingRules().andThen((rules) =>
        this.flagValuesNow().map((flags) => {
          count = rules.length;
          doc.reconcile(sortRules(rules), flags, this.failedKeys);
        }),
      ),
    ).map((t) => {
      this.opts.out.write(`saved ${count} rule${count === 1 ? '' : 's'} to ${t}\n`);
      void v;
      return t;
    });
  }

  private rulesFile(): string {
    return this.resolve(this.opts.rulesFile ?? DEFAULT_RULES_FILE);
  }

  /** The module's rules that outlive this console and the machine's uptime: the ones a file holds. */
  private lastingRules(): ResultAsync<Rule[], RunError> {
    return this.opts.kernel
      .ruleList()
      .mapErr((e): RunError => e)
      .map((all) => all.filter((r) => this.isLasting(r)));
  }

  /**
   * A rule that lasts until removed: no timeout, the schema's default life,
   * and not one this runner made to last until exit or reboot (a module
   * that does not report a rule's life).
   */
  private isLasting(r: Rule): boolean {
    const key = ruleKey(r.prot, r.path, kernelQualKey(r.qual, sideValues(this.opts.vocab)));
    const always = this.opts.vocab.lifeOf(LIFE_IDS.always);
    return r.timeout === 0 && (always === undefined || r.life === always) && !this.session.has(key) && !this.untilReboot.has(key);
  }

  /** Every writable flag's current value, in the schema's order. */
  private flagValuesNow(): ResultAsync<Map<Flag, number>, RunError> {
    const v = this.opts.vocab;
    const flags = v
      .flagNames()
      .map((n) => v.flag(n))
      .filter((f): f is Flag => f !== undefined && f.writable);
    return ResultAsync.combine(flags.map((f) => this.opts.kernel.flagGet(f.id).map((value) => [f, Number(value)] as const)))
      .mapErr((e): RunError => e)
      .map((pairs) => new Map(pairs));
  }

  /**
   * Records changes already made in the module in the rules file (a console
   * line, a prompt's answer, --set).  what names the change for the error:
   * it is in force but not saved.
   */
  record(edits: readonly Edit[], what: string): ResultAsync<string, RunError> {
    if (edits.length === 0) return okAsync(this.rulesFile());
    return this.saveDoc(this.rulesFile(), what, (doc) => {
      for (const e of edits) doc.apply(e);
      return okAsync<void, RunError>(undefined);
    });
  }

  /**
   * The one way the rules file (or a `save FILE`) is written: queued within
   * this process, under the file's lock across processes, re-read, edited,
   * written atomically; the derived policy file follows the rules file.  what
   * set: a failure is 'not-saved' (the change is in force).
   */
  private saveDoc(
    target: string,
    what: string | undefined,
    edit: (doc: RulesDoc) => ResultAsync<void, RunError>,
  ): ResultAsync<string, RunError> {
    const v = this.opts.vocab;
    const fail = (op: string, file: string, e: unknown): RunError => {
      const io = ioError(op, file, e);
      return what === undefined || io.kind !== 'io' ? io : { kind: 'not-saved', what, file: io.path, code: io.code, message: io.message };
    };
    const job = async (): Promise<Result<string, RunError>> => {
      try {
        return await withLock(target, async (): Promise<Result<string, RunError>> => {
          let text: string | undefined;
          try {
            text = await readIfExists(target);
          } catch (e) {
            return err(fail('read', target, e));
          }
          const doc = RulesDoc.parse(text, v);
          await doc.resolveKeys(async (p) => (await resolveRulePath(p)).path);
          const edited = await edit(doc);
          if (edited.isErr()) return err(edited.error);
          const bad = doc.unrepresentable();
          if (bad.length > 0) return err({ kind: 'unrepresentable', paths: bad });
          try {
            await writeDurable(target, doc.text());
          } catch (e) {
            return err(fail('write', target, e));
          }
          // The boot path's copy follows the rules file (policy.ts).
          const policyFile = this.opts.policyFile;
          if (policyFile === undefined || target !== this.rulesFile()) return ok(target);
          const where = this.resolve(policyFile);
          try {
            const text = Buffer.from(doc.text(), 'utf8');
            await writeDurable(where, encodePolicy(derive(doc, v), crc32(text), v));
          } catch (e) {
            return err(fail('write', where, e));
          }
          return ok(target);
        });
      } catch (e) {
        return err(fail('write', target, e));
      }
    };
    const run = this.saving.then(job, job);
    this.saving = run.then(
      () => undefined,
      () => undefined,
    );
    return new ResultAsync(run);
  }
}
