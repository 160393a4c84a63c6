// The words of the grammar that come from the schema: protocols, flag
// values, flags.  Built once from addon.schema at run time.  Where the
// daemon needs one entry (the mode flag, the value enabled) it names it by
// defs.x's C identifier through `ids` (ids.FLAG.MODE), as the module's C
// does with VORDR_FLAG_MODE, and never by the name or number itself.

import { constGroup, type FlagDef, type Ids, type Schema } from './addon';

/** A constant of defs.x's VALUE group by its C identifier. */
export type ValueId = keyof Ids['VALUE'];
/** A constant of defs.x's LIFE group by its C identifier. */
export type LifeId = keyof Ids['LIFE'];
/** A flag by its C identifier. */
export type FlagId = keyof Ids['FLAG'];

export interface Flag extends FlagDef {
  readonly name: string;
  /** allowed, as numbers. */
  readonly allowedValues: readonly number[];
}

export interface Vocab {
  readonly schema: Schema;
  /** defs.x's entries by C identifier: ids.FLAG.MODE is the mode flag's name. */
  readonly ids: Ids;
  /** A VALUE constant's number by its C identifier (ids.VALUE). */
  valueOf(id: ValueId): number | undefined;
  /** A LIFE constant's number by its C identifier (ids.LIFE). */
  lifeOf(id: LifeId): number | undefined;
  prot(word: string): number | undefined;
  protName(value: number): string;
  protNames(): string[];
  value(word: string): number | undefined;
  valueName(value: number | bigint): string | undefined;
  /** A value's canonical name and its aliases ([] when unknown). */
  valueAliases(name: string): readonly string[];
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
  // constants are grouped by defs.x's group, lowercased (PROT -> prot).
  const group = (g: keyof Ids): Table => constGroup(schema, g);
  const prots = group('PROT');
  const values = group('VALUE');
  const protAlias = byAlias(prots);
  const protByValue = byValue(prots);
  const valueAlias = byAlias(values);
  const valueByNumber = byValue(values);
  const lives = group('LIFE');
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
  const pathAttr = schema.attrs[schema.ids.ATTR.PATH];
  return {
    schema,
    ids: schema.ids,
    valueOf: (id) => valueAlias.get(schema.ids.VALUE[id]),
    lifeOf: (id) => lifeAlias.get(schema.ids.LIFE[id]),
    prot: (w) => protAlias.get(w),
    protName: (v) => protByValue.get(v) ?? String(v),
    protNames: () => [...protByValue.values()],
    value: (w) => valueAlias.get(w),
    valueAliases: (n) => values[n]?.aliases ?? [],
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
