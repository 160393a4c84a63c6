// A thin typed wrapper over the addon's Connection: one method per netlink
// command, ResultAsync everywhere, kernel errors as a discriminated union.
//
// The command and attribute names below are the addon's contract (they are
// defs.x's names); connect() checks that the addon's schema has every one of
// them, so a renamed entry in defs.x fails loudly here, not at the first use.

import os from 'node:os';
import { ResultAsync, errAsync, okAsync } from 'neverthrow';
import type { Addon, AttrValue, Connection, Event, EventLoss, Message, Schema } from './addon';

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

const COMMANDS = ['hello', 'rule_add', 'rule_del', 'rule_clear', 'rule_list', 'flag_set', 'flag_get'] as const;
const ATTRS = ['version', 'schema', 'prot', 'path', 'verdict', 'flag', 'value', 'packets', 'bytes', 'lasthit'] as const;
/** The schema's constants for a rule's life, and the one a rule has by default. */
const LIFE_GROUP = 'life';
const LIFE_ALWAYS = 'always';
/** The module's count of undelivered events. */
const EVDROPS = 'evdrops';
/** The saved policy's transaction (defs.x POLICY_BEGIN); checked when used. */
const POLICY_COMMANDS = ['policy_begin', 'policy_commit', 'policy_fail'] as const;
const POLICY_ATTRS = ['records', 'crc', 'stage', 'policy'] as const;
type CommandName = (typeof COMMANDS)[number] | (typeof POLICY_COMMANDS)[number];
type AttrName = (typeof ATTRS)[number] | (typeof POLICY_ATTRS)[number] | 'timeout' | 'life';

export const PERMISSION_MESSAGE = 'changing rules needs root or CAP_NET_ADMIN';

