#!/usr/bin/env node
// vordr: the console daemon.
//
//   vordr -f FILE     run the commands in FILE, report every failed line
//   vordr < FILE      standard input is not a terminal: run it as a script
//   vordr             on a terminal: the interactive console (ui.ts); with
//                     only standard input a terminal, a line console
//   vordr --service   headless: the rules file, then events as JSON lines
//   vordr --load-policy  the saved policy into the module (boot), then exit
//
// Exit codes:
//
//   | code | meaning                                                        |
//   |------|----------------------------------------------------------------|
//   | 0    | success                                                        |
//   | 1    | one or more lines failed (each reported as FILE:LINE: error)   |
//   | 2    | usage error: bad option, unreadable command file               |
//   | 3    | the kernel module is not loaded (or cannot be reached)         |
//   | 4    | the module was built from another schema version (defs.x)      |
//   | 5    | the native addon is not built or cannot be loaded              |
//   | 6    | internal error: the console crashed (terminal restored)        |
//   | 7    | --load-policy: the saved policy was not loaded (fails closed)  |
//
// Every stream and the addon are injected through Io, so tests drive main()
// without a terminal; the guarded call at the bottom is the only place that
// touches process.

import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { Result, ResultAsync, err, ok } from 'neverthrow';
import { loadAddon, type Addon, type LoadError } from './addon';
import { runConsole } from './console';
import { Kernel, PERMISSION_MESSAGE, describeKernelError, type KernelError } from './kernel';
import { DEFAULT_RULES_FILE, Runner, readLines, splitLines } from './script';
import { DEFAULT_POLICY_FILE, bootPolicy, describeBootError } from './policy';
import { describeParseError, describeRunError, parseLine, type Output } from './grammar';
import { PROMPT_TIMEOUT_SECONDS } from './prompts';
import { runService } from './service';
import { runUi } from './ui';
import { reference } from './reference';
import { vocabulary } from './vocab';

/** The exit codes and what each means: EXIT, --help and docs/COMMANDS.md are made from it. */
export const EXITS = {
  ok: { code: 0, meaning: 'success' },
  failed: { code: 1, meaning: 'one or more lines failed (each reported as FILE:LINE: error)' },
  usage: { code: 2, meaning: 'usage error: bad option, unreadable command file' },
  notLoaded: { code: 3, meaning: 'the kernel module is not loaded (or cannot be reached)' },
  schema: { code: 4, meaning: 'the module was built from another schema version (defs.x): rebuild and reload it' },
  addon: { code: 5, meaning: 'the native addon is not built or cannot be loaded (npm ci)' },
  internal: { code: 6, meaning: 'internal error: the console crashed (the terminal is restored)' },
  policy: { code: 7, meaning: '--load-policy: the saved policy was not loaded (the module fails closed)' },
} as const;

export const EXIT = Object.fromEntries(Object.entries(EXITS).map(([k, v]) => [k, v.code])) as {
  readonly [K in keyof typeof EXITS]: (typeof EXITS)[K]['code'];
};

/** The one options table: parseArgs' config and --help are made from it. */
export const OPTIONS = {
  file: { short: 'f', type: 'string', arg: 'FILE', help: 'run the commands in FILE and exit (- reads standard input)' },
  service: { type: 'boolean', help: 'run headless: apply --set and the rules file, print events as JSON lines' },
  rules: { short: 'r', type: 'string', arg: 'FILE', help: `the rules file (default $VORDR_RULES or ${DEFAULT_RULES_FILE})` },
  'policy-file': { type: 'string', arg: 'FILE', help: `the boot policy derived from the rules file (default $VORDR_POLICY_FILE or ${DEFAULT_POLICY_FILE})` },
  'load-policy': { type: 'boolean', help: 'load the saved policy into the module (deriving it again if the rules file changed) and exit' },
  set: { short: 's', type: 'string', multiple: true, arg: 'FLAG=VALUE', help: 'set a module flag first (repeatable)' },
  'prompt-timeout': { type: 'string', arg: 'SECONDS', help: `an unanswered prompt blocks once after SECONDS (default ${PROMPT_TIMEOUT_SECONDS})` },
  help: { short: 'h', type: 'boolean', help: 'print this help and exit' },
  version: { short: 'V', type: 'boolean', help: 'print the version and exit' },
  reference: { type: 'boolean', help: 'print the command reference (docs/COMMANDS.md, Markdown) and exit' },
} as const satisfies Record<string, { short?: string; type: 'string' | 'boolean'; multiple?: boolean; arg?: string; help: string }>;

