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
  type Parsed,
  type RunError,
} from './grammar';
import type { Kernel, Rule } from './kernel';
import { flagValueName } from './grammar';
import type { Vocab } from './vocab';

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
  readonly now?: () => Date;
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
   * Rules that last until the console exits (ruleKey): never saved, and
   * removed by endSession().
   */
  readonly session = new Map<string, { prot: number; path: string }>();

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
    failures.sort((a, b) => a.line - b.line);
    if (failures.length > 0) {
      const which = failures.map((f) => f.line).join(', ');
      this.opts.err.write(`${source}: ${failures.length} line${failures.length === 1 ? '' : 's'} failed (line${failures.length === 1 ? '' : 's'} ${which})\n`);
    }
    return { failures, stopped };
  }

  /** One console line: errors are returned for the console to print. */
  async runLine(text: string): Promise<Result<Next, LineError>> {
    const parsed = parseLine(text, this.opts.vocab);
    if (parsed.isErr()) return err({ kind: 'parse', error: parsed.error });
    if (parsed.value === null) return ok('continue');
    const cmd = parsed.value.command;
    const r = await runParsed(parsed.value, this.context());
    if (r.isOk() && CHANGES.has(cmd.kind)) {
      // A rule typed by hand is the user's own: it outlives the session.
      if (cmd.kind === 'rule' || cmd.kind === 'clear-rule') this.session.delete(ruleKey(cmd.prot, cmd.path));
      if (cmd.kind === 'clear-path' || cmd.kind === 'clear-verdict')
        for (const [k, s] of this.session) if (cmd.kind === 'clear-verdict' || s.path === cmd.path) this.session.delete(k);
      if (this.opts.autosave) {
        const saved = await this.persist();
        if (saved.isErr()) return err({ kind: 'run', error: saved.error });
      }
    }
    return r.mapErr((error): LineError => ({ kind: 'run', error }));
  }

  /** Saves the rules file (and the modprobe.d line) without a message. */
  persist(): ResultAsync<string, RunError> {
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
        const rules = all.filter((r) => r.timeout === 0 && !this.session.has(ruleKey(r.prot, r.path)));
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
