// The console's command line: editing, history and tab completion of
// commands, flags, flag values, protocols and paths.  Pure logic, drawn by
// ui.ts; the file system is injected so tests need no real directories.

import fs from 'node:fs';
import nodePath from 'node:path';
import { ALLOW, BLOCK, COMMANDS } from './grammar';
import { QUALIFIER_WORDS, type QualifierWord } from './qualifiers';
import type { Vocab } from './vocab';

export interface DirEntry {
  readonly name: string;
  readonly dir: boolean;
}

export type ListDir = (dir: string) => DirEntry[];

export const listDir: ListDir = (dir) => {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).map((d) => {
      let isDir = d.isDirectory();
      if (d.isSymbolicLink()) {
        try {
          isDir = fs.statSync(nodePath.join(dir, d.name)).isDirectory();
        } catch {
          isDir = false;
        }
      }
      return { name: d.name, dir: isDir };
    });
  } catch {
    return [];
  }
};

export interface Completion {
  readonly line: string;
  readonly cursor: number;
  /** Every candidate when more than one fits (to list them). */
  readonly candidates: readonly string[];
}

function commonPrefix(words: readonly string[]): string {
  if (words.length === 0) return '';
  let p = words[0] as string;
  for (const w of words) while (!w.startsWith(p)) p = p.slice(0, -1);
  return p;
}

/** The words before the one being completed (unquoted text, good enough to pick candidates). */
function wordsBefore(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== '').map((w) => w.replace(/^"|"$/g, ''));
}

function pathCandidates(word: string, cwd: string, list: ListDir): { candidates: string[]; dirs: Set<string> } {
  const slash = word.lastIndexOf('/');
  const dirPart = slash >= 0 ? word.slice(0, slash + 1) : '';
  const base = slash >= 0 ? word.slice(slash + 1) : word;
  const where = dirPart === '' ? cwd : nodePath.resolve(cwd, dirPart);
  const dirs = new Set<string>();
  const candidates = list(where)
    .filter((e) => e.name.startsWith(base) && (base.startsWith('.') || !e.name.startsWith('.')))
    .map((e) => {
      const full = dirPart + e.name + (e.dir ? '/' : '');
      if (e.dir) dirs.add(full);
      return full;
    })
    .sort();
  return { candidates, dirs };
}

