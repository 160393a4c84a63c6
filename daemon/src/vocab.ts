// The words of the grammar that come from the schema: protocols, flag
// values, flags.  Built once from addon.schema at run time; the daemon names
// no protocol, flag or value of its own except the few the grammar itself
// defines (SPEC section 2), listed in GRAMMAR_WORDS and looked up here.

import type { FlagDef, Schema } from './addon';

/**
 * Schema words the grammar's own commands stand for.  `enable`, `block` and
 * `allow` (without a path) set the mode flag; a rule's verdict is the value
 * named like the command word; an omitted PROT is `any` (SPEC section 2).
 */
export const GRAMMAR_WORDS = {
  modeFlag: 'mode',
  modeEnabled: 'enabled',
  modeDisabled: 'disabled',
  modeBlock: 'block',
  allow: 'allow',
  block: 'block',
  anyProt: 'any',
  /** The flag for applications no rule names (the note on block rules). */
  unknownFlag: 'unkrule',
} as const;

export interface Flag extends FlagDef {
  readonly name: string;
  /** allowed, as numbers. */
  readonly allowedValues: readonly number[];
}

export interface Vocab {
  readonly schema: Schema;
  prot(word: string): number | undefined;
  protName(value: number): string;
  protNames(): string[];
  value(word: string): number | undefined;
  valueName(value: number | bigint): string | undefined;
  flag(name: string): Flag | undefined;
  flagNames(): string[];
  flagById(id: number): Flag | undefined;
  /** A rule's life (the schema's `life` constants) by name or alias, and back. */
  life(word: string): number | undefined;
  lifeName(value: number): string;
  lifeNames(): string[];
  /** Longest PATH in bytes the module accepts. */
  readonly pathMax: number;
}

type Table = Readonly<Record<string, { readonly value: number; readonly aliases: readonly string[] }>>;

function byAlias(group: Table): Map<string, number> {
  const m = new Map<string, number>();
  for (const [name, c] of Object.entries(group)) {
    m.set(name, c.value);
    for (const a of c.aliases) m.set(a, c.value);
  }
  return m;
}

function byValue(group: Table): Map<number, string> {
  const m = new Map<number, string>();
  for (const [name, c] of Object.entries(group))
    if (!m.has(c.value)) m.set(c.value, c.aliases[0] ?? name);
  return m;
}

export function vocabulary(schema: Schema): Vocab {
  const prots = schema.constants['prot'] ?? {};
  const values = schema.constants['value'] ?? {};
  const protAlias = byAlias(prots);
  const protByValue = byValue(prots);
  const valueAlias = byAlias(values);
  const valueByNumber = byValue(values);
  const lives = schema.constants['life'] ?? {};
  const lifeAlias = byAlias(lives);
  const lifeByValue = byValue(lives);
  const flags = new Map<string, Flag>();
  const flagsById = new Map<number, Flag>();
  for (const [name, f] of Object.entries(schema.flags)) {
    const allowedValues = f.allowed
      .map((a) => valueAlias.get(a))
      .filter((v): v is number => v !== undefined);
    const flag: Flag = { ...f, name, allowedValues };
    flags.set(name, flag);
    flagsById.set(f.id, flag);
  }
  const pathAttr = schema.attrs['path'];
  return {
    schema,
    prot: (w) => protAlias.get(w),
    protName: (v) => protByValue.get(v) ?? String(v),
    protNames: () => [...protByValue.values()],
    value: (w) => valueAlias.get(w),
    valueName: (v) => (typeof v === 'bigint' && v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : valueByNumber.get(Number(v))),
    flag: (n) => flags.get(n),
    flagNames: () => [...flags.keys()],
    flagById: (id) => flagsById.get(id),
    life: (w) => lifeAlias.get(w),
    lifeName: (v) => lifeByValue.get(v) ?? String(v),
    lifeNames: () => [...lifeByValue.values()],
    pathMax: pathAttr && pathAttr.hi > 0 ? pathAttr.hi : Number.POSITIVE_INFINITY,
  };
}
