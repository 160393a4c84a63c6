// The interactive console (blessed): what `vordr` opens on a terminal.
//
//   +- header: mode, unkrule, rule and event counts, privileges ------------+
//   | events (F2) or per-application stats (F3)                            |
//   | rules with counters                                                  |
//   | output of commands                                                   |
//   vordr> command line (history: up/down, completion: Tab)
//
// F1 (or `help`) shows the help screen.  A prompt for an unknown
// application (prompts.ts) opens on top and takes the keys until answered.
// The terminal is restored on quit, on Ctrl-C, on SIGTERM/SIGHUP and on a
// crash; rules chosen "until exit" are removed first.

import blessed from 'blessed';
import type { Readable, Writable } from 'node:stream';
import { decodeEvent, EVENT_HEADER, eventRow, isLost, Users, type VordrEvent } from './events';
import { ruleLine, sortRules, statsLines } from './format';
import { COMMANDS, describeRunError, flagValueName, help, parseLine, type Output } from './grammar';
import type { Kernel } from './kernel';
import { LineEditor } from './lineedit';
import { describeDecision, ONCE_SECONDS, Prompts, TIMEOUT_DECISION, type Clock } from './prompts';
import { describeLineError, ruleKey, type Runner } from './script';
import { PERMISSION_MESSAGE } from './kernel';
import type { Vocab } from './vocab';

export const CONSOLE_PROMPT = 'vordr> ';
const REFRESH_MS = 2000;
const KEEP_EVENTS = 2000;
const KEEP_OUTPUT = 500;

export interface UiOptions {
  readonly kernel: Kernel;
  readonly vocab: Vocab;
  /** Builds the runner whose output goes to the console's output pane. */
  readonly runner: (out: Output, err: Output) => Runner;
  readonly privileged: boolean;
  readonly input: Readable;
  readonly output: Writable;
  readonly rulesFile: string;
  readonly promptTimeoutSeconds?: number;
  /** Run before the console takes input (the rules file, --set); output goes to the pane. */
  readonly start?: (runner: Runner) => Promise<void>;
  /** The prompts' clock (tests). */
  readonly clock?: Clock;
  /** Called once the screen exists, with a way to read it (tests). */
  readonly attach?: (ui: UiHandle) => void;
}

/** What a test may see of a running console. */
export interface UiHandle {
  /** The screen as drawn, one string per row. */
  rows(): string[];
}

/** Exit status of the console. */
export type UiExit = { code: number };

/** A writer into a list of lines (the output pane), which several writers may share. */
class Lines implements Output {
  private partial = '';
  constructor(
    readonly lines: string[],
    private readonly keep: number,
    private readonly changed: () => void,
    private readonly style?: (s: string) => string,
  ) {}
  write(text: string): boolean {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) this.lines.push(this.style ? this.style(p) : blessed.escape(p));
    if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
    this.changed();
    return true;
  }
}

function tail<T>(xs: readonly T[], n: number, back = 0): T[] {
  const end = Math.max(0, xs.length - back);
  return xs.slice(Math.max(0, end - Math.max(0, n)), end);
}

