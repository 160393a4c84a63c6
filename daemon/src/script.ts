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
import { quote, ruleCommand, representable, sortRules } from './format';
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
  lifetimeWords,
} from './grammar';
import type { Kernel, Rule } from './kernel';
import { flagValueName } from './grammar';
import { GRAMMAR_WORDS, type Vocab } from './vocab';

export const DEFAULT_RULES_FILE = '/etc/vordr/rules';
export const DEFAULT_MODPROBE_CONF = '/etc/modprobe.d/vordr.conf';

/**
 * The flags that are boot policy: saved in the rules file and on the
 * modprobe.d line, in this order.  Flags the schema lacks are skipped.
 */
export const BOOT_FLAGS = ['mode', 'unkrule', 'unkproc', 'unkprot', 'fail'] as const;

/** Commands that change the module's state, which the console saves after. */
const CHANGES: ReadonlySet<string> = new Set(['rule', 'mode', 'clear-rule', 'clear-path', 'clear-verdict', 'set', 'load']);

/** A rule's identity in the table: one rule per protocol and path. */
export function ruleKey(prot: number, path: string): string {
  return `${prot} ${path}`;
}

/** PATH on the modprobe.d line: every byte outside [A-Za-z0-9/._+-] as %XX. */
export function percentEncode(p: string): string {
  let out = '';
  for (const b of Buffer.from(p, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9/._+-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** `options vordr mode=... rules=VERDICT:PROT:PATH,...` */
export function modprobeLine(module: string, flags: readonly { name: string; value: string }[], rules: readonly Rule[], v: Vocab): string {
  const params = flags.map((f) => `${f.name}=${f.value}`);
  const list = sortRules(rules).map((r) => `${v.valueName(r.verdict) ?? r.verdict}:${v.protName(r.prot)}:${percentEncode(r.path)}`);
  if (list.length > 0) params.push(`rules=${list.join(',')}`);
  return `options ${module} ${params.join(' ')}\n`;
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
  /** Written with the rules file (the boot policy); none when undefined. */
  readonly modprobeConf?: string;
  /** After every console line that changes the module, save the rules file. */
  readonly autosave?: boolean;
  /** Resolves relative FILEs of save/load. */
  readonly cwd?: string;
  /**
   * Asks the interactive console's user a yes/no question (a bare `block`
   * or `allow` switches the whole machine).  Without it, runLine refuses
   * those two; scripts never ask.
   */
  readonly confirm?: (question: string) => Promise<boolean>;
  readonly now?: () => Date;
}

/** What a mode means, for the confirmation and its question. */
function modeMeaning(v: Vocab, value: number): string {
  if (value === v.value(GRAMMAR_WORDS.modeBlock)) return 'every packet is dropped';
  if (value === v.value(GRAMMAR_WORDS.modeDisabled)) return 'every packet passes, nothing is enforced';
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
  const message = raw.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
  return { kind: 'io', op, path: file, code, message };
}

export function readLines(file: string): ResultAsync<string[], RunError> {
  return ResultAsync.fromPromise(fs.readFile(file, 'utf8'), (e) => ioError('read', file, e)).map(splitLines);
}

/** Writes text to file so that a reader sees the old or the new file, never half of one. */
export function writeAtomic(file: string, text: string): ResultAsync<void, RunError> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const write = async (): Promise<void> => {
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    const fh = await fs.open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
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
  };
  return ResultAsync.fromPromise(write(), (e) => {
    void fs.unlink(tmp).catch(() => undefined);
    return ioError('write', file, e);
  });
}

export class Runner {
  private readonly loading: string[] = [];
  /**
   * Rules this runner made 'until exit' (ruleKey).  The kernel removes them
   * when this process's socket closes; kept here for the console's display
   * (and endSession) until it reads Rule.life instead.
   */
  readonly session = new Map<string, { prot: number; path: string }>();
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
    if (cmd.kind === 'mode' && cmd.value !== this.opts.vocab.value(GRAMMAR_WORDS.modeEnabled)) {
      const word = text.trim().split(/\s+/)[0] ?? '';
      const mode = this.opts.vocab.valueName(cmd.value) ?? String(cmd.value);
      const what = `${word}: mode ${mode} (${modeMeaning(this.opts.vocab, cmd.value)})`;
      if (!this.opts.confirm)
        return err({ kind: 'run', error: { kind: 'declined', what: `${what} needs confirmation, which this console cannot ask; type 'set ${GRAMMAR_WORDS.modeFlag} ${mode}' to mean it` } });
      if (!(await this.opts.confirm(`Switch the whole machine to mode ${mode}: ${modeMeaning(this.opts.vocab, cmd.value)}?`))) {
        this.opts.out.write(`${word}: cancelled; the mode is unchanged\n`);
        return ok('continue');
      }
    }
    this.speaking = true;
    let r: Result<Next, RunError>;
    try {
      r = await runParsed(parsed.value, this.context());
    } finally {
      this.speaking = false;
    }
    if (r.isOk() && CHANGES.has(cmd.kind) && cmd.kind !== 'rule') {
      if (cmd.kind === 'clear-rule') this.session.delete(ruleKey(cmd.prot, cmd.path));
      if (cmd.kind === 'clear-path' || cmd.kind === 'clear-verdict')
        for (const [k, s] of this.session) if (cmd.kind === 'clear-verdict' || s.path === cmd.path) this.session.delete(k);
      this.opts.out.write(`${confirmation(cmd, this.opts.vocab)}\n`);
      if (this.opts.autosave) {
        const saved = await this.write(undefined, false);
        if (saved.isErr()) return err({ kind: 'run', error: saved.error });
      }
    }
    return r.mapErr((error): LineError => ({ kind: 'run', error }));
  }

  /**
   * Adds a rule in the kernel with its lifetime; an 'always' rule of a
   * console (autosave) is also recorded in the rules file.  Returns the one
   * line that confirms it.  A rule the kernel took but the file could not is
   * a 'not-saved' error: the rule is in force.
   */
  applyRule(r: { verdict: number; prot: number; path: string; lifetime: Lifetime }): ResultAsync<string, RunError> {
    const v = this.opts.vocab;
    const key = ruleKey(r.prot, r.path);
    const timeout = r.lifetime.kind === 'for' ? r.lifetime.seconds : undefined;
    const text = [`${v.valueName(r.verdict) ?? r.verdict} ${v.protName(r.prot)} ${quote(r.path)}`, lifetimeWords(r.lifetime)].filter((x) => x).join(' ');
    return this.opts.kernel
      .ruleAdd(r.prot, r.path, r.verdict, timeout)
      .mapErr((e): RunError => (e.kind === 'kernel' && e.code === 'ENOSPC' ? { kind: 'table-full' } : e))
      .andThen(() => {
        if (r.lifetime.kind === 'exit') this.session.set(key, { prot: r.prot, path: r.path });
        else this.session.delete(key);
        if (r.lifetime.kind === 'reboot') this.untilReboot.add(key);
        else this.untilReboot.delete(key);
        if (r.lifetime.kind !== 'always') return okAsync<string, RunError>(`added ${text} (temporary: not saved)`);
        if (!this.opts.autosave || this.scriptDepth > 0) return okAsync<string, RunError>(`added ${text}`);
        return this.write(undefined, false)
          .map((file) => `added ${text} (saved in ${file})`)
          .mapErr((e): RunError => (e.kind === 'io' ? { kind: 'not-saved', what: `the rule ${text}`, file: e.path, code: e.code, message: e.message } : e));
      });
  }

  private readonly untilReboot = new Set<string>();

  /** Writes the rules file (and the modprobe.d line) from the module's state, without a message. */
  saveRulesFile(): ResultAsync<string, RunError> {
    return this.write(undefined, false);
  }

  /** Removes the rules that were to last until the console exits. */
  async endSession(): Promise<void> {
    for (const [k, r] of this.session) {
      await this.opts.kernel.ruleDel(r.path, r.prot);
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

  /** `save [FILE]`: the boot flags and the rules, as commands of the same grammar. */
  private save(file: string | undefined): ResultAsync<string, RunError> {
    return this.write(file, true);
  }

  /** The boot flags' current values, by canonical name. */
  private bootFlags(): ResultAsync<{ name: string; value: string }[], RunError> {
    const v = this.opts.vocab;
    const flags = BOOT_FLAGS.map((n) => v.flag(n)).filter((f): f is NonNullable<typeof f> => f !== undefined);
    return ResultAsync.combine(
      flags.map((f) => this.opts.kernel.flagGet(f.id).map((value) => ({ name: f.name, value: flagValueName(v, f.name, value) }))),
    ).mapErr((e): RunError => e);
  }

  private write(file: string | undefined, say: boolean): ResultAsync<string, RunError> {
    const rulesFile = this.resolve(this.opts.rulesFile ?? DEFAULT_RULES_FILE);
    const target = file === undefined ? rulesFile : this.resolve(file);
    const v = this.opts.vocab;
    return this.opts.kernel
      .ruleList()
      .mapErr((e): RunError => e)
      .andThen((all) => this.bootFlags().map((flags) => ({ all, flags })))
      .andThen(({ all, flags }) => {
        // A rule that expires ("once") or lasts until the console exits is
        // not the user's standing policy.
        const rules = all.filter((r) => r.timeout === 0 && !this.session.has(ruleKey(r.prot, r.path)) && !this.untilReboot.has(ruleKey(r.prot, r.path)));
        const bad = rules.filter((r) => !representable(r.path)).map((r) => r.path);
        if (bad.length > 0) return errAsync<string, RunError>({ kind: 'unrepresentable', paths: bad });
        const now = (this.opts.now ?? (() => new Date()))();
        const text = [
          `# vordr rules, written by 'save' on ${now.toISOString().replace(/\.\d{3}Z$/, 'Z')}`,
          `# Run with 'vordr -f ${quote(target)}' or 'load ${quote(target)}'; it adds to the rules in place.`,
          ...flags.map((f) => `set ${f.name} ${f.value}`),
          ...sortRules(rules).map((r) => ruleCommand(r, v)),
          '',
        ].join('\n');
        const conf = this.opts.modprobeConf;
        return writeAtomic(target, text)
          .andThen(() =>
            conf !== undefined && target === rulesFile
              ? writeAtomic(this.resolve(conf), modprobeLine(v.schema.family.name, flags, rules, v))
              : okAsync<void, RunError>(undefined),
          )
          .map(() => {
            if (say) this.opts.out.write(`saved ${rules.length} rule${rules.length === 1 ? '' : 's'} to ${target}\n`);
            return target;
          });
      });
  }
}
