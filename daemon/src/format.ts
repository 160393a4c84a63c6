// How rules are written back out, by `query` and by `save`: in the grammar
// grammar.ts reads, so a query line without its counters is a valid command.
//
//   allow tcp /usr/bin/curl  packets=12 bytes=3456 last=2026-11-22T10:00:00Z
//   block any "/opt/My App/bin/app"  packets=0 bytes=0 last=never

import type { AppStats, DestStats, Rule } from './kernel';
import { formatAddr } from './events';
import type { Vocab } from './vocab';
import { LIFE_IDS, lifetimeWords } from './grammar';
import { qualBytes } from './kqual';
import { qualifierText, qualifiersOf, sideValues, systemPasswd } from './qualifiers';

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

/**
 * The words after PATH that say how long a rule lasts, as the grammar
 * writes them: `for 42s` (what is left), `until exit`, `until reboot`; ''
 * for a lasting rule.  The life's name comes from the schema.
 */
export function ruleLifetime(r: Rule, v: Vocab): string {
  if (r.timeout > 0) return `for ${r.timeout}s`;
  if (r.life === v.lifeOf(LIFE_IDS.exit)) return lifetimeWords({ kind: 'exit' });
  if (r.life === v.lifeOf(LIFE_IDS.reboot)) return lifetimeWords({ kind: 'reboot' });
  return '';
}

/** A rule's qualifiers as the grammar writes them ('' for none); a user by name where passwd has one. */
export function ruleQualifiers(r: Rule, v: Vocab): string {
  return qualifierText(qualifiersOf(r.qual, systemPasswd(), sideValues(v)));
}

/** The command that recreates the rule, with its qualifiers and lifetime. */
export function ruleCommand(r: Rule, v: Vocab): string {
  const life = ruleLifetime(r, v);
  const q = ruleQualifiers(r, v);
  return `${v.valueName(r.verdict) ?? r.verdict} ${v.protName(r.prot)} ${quote(r.path)}${q ? ` ${q}` : ''}${life ? ` ${life}` : ''}`;
}

export function ruleLine(r: Rule, v: Vocab): string {
  return `${ruleCommand(r, v)}  packets=${r.packets} bytes=${r.bytes} last=${formatTime(r.lasthit)}`;
}

/** Unqualified first, then by the qualifiers' canonical bytes. */
function qualOrder(a: Rule, b: Rule): number {
  if (!a.qual || !b.qual) return (a.qual ? 1 : 0) - (b.qual ? 1 : 0);
  return qualBytes(a.qual, 0).compare(qualBytes(b.qual, 0));
}

/** A stable order for listings: by path, then protocol, then qualifiers, then verdict. */
export function sortRules(rules: readonly Rule[]): Rule[] {
  return [...rules].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : a.prot - b.prot || qualOrder(a, b) || a.verdict - b.verdict,
  );
}

/** Bytes for people: 1234567 -> 1.2M. */
export function human(n: bigint): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P'];
  let x = Number(n);
  let i = 0;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? String(n) : `${x < 10 ? x.toFixed(1) : Math.round(x)}${units[i]}`;
}

const used = (s: { apackets: bigint; bpackets: bigint }): bigint => s.apackets + s.bpackets;
const busiest = (a: { apackets: bigint; bpackets: bigint }, b: { apackets: bigint; bpackets: bigint }): number => {
  const d = used(b) - used(a);
  return d > 0n ? 1 : d < 0n ? -1 : 0;
};

/**
 * A destination as the rule language says it: `tcp to example.com
 * (93.184.216.34) port 443`, `udp from 10.0.0.5 port 53` (a service this
 * end offers: its own port), or how many others the row sums.
 */
export function destText(d: DestStats, v: Vocab): string {
  if (d.addr === undefined) return `${d.folded ?? 0} other destination${d.folded === 1 ? '' : 's'}`;
  const a = formatAddr(d.addr);
  const where = d.name !== undefined ? `${d.name} (${a})` : a;
  const from = d.side === sideValues(v).from;
  const prot = d.prot === undefined ? '' : v.protName(d.prot);
  const ported = prot === 'tcp' || prot === 'udp';
  return `${prot} ${from ? 'from' : 'to'} ${where}${ported ? ` port ${d.port ?? 0}` : ''}`;
}

/**
 * `stats`: one line per executable, busiest first, then by path; under
 * each, its destinations (when the module gives them), busiest first, the
 * "other" row last.
 */
export function statsLines(stats: readonly AppStats[], dests: readonly DestStats[] = [], v?: Vocab): string[] {
  const key = (s: { path: string; dev: number; ino: bigint }): string => `${s.dev}:${s.ino}:${s.path}`;
  const by = new Map<string, DestStats[]>();
  for (const d of dests) {
    const list = by.get(key(d)) ?? [];
    list.push(d);
    by.set(key(d), list);
  }
  const cells = (label: string, s: AppStats | DestStats): string[] =>
    [label, `${s.apackets}`, human(s.abytes), `${s.bpackets}`, human(s.bbytes), formatTime(s.lasthit)];
  const rows: string[][] = [];
  for (const s of [...stats].sort((a, b) => busiest(a, b) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    rows.push(cells(quote(s.path), s));
    if (v === undefined) continue;
    const mine = (by.get(key(s)) ?? []).sort((a, b) => (a.addr === undefined ? 1 : 0) - (b.addr === undefined ? 1 : 0) || busiest(a, b));
    for (const d of mine) rows.push(cells(`  ${destText(d, v)}`, d));
  }
  const head = ['application', 'allowed', 'bytes', 'blocked', 'bytes', 'last'];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) =>
    r
      .map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(i === r.length - 1 ? 0 : widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}