export interface Io {
  readonly argv: readonly string[];
  readonly stdin: Readable & { isTTY?: boolean };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable;
  readonly loadAddon: () => Result<Addon, LoadError>;
  readonly cwd?: string;
  /** Where `save` writes without a FILE (--rules wins; else $VORDR_RULES). */
  readonly rulesFile?: string;
  /** The policy file derived from it (--policy-file wins; else $VORDR_POLICY_FILE). */
  readonly policyFile?: string;
  /** May change rules (CAP_NET_ADMIN); read from /proc/self/status when absent. */
  readonly privileged?: boolean;
  /** --service stops when this resolves (default: SIGTERM or SIGINT). */
  readonly stopService?: Promise<void>;
}

type Options = {
  file?: string;
  service?: boolean;
  rules?: string;
  'policy-file'?: string;
  'load-policy'?: boolean;
  set?: string[];
  'prompt-timeout'?: string;
  help?: boolean;
  version?: boolean;
  reference?: boolean;
};

/**
 * CAP_NET_ADMIN in the effective set.  capBit: its number, which the addon
 * takes from <linux/capability.h>; without it, root is assumed privileged.
 */
export function hasNetAdmin(capBit: number | undefined, status = '/proc/self/status'): boolean {
  const m = Result.fromThrowable(() => fs.readFileSync(status, 'utf8'), () => undefined)()
    .map((t) => /^CapEff:\s*([0-9a-f]+)/m.exec(t)?.[1])
    .unwrapOr(undefined);
  if (m === undefined || capBit === undefined) return process.geteuid?.() === 0;
  return (BigInt(`0x${m}`) >> BigInt(capBit)) & 1n ? true : false;
}

function parseOptions(argv: readonly string[]): Result<Options, string> {
  const options = Object.fromEntries(
    Object.entries(OPTIONS).map(([name, o]) => [
      name,
      { type: o.type, ...('short' in o ? { short: o.short } : {}), ...('multiple' in o ? { multiple: o.multiple } : {}) },
    ]),
  ) as Parameters<typeof parseArgs>[0] extends infer P ? (P extends { options?: infer O } ? NonNullable<O> : never) : never;
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    const o = values as Options;
    if (o.service && o.file !== undefined) return err('--service and -f cannot be used together');
    if (o['load-policy'] && (o.service || o.file !== undefined || o.set !== undefined))
      return err('--load-policy runs alone (with --rules and --policy-file only)');
    const t = o['prompt-timeout'];
    if (t !== undefined && !/^[1-9]\d{0,5}$/.test(t)) return err(`--prompt-timeout wants whole seconds (1-999999), not '${t}'`);
    for (const x of o.set ?? []) if (!/^[^=\s]+=\S+$/.test(x)) return err(`--set wants FLAG=VALUE, not '${x}'`);
    return ok(o);
  } catch (e) {
    return err(e instanceof Error ? e.message.split('\n')[0] ?? '' : String(e));
  }
}

