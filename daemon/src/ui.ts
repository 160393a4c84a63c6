// The interactive console (blessed): what `vordr` opens on a terminal.
//
//   +- header: mode, unkrule, rule and event counts, loss, prompts, privileges -+
//   | events (F2) or per-application stats (F3)                                 |
//   | rules with counters                                                       |
//   | output of commands                                                        |
//   vordr> command line (history: up/down, completion: Tab)
//
// F1 (or `help`) shows the help screen.  F6 moves the keys to the events,
// rules and output panes in turn (and back to the command line), where the
// arrows, PageUp/PageDown and Home/End scroll them; the mouse wheel scrolls
// the pane under it.  In the events pane a row can be selected, the events
// filtered by its application, verdict or direction, and a rule made from
// it.  Events allowed for want of a rule (`allow norule`) are summarized,
// one row per application with a count, unless asked for one by one.
//
// A prompt for an unknown application (prompts.ts) opens on top and takes
// the keys once it has been on screen for a moment without typing; a bare
// `block` or `allow` asks for confirmation in a dialog of its own.  The
// terminal is restored on quit, on Ctrl-C, on SIGTERM/SIGHUP and on a
// crash.  SIGCONT redraws the screen and restarts the prompt's countdown.

import blessed from 'blessed';
import type { Readable, Writable } from 'node:stream';
import { appName, clock, decodeEvent, decodeLoss, isLost, peer, Users, type Loss, type VordrEvent } from './events';
import { quote, ruleLine, sortRules, statsLines } from './format';
import { ALLOW, BLOCK, COMMANDS, describeRunError, flagValueName, help, parseLine, type Output, type VerdictWord } from './grammar';
import type { Kernel } from './kernel';
import { LineEditor } from './lineedit';
import { DURATIONS, describeDecision, GUARD_MS, lifetimeLabel, ONCE_SECONDS, Prompts, sameLifetime, TIMEOUT_DECISION, WHERE_KEYS, type Clock } from './prompts';
import { describeLineError, type Runner } from './script';
import { PERMISSION_MESSAGE, isUnsupported } from './kernel';
import type { Vocab } from './vocab';

export const CONSOLE_PROMPT = 'vordr> ';
const REFRESH_MS = 2000;
const KEEP_EVENTS = 2000;
const KEEP_OUTPUT = 1000;

export interface UiOptions {
  readonly kernel: Kernel;
  readonly vocab: Vocab;
  /** Builds the runner whose output goes to the console's output pane; confirm asks the console's user. */
  readonly runner: (out: Output, err: Output, extra?: { confirm?: (question: string) => Promise<boolean> }) => Runner;
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

/** A line of the output pane: its text, and whether it is an error (red). */
type OutLine = { readonly text: string; readonly err: boolean };

/** A writer into a list of lines (the output pane), which several writers may share. */
class Lines implements Output {
  private partial = '';
  constructor(
    readonly buf: { lines: OutLine[]; dropped: number },
    private readonly keep: number,
    private readonly changed: () => void,
    private readonly err = false,
  ) {}
  write(text: string): boolean {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) this.buf.lines.push({ text: p, err: this.err });
    if (this.buf.lines.length > this.keep) {
      const n = this.buf.lines.length - this.keep;
      this.buf.lines.splice(0, n);
      this.buf.dropped += n;
    }
    this.changed();
    return true;
  }
}

// ------------------------------------------------------------ event columns

type Column = 'time' | 'app' | 'pid' | 'user' | 'dir' | 'prot' | 'destination' | 'verdict' | 'reason';

/**
 * The events pane's columns for a width: the verdict always shows (it comes
 * before the reason, the only column of no fixed width); pid and user, then
 * wider app and destination columns, are added as the width allows.
 */
export function eventColumns(width: number): { name: Column; width: number }[] {
  const cols: { name: Column; width: number }[] = [
    { name: 'time', width: 8 },
    { name: 'app', width: 12 },
    { name: 'dir', width: 3 },
    { name: 'prot', width: 4 },
    { name: 'destination', width: 21 },
    { name: 'verdict', width: 7 },
  ];
  const used = () => cols.reduce((n, c) => n + c.width + 1, 0);
  const room = (extra: number) => width - used() - extra >= 20;
  if (room(8)) cols.splice(2, 0, { name: 'pid', width: 7 });
  if (room(9)) cols.splice(cols.findIndex((c) => c.name === 'dir'), 0, { name: 'user', width: 8 });
  const app = cols.find((c) => c.name === 'app') as { width: number };
  if (room(4)) app.width = 16;
  const dest = cols.find((c) => c.name === 'destination') as { width: number };
  if (room(9)) dest.width = 30;
  return [...cols, { name: 'reason', width: Math.max(1, width - used()) }];
}

