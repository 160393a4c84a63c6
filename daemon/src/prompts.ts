// Prompts for unknown applications (unkrule pending).
//
// The module drops the first packets of an application no rule names and
// sends a `pending` event for each; the console asks the user once per
// application (repeated attempts merge into the open prompt) and adds the
// rule chosen through Runner.applyRule: allow or block, this protocol or
// any, and for how long (DURATIONS: once = 60 s, 5 min, 1 h, until exit,
// until reboot, always).  Every lifetime but `always` is the kernel's to
// end; only `always` is saved.
//
// Safety (issue 12):
//   - A prompt is decided only after it was seen: its countdown starts when
//     the console says it is on screen (shown()), not when it is queued, so
//     four applications at once get one full countdown each, in turn.
//   - A countdown that comes due late (the console was stopped, SIGSTOP, or
//     the machine slept) starts again instead of deciding; so does the one
//     on screen at SIGCONT (resume()).  Nothing is decided while nobody
//     could see it.
//   - Keys typed before a prompt was seen never answer it: the prompt takes
//     keys only once GUARD_MS have passed since it was shown and since the
//     last key it did not take (typing in progress goes on into the command
//     line; see key()).
// A prompt nobody answers within the prompt timeout becomes `block, this
// protocol, once`: the application stays blocked for ONCE_SECONDS and is
// asked about again on a later attempt.  The application's own retry (TCP
// retransmits a dropped SYN) then passes or not, as decided.
//
// This file holds the queue and the decision; ui.ts draws it.

import { ResultAsync, errAsync, okAsync } from 'neverthrow';
import type { VordrEvent } from './events';
import type { Kernel } from './kernel';
import { ALLOW, BLOCK, VERDICT_WORDS, type Lifetime, type RunError, type VerdictWord } from './grammar';
import { parseNet, qualifierText, type Qualifiers } from './qualifiers';
import type { Runner } from './script';
import type { Vocab } from './vocab';

export const ONCE_SECONDS = 60;
export const PROMPT_TIMEOUT_SECONDS = 30;
/** Pending events still in flight after a decision do not reopen a prompt. */
export const SETTLE_MS = 5000;
/** A prompt takes keys after this long on screen without typing. */
export const GUARD_MS = 1000;
/** A countdown that fires this much late was stopped: it starts again. */
export const LATE_MS = 2000;

/** The durations a prompt offers, with their keys. */
export const DURATIONS: readonly { readonly key: string; readonly label: string; readonly lifetime: Lifetime }[] = [
  { key: 'o', label: `once (${ONCE_SECONDS} s)`, lifetime: { kind: 'for', seconds: ONCE_SECONDS } },
  { key: 'm', label: '5 min', lifetime: { kind: 'for', seconds: 300 } },
  { key: 'h', label: '1 h', lifetime: { kind: 'for', seconds: 3600 } },
  { key: 'e', label: 'until exit', lifetime: { kind: 'exit' } },
  { key: 'r', label: 'until reboot', lifetime: { kind: 'reboot' } },
  { key: 'w', label: 'always', lifetime: { kind: 'always' } },
];

export interface Decision {
  readonly verdict: VerdictWord;
  /** 'prot': the protocols the application tried; 'any': every protocol. */
  readonly scope: 'prot' | 'any';
  /**
   * Where: 'anywhere' (the application), 'address' (the far end's address
   * of the latest attempt: `to` it going out, `from` it coming in) or
   * 'port' (that address and its port; coming in, the application's own).
   */
  readonly where?: 'anywhere' | 'address' | 'port' | 'host';
  readonly lifetime: Lifetime;
}

const ONCE: Lifetime = { kind: 'for', seconds: ONCE_SECONDS };
/** What the user is asked and what Enter decides until they change it. */
export const DEFAULT_DECISION: Decision = { verdict: BLOCK, scope: 'prot', where: 'anywhere', lifetime: ONCE };
/** No answer (and Esc, which the prompt says). */
export const TIMEOUT_DECISION: Decision = { verdict: BLOCK, scope: 'prot', where: 'anywhere', lifetime: ONCE };

/** The keys choosing where (Decision.where). */
export const WHERE_KEYS = { anywhere: 'g', address: 'i', port: 't', host: 'd' } as const;

/**
 * The qualifiers a decision's `where` stands for, from the latest attempt
 * (undefined: anywhere, or an attempt without an address to name).
 */
