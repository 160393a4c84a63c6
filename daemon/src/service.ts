// `vordr --service`: headless.  Applies the saved policy (--set flags and
// the rules file), then writes every event as one JSON object per line on
// standard output until SIGTERM or SIGINT, or until standard output is
// closed (`vordr --service | head`): all of them end it quietly, status 0.
// Errors and notices go to standard error, one line each.
//
// Readiness: with a service manager (NOTIFY_SOCKET, systemd's Type=notify)
// READY=1 goes out only once the saved policy is in the kernel and events
// are subscribed, so units ordered after vordr start protected; STATUS=
// lines say what it is doing.  Without NOTIFY_SOCKET nothing is sent.
//
// The module unloaded while the service runs: the generic netlink
// controller announces it (the addon's watch()), the service says so on
// standard error and waits; when the module is loaded again it opens the
// family afresh (a new family id and multicast group), applies the saved
// policy again and resumes the event stream, saying so.  It does not exit,
// so systemd does not restart it in a loop.
//
// A pending prompt with no console (unkrule pending): the module drops the
// application's packets and sends `pending` events; a console would ask the
// user.  The service has nobody to ask, so each application's prompt gets
// the console's unanswered-prompt default after the prompt timeout
// (--prompt-timeout, 30 s): block it, for the protocols it tried, once
// (ONCE_SECONDS, a rule the kernel removes by itself; nothing is saved), and
// it is asked about again on a later attempt.  The decision is one JSON line
// on standard output: {"time", "prompt": "unanswered", "after": SECONDS,
// "path", "prot": [...], "verdict", "seconds"}.  A console running beside
// the service prompts too; its answer replaces the service's rule.

import type { Writable } from 'node:stream';
import { decodeEvent, decodeLoss, eventJson, isLost, lossJson, Users } from './events';
import { describeRunError } from './grammar';
import type { Kernel } from './kernel';
import { describeKernelError } from './kernel';
import { PROMPT_TIMEOUT_SECONDS, Prompts, type Decision, type Pending } from './prompts';
import type { Runner } from './script';
import type { Vocab } from './vocab';
import type { Event, FamilyChange } from './addon';

export interface ServiceOptions {
  readonly kernel: Kernel;
  readonly vocab: Vocab;
  readonly out: Writable;
  readonly err: Writable;
  /** Resolves when the service should stop (a signal). */
  readonly stopped: Promise<void>;
  /** Puts the saved policy in force: at start and each time the module comes back. */
  readonly applyPolicy?: () => Promise<void>;
  /** Reports the vordr family coming and going (the addon's watch()); absent: not watched. */
  readonly watch?: (callback: (change: FamilyChange) => void) => Promise<{ close(): void }>;
  /** sd_notify(3); returns false when there is no service manager. */
  readonly notify?: (state: string) => boolean;
  /** Decides pending prompts nobody answers (privileged services only). */
  readonly runner?: Runner;
  readonly promptTimeoutSeconds?: number;
}

/** How long to keep trying to open a family the controller says is back. */
const REOPEN_TRIES = 50;
const REOPEN_DELAY_MS = 100;

export interface ServiceResult {
  /** The module sends events. */
  readonly listening: boolean;
  /** It ended because standard output was closed. */
  readonly outputClosed: boolean;
}