export function runUi(o: UiOptions): Promise<UiExit> {
  return new Promise<UiExit>((resolve) => {
    const screen = blessed.screen({
      input: o.input as never,
      output: o.output as never,
      smartCSR: true,
      fullUnicode: true,
      title: 'vordr',
      warnings: false,
      autoPadding: true,
      dockBorders: false,
    });
    // With a UTF-8 locale, draw the borders as UTF-8 rather than in the
    // terminal's alternate character set: the same on screen, and a captured
    // screen (tmux capture-pane) keeps them.
    const tput = screen.tput as unknown as { unicode: boolean; brokenACS: boolean };
    if (tput.unicode) tput.brokenACS = true;
    let destroyed = false;
    const restore = () => {
      if (destroyed) return;
      destroyed = true;
      try {
        screen.destroy();
      } catch {
        // The terminal went away; nothing left to restore.
      }
      // Stop reading the terminal, or node waits on it forever.
      const input = o.input as Readable & { setRawMode?: (raw: boolean) => unknown; unref?: () => void };
      try {
        input.setRawMode?.(false);
      } catch {
        // Not a terminal any more.
      }
      input.pause();
      input.unref?.();
    };

    const users = new Users();
    const events: VordrEvent[] = [];
    let eventsBack = 0;
    let lost = 0;
    let view: 'events' | 'stats' = 'events';
    let statsText: string[] = ['(loading)'];
    /** A rule line, colored and cut to the pane's width when drawn; or a message. */
    let rulesText: (string | { line: string; color: 'red' | 'green'; session: boolean })[] = ['(loading)'];
    let ruleCount = 0;
    let flags: Record<string, string> = {};

    const header = blessed.box({ parent: screen, top: 0, left: 0, width: '100%', height: 1, tags: true, style: { fg: 'black', bg: 'cyan' } });
    const main = blessed.box({ parent: screen, left: 0, width: '100%', border: { type: 'line' }, tags: true, label: ' events ' });
    const rules = blessed.box({ parent: screen, left: 0, width: '100%', border: { type: 'line' }, tags: true, label: ' rules ' });
    const outBox = blessed.box({ parent: screen, left: 0, width: '100%', border: { type: 'line' }, tags: true, label: ' output ' });
    const cmdline = blessed.box({ parent: screen, left: 0, width: '100%', height: 1, tags: true });
    const helpBox = blessed.box({
      parent: screen,
      top: 1,
      left: 'center',
      width: '100%',
      height: '100%-2',
      border: { type: 'line' },
      label: ' help: Esc or F1 closes ',
      tags: true,
      hidden: true,
      scrollable: true,
    });
    const promptBox = blessed.box({
      parent: screen,
      top: 'center',
      left: 'center',
      width: '80%',
      height: 12,
      border: { type: 'line' },
      label: ' unknown application ',
      tags: true,
      hidden: true,
      style: { border: { fg: 'yellow' } },
    });

    const render = (() => {
      let queued = false;
      return () => {
        if (queued || destroyed) return;
        queued = true;
        setImmediate(() => {
          queued = false;
          if (!destroyed) draw();
        });
      };
    })();

    const outLines: string[] = [];
    const out = new Lines(outLines, KEEP_OUTPUT, render);
    const errOut = new Lines(outLines, KEEP_OUTPUT, render, (s) => `{red-fg}${blessed.escape(s)}{/red-fg}`);
    const runner = o.runner(out, errOut);
    const editor = new LineEditor(o.vocab);

    const prompts = new Prompts({
      kernel: o.kernel,
      runner,
      vocab: o.vocab,
      ...(o.promptTimeoutSeconds !== undefined ? { timeoutSeconds: o.promptTimeoutSeconds } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
      onChange: render,
      onDecided: (p, d, error, timedOut) => {
        if (error) errOut.write(`error: ${p.path}: ${describeRunError(error)}\n`);
        else out.write(`${timedOut ? 'no answer: ' : ''}${describeDecision(p, d)}\n`);
        void refresh();
      },
    });

    const layout = () => {
      const h = Math.max(12, Number(screen.height) || 24);
      const avail = h - 2;
      const outH = Math.max(4, Math.floor(avail * 0.25));
      const rulesH = Math.max(4, Math.floor(avail * 0.25));
      const mainH = Math.max(4, avail - outH - rulesH);
      main.top = 1;
      main.height = mainH;
      rules.top = 1 + mainH;
      rules.height = rulesH;
      outBox.top = 1 + mainH + rulesH;
      outBox.height = outH;
      cmdline.top = h - 1;
    };

    const inner = (b: blessed.Widgets.BoxElement) => Math.max(1, Number(b.height) - 2);

    function drawHeader(): void {
      const f = (n: string) => flags[n] ?? '?';
      const who = o.privileged ? '{green-fg}admin{/green-fg}' : `{red-fg}read-only: ${PERMISSION_MESSAGE}{/red-fg}`;
      const prompt = prompts.waiting() > 0 ? `  {yellow-fg}${prompts.waiting()} waiting{/yellow-fg}` : '';
      header.setContent(
        ` {bold}vordr{/bold}  mode ${f('mode')}  unkrule ${f('unkrule')}  rules ${ruleCount}  events ${events.length}${lost ? ` (lost ${lost})` : ''}${prompt}  ${who}  F1 help F2 events F3 stats`,
      );
    }

    function drawMain(): void {
      const n = inner(main);
      if (view === 'stats') {
        main.setLabel(' stats: per application (F2: events) ');
        main.setContent(tail(statsText, n).join('\n'));
        return;
      }
      main.setLabel(eventsBack > 0 ? ` events (scrolled back ${eventsBack}; End: follow) ` : ' events (F3: stats) ');
      const width = Math.max(1, Number(main.width) - 2);
      const fit = (t: string) => (t.length > width ? `${t.slice(0, width - 1)}~` : t);
      const rows = tail(events, n - 1, eventsBack).map((e) => {
        const text = blessed.escape(fit(eventRow(e, users)));
        return e.verdict === 'pending' ? `{yellow-fg}${text}{/yellow-fg}` : e.verdict === 'block' ? `{red-fg}${text}{/red-fg}` : text;
      });
      main.setContent([`{bold}${blessed.escape(fit(EVENT_HEADER))}{/bold}`, ...rows].join('\n'));
    }

    function drawPrompt(): void {
      const p = prompts.current();
      if (!p) {
        promptBox.hide();
        return;
      }
      promptBox.show();
      promptBox.setFront();
      const c = p.choice;
      const mark = (on: boolean, s: string) => (on ? `{inverse}${s}{/inverse}` : s);
      const e = p.last;
      const dest = e.dir === 'in' ? `from ${e.saddr}` : `to ${e.daddr}`;
      const port = e.prot === 'tcp' || e.prot === 'udp' ? `:${e.dir === 'in' ? e.sport : e.dport}` : '';
      const more = prompts.waiting() > 1 ? `   (${prompts.waiting() - 1} more waiting)` : '';
      promptBox.setContent(
        [
          ` {bold}${blessed.escape(p.path)}{/bold} wants to connect${more}`,
          ` pid ${e.pid}  user ${blessed.escape(users.name(e.uid))}  ${e.prot} ${e.dir} ${dest}${port}  attempts ${p.attempts}`,
          '',
          ` ${mark(c.verdict === 'allow', '[a] allow')}   ${mark(c.verdict === 'block', '[b] block')}`,
          ` ${mark(c.scope === 'prot', `[p] ${p.prots.join('+')} only`)}   ${mark(c.scope === 'any', '[n] any protocol')}`,
          ` ${mark(c.duration === 'once', `[o] once (${ONCE_SECONDS} s)`)}   ${mark(c.duration === 'session', '[e] until exit')}   ${mark(c.duration === 'always', '[w] always')}`,
          '',
          ` Enter: ${blessed.escape(describeDecision(p, c))}`,
          ` Esc: block once.  No answer in ${prompts.secondsLeft()} s: block once.`,
        ].join('\n'),
      );
    }

    function drawCmdline(): void {
      const t = editor.text;
      const at = editor.cursor;
      const before = blessed.escape(t.slice(0, at));
      const under = blessed.escape(t.slice(at, at + 1) || ' ');
      const after = blessed.escape(t.slice(at + 1));
      const prefix = prompts.current() ? '{yellow-fg}answer the prompt above{/yellow-fg} ' : '';
      cmdline.setContent(`${prefix}{bold}${CONSOLE_PROMPT}{/bold}${before}{inverse}${under}{/inverse}${after}`);
    }

    function draw(): void {
      layout();
      drawHeader();
      drawMain();
      rules.setLabel(` rules (${ruleCount}) `);
      const width = Math.max(1, Number(rules.width) - 2);
      rules.setContent(
        tail(rulesText, inner(rules))
          .map((r) => {
            if (typeof r === 'string') return r;
            const note = r.session ? ' until exit' : '';
            const text = r.line.length + note.length > width ? `${r.line.slice(0, Math.max(1, width - note.length - 1))}~` : r.line;
            return `{${r.color}-fg}${blessed.escape(text)}{/${r.color}-fg}${r.session ? '{yellow-fg} until exit{/yellow-fg}' : ''}`;
          })
          .join('\n'),
      );
      outBox.setContent(tail(outLines, inner(outBox)).join('\n'));
      drawPrompt();
      drawCmdline();
      screen.render();
    }

    async function refresh(): Promise<void> {
      if (destroyed) return;
      const v = o.vocab;
      const list = await o.kernel.ruleList();
      if (list.isOk()) {
        ruleCount = list.value.length;
        rulesText =
          list.value.length === 0
            ? ['(no rules)']
            : sortRules(list.value).map((r) => ({
                line: ruleLine(r, v),
                color: r.verdict === v.value('block') ? ('red' as const) : ('green' as const),
                session: runner.session.has(ruleKey(r.prot, r.path)),
              }));
      } else {
        rulesText = [`{red-fg}${blessed.escape(describeRunError(list.error))}{/red-fg}`];
      }
      const next: Record<string, string> = {};
      for (const name of ['mode', 'unkrule']) {
        const f = v.flag(name);
        if (!f) continue;
        const r = await o.kernel.flagGet(f.id);
        next[name] = r.isOk() ? flagValueName(v, name, r.value) : '?';
      }
      flags = next;
      if (view === 'stats') {
        const s = await o.kernel.stats();
        statsText = s.isOk()
          ? s.value.length === 0
            ? ['no traffic counted yet']
            : statsLines(s.value).map((l, i) => (i === 0 ? `{bold}${blessed.escape(l)}{/bold}` : blessed.escape(l)))
          : [`{red-fg}${blessed.escape(describeRunError(s.error))}{/red-fg}`];
      }
      render();
    }

    // ------------------------------------------------------------ leaving
    let closing = false;
    const timers: NodeJS.Timeout[] = [];
    const leave = async (code: number) => {
      if (closing) return;
      closing = true;
      for (const t of timers) clearInterval(t);
      prompts.close();
      o.kernel.unsubscribe();
      try {
        await Promise.race([runner.endSession(), new Promise((r) => setTimeout(r, 2000))]);
      } catch {
        // Leaving anyway; the rules stay until cleared.
      }
      restore();
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
      process.off('exit', restore);
      resolve({ code });
    };
    const onSignal = () => void leave(0);
    const onCrash = (e: unknown) => {
      restore();
      process.stderr.write(`vordr: internal error, the console stopped: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.stderr.write('vordr: this is a bug; please report it with the lines above\n');
      // Session rules: best effort, then out.
      void Promise.race([runner.endSession(), new Promise((r) => setTimeout(r, 1000))]).finally(() => process.exit(6));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    process.on('exit', restore);

    // ------------------------------------------------------------ input
    const lineQueue: string[] = [];
    let running = false;
    async function runQueued(): Promise<void> {
      if (running) return;
      running = true;
      while (lineQueue.length > 0 && !closing) {
        const line = lineQueue.shift() as string;
        out.write(`${CONSOLE_PROMPT}${line}\n`);
        const parsed = parseLine(line, o.vocab);
        if (parsed.isOk() && parsed.value?.command.kind === 'help' && parsed.value.command.topic === undefined) {
          showHelp(true);
          continue;
        }
        if (parsed.isOk() && parsed.value?.command.kind === 'stats') view = 'stats';
        const r = await runner.runLine(line);
        if (r.isErr()) errOut.write(`error: ${describeLineError(r.error)}\n`);
        else if (r.value === 'stop') {
          running = false;
          await leave(0);
          return;
        }
        await refresh();
      }
      running = false;
    }

    function showHelp(on: boolean): void {
      if (on) {
        helpBox.setContent(blessed.escape(helpScreen(o.vocab)));
        helpBox.show();
        helpBox.setFront();
        helpBox.setScroll(0);
      } else helpBox.hide();
      render();
    }

    function promptKey(ch: string | undefined, name: string): void {
      switch (name || ch) {
        case 'a':
          prompts.choose({ verdict: 'allow' });
          break;
        case 'b':
          prompts.choose({ verdict: 'block' });
          break;
        case 'p':
          prompts.choose({ scope: 'prot' });
          break;
        case 'n':
          prompts.choose({ scope: 'any' });
          break;
        case 'o':
          prompts.choose({ duration: 'once' });
          break;
        case 'e':
          prompts.choose({ duration: 'session' });
          break;
        case 'w':
          prompts.choose({ duration: 'always' });
          break;
        // blessed reports Return twice, as 'return' and as 'enter': take one.
        case 'enter':
          void prompts.answer();
          break;
        case 'escape':
          void prompts.answer(TIMEOUT_DECISION);
          break;
        default:
          break;
      }
    }

    screen.on('keypress', (ch: string | undefined, key: { name?: string; ctrl?: boolean; meta?: boolean; full?: string }) => {
      if (closing) return;
      const name = key?.name ?? '';
      if (key?.ctrl && name === 'c') return void leave(0);
      if (key?.ctrl && name === 'l') {
        screen.realloc();
        return render();
      }
      if (!helpBox.hidden) {
        if (name === 'escape' || name === 'f1' || name === 'q') showHelp(false);
        else if (name === 'up' || name === 'k') helpBox.scroll(-1);
        else if (name === 'down' || name === 'j') helpBox.scroll(1);
        else if (name === 'pageup') helpBox.scroll(-inner(helpBox));
        else if (name === 'pagedown' || name === 'space') helpBox.scroll(inner(helpBox));
        return render();
      }
      if (prompts.current()) {
        promptKey(ch, name);
        return render();
      }
      switch (name) {
        case 'f1':
          return showHelp(true);
        case 'f2':
          view = 'events';
          return render();
        case 'f3':
          view = 'stats';
          return void refresh();
        case 'pageup':
          eventsBack = Math.min(Math.max(0, events.length - 1), eventsBack + Math.max(1, inner(main) - 2));
          return render();
        case 'pagedown':
          eventsBack = Math.max(0, eventsBack - Math.max(1, inner(main) - 2));
          return render();
        default:
          break;
      }
      if (name === 'end' && editor.text === '') {
        eventsBack = 0;
        return render();
      }
      const r = editor.key(ch, key ?? {});
      if (r.kind === 'submit') {
        lineQueue.push(r.line);
        void runQueued();
      } else if (r.kind === 'complete' && r.candidates.length > 1) {
        out.write(`${r.candidates.join('  ')}\n`);
      }
      render();
    });
    screen.on('resize', () => {
      layout();
      render();
    });

    // ------------------------------------------------------------ events
    const listening = o.kernel.subscribe((m) => {
      if (closing) return;
      if (isLost(m)) {
        lost++;
        return render();
      }
      const e = decodeEvent(m, o.vocab);
      events.push(e);
      if (events.length > KEEP_EVENTS) events.splice(0, events.length - KEEP_EVENTS);
      if (eventsBack > 0) eventsBack++;
      if (o.privileged) prompts.offer(e);
      render();
    });

    // ------------------------------------------------------------ start
    out.write(`vordr console: F1 or 'help' for help, Tab completes, 'quit' leaves. Rules file: ${o.rulesFile}\n`);
    if (!o.privileged) errOut.write(`read-only console: ${PERMISSION_MESSAGE}; query, stats and events work\n`);
    if (!listening) errOut.write('this module sends no events: no events pane and no prompts\n');
    layout();
    draw();
    o.attach?.({
      rows: () => ((screen as unknown as { lines: unknown }).lines as [unknown, string][][]).map((l) => l.map((c) => c[1]).join('')),
    });
    void (async () => {
      if (o.start) await o.start(runner);
      await refresh();
      timers.push(
        setInterval(() => void refresh(), REFRESH_MS),
        // The prompt's countdown.
        setInterval(() => {
          if (prompts.current()) render();
        }, 1000),
      );
    })();
  });
}

/** F1: the keys, the prompt, and the commands. */
export function helpScreen(v: Vocab): string {
  return [
    'vordr console',
    '',
    'keys:',
    '  Enter         run the command line          Up/Down  history',
    '  Tab           complete a command, flag, value, protocol or path',
    '  F1            this help                     F2 events  F3 per-application stats',
    '  PageUp/Down   scroll the events; End (on an empty line) follows them again',
    '  Ctrl-L        redraw                        Ctrl-C   leave (like quit)',
    '',
    'prompts (set unkrule pending): an application no rule names asks once:',
    '  a allow / b block    p this protocol / n any protocol',
    `  o once (${ONCE_SECONDS} s) / e until the console exits / w always (saved to the rules file)`,
    '  Enter decides, Esc blocks once; an unanswered prompt blocks once.',
    '',
    help(undefined, v).trimEnd(),
    '',
    `${COMMANDS.length} commands; 'help COMMAND' shows one.`,
  ].join('\n');
}