export function describeKernelError(e: KernelError): string {
  switch (e.kind) {
    case 'not-loaded':
      return "the vordr kernel module is not loaded; load it with 'modprobe vordr' (or 'insmod kmod/vordr.ko')";
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

  private constructor(
    private readonly conn: Connection,
    private readonly schema: Schema,
  ) {
    // connect() checked it is there.
    this.lifeAlways = schema.constants[LIFE_GROUP]?.[LIFE_ALWAYS]?.value ?? Number.NaN;
  }

  /** Opens the family and checks the module was built from our defs.x. */
  static connect(addon: Addon): ResultAsync<Kernel, KernelError> {
    const missing = [
      ...COMMANDS.filter((c) => !(c in addon.schema.commands)).map((c) => `command ${c}`),
      ...ATTRS.filter((a) => !(a in addon.schema.attrs)).map((a) => `attribute ${a}`),
      ...(addon.schema.constants[LIFE_GROUP]?.[LIFE_ALWAYS] ? [] : [`constant ${LIFE_GROUP} ${LIFE_ALWAYS}`]),
    ];
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
      const k = new Kernel(conn, addon.schema);
      return k.hello().orElse((e) => {
        k.close();
        return errAsync(e);
      });
    });
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Closing twice or after the module went away is not an error worth reporting.
    }
  }

  private call(command: CommandName | 'stats', attrs?: Partial<Record<AttrName, number | bigint | string>>): ResultAsync<Message[], KernelError> {
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
  private encode(name: string, v: number | bigint | string): AttrValue {
    const type = this.schema.attrs[name]?.type;
    if (type === 'u64' && typeof v === 'number') return BigInt(v);
    if (type !== 'u64' && typeof v === 'bigint') return Number(v);
    return v;
  }

  private hello(): ResultAsync<Kernel, KernelError> {
    return this.call('hello').andThen((replies) => {
      const r = replies[0] ?? {};
      const module = { version: num(r['version']), schema: num(r['schema']) >>> 0 };
      const daemon = { version: this.schema.family.version, schema: this.schema.family.schemaCrc >>> 0 };
      if (module.version !== daemon.version || module.schema !== daemon.schema)
        return errAsync<Kernel, KernelError>({ kind: 'schema-mismatch', module, daemon });
      return okAsync<Kernel, KernelError>(this);
    });
  }

  /** Adds or replaces a rule; see RuleAddOptions for timeout and life. */
  ruleAdd(prot: number, path: string, verdict: number, opts: RuleAddOptions = {}): ResultAsync<void, KernelError> {
    const { timeout, life } = opts;
    const missing = [
      ...(timeout !== undefined && !('timeout' in this.schema.attrs) ? ['attribute timeout'] : []),
      ...(life !== undefined && !('life' in this.schema.attrs) ? ['attribute life'] : []),
    ];
    if (missing.length > 0) return errAsync({ kind: 'addon-mismatch', missing });
    return this.call('rule_add', { prot, path, verdict, timeout, life }).map(() => undefined);
  }

  /** Without prot, removes every rule for path. */
  ruleDel(path: string, prot?: number): ResultAsync<void, KernelError> {
    return this.call('rule_del', prot === undefined ? { path } : { path, prot }).map(() => undefined);
  }

  /** Without verdict, removes every rule. */
  ruleClear(verdict?: number): ResultAsync<void, KernelError> {
    return this.call('rule_clear', verdict === undefined ? undefined : { verdict }).map(() => undefined);
  }

  /**
   * A dump cut short by a concurrent change (EINTR) is asked again: the
   * caller wants one consistent listing, not a partial one.
   */
  ruleList(verdict?: number, tries = 3): ResultAsync<Rule[], KernelError> {
    return this.call('rule_list', verdict === undefined ? undefined : { verdict })
      .map((replies) => replies.map((r) => toRule(r, this.lifeAlways)))
      .orElse((e) =>
        e.kind === 'kernel' && e.code === 'EINTR' && tries > 1 ? this.ruleList(verdict, tries - 1) : errAsync(e),
      );
  }

  /** What the module lacks of the policy transaction (an older module), if anything. */
  policyMissing(): string[] {
    return [
      ...POLICY_COMMANDS.filter((c) => !(c in this.schema.commands)).map((c) => `command ${c}`),
      ...POLICY_ATTRS.filter((a) => !(a in this.schema.attrs)).map((a) => `attribute ${a}`),
    ];
  }

  private policyCall(command: (typeof POLICY_COMMANDS)[number] | 'rule_add' | 'flag_set', attrs?: Partial<Record<AttrName, number | bigint | string>>): ResultAsync<void, KernelError> {
    const missing = this.policyMissing();
    if (missing.length > 0) return errAsync({ kind: 'addon-mismatch', missing });
    return this.call(command, attrs).map(() => undefined);
  }

  /** Opens this connection's policy transaction: records, and their crc32. */
  policyBegin(records: number, crc: number): ResultAsync<void, KernelError> {
    return this.policyCall('policy_begin', { records, crc: crc >>> 0 });
  }

  /** A lasting rule, staged in this connection's transaction. */
  stageRule(prot: number, path: string, verdict: number): ResultAsync<void, KernelError> {
    return this.policyCall('rule_add', { prot, path, verdict, stage: 1 });
  }

  /** A flag value, staged in this connection's transaction. */
  stageFlag(flag: number, value: number | bigint): ResultAsync<void, KernelError> {
    return this.policyCall('flag_set', { flag, value, stage: 1 });
  }

  /** Checks and applies the transaction (EBADMSG: it failed closed). */
  policyCommit(): ResultAsync<void, KernelError> {
    return this.policyCall('policy_commit');
  }

  /** The loader could not load the policy: reason is a `policy` constant; the module fails closed. */
  policyFail(reason: number): ResultAsync<void, KernelError> {
    return this.policyCall('policy_fail', { policy: reason });
  }

  flagSet(flag: number, value: number | bigint): ResultAsync<void, KernelError> {
    return this.call('flag_set', { flag, value }).map(() => undefined);
  }

  flagGet(flag: number): ResultAsync<bigint, KernelError> {
    return this.call('flag_get', { flag }).map((replies) => big(replies[0]?.['value']));
  }

  /** Per-executable counters (STATS dump); EINTR is asked again like ruleList. */
  stats(tries = 3): ResultAsync<AppStats[], KernelError> {
    if (!('stats' in this.schema.commands)) return errAsync({ kind: 'addon-mismatch', missing: ['command stats'] });
    return this.call('stats')
      .map((replies) => replies.map(toStats))
      .orElse((e) => (e.kind === 'kernel' && e.code === 'EINTR' && tries > 1 ? this.stats(tries - 1) : errAsync(e)));
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
    const f = this.schema.flags[EVDROPS];
    if (!f) return errAsync({ kind: 'addon-mismatch', missing: [`flag ${EVDROPS}`] });
    return this.flagGet(f.id);
  }
}

function toRule(r: Message, lifeAlways: number): Rule {
  return {
    prot: num(r['prot']),
    path: typeof r['path'] === 'string' ? r['path'] : String(r['path'] ?? ''),
    verdict: num(r['verdict']),
    packets: big(r['packets']),
    bytes: big(r['bytes']),
    lasthit: big(r['lasthit']),
    timeout: num(r['timeout']),
    life: r['life'] === undefined ? lifeAlways : num(r['life']),
  };
}

function toStats(r: Message): AppStats {
  return {
    path: typeof r['path'] === 'string' ? r['path'] : String(r['path'] ?? ''),
    dev: num(r['dev']),
    ino: big(r['ino']),
    apackets: big(r['apackets']),
    abytes: big(r['abytes']),
    bpackets: big(r['bpackets']),
    bbytes: big(r['bbytes']),
    lasthit: big(r['lasthit']),
  };
}

function num(v: AttrValue | undefined): number {
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

function big(v: AttrValue | undefined): bigint {
  return typeof v === 'bigint' ? v : typeof v === 'number' ? BigInt(v) : 0n;
}
