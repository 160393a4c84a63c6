// `vordr --service`: headless.  Applies --set flags and the rules file, then
// writes every event as one JSON object per line on standard output until
// SIGTERM or SIGINT.  Errors go to standard error, one line each.

import type { Writable } from 'node:stream';
import { decodeEvent, decodeLoss, eventJson, isLost, lossJson, Users } from './events';
import type { Kernel } from './kernel';
import type { Vocab } from './vocab';

export interface ServiceOptions {
  readonly kernel: Kernel;
  readonly vocab: Vocab;
  readonly out: Writable;
  readonly err: Writable;
  /** Resolves when the service should stop (a signal). */
  readonly stopped: Promise<void>;
}

/** Resolves when stopped; false when the module sends no events. */
export async function runService(o: ServiceOptions): Promise<boolean> {
  const users = new Users();
  // One line per loss, in order with the events: its line waits for the
  // module's evdrops, and the events after it wait for that line.
  const backlog: (string | Promise<string>)[] = [];
  let flushed: Promise<void> = Promise.resolve();
  const emit = (line: string | Promise<string>): void => {
    if (backlog.length === 0 && typeof line === 'string') {
      o.out.write(`${line}\n`);
      return;
    }
    backlog.push(line);
    if (backlog.length === 1) flushed = flush();
  };
  const flush = async (): Promise<void> => {
    while (backlog.length > 0) {
      o.out.write(`${await backlog[0]}\n`);
      backlog.shift();
    }
  };
  const listening = o.kernel.subscribe((m) => {
    if (isLost(m)) {
      const now = new Date();
      emit(
        o.kernel.evdrops().match(
          (n) => lossJson(decodeLoss(m, n), now),
          () => lossJson(decodeLoss(m), now),
        ),
      );
      return;
    }
    emit(eventJson(decodeEvent(m, o.vocab), users));
  });
  if (!listening) o.err.write('vordr: this module sends no events; enforcing the rules without logging them\n');
  await o.stopped;
  o.kernel.unsubscribe();
  await flushed;
  return listening;
}
