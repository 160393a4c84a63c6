// A thin typed wrapper over the addon's Connection: one method per netlink
// command, ResultAsync everywhere, kernel errors as a discriminated union.
//
// The command and attribute names below are the addon's contract (they are
// defs.x's names); connect() checks that the addon's schema has every one of
// them, so a renamed entry in defs.x fails loudly here, not at the first use.

import os from 'node:os';
import { ResultAsync, errAsync, okAsync } from 'neverthrow';
import { constValue, schemaGaps, type Addon, type AttrValue, type Connection, type Event, type EventLoss, type Message, type Schema } from './addon';
import { qualAttrs, qualOf, type KernelQual } from './kqual';

export type KernelError =
  | { kind: 'not-loaded' }
  | {
      kind: 'schema-mismatch';
      module: { version: number; schema: number };
      daemon: { version: number; schema: number };
    }
  | { kind: 'permission'; command: string; message: string }
  | { kind: 'kernel'; command: string; errno: number; code: string; message: string; attr?: string }
  /** The addon refused the arguments (TypeError): a bug in the daemon. */
  | { kind: 'bad-request'; command: string; message: string }
  /** The addon's schema lacks a command or attribute the daemon uses. */
  | { kind: 'addon-mismatch'; missing: string[] };

/** The module does not have this command (an older module): EOPNOTSUPP or EINVAL. */
export function isUnsupported(e: KernelError): boolean {
  return e.kind === 'kernel' && (e.code === 'EOPNOTSUPP' || e.code === 'EINVAL');
}

export interface Rule {
  prot: number;
  path: string;
  verdict: number;
  packets: bigint;
  bytes: bigint;
  /** Unix seconds of the last packet, 0 = never. */
  lasthit: bigint;
  /** Seconds until the rule expires; 0 for a rule that does not. */
  timeout: number;
  /**
   * How long it lasts besides its timeout: a value of the schema's `life`
   * constants (vocab.life()/lifeName()).  A module that sends no `life`
   * attribute made a rule that lasts always.
   */
  life: number;
  /** Its qualifiers (`to`, `from`, `port`, `user`); absent: none. */
  qual?: KernelQual;
}

export interface RuleAddOptions {
  /** Seconds until the kernel removes the rule by itself. */
  readonly timeout?: number;
  /**
   * A value of the schema's `life` constants: `exit` makes the rule the
   * kernel's until this connection's socket closes (the process ends,
   * SIGKILL included); `reboot` marks it never to be saved.  With timeout
   * as well, the earlier wins.
   */
  readonly life?: number;
  /** The rule's qualifiers: a rule is its path, protocol and these. */
  readonly qual?: KernelQual;
}

/** STATS: one executable's counters. */
export interface AppStats {
  path: string;
  dev: number;
  ino: bigint;
  apackets: bigint;
  abytes: bigint;
  bpackets: bigint;
  bbytes: bigint;
  lasthit: bigint;
}

/** DESTS: where one executable's packets went (its counters, as STATS's); a row without addr sums the destinations pushed out. */
export interface DestStats extends AppStats {
  /** The remote address (4 or 16 bytes); undefined on the "other" row. */
  addr?: Buffer;
  prot?: number;
  /** A SIDE constant: TO (the remote's port) or FROM (this end's own, a service it offers). */
  side?: number;
  port?: number;
  /** The executable's own lookup of addr, while it lasts. */
  name?: string;
  /** The "other" row: how many destinations it sums. */
  folded?: number;
}

// Commands, attributes and flags are named by defs.x's C identifiers
// (schema.ids.CMD.RULE_ADD), checked when the daemon is compiled; the
// addon that supplies them was built from the same defs.x, and HELLO
// checks that the module was too.
type Ids = Schema['ids'];

export const PERMISSION_MESSAGE = 'changing rules needs root or CAP_NET_ADMIN';

