// The command reference (docs/COMMANDS.md, `vordr --reference`): made from
// the tables the daemon runs on (the grammar's COMMANDS, the schema's flags
// and constants through vocab.ts, the events' JSON fields, the options and
// exit codes of cli.ts), so it cannot drift from them; a unit test checks
// the file in the repository is this output.

import { constGroup } from './addon';
import { COMMANDS, DURATION_UNITS, LIFETIME_USAGE, flagValueWords } from './grammar';
import { EVENT_FIELDS } from './events';
import type { FlagId, Vocab } from './vocab';

/** What each flag means, by defs.x's C identifier (a flag defs.x lacks does not compile). */
export const FLAG_MEANING: { readonly [K in FlagId]: string } = {
  MODE: 'enabled enforces the rules, disabled lets everything pass, block drops everything',
  UNKRULE: 'the verdict when no rule names the application; pending drops the packet and asks the console (the application\'s own retry passes once the user allows)',
  UNKPROC: 'the verdict when the process that owns the packet cannot be found',
  UNKPROT: 'the verdict for a protocol other than TCP, UDP and ICMP/ICMPv6 from a program no any rule names',
  FAIL: 'the verdict on a malformed packet or an internal failure',
  NORULE: 'an event when no rule names the application',
  SQUELCH: 'repeated events for the same application and protocol are rate-limited (the next one counts them)',
  DROPS: 'an event when a rule blocks',
  ACCEPTS: 'an event when a rule allows',
  RCHNGQ: 'the rule table is announced to listeners after every change',
  UPTIME: 'seconds since the module was loaded',
  QPACKETS: 'packets inspected',
  EVDROPS: 'events not delivered (no memory, or a listener\'s receive buffer full)',
  SQUELCHED: 'events withheld by squelch',
  HELD: 'inbound datagrams held while their new socket\'s owner was looked up',
  HELDLOST: 'datagrams whose owner was not known in time (judged by unkproc), or held when the module was unloaded (dropped)',
  POLICY: 'what the last load of the saved policy did, or why it failed closed',
  DNSDROPS: 'names learnt from DNS answers dropped before they expired (the module\'s bounds, or no memory)',
  DESTLOST: 'packets counted for their application but not for a destination (no memory for its destination table)',
};

function code(s: string): string {
  return `\`${s}\``;
}

/** A Markdown table cell: pipes escaped. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

export interface ReferenceTables {
  readonly options: Readonly<Record<string, { readonly short?: string; readonly arg?: string; readonly help: string }>>;
  readonly exits: Readonly<Record<string, { readonly code: number; readonly meaning: string }>>;
}

export function reference(v: Vocab, t: ReferenceTables): string {
  const out: string[] = [];
  const p = (...lines: string[]) => out.push(...lines);
  p(
    '# vordr command reference',
    '',
    '<!-- Made by `vordr --reference` (npm run docs) from the tables the daemon runs on;',
    '     test/unit/daemon-reference.test.js fails when this file differs. Do not edit. -->',
    '',
    'One grammar for the interactive console, command files (`vordr -f FILE`,',
    'or commands on standard input) and the rules file: one command per line,',
    '`#` starts a comment, blank lines are ignored, a path with blanks is',
    'written in double quotes. [docs/CONSOLE.md](CONSOLE.md) shows the console',
    'itself; `help` and `help COMMAND` in it print the usage below.',
    '',
    '## Commands',
    '',
    '| usage | meaning |',
    '|---|---|',
  );
  for (const e of COMMANDS) {
    const usages = e.usage.map((u) => code(cell(u))).join('<br>');
    const aliases = e.aliases.length > 0 ? ` (alias ${e.aliases.map(code).join(', ')})` : '';
    p(`| ${usages} | ${cell(e.summary)}${aliases} |`);
  }
  p(
    '',
    '## Arguments',
    '',
    `- PROT: ${v.protNames().map(code).join(', ')}; omitted, ${code(v.ids.PROT.ANY)}, which covers every IP protocol the application's sockets use.`,
    '- PATH: an absolute executable path; ending in `/`, every executable below that directory. A symbolic link names the file it resolves to.',
    `- A rule's life, last on its line: ${code(LIFETIME_USAGE)}. TIME is a number and a unit: ${Object.keys(DURATION_UNITS).map(code).join(', ')} (${Object.entries(DURATION_UNITS).map(([u, n]) => `${u} = ${n} s`).join(', ')}). Such rules are the kernel's to end and are never saved; without one a rule lasts until removed, and is saved.`,
    '- The most specific rule wins: an exact path over a deeper directory over a shallower one, then a named protocol over `any`.',
    '',
    '## Flags',
    '',
    '`set FLAG VALUE` and `get FLAG`; `-s FLAG=VALUE` on the command line.',
    '',
    '| flag | values | default | meaning |',
    '|---|---|---|---|',
  );
  const ids = v.ids.FLAG as Readonly<Record<FlagId, string>>;
  const byName = new Map(Object.entries(ids).map(([id, name]) => [name, id as FlagId]));
  for (const name of v.flagNames()) {
    const f = v.flag(name);
    if (!f) continue;
    const id = byName.get(name);
    const meaning = id === undefined ? '' : FLAG_MEANING[id];
    if (!f.writable) {
      // A read-only flag whose values are a group of constants named like it (policy).
      const group = Object.keys(v.schema.constants[name] ?? {});
      const values = group.length > 0 ? `read-only: ${group.map(code).join(' ')}` : 'read-only';
      p(`| ${code(name)} | ${values} | | ${cell(meaning)} |`);
      continue;
    }
    const words = flagValueWords(v, f).map((w) => (w.aliases.length ? `${code(w.name)} (${w.aliases.map(code).join(', ')})` : code(w.name)));
    const def = v.valueName(f.default);
    p(`| ${code(name)} | ${words.join(' ')} | ${def ? code(def) : ''} | ${cell(meaning)} |`);
  }
  const words = (group: string) => Object.keys(constGroup(v.schema, group)).map(code).join(', ');
  p(
    '',
    '## Events',
    '',
    'The console shows them as rows; `vordr --service` prints each as one JSON',
    'object on a line, with these fields (those about the owner only when the',
    'module knows it):',
    '',
    '| field | meaning |',
    '|---|---|',
    ...Object.entries(EVENT_FIELDS).map(([f, m]) => `| ${code(f)} | ${cell(m)} |`),
    '',
    `Words: verdict ${[v.ids.VALUE.ALLOW, v.ids.VALUE.BLOCK, v.ids.VALUE.PENDING].map(code).join(', ')}; reason ${words('REASON')}; dir ${words('DIR')}; prot ${words('PROT')}.`,
    '',
    '## Options',
    '',
    '| option | meaning |',
    '|---|---|',
  );
  for (const [name, o] of Object.entries(t.options)) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`;
    p(`| ${code(flag)} | ${cell(o.help)} |`);
  }
  p('', '## Exit codes', '', '| code | meaning |', '|---|---|');
  for (const e of Object.values(t.exits)) p(`| ${e.code} | ${cell(e.meaning)} |`);
  p('');
  return out.join('\n');
}