export async function runService(o: ServiceOptions): Promise<ServiceResult> {
  const users = new Users();
  const say = (line: string): void => {
    o.err.write(`vordr: ${line}\n`);
  };
  // Standard error closed as well is no reason to crash.
  o.err.on?.('error', () => {});
  let notifying = o.notify !== undefined;
  const notify = (state: string): void => {
    if (!notifying || !o.notify) return;
    try {
      o.notify(state);
    } catch (e) {
      notifying = false;
      say(`cannot tell the service manager '${state.split('\n')[0]}': ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  // Standard output closed (EPIPE): stop, quietly.
  let outputClosed = false;
  let closeOutput: () => void = () => {};
  const outputGone = new Promise<void>((resolve) => (closeOutput = resolve));
  o.out.on('error', (e: NodeJS.ErrnoException) => {
    if (!outputClosed && e.code !== 'EPIPE') say(`standard output: ${e.message}; stopping`);
    outputClosed = true;
    closeOutput();
  });
  const write = (line: string): void => {
    if (!outputClosed) o.out.write(`${line}\n`);
  };

  // One line per loss, in order with the events: its line waits for the
  // module's evdrops, and the events after it wait for that line.
  const backlog: (string | Promise<string>)[] = [];
  let flushed: Promise<void> = Promise.resolve();
  const emit = (line: string | Promise<string>): void => {
    if (backlog.length === 0 && typeof line === 'string') {
      write(line);
      return;
    }
    backlog.push(line);
    if (backlog.length === 1) flushed = flush();
  };
  const flush = async (): Promise<void> => {
    while (backlog.length > 0) {
      write(await backlog[0]!);
      backlog.shift();
    }
  };

  const timeoutSeconds = o.promptTimeoutSeconds ?? PROMPT_TIMEOUT_SECONDS;
  const prompts: Prompts | undefined = o.runner
    ? new Prompts({
        kernel: o.kernel,
        runner: o.runner,
        vocab: o.vocab,
        timeoutSeconds,
        // Nobody to show it to: its countdown starts at once.
        onChange: () => prompts?.shown(),
        onDecided: (p: Pending, d: Decision, error, timedOut) => {
          if (error) {
            say(`the unanswered prompt for ${p.path}: ${describeRunError(error)}`);
            return;
          }
          emit(
            JSON.stringify({
              time: new Date().toISOString(),
              prompt: timedOut ? 'unanswered' : 'answered',
              after: timeoutSeconds,
              path: p.path,
              prot: d.scope === 'any' ? [o.vocab.ids.PROT.ANY] : p.prots,
              verdict: d.verdict,
              ...(d.lifetime.kind === 'for' ? { seconds: d.lifetime.seconds } : { until: d.lifetime.kind }),
            }),
          );
        },
      })
    : undefined;

  const onEvent = (m: Event): void => {
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
    const e = decodeEvent(m, o.vocab);
    emit(eventJson(e, users));
    prompts?.offer(e);
  };

  // The module's comings and goings, one at a time.
  let up = true;
  let stopping = false;
  let queue: Promise<void> = Promise.resolve();
  const serially = (f: () => Promise<void>): void => {
    queue = queue.then(f, f);
  };
  const gone = async (): Promise<void> => {
    if (!up || stopping) return;
    up = false;
    o.kernel.unsubscribe();
    say('the kernel module was unloaded: no policy is in force; waiting for it to be loaded again');
    notify('STATUS=waiting for the kernel module to be loaded again (no policy in force)');
  };
  const back = async (): Promise<void> => {
    if (up || stopping) return;
    // The controller announces the family from the module's init; the
    // family answers as soon as it is registered, but allow it a moment.
    let last: string | undefined;
    for (let i = 0; i < REOPEN_TRIES && !stopping; i++) {
      const r = await o.kernel.reopen();
      if (r.isOk()) {
        last = undefined;
        break;
      }
      last = describeKernelError(r.error);
      if (r.error.kind === 'schema-mismatch') break;
      await new Promise((res) => setTimeout(res, REOPEN_DELAY_MS));
    }
    if (stopping) return;
    if (last !== undefined) {
      say(`the kernel module was loaded again but cannot be used (${last}); waiting for it to be loaded again`);
      return;
    }
    await resume();
  };
  // The family is open afresh: the policy and the events again.
  const resume = async (): Promise<void> => {
    await o.applyPolicy?.();
    const listening = o.kernel.subscribe(onEvent);
    const was = up;
    up = true;
    if (was) return;
    say(`the kernel module is back: the saved policy is in force again${listening ? ' and events are logged again' : ''}`);
    notify('STATUS=the saved policy is in force again (the kernel module came back); logging events');
  };
  const onChange = (c: FamilyChange): void => {
    if ('lost' in c) {
      // The watch itself lost messages: the module may have gone, or gone
      // and come back with a new family; open it afresh to know.
      serially(async () => {
        if (stopping) return;
        const r = await o.kernel.reopen();
        if (r.isOk()) return resume();
        if (r.error.kind === 'not-loaded') return gone();
      });
      return;
    }
    serially(c.present ? back : gone);
  };

  // Watched first, so an unload while the policy is applied is not missed.
  let watching: { close(): void } | undefined;
  if (o.watch) {
    try {
      watching = await o.watch(onChange);
    } catch (e) {
      say(`cannot watch for the kernel module going away: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  notify('STATUS=applying the saved policy');
  await o.applyPolicy?.();
  const listening = o.kernel.subscribe(onEvent);
  if (!listening) say('this module sends no events; enforcing the rules without logging them');
  notify(`READY=1\nSTATUS=the saved policy is in force; ${listening ? 'logging events' : 'this module sends no events'}`);

  await Promise.race([o.stopped, outputGone]);
  stopping = true;
  notify('STOPPING=1');
  watching?.close();
  prompts?.close();
  o.kernel.unsubscribe();
  await queue;
  await flushed;
  return { listening, outputClosed };
}
