#!/usr/bin/env node
// vordr: the console daemon.
//
//   vordr -f FILE     run the commands in FILE, report every failed line
//   vordr < FILE      standard input is not a terminal: run it as a script
//   vordr             on a terminal: a line console (`vordr> `)
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
import { Kernel, describeKernelError, type KernelError } from './kernel';
import { Runner, readLines, splitLines } from './script';
import { describeRunError } from './grammar';
import { vocabulary } from './vocab';

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  notLoaded: 3,
  schema: 4,
  addon: 5,
} as const;

/** The one options table: parseArgs' config and --help are made from it. */
export const OPTIONS = {
  file: { short: 'f', type: 'string', arg: 'FILE', help: 'run the commands in FILE and exit (- reads standard input)' },
  help: { short: 'h', type: 'boolean', help: 'print this help and exit' },
  version: { short: 'V', type: 'boolean', help: 'print the version and exit' },
} as const satisfies Record<string, { short: string; type: 'string' | 'boolean'; arg?: string; help: string }>;

export interface Io {
  readonly argv: readonly string[];
  readonly stdin: Readable & { isTTY?: boolean };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable;
  readonly loadAddon: () => Result<Addon, LoadError>;
  readonly cwd?: string;
  /** Where `save` writes without a FILE. */
  readonly rulesFile?: string;
}

type Options = { file?: string; help?: boolean; version?: boolean };

function parseOptions(argv: readonly string[]): Result<Options, string> {
  const options = Object.fromEntries(
    Object.entries(OPTIONS).map(([name, o]) => [name, { short: o.short, type: o.type }]),
  ) as { [K in keyof typeof OPTIONS]: { short: string; type: (typeof OPTIONS)[K]['type'] } };
  try {
    const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    return ok(values as Options);
  } catch (e) {
    return err(e instanceof Error ? e.message.split('\n')[0] ?? '' : String(e));
  }
}

export function usage(): string {
  const rows = Object.entries(OPTIONS).map(([name, o]) => {
    const arg = 'arg' in o ? ` ${o.arg}` : '';
    return [`-${o.short}, --${name}${arg}`, o.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return [
    'usage: vordr [-f FILE]',
    '',
    'Per-application firewall console. With -f, or with commands on standard',
    'input, runs them as a script; on a terminal, opens the console',
    "(type 'help' there for the commands).",
    '',
    ...rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`),
    '',
    'exit status: 0 ok, 1 a line failed, 2 usage error, 3 module not loaded,',
    '4 module built from another schema version, 5 native addon not built',
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
  } else if (opts.file === '-' || !io.stdin.isTTY) {
    const lines = await readAll(io.stdin);
    if (lines.isErr()) {
      say(lines.error);
      return EXIT.usage;
    }
    script = { source: '<stdin>', lines: lines.value };
  }

  const addon = io.loadAddon();
  if (addon.isErr()) {
    say(`the native addon cannot be loaded from ${addon.error.path} (${addon.error.message}); build it with 'npm run build'`);
    return EXIT.addon;
  }
  const connected = await Kernel.connect(addon.value);
  if (connected.isErr()) {
    say(describeKernelError(connected.error));
    return connectExit(connected.error);
  }
  const kernel = connected.value;
  try {
    const runner = new Runner({
      kernel,
      vocab: vocabulary(addon.value.schema),
      out: io.stdout,
      err: io.stderr,
      ...(io.cwd !== undefined ? { cwd: io.cwd } : {}),
      ...(io.rulesFile !== undefined ? { rulesFile: io.rulesFile } : {}),
    });
    if (script) {
      const r = await runner.runLines(script.lines, script.source);
      return r.failures.length > 0 ? EXIT.failed : EXIT.ok;
    }
    await runConsole({ input: io.stdin, output: io.stdout, err: io.stderr, terminal: Boolean(io.stdin.isTTY && io.stdout.isTTY) }, runner);
    return EXIT.ok;
  } finally {
    kernel.close();
  }
}

if (require.main === module) {
  void main({
    argv: process.argv.slice(2),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    loadAddon: () => loadAddon(),
  }).then((code) => {
    process.exitCode = code;
  });
}