export function whereQualifiers(p: Pending, d: Decision): Qualifiers | undefined {
  const where = d.where ?? 'anywhere';
  if (where === 'anywhere') return undefined;
  const e = p.last;
  // The name the application's own lookup gave the far end (going out only: `to` takes names).
  if (where === 'host') return e.name !== undefined && !e.is.inbound ? { to: { name: e.name, domain: false } } : undefined;
  const net = parseNet(e.is.inbound ? e.saddr : e.daddr);
  if (net.isErr()) return undefined;
  const q: { -readonly [K in keyof Qualifiers]: Qualifiers[K] } = e.is.inbound ? { from: net.value } : { to: net.value };
  // Going out the far end's port; coming in the application's own (`from ... port`).
  const port = e.dport;
  if (where === 'port' && e.is.ported) q.ports = [[port, port]];
  return q;
}

export function sameLifetime(a: Lifetime, b: Lifetime): boolean {
  return a.kind === b.kind && (a.kind !== 'for' || (b.kind === 'for' && a.seconds === b.seconds));
}

/** A lifetime as the prompt says it. */
export function lifetimeLabel(l: Lifetime): string {
  const d = DURATIONS.find((x) => sameLifetime(x.lifetime, l));
  if (d) return l.kind === 'always' ? 'always (saved)' : l.kind === 'for' ? `for ${d.label.replace(/^once \((.*)\)$/, '$1')}` : d.label;
  return l.kind === 'for' ? `for ${l.seconds} s` : l.kind;
}

export interface Pending {
  readonly path: string;
  /** The latest attempt. */
  last: VordrEvent;
  readonly first: Date;
  /** Protocols tried, in order of first attempt. */
  readonly prots: string[];
  attempts: number;
  /** When it was first on screen; undefined while it waits its turn. */
  shownAt: number | undefined;
  /** When an unanswered prompt times out; undefined until shown. */
  deadline: number | undefined;
  /** When the last key the prompt did not take was pressed. */
  lastUntaken: number;
  /** The prompt has taken a key: it takes the next ones at once. */
  taking: boolean;
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
  /** A decision was carried out (lines: what applyRule said) or failed. */
  readonly onDecided?: (p: Pending, d: Decision, error: RunError | undefined, timedOut: boolean, lines: readonly string[]) => void;
}

/** The decision as the command it stands for; v names the protocol a rule of every protocol has. */
export function describeDecision(p: Pending, d: Decision, v: Vocab): string {
  const prot = d.scope === 'any' ? v.ids.PROT.ANY : p.prots.join('+');
  const q = qualifierText(whereQualifiers(p, d));
  return `${d.verdict} ${prot} ${p.path}${q ? ` ${q}` : ''} ${lifetimeLabel(d.lifetime)}`;
}

export class Prompts {
  private readonly queue: Pending[] = [];
  private readonly settled = new Map<string, number>();
  private timer: unknown;
  /** When the armed timer should fire. */
  private due = 0;
  private readonly clock: Clock;
  private readonly timeoutMs: number;

  constructor(private readonly opts: PromptOptions) {
    this.clock = opts.clock ?? REAL_CLOCK;
    this.timeoutMs = (opts.timeoutSeconds ?? PROMPT_TIMEOUT_SECONDS) * 1000;
  }

  /** The prompt to show, if any. */
  current(): Pending | undefined {
    return this.queue[0];
  }

  /** Prompts open: the one shown and those waiting their turn. */
  waiting(): number {
    return this.queue.length;
  }

