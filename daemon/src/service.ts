// `vordr --service`: headless.  Applies --set flags and the rules file, then
// writes every event as one JSON object per line on standard output until
// SIGTERM or SIGINT.  Errors go to standard error, one line each.

import type { Writable } from 'node:stream';
import { decodeEvent, eventJson, isLost, Users } from './events';
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
  let lost = 0;
  const listening = o.kernel.subscribe((m) => {
    if (isLost(m)) {
      lost++;
      o.out.write(`${JSON.stringify({ time: new Date().toISOString(), lost: true, times: lost })}\n`);
      return;
    }
    o.out.write(`${eventJson(decodeEvent(m, o.vocab), users)}\n`);
  });
  if (!listening) o.err.write('vordr: this module sends no events; enforcing the rules without logging them\n');
  await o.stopped;
  o.kernel.unsubscribe();
  return listening;
}