export function describeKernelError(e: KernelError): string {
  switch (e.kind) {
    case 'not-loaded':
      return "the vordr kernel module is not loaded; load it with 'modprobe vordr' (or 'sudo make -C kmod load' in the source tree)";
    case 'schema-mismatch':
      return `module built from another schema version (module: version ${e.module.version} schema ${hex(e.module.schema)}, daemon: version ${e.daemon.version} schema ${hex(e.daemon.schema)}); rebuild/reload it`;
    case 'permission':
      return e.message;
    case 'kernel':
      return `${e.command}: ${e.message || e.code}${e.message && e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}${e.attr ? ` [attribute ${e.attr}]` : ''}`;
    case 'bad-request':
      return `${e.command}: the addon rejected the request: ${e.message} (a vordr bug; please report it)`;
    case 'addon-mismatch':
      return `the native addon's schema lacks ${e.missing.join(', ')}; rebuild the addon and the daemon from the same defs.x`;
  }
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function toKernelError(command: string, e: unknown): KernelError {
  const x = (e ?? {}) as { errno?: unknown; code?: unknown; message?: unknown; attr?: unknown };
  const errno = typeof x.errno === 'number' ? Math.abs(x.errno) : 0;
  const code = typeof x.code === 'string' ? x.code : '';
  const message = typeof x.message === 'string' ? x.message : String(e);
  if (code === 'EPERM' || errno === os.constants.errno.EPERM)
    return { kind: 'permission', command, message: PERMISSION_MESSAGE };
  return {
    kind: 'kernel',
    command,
    errno,
    code,
    message,
    ...(typeof x.attr === 'string' ? { attr: x.attr } : {}),
  };
}

export class Kernel {
  /** The life of a rule whose dump carries none. */
  private readonly lifeAlways: number;
  private readonly ids: Ids;

  private constructor(
    private conn: Connection,
    private readonly schema: Schema,
    private readonly addon: Addon,
  ) {
    this.ids = schema.ids;
    this.lifeAlways = constValue(schema, 'LIFE', 'ALWAYS') ?? Number.NaN;
  }

  /** Opens the family and checks the module was built from our defs.x. */
  static connect(addon: Addon): ResultAsync<Kernel, KernelError> {
    const missing = schemaGaps(addon.schema);
    if (missing.length > 0) return errAsync({ kind: 'addon-mismatch', missing });
    let opening: Promise<Connection>;
    try {
      opening = addon.open();
    } catch (e) {
      return errAsync(toKernelError('open', e));
    }
    return ResultAsync.fromPromise(opening, (e): KernelError => {
      const x = (e ?? {}) as { code?: unknown; errno?: unknown };
      if (x.code === 'ENOENT' || (typeof x.errno === 'number' && Math.abs(x.errno) === os.constants.errno.ENOENT))
        return { kind: 'not-loaded' };
      return toKernelError('open', e);
    }).andThen((conn) => {
      const k = new Kernel(conn, addon.schema, addon);
      return k.hello().orElse((e) => {
        k.close();
        return errAsync(e);
      });
    });
  }

  /**
   * Opens the family afresh and checks HELLO again: after the module was
   * unloaded and loaded, its family id and multicast group are new ones.
   * On success this Kernel talks to the new family (subscribe again); on
   * failure it keeps the old connection.
   */
  reopen(): ResultAsync<void, KernelError> {
    return Kernel.connect(this.addon).map((fresh) => {
      const old = this.conn;
      this.conn = fresh.conn;
      try {
        old.close();
      } catch {
        // Already closed.
      }
    });
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Closing twice or after the module went away is not an error worth reporting.
    }
  }

  private call(command: string, attrs?: Readonly<Record<string, AttrValue | undefined>>): ResultAsync<Message[], KernelError> {
    let wire: Message | undefined;
    if (attrs) {
      wire = {};
      for (const [name, v] of Object.entries(attrs)) {
        if (v === undefined) continue;
        wire[name] = this.encode(name, v);
      }
    }
    let pending: Promise<Message[]>;
    try {
      pending = wire ? this.conn.request(command, wire) : this.conn.request(command);
    } catch (e) {
      return errAsync({ kind: 'bad-request', command, message: e instanceof Error ? e.message : String(e) });
    }
    return ResultAsync.fromPromise(pending, (e) => toKernelError(command, e));
  }

  /** u64 attributes travel as bigint, the others as number (types from the schema). */
  private encode(name: string, v: AttrValue): AttrValue {
    const type = this.schema.attrs[name]?.type;
    if (type === 'u64' && typeof v === 'number') return BigInt(v);
    if (type !== 'u64' && typeof v === 'bigint') return Number(v);
    return v;
  }

  private hello(): ResultAsync<Kernel, KernelError> {
    const A = this.ids.ATTR;
    return this.call(this.ids.CMD.HELLO).andThen((replies) => {
      const r = replies[0] ?? {};
      const module = { version: num(r[A.VERSION]), schema: num(r[A.SCHEMA]) >>> 0 };
      const daemon = { version: this.schema.family.version, schema: this.schema.family.schemaCrc >>> 0 };
      if (module.version !== daemon.version || module.schema !== daemon.schema)
        return errAsync<Kernel, KernelError>({ kind: 'schema-mismatch', module, daemon });
      return okAsync<Kernel, KernelError>(this);
    });
  }

  /** Adds or replaces a rule; see RuleAddOptions for timeout and life. */
  ruleAdd(prot: number, path: string, verdict: number, opts: RuleAddOptions = {}): ResultAsync<void, KernelError> {
    const { timeout, life, qual } = opts;
    const A = this.ids.ATTR;
    return this.call(this.ids.CMD.RULE_ADD, { [A.PROT]: prot, [A.PATH]: path, [A.VERDICT]: verdict, [A.TIMEOUT]: timeout, [A.LIFE]: life, ...qualAttrs(qual, A) }).map(() => undefined);
  }

  /**
   * Without prot, removes every rule for path; with it, the one rule of
   * that protocol and those qualifiers (none: the unqualified one).
   */
  ruleDel(path: string, prot?: number, qual?: KernelQual): ResultAsync<void, KernelError> {
    const A = this.ids.ATTR;
    return this.call(this.ids.CMD.RULE_DEL, { [A.PATH]: path, [A.PROT]: prot, ...(prot === undefined ? {} : qualAttrs(qual, A)) }).map(() => undefined);
  }

  /** Without verdict, removes every rule. */
  ruleClear(verdict?: number): ResultAsync<void, KernelError> {
    return this.call(this.ids.CMD.RULE_CLEAR, verdict === undefined ? undefined : { [this.ids.ATTR.VERDICT]: verdict }).map(() => undefined);
  }

  /**
   * A dump cut short by a concurrent change (EINTR) is asked again, up to
   * three times in all: the caller wants one consistent listing, not a
   * partial one.
   */
  private dump(command: string, attrs?: Readonly<Record<string, AttrValue | undefined>>, tries = 3): ResultAsync<Message[], KernelError> {
    return this.call(command, attrs).orElse((e) =>
      e.kind === 'kernel' && e.code === 'EINTR' && tries > 1 ? this.dump(command, attrs, tries - 1) : errAsync(e),
    );
  }

  /** The rules (RULE_LIST dump), of one verdict or all. */
  ruleList(verdict?: number): ResultAsync<Rule[], KernelError> {
    return this.dump(this.ids.CMD.RULE_LIST, verdict === undefined ? undefined : { [this.ids.ATTR.VERDICT]: verdict }).map((replies) =>
      replies.map((r) => toRule(r, this.ids.ATTR, this.lifeAlways)),
    );
  }

  /** The policy transaction's calls (defs.x POLICY_BEGIN and the STAGE attribute). */
  private policyCall(command: string, attrs?: Readonly<Record<string, AttrValue | undefined>>): ResultAsync<void, KernelError> {
    return this.call(command, attrs).map(() => undefined);
  }

  /** Opens this connection's policy transaction: records, and their crc32. */
  policyBegin(records: number, crc: number): ResultAsync<void, KernelError> {
    const A = this.ids.ATTR;
    return this.policyCall(this.ids.CMD.POLICY_BEGIN, { [A.RECORDS]: records, [A.CRC]: crc >>> 0 });
  }

  /** A lasting rule, staged in this connection's transaction. */
  stageRule(prot: number, path: string, verdict: number, qual?: KernelQual): ResultAsync<void, KernelError> {
    const A = this.ids.ATTR;
    return this.policyCall(this.ids.CMD.RULE_ADD, { [A.PROT]: prot, [A.PATH]: path, [A.VERDICT]: verdict, [A.STAGE]: 1, ...qualAttrs(qual, A) });
  }

  /** A flag value, staged in this connection's transaction. */
  stageFlag(flag: number, value: number | bigint): ResultAsync<void, KernelError> {
    const A = this.ids.ATTR;
    return this.policyCall(this.ids.CMD.FLAG_SET, { [A.FLAG]: flag, [A.VALUE]: value, [A.STAGE]: 1 });
  }

  /** Checks and applies the transaction (EBADMSG: it failed closed). */
  policyCommit(): ResultAsync<void, KernelError> {
    return this.policyCall(this.ids.CMD.POLICY_COMMIT);
  }

  /** The loader could not load the policy: reason is a `policy` constant; the module fails closed. */
  policyFail(reason: number): ResultAsync<void, KernelError> {
    return this.policyCall(this.ids.CMD.POLICY_FAIL, { [this.ids.ATTR.POLICY]: reason });
  }

  flagSet(flag: number, value: number | bigint): ResultAsync<void, KernelError> {
    const A = this.ids.ATTR;
    return this.call(this.ids.CMD.FLAG_SET, { [A.FLAG]: flag, [A.VALUE]: value }).map(() => undefined);
  }

  flagGet(flag: number): ResultAsync<bigint, KernelError> {
    const A = this.ids.ATTR;
    return this.call(this.ids.CMD.FLAG_GET, { [A.FLAG]: flag }).map((replies) => big(replies[0]?.[A.VALUE]));
  }

  /** Per-executable counters (STATS dump). */
  stats(): ResultAsync<AppStats[], KernelError> {
    return this.dump(this.ids.CMD.STATS).map((replies) => replies.map((r) => toStats(r, this.ids.ATTR)));
  }

  /** Per-executable destinations (DESTS dump). */
  dests(): ResultAsync<DestStats[], KernelError> {
    return this.dump(this.ids.CMD.DESTS).map((replies) => replies.map((r) => toDest(r, this.ids.ATTR)));
  }

  /**
   * Delivers the module's events (undecoded messages, or the addon's
   * `{lost: true}` marker) to callback; false when the addon or the module
   * has no event group.
   */
  subscribe(callback: (event: Event) => void): boolean {
    if (this.conn.groupId === null) return false;
    try {
      this.conn.subscribe(callback);
      return true;
    } catch {
      return false;
    }
  }

  unsubscribe(): void {
    try {
      this.conn.unsubscribe();
    } catch {
      // Already closed.
    }
  }

  /** This listener's losses so far (the addon's counts of its event socket). */
  eventLoss(): EventLoss {
    return this.conn.eventLoss ?? { overruns: 0 };
  }

  /** The module's evdrops: events it could not deliver to some listener, since load. */
  evdrops(): ResultAsync<bigint, KernelError> {
    const f = this.schema.flags[this.ids.FLAG.EVDROPS];
    if (!f) return errAsync({ kind: 'addon-mismatch', missing: [`flag ${this.ids.FLAG.EVDROPS}`] });
    return this.flagGet(f.id);
  }
}