  /**
   * Takes an event: a pending one opens a prompt or merges into the one for
   * the same application.  Returns what happened to it.
   */
  offer(e: VordrEvent): 'opened' | 'merged' | 'ignored' {
    if (!e.is.pending || e.path === '') return 'ignored';
    const now = this.clock.now();
    const settledUntil = this.settled.get(this.settleKey(e.path, e.prot)) ?? this.settled.get(this.settleKey(e.path, this.opts.vocab.ids.PROT.ANY));
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
      shownAt: undefined,
      deadline: undefined,
      lastUntaken: 0,
      taking: false,
      choice: { ...DEFAULT_DECISION },
    });
    this.opts.onChange?.();
    return 'opened';
  }

  /** The console drew the current prompt: its countdown (and key guard) starts now. */
  shown(): void {
    const p = this.queue[0];
    if (!p || p.shownAt !== undefined) return;
    p.shownAt = this.clock.now();
    p.deadline = p.shownAt + this.timeoutMs;
    this.arm();
  }

  /** SIGCONT: the prompt on screen gets its whole countdown again. */
  resume(): void {
    const p = this.queue[0];
    if (!p || p.shownAt === undefined) return;
    this.restart(p);
    this.opts.onChange?.();
  }

  /** Whether the current prompt takes keys now (else they go to the command line). */
  takesKeys(): boolean {
    const p = this.queue[0];
    if (!p || p.shownAt === undefined) return false;
    if (p.taking) return true;
    const now = this.clock.now();
    return now - p.shownAt >= GUARD_MS && now - p.lastUntaken >= GUARD_MS;
  }

  /**
   * A key pressed while a prompt is open.  Returns false when the prompt
   * does not take it (not shown yet, or typing still going on): the caller
   * gives it to the command line.
   */
  key(name: string): boolean {
    const p = this.queue[0];
    if (!p) return false;
    if (!this.takesKeys()) {
      p.lastUntaken = this.clock.now();
      return false;
    }
    p.taking = true;
    const d = DURATIONS.find((x) => x.key === name);
    if (d) this.choose({ lifetime: d.lifetime });
    else if (name === 'a') this.choose({ verdict: ALLOW });
    else if (name === 'b') this.choose({ verdict: BLOCK });
    else if (name === 'p') this.choose({ scope: 'prot' });
    else if (name === 'n') this.choose({ scope: 'any' });
    else if (name === WHERE_KEYS.anywhere) this.choose({ where: 'anywhere' });
    else if (name === WHERE_KEYS.address) this.choose({ where: 'address' });
    // A port only where the protocol has ports.
    else if (name === WHERE_KEYS.port && p.last.is.ported) this.choose({ where: 'port' });
    else if (name === WHERE_KEYS.host && p.last.name !== undefined && !p.last.is.inbound) this.choose({ where: 'host' });
    else if (name === 'enter') void this.answer();
    else if (name === 'escape') void this.answer(TIMEOUT_DECISION);
    return true;
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

  /** Seconds until the current prompt times out (the whole timeout until it is shown). */
  secondsLeft(): number {
    const p = this.queue[0];
    if (!p) return 0;
    if (p.deadline === undefined) return this.timeoutMs / 1000;
    return Math.max(0, Math.ceil((p.deadline - this.clock.now()) / 1000));
  }

  /** Stops the timer (console exit); unanswered prompts are left to the module. */
  close(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private settleKey(path: string, prot: string): string {
    return `${prot} ${path}`;
  }

  private restart(p: Pending): void {
    p.shownAt = this.clock.now();
    p.deadline = p.shownAt + this.timeoutMs;
    this.arm();
  }

  private arm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.queue[0];
    if (!p || p.deadline === undefined) return;
    const ms = Math.max(0, p.deadline - this.clock.now());
    this.due = this.clock.now() + ms;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.queue[0] !== p) return this.arm();
      if (this.clock.now() - this.due > LATE_MS) {
        // Stopped (SIGSTOP, a suspended machine): nobody saw the countdown end.
        this.restart(p);
        this.opts.onChange?.();
        return;
      }
      void this.decide(p, TIMEOUT_DECISION, true);
    }, ms);
  }

  private decide(p: Pending, d: Decision, timedOut: boolean): ResultAsync<void, RunError> {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
    const v = this.opts.vocab;
    const until = this.clock.now() + SETTLE_MS;
    for (const prot of d.scope === 'any' ? [v.ids.PROT.ANY] : p.prots) this.settled.set(this.settleKey(p.path, prot), until);
    // The next prompt's countdown starts when the console shows it.
    this.arm();
    this.opts.onChange?.();

    const verdict = v.valueOf(VERDICT_WORDS[d.verdict].verdict);
    const prots = d.scope === 'any' ? [v.prot(v.ids.PROT.ANY)] : p.prots.map((n) => v.prot(n));
    const lines: string[] = [];
    const q = whereQualifiers(p, d);
    const add = async (): Promise<RunError | undefined> => {
      if (verdict === undefined || prots.some((x) => x === undefined)) return { kind: 'unsupported', what: `a verdict or protocol of this prompt` };
      for (const prot of prots as number[]) {
        const r = await this.opts.runner.applyRule({ verdict, prot, path: p.path, ...(q ? { q } : {}), lifetime: d.lifetime });
        if (r.isErr()) return r.error;
        lines.push(r.value);
      }
      return undefined;
    };
    return ResultAsync.fromSafePromise(add()).andThen((error) => {
      this.opts.onDecided?.(p, d, error, timedOut, lines);
      return error ? errAsync<void, RunError>(error) : okAsync<void, RunError>(undefined);
    });
  }
}