/** Completes the word that ends at the cursor. */
export function complete(line: string, cursor: number, v: Vocab, opts: { cwd?: string; list?: ListDir } = {}): Completion {
  const before = line.slice(0, cursor);
  // Inside an open quote the word runs from the quote; else from the last blank.
  const quoted = (before.match(/"/g) ?? []).length % 2 === 1;
  const word = quoted ? before.slice(before.lastIndexOf('"') + 1) : (/[^\s"]*$/.exec(before)?.[0] ?? '');
  const start = cursor - word.length - (quoted ? 1 : 0);
  const prev = wordsBefore(before.slice(0, start));
  const cmd = prev[0];
  const words: string[] = [];
  let paths = false;
  const verdicts = [ALLOW, BLOCK];
  const ruleCmd = cmd === ALLOW || cmd === BLOCK;
  if (prev.length === 0) {
    for (const e of COMMANDS) words.push(e.name, ...e.aliases);
  } else if (ruleCmd && prev.length >= 2 && prev.at(-1) === 'until') {
    // The lives a rule may be given (the schema's, but the default one).
    const always = v.lifeOf('ALWAYS');
    words.push(...v.lifeNames().filter((n) => v.life(n) !== always));
  } else if (ruleCmd && prev.length >= 2 && (prev.at(-1) ?? '').startsWith('/')) {
    words.push(...QUALIFIER_WORDS, 'for', 'until');
  } else if ((ruleCmd || cmd === 'clear') && prev.length >= 3 && (QUALIFIER_WORDS as readonly string[]).includes(prev.at(-2) ?? '')) {
    // After a qualifier's value: the qualifiers that may follow it, in order, then a lifetime.
    const at = QUALIFIER_WORDS.indexOf(prev.at(-2) as QualifierWord);
    words.push(...QUALIFIER_WORDS.slice(at < 2 ? 2 : at + 1));
    if (ruleCmd) words.push('for', 'until');
  } else if (cmd === 'clear' && prev.length >= 3 && (prev.at(-1) ?? '').startsWith('/') && v.prot(prev[1] as string) !== undefined) {
    words.push(...QUALIFIER_WORDS);
  } else if (ruleCmd || cmd === 'clear') {
    if (prev.length === 1) {
      words.push(...v.protNames());
      if (cmd === 'clear') words.push(...verdicts, 'all');
      paths = word.startsWith('/');
    } else if (prev.length === 2 && v.prot(prev[1] as string) !== undefined) {
      paths = true;
    }
  } else if (cmd === 'query' && prev.length === 1) {
    words.push(...verdicts);
  } else if ((cmd === 'set' || cmd === 'get') && prev.length === 1) {
    for (const n of v.flagNames()) if (cmd === 'get' || v.flag(n)?.writable) words.push(n);
  } else if (cmd === 'set' && prev.length === 2) {
    words.push(...(v.flag(prev[1] as string)?.allowed ?? []));
  } else if (cmd === 'help' && prev.length === 1) {
    for (const e of COMMANDS) words.push(e.name, ...e.aliases);
  } else if ((cmd === 'save' || cmd === 'load') && prev.length === 1) {
    paths = true;
  }
  let candidates = [...new Set(words)].filter((w) => w.startsWith(word)).sort();
  let dirs = new Set<string>();
  if (paths) {
    const p = pathCandidates(word, opts.cwd ?? process.cwd(), opts.list ?? listDir);
    candidates = [...candidates, ...p.candidates];
    dirs = p.dirs;
  }
  if (candidates.length === 0) return { line, cursor, candidates: [] };
  const after = line.slice(cursor);
  const replace = (text: string, finished: boolean): Completion => {
    const needsQuote = quoted || /\s/.test(text);
    const close = finished && needsQuote ? '"' : '';
    const space = finished && !after.startsWith(' ') ? ' ' : '';
    const inserted = (needsQuote ? '"' : '') + text + close + space;
    return { line: line.slice(0, start) + inserted + after, cursor: start + inserted.length, candidates: [] };
  };
  if (candidates.length === 1) {
    const only = candidates[0] as string;
    return replace(only, !dirs.has(only));
  }
  const prefix = commonPrefix(candidates);
  const done = prefix.length > word.length ? replace(prefix, false) : { line, cursor, candidates: [] };
  return { ...done, candidates };
}

/** Keys as blessed reports them. */
export interface Key {
  readonly name?: string;
  readonly ctrl?: boolean;
  readonly meta?: boolean;
  readonly full?: string;
}

export type EditResult = { kind: 'submit'; line: string } | { kind: 'complete'; candidates: readonly string[] } | { kind: 'edit' } | { kind: 'none' };

export class LineEditor {
  text = '';
  cursor = 0;
  private readonly history: string[] = [];
  /** Index into history while browsing it; history.length = the line being typed. */
  private browsing = 0;
  private draft = '';

  constructor(
    private readonly vocab: Vocab,
    private readonly opts: { cwd?: string; list?: ListDir; historySize?: number } = {},
  ) {}

  entries(): readonly string[] {
    return this.history;
  }

  /** One key press: ch is the printable character, if any. */
  key(ch: string | undefined, key: Key): EditResult {
    const name = key.name ?? '';
    if (key.ctrl) {
      switch (name) {
        case 'a':
          this.cursor = 0;
          return { kind: 'edit' };
        case 'e':
          this.cursor = this.text.length;
          return { kind: 'edit' };
        case 'u':
          this.text = this.text.slice(this.cursor);
          this.cursor = 0;
          return { kind: 'edit' };
        case 'k':
          this.text = this.text.slice(0, this.cursor);
          return { kind: 'edit' };
        case 'w': {
          const left = this.text.slice(0, this.cursor).replace(/\S+\s*$/, '');
          this.text = left + this.text.slice(this.cursor);
          this.cursor = left.length;
          return { kind: 'edit' };
        }
        default:
          return { kind: 'none' };
      }
    }
    switch (name) {
      // blessed reports Return as 'return' and again as 'enter': take one.
      case 'enter': {
        const line = this.text;
        if (line.trim() !== '' && this.history[this.history.length - 1] !== line) {
          this.history.push(line);
          const max = this.opts.historySize ?? 1000;
          if (this.history.length > max) this.history.splice(0, this.history.length - max);
        }
        this.text = '';
        this.cursor = 0;
        this.browsing = this.history.length;
        this.draft = '';
        return { kind: 'submit', line };
      }
      case 'backspace':
        if (this.cursor === 0) return { kind: 'none' };
        this.text = this.text.slice(0, this.cursor - 1) + this.text.slice(this.cursor);
        this.cursor--;
        return { kind: 'edit' };
      case 'delete':
        this.text = this.text.slice(0, this.cursor) + this.text.slice(this.cursor + 1);
        return { kind: 'edit' };
      case 'left':
        this.cursor = Math.max(0, this.cursor - 1);
        return { kind: 'edit' };
      case 'right':
        this.cursor = Math.min(this.text.length, this.cursor + 1);
        return { kind: 'edit' };
      case 'home':
        this.cursor = 0;
        return { kind: 'edit' };
      case 'end':
        this.cursor = this.text.length;
        return { kind: 'edit' };
      case 'up':
        if (this.browsing === 0) return { kind: 'none' };
        if (this.browsing === this.history.length) this.draft = this.text;
        this.browsing--;
        this.text = this.history[this.browsing] ?? '';
        this.cursor = this.text.length;
        return { kind: 'edit' };
      case 'down':
        if (this.browsing >= this.history.length) return { kind: 'none' };
        this.browsing++;
        this.text = this.browsing === this.history.length ? this.draft : (this.history[this.browsing] ?? '');
        this.cursor = this.text.length;
        return { kind: 'edit' };
      case 'tab': {
        const c = complete(this.text, this.cursor, this.vocab, this.opts);
        this.text = c.line;
        this.cursor = c.cursor;
        return { kind: 'complete', candidates: c.candidates };
      }
      default:
        break;
    }
    if (ch !== undefined && ch.length > 0 && !key.meta && !/[\x00-\x1f\x7f]/.test(ch)) {
      this.text = this.text.slice(0, this.cursor) + ch + this.text.slice(this.cursor);
      this.cursor += ch.length;
      return { kind: 'edit' };
    }
    return { kind: 'none' };
  }
}