export function usage(): string {
  const rows = Object.entries(OPTIONS).map(([name, o]) => {
    const arg = 'arg' in o ? ` ${o.arg}` : '';
    return [`${'short' in o ? `-${o.short}, ` : '    '}--${name}${arg}`, o.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return [
    'usage: vordr [-f FILE | --service | --load-policy] [-r FILE] [--policy-file FILE] [-s FLAG=VALUE]...',
    '',
    'Per-application firewall console. With -f, or with commands on standard',
    'input, runs them as a script; on a terminal, opens the console',
    "(type 'help' there for the commands); with --service, runs headless.",
    '',
    ...rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`),
    '',
    'exit status:',
    ...Object.values(EXITS).map((e) => `  ${e.code}  ${e.meaning}`),
    '',
    'Every command, flag, event field and exit code: vordr --reference prints them',
    '(docs/COMMANDS.md; installed, in /usr/share/doc/vordr).',
    '',
  ].join('\n');
}

export function version(): string {
  const pkg = Result.fromThrowable(
    () => JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown },
    () => undefined,
  )();
  const v = pkg.isOk() && typeof pkg.value.version === 'string' ? pkg.value.version : 'unknown';
  return `vordr ${v}\n`;
}

function readAll(stream: Readable): ResultAsync<string[], string> {
  const read = async (): Promise<string> => {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  };
  return ResultAsync.fromPromise(read(), (e) => `cannot read standard input: ${e instanceof Error ? e.message : String(e)}`).map(splitLines);
}

function addonMessage(e: LoadError): string {
  return `the native addon cannot be loaded from ${e.path} (${e.message}); build it with 'npm run build'`;
}

function connectExit(e: KernelError): number {
  switch (e.kind) {
    case 'not-loaded':
      return EXIT.notLoaded;
    case 'schema-mismatch':
    case 'addon-mismatch':
      return EXIT.schema;
    default:
      return EXIT.notLoaded;
  }
}

export async function main(io: Io): Promise<number> {
  const say = (line: string) => io.stderr.write(`vordr: ${line}\n`);
  const parsed = parseOptions(io.argv);
  if (parsed.isErr()) {
    say(`${parsed.error}; 'vordr --help' lists the options`);
    return EXIT.usage;
  }
  const opts = parsed.value;
  if (opts.help) {
    io.stdout.write(usage());
    return EXIT.ok;
  }
  if (opts.version) {
    io.stdout.write(version());
    return EXIT.ok;
  }
  if (opts.reference) {
    // The schema's words come from the addon; the module is not needed.
    const a = io.loadAddon();
    if (a.isErr()) {
      say(addonMessage(a.error));
      return EXIT.addon;
    }
    io.stdout.write(reference(vocabulary(a.value.schema), { options: OPTIONS, exits: EXITS }));
    return EXIT.ok;
  }

  // The script is read before the module is touched: a bad file name is a
  // usage error whatever state the module is in.
  let script: { source: string; lines: string[] } | undefined;
  if (opts.file !== undefined && opts.file !== '-') {
    const lines = await readLines(path.resolve(io.cwd ?? process.cwd(), opts.file));
    if (lines.isErr()) {
      say(`${describeRunError(lines.error)}; check the -f FILE argument`);
      return EXIT.usage;
    }
    script = { source: opts.file, lines: lines.value };
  } else if (opts.file === '-' || (!io.stdin.isTTY && !opts.service && !opts['load-policy'])) {
    const lines = await readAll(io.stdin);
    if (lines.isErr()) {
      say(lines.error);
      return EXIT.usage;
    }
    script = { source: '<stdin>', lines: lines.value };
  }

  const addon = io.loadAddon();
  if (addon.isErr()) {
    say(addonMessage(addon.error));
    return EXIT.addon;
  }
  const connected = await Kernel.connect(addon.value);
  if (connected.isErr()) {
    say(describeKernelError(connected.error));
    return connectExit(connected.error);
  }
  const kernel = connected.value;
  const vocab = vocabulary(addon.value.schema);
  const rulesFile = path.resolve(io.cwd ?? process.cwd(), opts.rules ?? io.rulesFile ?? DEFAULT_RULES_FILE);
  const policyFile = path.resolve(io.cwd ?? process.cwd(), opts['policy-file'] ?? io.policyFile ?? DEFAULT_POLICY_FILE);
  if (opts['load-policy']) {
    try {
      const r = await bootPolicy(kernel, vocab, { rulesFile, policyFile });
      if (r.isErr()) {
        say(describeBootError(r.error, policyFile));
        const k = r.error.kind === 'kernel' ? r.error.error.kind : undefined;
        return k === 'not-loaded' || k === 'schema-mismatch' || k === 'addon-mismatch' ? connectExit((r.error as { error: KernelError }).error) : EXIT.policy;
      }
      const { rules, flags, derived, ms, deriveMs, streamMs } = r.value;
      io.stdout.write(
        `loaded the saved policy ${policyFile}${derived ? ` (derived again from ${rulesFile})` : ''}: ${rules} rule${rules === 1 ? '' : 's'}, ${flags} flag${flags === 1 ? '' : 's'} in ${ms} ms` +
          ` (${derived ? `deriving ${deriveMs} ms, ` : ''}the transaction ${streamMs} ms)\n`,
      );
      return EXIT.ok;
    } finally {
      kernel.close();
    }
  }
  const privileged = io.privileged ?? hasNetAdmin(addon.value.schema.platform?.cap.net_admin);
  const sets = (opts.set ?? []).map((x) => {
    const at = x.indexOf('=');
    return `set ${x.slice(0, at)} ${x.slice(at + 1)}`;
  });
  for (const [i, line] of sets.entries()) {
    const p = parseLine(line, vocab);
    if (p.isErr()) {
      kernel.close();
      say(`--set ${(opts.set ?? [])[i]}: ${describeParseError(p.error)}`);
      return EXIT.usage;
    }
  }
  const runnerFor = (out: Output, errOut: Output, autosave: boolean, extra: { confirm?: (question: string) => Promise<boolean> } = {}) =>
    new Runner({
      ...extra,
      kernel,
      vocab,
      out,
      err: errOut,
      ...(io.cwd !== undefined ? { cwd: io.cwd } : {}),
      rulesFile,
      policyFile,
      autosave,
    });
  // The console and the service start from the saved policy: --set, then
  // the rules file.  A bad line there is reported and the rest still runs.
  const start = async (runner: Runner, errOut: Output): Promise<void> => {
    if (!privileged) return;
    if (fs.existsSync(rulesFile)) {
      const r = await runner.runFile(rulesFile);
      if (r.isErr()) errOut.write(`vordr: ${describeRunError(r.error)}\n`);
    }
    // --set wins over the file and is recorded in it (its own `set` line
    // replaced, or appended), so the file says what holds.
    if (sets.length > 0) {
      const { saved } = await runner.runAndRecord(sets, '--set');
      if (saved.isErr()) errOut.write(`vordr: ${describeRunError(saved.error)}\n`);
    }
  };
  try {
    if (script) {
      const runner = runnerFor(io.stdout, io.stderr, false);
      const first = sets.length > 0 ? await runner.runLines(sets, '--set') : { failures: [] };
      const r = await runner.runLines(script.lines, script.source);
      return r.failures.length + first.failures.length > 0 ? EXIT.failed : EXIT.ok;
    }
    const timeout = opts['prompt-timeout'];
    if (opts.service) {
      const runner = runnerFor(io.stderr, io.stderr, false);
      if (!privileged) say(`read-only: ${PERMISSION_MESSAGE}; logging events only`);
      // The one place the service puts the saved policy in force: at its
      // start and each time the module comes back (service.ts).
      // The saved policy goes in through the module's transaction (the
      // derived policy file, derived again when the rules file changed):
      // all of it or, failing that, closed and said why.  Then --set.
      const applySavedPolicy = async (): Promise<void> => {
        if (!privileged) return;
        const r = await bootPolicy(kernel, vocab, { rulesFile, policyFile });
        if (r.isErr()) say(describeBootError(r.error, policyFile));
        // The rules file changed since it was last derived: what of it
        // did not parse is not in force; say which lines.
        else for (const u of r.value.unparsed) say(`${rulesFile}:${u.line}: error: ${u.message} (not in force)`);
        if (sets.length > 0) {
          const { saved } = await runner.runAndRecord(sets, '--set');
          if (saved.isErr()) say(describeRunError(saved.error));
        }
      };
      const a = addon.value;
      await runService({
        kernel,
        vocab,
        out: io.stdout,
        err: io.stderr,
        stopped: io.stopService ?? untilSignal(),
        applyPolicy: applySavedPolicy,
        ...(a.watch ? { watch: (cb) => a.watch!(cb) } : {}),
        ...(a.notify ? { notify: (state) => a.notify!(state) } : {}),
        ...(privileged ? { runner } : {}),
        ...(timeout !== undefined ? { promptTimeoutSeconds: Number(timeout) } : {}),
      });
      return EXIT.ok;
    }
    if (io.stdin.isTTY && io.stdout.isTTY) {
      const r = await runUi({
        kernel,
        vocab,
        runner: (out: Output, errOut: Output, extra?: { confirm?: (question: string) => Promise<boolean> }) => runnerFor(out, errOut, privileged, extra),
        privileged,
        input: io.stdin,
        output: io.stdout,
        rulesFile,
        ...(timeout !== undefined ? { promptTimeoutSeconds: Number(timeout) } : {}),
        start: (runner) => start(runner, { write: (t: string) => runnerErr(runner, t) }),
      });
      return r.code;
    }
    // Typed at a terminal, a bare block or allow is asked on its own line;
    // read from a pipe it runs as E7 wrote it.
    const typed = Boolean(io.stdin.isTTY);
    let ask: ((question: string) => Promise<boolean>) | undefined;
    const runner = runnerFor(io.stdout, io.stderr, privileged, typed ? { confirm: (q) => (ask ? ask(q) : Promise.resolve(false)) } : {});
    if (!privileged) say(`read-only console: ${PERMISSION_MESSAGE}`);
    await start(runner, io.stderr);
    await runConsole({ input: io.stdin, output: io.stdout, err: io.stderr, terminal: Boolean(io.stdin.isTTY && io.stdout.isTTY), asker: (a) => (ask = a) }, runner);
    await runner.endSession();
    return EXIT.ok;
  } finally {
    kernel.close();
  }
}

/** Start-up messages of the console go where the runner reports errors. */
function runnerErr(runner: Runner, text: string): void {
  runner.errOutput.write(text);
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

if (require.main === module) {
  void main({
    argv: process.argv.slice(2),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    loadAddon: () => loadAddon(),
    ...(process.env['VORDR_RULES'] ? { rulesFile: process.env['VORDR_RULES'] } : {}),
    ...(process.env['VORDR_POLICY_FILE'] ? { policyFile: process.env['VORDR_POLICY_FILE'] } : {}),
  }).then((code) => {
    process.exitCode = code;
  });
}
