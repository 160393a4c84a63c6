// Prompts for unknown applications (unkrule pending).
//
// The module drops the first packets of an application no rule names and
// sends a `pending` event for each; the console asks the user once per
// application (repeated attempts merge into the open prompt) and adds the
// rule chosen: allow or block, this protocol or any, and for how long:
//
//   once     a rule the module removes after ONCE_SECONDS (RULE_ADD timeout)
//   session  a rule the console removes when it exits (never saved)
//   always   a rule saved to the rules file
//
// A prompt nobody answers within the prompt timeout becomes `block, this
// protocol, once`: the application stays blocked for a while and is asked
// about again on a later attempt.  The application's own retry (TCP
// retransmits a dropped SYN) then passes or not, as decided.
//
// This file holds the queue and the decision; ui.ts draws it.

import { ResultAsync, errAsync, okAsync } from 'neverthrow';
import type { VordrEvent } from './events';
import type { Kernel } from './kernel';
import type { Lifetime, RunError } from './grammar';
import type { Runner } from './script';
import type { Vocab } from './vocab';

export const ONCE_SECONDS = 60;
export const PROMPT_TIMEOUT_SECONDS = 30;
/** Pending events still in flight after a decision do not reopen a prompt. */
export const SETTLE_MS = 5000;

export type Duration = 'once' | 'session' | 'always';

export interface Decision {
  readonly verdict: 'allow' | 'block';
  /** 'prot': the protocols the application tried; 'any': every protocol. */
  readonly scope: 'prot' | 'any';
  readonly duration: Duration;
}

/** What the user is asked and what Enter decides until they change it. */
export const DEFAULT_DECISION: Decision = { verdict: 'block', scope: 'prot', duration: 'once' };
export const TIMEOUT_DECISION: Decision = { verdict: 'block', scope: 'prot', duration: 'once' };

export interface Pending {
  readonly path: string;
  /** The latest attempt. */
  last: VordrEvent;
  readonly first: Date;
  /** Protocols tried, in order of first attempt. */
  readonly prots: string[];
  attempts: number;
  /** When an unanswered prompt times out. */
  readonly deadline: number;
  choice: Decision;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_CLOCK: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface PromptOptions {
  readonly kernel: Kernel;
  readonly runner: Runner;
  readonly vocab: Vocab;
  readonly timeoutSeconds?: number;
  readonly clock?: Clock;
  /** The queue changed: redraw. */
  readonly onChange?: () => void;
  /** A decision was carried out (or failed): say so. */
  readonly onDecided?: (p: Pending, d: Decision, error: RunError | undefined, timedOut: boolean) => void;
}

export function describeDecision(p: Pending, d: Decision): string {
  const prot = d.scope === 'any' ? 'any' : p.prots.join('+');
  const how = d.duration === 'once' ? `for ${ONCE_SECONDS} s` : d.duration === 'session' ? 'until the console exits' : 'always (saved)';
  return `${d.verdict} ${prot} ${p.path} ${how}`;
}

export class Prompts {
  private readonly queue: Pending[] = [];
  private readonly settled = new Map<string, number>();
  private timer: unknown;
  private readonly clock: Clock;
  private readonly timeoutMs: number;

  constructor(private readonly opts: PromptOptions) {
    this.clock = opts.clock ?? REAL_CLOCK;
    this.timeoutMs = (opts.timeoutSeconds ?? PROMPT_TIMEOUT_SECONDS) * 1000;
  }

  /** The prompt on screen, if any. */
  current(): Pending | undefined {
    return this.queue[0];
  }

  waiting(): number {
    return this.queue.length;
  }

  /**
   * Takes an event: a pending one opens a prompt or merges into the one for
   * the same application.  Returns what happened to it.
   */
  offer(e: VordrEvent): 'opened' | 'merged' | 'ignored' {
    if (e.verdict !== 'pending' || e.path === '') return 'ignored';
    const now = this.clock.now();
    const settledUntil = this.settled.get(this.settleKey(e.path, e.prot)) ?? this.settled.get(this.settleKey(e.path, 'any'));
    if (settledUntil !== undefined && settledUntil > now) return 'ignored';
    const open = this.queue.find((p) => p.path === e.path);
    if (open) {
      open.last = e;
      open.attempts += 1 + e.count;
      if (!open.prots.includes(e.prot)) open.prots.push(e.prot);
      this.opts.onChange?.();
      return 'merged';
    }
    this.queue.push({
      path: e.path,
      last: e,
      first: e.time,
      prots: [e.prot],
      attempts: 1 + e.count,
      deadline: now + this.timeoutMs,
      choice: { ...DEFAULT_DECISION },
    });
    this.arm();
    this.opts.onChange?.();
    return 'opened';
  }

  /** Changes the choice of the prompt on screen. */
  choose(change: Partial<Decision>): void {
    const p = this.queue[0];
    if (!p) return;
    p.choice = { ...p.choice, ...change };
    this.opts.onChange?.();
  }

  /** Carries out the current prompt's choice (or `d`). */
  answer(d?: Decision): ResultAsync<void, RunError> {
    const p = this.queue[0];
    if (!p) return okAsync(undefined);
    return this.decide(p, d ?? p.choice, false);
  }

  /** Seconds until the current prompt times out. */
  secondsLeft(): number {
    const p = this.queue[0];
    return p ? Math.max(0, Math.ceil((p.deadline - this.clock.now()) / 1000)) : 0;
  }

  /** Stops the timer (console exit); unanswered prompts are left to the module. */
  close(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private settleKey(path: string, prot: string): string {
    return `${prot} ${path}`;
  }

  private arm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.queue[0];
    if (!p) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      const head = this.queue[0];
      if (head === p) void this.decide(p, TIMEOUT_DECISION, true);
      else this.arm();
    }, Math.max(0, p.deadline - this.clock.now()));
  }

  private decide(p: Pending, d: Decision, timedOut: boolean): ResultAsync<void, RunError> {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
    const v = this.opts.vocab;
    const until = this.clock.now() + SETTLE_MS;
    for (const prot of d.scope === 'any' ? ['any'] : p.prots) this.settled.set(this.settleKey(p.path, prot), until);
    this.arm();
    this.opts.onChange?.();

    const verdict = v.value(d.verdict);
    const prots = d.scope === 'any' ? [v.prot('any')] : p.prots.map((n) => v.prot(n));
    const lifetime: Lifetime =
      d.duration === 'once' ? { kind: 'for', seconds: ONCE_SECONDS } : d.duration === 'session' ? { kind: 'exit' } : { kind: 'always' };
    const add = async (): Promise<RunError | undefined> => {
      if (verdict === undefined || prots.some((x) => x === undefined)) return { kind: 'unsupported', what: `a verdict or protocol of this prompt` };
      for (const prot of prots as number[]) {
        const r = await this.opts.runner.applyRule({ verdict, prot, path: p.path, lifetime });
        if (r.isErr()) return r.error;
      }
      return undefined;
    };
    return ResultAsync.fromSafePromise(add()).andThen((error) => {
      this.opts.onDecided?.(p, d, error, timedOut);
      return error ? errAsync<void, RunError>(error) : okAsync<void, RunError>(undefined);
    });
  }
}