function cells(cols: readonly { name: Column; width: number }[], value: (c: Column) => string, width: number): string {
  const text = cols
    .map((c, i) => {
      const v = value(c.name);
      if (i === cols.length - 1) return v;
      return v.length > c.width ? `${v.slice(0, c.width - 1)}~` : v.padEnd(c.width);
    })
    .join(' ');
  return text.length > width ? `${text.slice(0, Math.max(1, width - 1))}~` : text;
}

export function eventHeader(width: number): string {
  return cells(eventColumns(width), (c) => c, width);
}

/** One row of the events pane; reason overrides the reason column (a summary). */
export function eventLine(e: VordrEvent, users: Users, width: number, reason?: string): string {
  const because = reason ?? (e.rule ? `${e.reason} ${e.rule.prot} ${e.rule.path}` : e.reason) + (e.count > 0 ? ` (+${e.count} squelched)` : '');
  const value = (c: Column): string => {
    switch (c) {
      case 'time':
        return clock(e.time);
      case 'app':
        return appName(e.path);
      case 'pid':
        return e.pid === undefined ? '?' : String(e.pid);
      case 'user':
        return users.name(e.uid);
      case 'dir':
        return e.dir;
      case 'prot':
        return e.prot;
      case 'destination':
        return peer(e);
      case 'verdict':
        return e.verdict;
      case 'reason':
        return because;
    }
  };
  return cells(eventColumns(width), value, width);
}

/** `allow norule` events: the flood a summary row stands for. */
function isNoruleAllow(e: VordrEvent): boolean {
  return e.is.noruleAllow;
}

interface Summary {
  count: number;
  readonly since: Date;
}

interface Filter {
  app?: string;
  verdict?: string;
  dir?: string;
}

/** A row of the events pane: an event, or the summary of an application's allow-norule events. */
type EventRowItem = { e: VordrEvent; summary?: Summary };

