// How rules are written back out, by `query` and by `save`: in the grammar
// grammar.ts reads, so a query line without its counters is a valid command.
//
//   allow tcp /usr/bin/curl  packets=12 bytes=3456 last=2026-11-22T10:00:00Z
//   block any "/opt/My App/bin/app"  packets=0 bytes=0 last=never

import type { Rule } from './kernel';
import type { Vocab } from './vocab';

/** A word as the tokenizer reads it back: quoted when it has blanks or quotes. */
export function quote(word: string): string {
  if (word !== '' && !/[\s"\\]/.test(word) && !word.startsWith('#')) return word;
  return `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A word the grammar cannot carry on one line (a path with a line break). */
export function representable(word: string): boolean {
  return !/[\n\r]/.test(word);
}

export function formatTime(unixSeconds: bigint): string {
  if (unixSeconds === 0n) return 'never';
  return new Date(Number(unixSeconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The command that recreates the rule. */
export function ruleCommand(r: Rule, v: Vocab): string {
  return `${v.valueName(r.verdict) ?? r.verdict} ${v.protName(r.prot)} ${quote(r.path)}`;
}

export function ruleLine(r: Rule, v: Vocab): string {
  const expires = r.timeout > 0 ? ` expires=${r.timeout}s` : '';
  return `${ruleCommand(r, v)}  packets=${r.packets} bytes=${r.bytes} last=${formatTime(r.lasthit)}${expires}`;
}

/** A stable order for listings: by path, then protocol, then verdict. */
export function sortRules(rules: readonly Rule[]): Rule[] {
  return [...rules].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : a.prot - b.prot || a.verdict - b.verdict,
  );
}