function str(v: AttrValue | undefined): string {
  return typeof v === 'string' ? v : String(v ?? '');
}

function toRule(r: Message, A: Ids['ATTR'], lifeAlways: number): Rule {
  return {
    prot: num(r[A.PROT]),
    path: str(r[A.PATH]),
    verdict: num(r[A.VERDICT]),
    packets: big(r[A.PACKETS]),
    bytes: big(r[A.BYTES]),
    lasthit: big(r[A.LASTHIT]),
    timeout: num(r[A.TIMEOUT]),
    life: r[A.LIFE] === undefined ? lifeAlways : num(r[A.LIFE]),
    ...((q) => (q === undefined ? {} : { qual: q }))(qualOf(r, A)),
  };
}

function toStats(r: Message, A: Ids['ATTR']): AppStats {
  return {
    path: str(r[A.PATH]),
    dev: num(r[A.DEV]),
    ino: big(r[A.INO]),
    apackets: big(r[A.APACKETS]),
    abytes: big(r[A.ABYTES]),
    bpackets: big(r[A.BPACKETS]),
    bbytes: big(r[A.BBYTES]),
    lasthit: big(r[A.LASTHIT]),
  };
}

function toDest(r: Message, A: Ids['ATTR']): DestStats {
  const addr = r[A.DADDR];
  const name = r[A.NAME];
  return {
    ...toStats(r, A),
    ...(Buffer.isBuffer(addr)
      ? { addr, prot: num(r[A.PROT]), side: num(r[A.QSIDE]), port: num(r[A.DPORT]), ...(typeof name === 'string' && name !== '' ? { name } : {}) }
      : { folded: num(r[A.COUNT]) }),
  };
}

function num(v: AttrValue | undefined): number {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

function big(v: AttrValue | undefined): bigint {
  return typeof v === 'bigint' ? v : typeof v === 'number' ? BigInt(v) : 0n;
}
