// A minimal line console (node:readline): a `vordr> ` prompt with history,
// the same parser and runner as command files, one line at a time.  An error
// is printed and the console goes on; quit, disconnect or end of input leave.
// The full blessed console replaces this later.

import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Output } from './grammar';
import { describeLineError, type Runner } from './script';

export const PROMPT = 'vordr> ';

export interface ConsoleIo {
  readonly input: Readable;
  readonly output: Writable;
  readonly err: Output;
  /** Line editing and history; false for a pipe or a test stream. */
  readonly terminal: boolean;
  /**
   * Given the console's way of asking a yes/no question on its own line;
   * the runner's confirm calls it (a bare `block` or `allow` typed here).
   */
  readonly asker?: (ask: (question: string) => Promise<boolean>) => void;
}

/** y or yes (any case) is yes; anything else, Enter included, is no. */
export function isYes(answer: string): boolean {
  return /^\s*y(es)?\s*$/i.test(answer);
}

/** Resolves with the number of lines that failed. */
export async function runConsole(io: ConsoleIo, runner: Runner): Promise<number> {
  const rl = readline.createInterface({
    input: io.input,
    output: io.output,
    prompt: PROMPT,
    terminal: io.terminal,
    historySize: 1000,
    removeHistoryDuplicates: true,
  });
  let failed = 0;
  // rl.question takes the next line for itself, so the loop below never
  // sees the answer as a command.
  io.asker?.((question) => new Promise<boolean>((resolve) => rl.question(`${question} [y/N] `, (a) => resolve(isYes(a)))));
  rl.prompt();
  for await (const line of rl) {
    const r = await runner.runLine(line);
    if (r.isErr()) {
      failed++;
      io.err.write(`error: ${describeLineError(r.error)}\n`);
    } else if (r.value === 'stop') {
      break;
    }
    rl.prompt();
  }
  rl.close();
  return failed;
}