type Pane = 'events' | 'rules' | 'output';
const PANES: readonly Pane[] = ['events', 'rules', 'output'];

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
    /** allow-norule events per application path, since the console started. */
    const norule = new Map<string, Summary>();
    let showNorule = false;
    const filter: Filter = {};
    /** Rows back from the newest (0: follow). */
    let eventsBack = 0;
    /** The selected row's event (events pane focused). */
    let selected: VordrEvent | undefined;
    let loss: Loss | undefined;
    let evdrops: bigint | undefined;
    let view: 'events' | 'stats' = 'events';
    let statsText: string[] = ['(loading)'];
    /** A rule line, colored and cut to the pane's width when drawn; or a message. */
    let rulesText: (string | { line: string; color: 'red' | 'green' })[] = ['(loading)'];
    let rulesTop = 0;
    let ruleCount = 0;
    let flags: Record<string, string> = {};
    /** Where the keys go: the command line, or a pane (F6). */
    let focus: 'cmd' | Pane = 'cmd';
    let confirmBox: { question: string; answer: (yes: boolean) => void } | undefined;

    const header = blessed.box({ parent: screen, top: 0, left: 0, width: '100%', height: 1, tags: true, style: { fg: 'black', bg: 'cyan' } });
    // No wrapping by blessed: the panes cut (events, rules) or wrap (output) their lines to the width themselves.
    const paneBox = () =>
      blessed.box({ parent: screen, left: 0, width: '100%', border: { type: 'line' }, tags: true, mouse: true, wrap: false, style: { border: {} } } as blessed.Widgets.BoxOptions);
    const main = paneBox();
    const rules = paneBox();
    const outBox = paneBox();
    const cmdline = blessed.box({ parent: screen, left: 0, width: '100%', height: 1, tags: true });
    const helpBox = blessed.box({
      parent: screen,
      top: 1,
      left: 'center',
      width: '100%',
      height: '100%-2',
      border: { type: 'line' },
      label: ' help: Up/Down PageUp/PageDown or the wheel scroll; Esc or F1 closes ',
      tags: true,
      hidden: true,
      scrollable: true,
      mouse: true,
    });
    const promptBox = blessed.box({
      parent: screen,
      top: 'center',
      left: 'center',
      width: '90%',
      height: 15,
      border: { type: 'line' },
      label: ' unknown application ',
      tags: true,
      hidden: true,
      style: { border: { fg: 'yellow' } },
    });
    const askBox = blessed.box({
      parent: screen,
      top: 'center',
      left: 'center',
      width: '80%',
      height: 7,
      border: { type: 'line' },
      label: ' are you sure? ',
      tags: true,
      hidden: true,
      style: { border: { fg: 'red' } },
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

    const out$ = { lines: [] as OutLine[], dropped: 0 };
    /** The output pane's top row: line (dropped + index) and its wrapped part; undefined: follow the end. */
    let outTop: { line: number; sub: number } | undefined;
    const out = new Lines(out$, KEEP_OUTPUT, render);
    const errOut = new Lines(out$, KEEP_OUTPUT, render, true);
    const confirm = (question: string): Promise<boolean> =>
      new Promise<boolean>((res) => {
        confirmBox = {
          question,
          answer: (yes) => {
            confirmBox = undefined;
            res(yes);
            render();
          },
        };
        render();
      });
    const runner = o.runner(out, errOut, { confirm });
    const editor = new LineEditor(o.vocab);

    const prompts = new Prompts({
      kernel: o.kernel,
      runner,
      vocab: o.vocab,
      ...(o.promptTimeoutSeconds !== undefined ? { timeoutSeconds: o.promptTimeoutSeconds } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
      onChange: render,
      onDecided: (p, d, error, timedOut, lines) => {
        const why = timedOut ? 'no answer: ' : '';
        if (error) errOut.write(`error: ${why}${describeDecision(p, d, o.vocab)}: ${describeRunError(error)}\n`);
        else for (const l of lines.length > 0 ? lines : [describeDecision(p, d, o.vocab)]) out.write(`${why}${l}\n`);
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
    const innerWidth = (b: blessed.Widgets.BoxElement) => Math.max(1, Number(b.width) - 2);
    const fitTo = (t: string, width: number) => (t.length > width ? `${t.slice(0, Math.max(1, width - 1))}~` : t);

    function lossText(): string {
      const socket = loss ? (loss.drops ?? 0) + (loss.drops === undefined ? loss.overruns : 0) : 0;
      const module = evdrops ?? 0n;
      if (socket === 0 && module === 0n) return '';
      return `  {red-fg}{bold}lost ${module + BigInt(socket)}{/bold} (module ${module}, this console ${socket}${loss && loss.drops === undefined ? ' overruns' : ''}){/red-fg}`;
    }

    function drawHeader(): void {
      const f = (n: string) => flags[n] ?? '?';
      const width = Number(screen.width) || 80;
      const who = o.privileged ? '{green-fg}admin{/green-fg}' : `{red-fg}read-only${width >= 100 ? `: ${PERMISSION_MESSAGE}` : ''}{/red-fg}`;
      const n = prompts.waiting();
      const prompt = n > 0 ? `  {yellow-fg}{bold}${n} prompt${n === 1 ? '' : 's'} open{/bold}{/yellow-fg}` : '';
      const keys = width >= 110 ? '  F1 help F2 events F3 stats F6 panes' : '  F1 help';
      const I = o.vocab.ids.FLAG;
      header.setContent(` {bold}vordr{/bold}  ${I.MODE} ${f(I.MODE)}  ${I.UNKRULE} ${f(I.UNKRULE)}  rules ${ruleCount}  events ${events.length}${lossText()}${prompt}  ${who}${keys}`);
    }

    /** The events pane's rows, oldest first: filtered, allow-norule summarized. */
    function eventItems(): EventRowItem[] {
      const lastOf = new Map<string, VordrEvent>();
      if (!showNorule) for (const e of events) if (isNoruleAllow(e)) lastOf.set(e.path, e);
      const items: EventRowItem[] = [];
      for (const e of events) {
        if (filter.app !== undefined && e.path !== filter.app) continue;
        if (filter.verdict !== undefined && e.verdict !== filter.verdict) continue;
        if (filter.dir !== undefined && e.dir !== filter.dir) continue;
        if (!showNorule && isNoruleAllow(e)) {
          if (lastOf.get(e.path) !== e) continue;
          const s = norule.get(e.path);
          if (s) {
            items.push({ e, summary: s });
            continue;
          }
        }
        items.push({ e });
      }
      return items;
    }

    function filterText(): string {
      const parts = [
        ...(filter.app !== undefined ? [`app ${appName(filter.app)}`] : []),
        ...(filter.verdict !== undefined ? [`verdict ${filter.verdict}`] : []),
        ...(filter.dir !== undefined ? [`dir ${filter.dir}`] : []),
      ];
      return parts.length > 0 ? `only ${parts.join(', ')}` : '';
    }

    function drawMain(): void {
      const n = inner(main);
      const width = innerWidth(main);
      const focused = focus === 'events';
      main.style.border.fg = focused ? 'yellow' : undefined;
      if (view === 'stats') {
        main.setLabel(' stats: per application (F2: events) ');
        main.setContent(statsText.slice(0, n).join('\n'));
        return;
      }
      const items = eventItems();
      const rowsN = Math.max(1, n - 1);
      if (focused && selected !== undefined) {
        // Keep the selected row on screen.
        const at = items.findIndex((it) => it.e === selected);
        if (at < 0) selected = undefined;
        else {
          const end = items.length - eventsBack;
          if (at >= end) eventsBack = Math.max(0, items.length - at - 1);
          else if (at < end - rowsN) eventsBack = Math.max(0, items.length - at - rowsN);
        }
      }
      eventsBack = Math.min(eventsBack, Math.max(0, items.length - rowsN));
      const end = items.length - eventsBack;
      const shown = items.slice(Math.max(0, end - rowsN), end);
      const notes = [
        filterText(),
        !showNorule && norule.size > 0 ? 'allow norule summarized' : '',
        eventsBack > 0 ? `back ${eventsBack}; End follows` : '',
      ].filter((x) => x);
      const keys = focused ? ' ↑↓ select  a/b rule  f app  v verdict  d dir  x all  n norule  Esc ' : ' (F3: stats) ';
      main.setLabel(` events${notes.length > 0 ? ` (${notes.join('; ')})` : ''}${keys}`);
      const rows = shown.map(({ e, summary }) => {
        const reason = summary ? `norule: ${summary.count} events since ${clock(summary.since)}` : undefined;
        let text = blessed.escape(eventLine(e, users, width, reason));
        if (e.is.pending) text = `{yellow-fg}${text}{/yellow-fg}`;
        else if (e.is.blocked) text = `{red-fg}${text}{/red-fg}`;
        else if (summary) text = `{gray-fg}${text}{/gray-fg}`;
        return focused && e === selected ? `{inverse}${text}{/inverse}` : text;
      });
      main.setContent([`{bold}${blessed.escape(eventHeader(width))}{/bold}`, ...rows].join('\n'));
    }

    function drawRules(): void {
      const n = inner(rules);
      const width = innerWidth(rules);
      const focused = focus === 'rules';
      rules.style.border.fg = focused ? 'yellow' : undefined;
      rulesTop = Math.max(0, Math.min(rulesTop, rulesText.length - n));
      const more = rulesText.length > n ? ` ${rulesTop + 1}-${Math.min(rulesText.length, rulesTop + n)} of ${rulesText.length}` : '';
      rules.setLabel(` rules (${ruleCount})${more}${focused ? ' ↑↓ PgUp/PgDn scroll  Esc ' : rulesText.length > n ? ' F6 or the wheel: scroll ' : ' '}`);
      rules.setContent(
        rulesText
          .slice(rulesTop, rulesTop + n)
          .map((r) => (typeof r === 'string' ? r : `{${r.color}-fg}${blessed.escape(fitTo(r.line, width))}{/${r.color}-fg}`))
          .join('\n'),
      );
    }

    /** The output lines wrapped to the pane's width: what it can show, row by row. */
    function outRows(): { line: number; sub: number; text: string }[] {
      const width = innerWidth(outBox);
      const cut = new RegExp(`.{1,${width}}`, 'gu');
      const rows: { line: number; sub: number; text: string }[] = [];
      out$.lines.forEach((l, i) => {
        const parts = l.text === '' ? [''] : (l.text.match(cut) ?? ['']);
        parts.forEach((p, sub) => rows.push({ line: out$.dropped + i, sub, text: l.err ? `{red-fg}${blessed.escape(p)}{/red-fg}` : blessed.escape(p) }));
      });
      return rows;
    }

    function outputStart(rows: readonly { line: number; sub: number }[]): number {
      const last = Math.max(0, rows.length - inner(outBox));
      const top = outTop;
      if (top === undefined) return last;
      const i = rows.findIndex((r) => r.line > top.line || (r.line === top.line && r.sub >= top.sub));
      if (i < 0 || i >= last) {
        outTop = undefined;
        return last;
      }
      return i;
    }

    function drawOutput(): void {
      const n = inner(outBox);
      const focused = focus === 'output';
      outBox.style.border.fg = focused ? 'yellow' : undefined;
      const rows = outRows();
      const start = outputStart(rows);
      const below = Math.max(0, rows.length - start - n);
      outBox.setLabel(` output${below > 0 ? ` (${below} more lines below)` : ''}${focused ? ' ↑↓ PgUp/PgDn scroll  Esc ' : below > 0 ? ' F6 or the wheel: scroll ' : ' '}`);
      outBox.setContent(rows.slice(start, start + n).map((r) => r.text).join('\n'));
    }

    function drawPrompt(): void {
      const p = prompts.current();
      if (!p || !o.privileged) {
        promptBox.hide();
        return;
      }
      promptBox.show();
      promptBox.setFront();
      const c = p.choice;
      const mark = (on: boolean, s: string) => (on ? `{inverse}${s}{/inverse}` : s);
      const e = p.last;
      const dest = `${e.is.inbound ? 'from' : 'to'} ${blessed.escape(peer(e))}`;
      // An inbound packet is a server accepting or a socket receiving.
      const wants = !e.is.inbound ? 'wants to connect' : e.is.tcp ? 'wants to accept a connection' : 'wants to receive';
      const more = prompts.waiting() > 1 ? `   {yellow-fg}{bold}(${prompts.waiting() - 1} more waiting){/bold}{/yellow-fg}` : '';
      const durations = DURATIONS.map((d) => mark(sameLifetime(c.lifetime, d.lifetime), `[${d.key}] ${d.label}`));
      const guard = prompts.takesKeys()
        ? ''
        : `{yellow-fg}Typing goes on into the command line; this prompt takes keys after ${GUARD_MS / 1000} s without typing.{/yellow-fg}`;
      promptBox.setContent(
        [
          ` {bold}${blessed.escape(p.path)}{/bold} ${wants}${more}`,
          ` pid ${e.pid}  user ${blessed.escape(users.name(e.uid))}  ${e.prot} ${e.dir} ${dest}  attempts ${p.attempts}`,
          '',
          ` ${mark(c.verdict === ALLOW, `[a] ${ALLOW}`)}   ${mark(c.verdict === BLOCK, `[b] ${BLOCK}`)}`,
          ` ${mark(c.scope === 'prot', `[p] ${p.prots.join('+')} only`)}   ${mark(c.scope === 'any', '[n] any protocol')}`,
          ` ${mark((c.where ?? 'anywhere') === 'anywhere', `[${WHERE_KEYS.anywhere}] anywhere`)}   ${mark(c.where === 'address', `[${WHERE_KEYS.address}] this address`)}${
            e.is.ported ? `   ${mark(c.where === 'port', `[${WHERE_KEYS.port}] this address and ${e.is.inbound ? 'my' : 'its'} port`)}` : ''
          }${e.name !== undefined && !e.is.inbound ? `   ${mark(c.where === 'host', `[${WHERE_KEYS.host}] ${blessed.escape(e.name)}`)}` : ''}`,
          ` ${durations.slice(0, 3).join('   ')}`,
          ` ${durations.slice(3).join('   ')}`,
          '',
          ` Enter: ${blessed.escape(describeDecision(p, c, o.vocab))}`,
          ` Esc: ${TIMEOUT_DECISION.verdict} ${lifetimeLabel(TIMEOUT_DECISION.lifetime)}.  No answer in ${prompts.secondsLeft()} s: the same.`,
          ` ${guard}`,
        ].join('\n'),
      );
    }

    function drawConfirm(): void {
      if (!confirmBox) {
        askBox.hide();
        return;
      }
      askBox.show();
      askBox.setFront();
      askBox.setContent([` {bold}${blessed.escape(confirmBox.question)}{/bold}`, '', ' [y] yes   [n] no  (Enter and Esc: no)'].join('\n'));
    }

    function drawCmdline(): void {
      const t = editor.text;
      const at = editor.cursor;
      const before = blessed.escape(t.slice(0, at));
      const under = blessed.escape(t.slice(at, at + 1) || ' ');
      const after = blessed.escape(t.slice(at + 1));
      const prefix = confirmBox
        ? '{red-fg}answer the question above{/red-fg} '
        : prompts.current() && o.privileged && prompts.takesKeys()
          ? '{yellow-fg}answer the prompt above{/yellow-fg} '
          : focus !== 'cmd'
            ? `{yellow-fg}keys go to the ${focus} pane (Esc: back){/yellow-fg} `
            : '';
      const cursor = focus === 'cmd' ? `{inverse}${under}{/inverse}` : under;
      cmdline.setContent(`${prefix}{bold}${CONSOLE_PROMPT}{/bold}${before}${cursor}${after}`);
    }

    function draw(): void {
      layout();
      drawHeader();
      drawMain();
      drawRules();
      drawOutput();
      drawPrompt();
      drawConfirm();
      drawCmdline();
      screen.render();
      // The prompt is on screen now (unless the question covers it): its countdown may start.
      if (!promptBox.hidden && !confirmBox) prompts.shown();
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
                color: r.verdict === v.valueOf('BLOCK') ? ('red' as const) : ('green' as const),
              }));
      } else {
        rulesText = [`{red-fg}${blessed.escape(describeRunError(list.error))}{/red-fg}`];
      }
      const next: Record<string, string> = {};
      for (const name of [v.ids.FLAG.MODE, v.ids.FLAG.UNKRULE]) {
        const f = v.flag(name);
        if (!f) continue;
        const r = await o.kernel.flagGet(f.id);
        next[name] = r.isOk() ? flagValueName(v, name, r.value) : '?';
      }
      flags = next;
      const d = await o.kernel.evdrops();
      if (d.isOk()) evdrops = d.value;
      if (view === 'stats') {
        const s = await o.kernel.stats();
        // Destinations under each application; a module without DESTS shows the applications alone.
        const ds = s.isOk() ? await o.kernel.dests() : undefined;
        statsText = s.isOk()
          ? s.value.length === 0
            ? ['no traffic counted yet']
            : statsLines(s.value, ds?.isOk() ? ds.value : [], v).map((l, i) => (i === 0 ? `{bold}${blessed.escape(l)}{/bold}` : blessed.escape(l)))
          : [`{red-fg}${blessed.escape(describeRunError(s.error))}{/red-fg}`];
        if (ds?.isErr() && !isUnsupported(ds.error))
          statsText.push(`{red-fg}destinations: ${blessed.escape(describeRunError(ds.error))}{/red-fg}`);
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
      confirmBox?.answer(false);
      o.kernel.unsubscribe();
      try {
        await Promise.race([runner.endSession(), new Promise((r) => setTimeout(r, 2000))]);
      } catch {
        // Leaving anyway; the rules stay until cleared.
      }
      restore();
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
      process.off('SIGCONT', onCont);
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
      process.off('exit', restore);
      resolve({ code });
    };
    const onSignal = () => void leave(0);
    // Back from SIGSTOP (or ^Z): the terminal may show anything; the prompt's countdown starts again.
    const onCont = () => {
      if (destroyed) return;
      screen.realloc();
      prompts.resume();
      render();
    };
    const onCrash = (e: unknown) => {
      restore();
      process.stderr.write(`vordr: internal error, the console stopped: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.stderr.write('vordr: this is a bug; please report it with the lines above\n');
      void Promise.race([runner.endSession(), new Promise((r) => setTimeout(r, 1000))]).finally(() => process.exit(6));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    process.on('SIGCONT', onCont);
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
        const start = { line: out$.dropped + out$.lines.length, sub: 0 };
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
        // A long answer shows from its start; the pane scrolls to the rest.
        outTop = outRows().filter((row) => row.line >= start.line).length > inner(outBox) ? start : undefined;
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

    /** Scrolls a pane by n lines (negative: back); 'top'/'end'. */
    function scroll(pane: Pane, n: number | 'top' | 'end'): void {
      if (pane === 'events') {
        const items = eventItems().length;
        const rowsN = Math.max(1, inner(main) - 1);
        eventsBack = n === 'end' ? 0 : n === 'top' ? Math.max(0, items - rowsN) : Math.max(0, Math.min(Math.max(0, items - rowsN), eventsBack - n));
        if (focus === 'events') selectVisible();
      } else if (pane === 'rules') {
        const max = Math.max(0, rulesText.length - inner(rules));
        rulesTop = n === 'top' ? 0 : n === 'end' ? max : Math.max(0, Math.min(max, rulesTop + n));
      } else {
        const rows = outRows();
        const last = Math.max(0, rows.length - inner(outBox));
        const now = outputStart(rows);
        const next = n === 'top' ? 0 : n === 'end' ? last : Math.max(0, Math.min(last, now + n));
        const row = rows[next];
        outTop = next >= last || !row ? undefined : { line: row.line, sub: row.sub };
      }
      render();
    }

    /** The selected event, kept among the rows on screen. */
    function selectVisible(): void {
      const items = eventItems();
      const rowsN = Math.max(1, inner(main) - 1);
      const end = items.length - eventsBack;
      const shown = items.slice(Math.max(0, end - rowsN), end);
      if (!shown.some((it) => it.e === selected)) selected = shown[shown.length - 1]?.e;
    }

    function moveSelection(by: number): void {
      const items = eventItems();
      if (items.length === 0) return;
      const at = items.findIndex((it) => it.e === selected);
      const next = Math.max(0, Math.min(items.length - 1, (at < 0 ? items.length - 1 : at) + by));
      selected = items[next]?.e;
      render();
    }

    /** Puts a rule for the selected row on the command line, to be finished and run with Enter. */
    function ruleFromRow(verdict: VerdictWord): void {
      const e = selected;
      if (!e) return;
      if (e.path === '') {
        errOut.write('this event has no application (the module could not find its owner): no rule can name it\n');
        return;
      }
      editor.text = `${verdict} ${e.prot} ${quote(e.path)} `;
      editor.cursor = editor.text.length;
      focus = 'cmd';
      out.write(`on the command line: ${editor.text}(add 'for 1h', 'until exit' or 'until reboot' if you like; Enter runs it)\n`);
      render();
    }

    function toggleFilter(k: keyof Filter): void {
      const e = selected;
      if (!e && filter[k] === undefined) return;
      const value = k === 'app' ? e?.path : k === 'verdict' ? e?.verdict : e?.dir;
      if (filter[k] !== undefined || value === undefined) delete filter[k];
      else filter[k] = value;
      eventsBack = 0;
      render();
    }

    function paneKey(pane: Pane, ch: string | undefined, name: string): boolean {
      const page = (b: blessed.Widgets.BoxElement) => Math.max(1, inner(b) - 1);
      const box = pane === 'events' ? main : pane === 'rules' ? rules : outBox;
      if (pane === 'events' && view === 'events') {
        switch (name) {
          case 'up':
            return moveSelection(-1), true;
          case 'down':
            return moveSelection(1), true;
          case 'pageup':
            return moveSelection(-page(main)), true;
          case 'pagedown':
            return moveSelection(page(main)), true;
          case 'home':
            return moveSelection(-Infinity), true;
          case 'end':
            selected = undefined;
            return scroll('events', 'end'), true;
          default:
            break;
        }
        switch (ch) {
          case 'a':
            return ruleFromRow(ALLOW), true;
          case 'b':
            return ruleFromRow(BLOCK), true;
          case 'f':
            return toggleFilter('app'), true;
          case 'v':
            return toggleFilter('verdict'), true;
          case 'd':
            return toggleFilter('dir'), true;
          case 'x':
            delete filter.app, delete filter.verdict, delete filter.dir;
            return render(), true;
          case 'n':
            showNorule = !showNorule;
            out.write(showNorule ? 'events: every allow-norule event listed\n' : 'events: allow-norule events summarized, one row per application\n');
            return render(), true;
          default:
            return false;
        }
      }
      switch (name) {
        case 'up':
          return scroll(pane, -1), true;
        case 'down':
          return scroll(pane, 1), true;
        case 'pageup':
          return scroll(pane, -page(box)), true;
        case 'pagedown':
          return scroll(pane, page(box)), true;
        case 'home':
          return scroll(pane, 'top'), true;
        case 'end':
          return scroll(pane, 'end'), true;
        default:
          return false;
      }
    }

    function nextFocus(): void {
      const i = focus === 'cmd' ? -1 : PANES.indexOf(focus);
      focus = i + 1 < PANES.length ? (PANES[i + 1] as Pane) : 'cmd';
      if (focus === 'events') selectVisible();
      render();
    }

    screen.on('keypress', (ch: string | undefined, key: { name?: string; ctrl?: boolean; meta?: boolean; full?: string }) => {
      if (closing) return;
      const name = key?.name ?? '';
      if (key?.ctrl && name === 'c') return void leave(0);
      if (key?.ctrl && name === 'l') {
        screen.realloc();
        return render();
      }
      // blessed reports Return twice, as 'return' and as 'enter': take one.
      if (name === 'return') return;
      if (confirmBox) {
        confirmBox.answer(ch === 'y' || ch === 'Y');
        return;
      }
      if (prompts.current() && o.privileged && prompts.key(name || ch || '')) return render();
      if (!helpBox.hidden) {
        if (name === 'escape' || name === 'f1' || name === 'q') showHelp(false);
        else if (name === 'up' || name === 'k') helpBox.scroll(-1);
        else if (name === 'down' || name === 'j') helpBox.scroll(1);
        else if (name === 'pageup') helpBox.scroll(-inner(helpBox));
        else if (name === 'pagedown' || name === 'space') helpBox.scroll(inner(helpBox));
        else if (name === 'home') helpBox.setScroll(0);
        else if (name === 'end') helpBox.setScrollPerc(100);
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
        case 'f6':
          return nextFocus();
        default:
          break;
      }
      if (focus !== 'cmd') {
        if (name === 'escape') {
          focus = 'cmd';
          return render();
        }
        if (paneKey(focus, ch, name)) return;
        if (name === 'tab' || name === 'enter' || name === 'backspace' || (ch && ch >= ' ')) focus = 'cmd';
        else return render();
      }
      if (name === 'pageup') return scroll('events', Math.max(1, inner(main) - 2));
      if (name === 'pagedown') return scroll('events', -Math.max(1, inner(main) - 2));
      if (name === 'end' && editor.text === '') return scroll('events', 'end');
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

    // The mouse: the wheel scrolls the pane under it (and the help screen); a click selects a pane.
    const wheel = (b: blessed.Widgets.BoxElement, pane: Pane) => {
      b.on('wheelup', () => (pane === 'events' ? scroll('events', 3) : scroll(pane, -3)));
      b.on('wheeldown', () => (pane === 'events' ? scroll('events', -3) : scroll(pane, 3)));
      b.on('click', () => {
        if (confirmBox || prompts.current()) return;
        focus = pane;
        if (pane === 'events') selectVisible();
        render();
      });
    };
    wheel(main, 'events');
    wheel(rules, 'rules');
    wheel(outBox, 'output');
    helpBox.on('wheelup', () => (helpBox.scroll(-3), render()));
    helpBox.on('wheeldown', () => (helpBox.scroll(3), render()));

    // ------------------------------------------------------------ events
    const listening = o.kernel.subscribe((m) => {
      if (closing) return;
      if (isLost(m)) {
        loss = decodeLoss(m);
        void refresh();
        return render();
      }
      const e = decodeEvent(m, o.vocab);
      events.push(e);
      if (events.length > KEEP_EVENTS) events.splice(0, events.length - KEEP_EVENTS);
      if (isNoruleAllow(e)) {
        const s = norule.get(e.path);
        if (s) s.count += 1 + e.count;
        else norule.set(e.path, { count: 1 + e.count, since: e.time });
      } else if (eventsBack > 0) eventsBack++;
      if (o.privileged) prompts.offer(e);
      render();
    });

    // ------------------------------------------------------------ start
    out.write(`vordr console: F1 or 'help' for help, Tab completes, F6 scrolls the panes, 'quit' leaves. Rules file: ${o.rulesFile}\n`);
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
        // The prompt's countdown and key guard.
        setInterval(() => {
          if (prompts.current()) render();
        }, 250),
      );
    })();
  });
}

/** F1: the keys, the panes, the prompt, and the commands. */
export function helpScreen(v: Vocab): string {
  return [
    'vordr console',
    '',
    'keys:',
    '  Enter         run the command line          Up/Down  history',
    '  Tab           complete a command, flag, value, protocol or path',
    '  F1            this help                     F2 events  F3 per-application stats',
    '  PageUp/Down   scroll the events; End (on an empty line) follows them again',
    '  F6            the keys go to the events, the rules, the output pane in turn, then',
    '                back to the command line (Esc: back at once); there Up/Down,',
    '                PageUp/PageDown, Home/End scroll.  The mouse wheel scrolls the pane under it.',
    '  Ctrl-L        redraw                        Ctrl-C   leave (like quit)',
    '',
    'the events pane (F6 once): Up/Down select a row, then',
    '  a / b         put "allow PROT PATH" / "block PROT PATH" of that row on the command line',
    "                (add 'for 1h', 'until exit'... and press Enter)",
    "  f / v / d     show only that row's application / verdict / direction (again: all)",
    '  x             show all events again',
    '  n             list allow-norule events one by one, or summarize them again: by default',
    '                an application allowed for want of a rule is one row with a count',
    '',
    'reasons: rule (the rule named decided), norule (no rule names the application: unkrule',
    '  decided), unkproc (no owner found), unkprot (a protocol other than tcp, udp, icmp),',
    '  fail, mode.  "+N squelched": the module withheld N similar events (same application and',
    "  protocol) before this one, to keep a flood from drowning the rest ('set squelch disabled'",
    "  sends every one).  The header's 'lost N' counts events that never arrived: the module's",
    '  evdrops and what this console\'s socket dropped; the events after them still arrive.',
    '',
    'prompts (set unkrule pending): an application no rule names asks once:',
    '  a allow / b block    p this protocol / n any protocol',
    `  ${WHERE_KEYS.anywhere} anywhere / ${WHERE_KEYS.address} this address (to it, or from it coming in) / ${WHERE_KEYS.port} this address and port`,
    `  ${DURATIONS.map((d) => `${d.key} ${d.label}`).join(' / ')}`,
    '  (all but always end by themselves and are never saved; always is saved to the rules file)',
    `  Enter decides; Esc and no answer: ${TIMEOUT_DECISION.verdict} ${lifetimeLabel(TIMEOUT_DECISION.lifetime)}.`,
    `  A prompt takes keys once it has been on screen ${GUARD_MS / 1000} s without typing (typing goes on into`,
    '  the command line); its countdown starts when it is shown; others wait their turn.',
    `  ${ONCE_SECONDS} s after "once", the application is asked about again.`,
    '',
    help(undefined, v).trimEnd(),
    '',
    `${COMMANDS.length} commands; 'help COMMAND' shows one.`,
  ].join('\n');
}
