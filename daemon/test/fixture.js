'use strict';
// Test support for test/unit/daemon*.test.js.
//
// schema(): the real addon.schema once addon/build/Release/vordr.node is
// built; until then, the same shape read from defs.x here, so the daemon's
// tests exercise the names and numbers of the one schema either way.
//
// fakeAddon(): an addon whose Connection keeps rules and flags in memory and
// records every request.  It only unit-tests the daemon's own logic
// (ordering, error collection, output format, exit status); the real module
// is exercised end to end in the VM tests.

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const ADDON_BINARY = path.join(ROOT, 'addon', 'build', 'Release', 'vordr.node');

function addonBuilt() {
  return fs.existsSync(ADDON_BINARY);
}

/** The schema from defs.x, in the shape the addon exports. */
function schemaFromDefs() {
  const text = fs.readFileSync(path.join(ROOT, 'defs.x'), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^#.*$/gm, '');
  const calls = [];
  const re = /VORDR_(FAMILY|CONST|FLAG|CMD|ATTR)\(([^;]*?)\)\s*(?=VORDR_|$)/g;
  for (const m of text.matchAll(re)) calls.push([m[1], splitArgs(m[2])]);
  const schema = { family: null, ids: {}, commands: {}, attrs: {}, constants: {}, flags: {} };
  const idOf = (kind, cid, name) => ((schema.ids[kind] ??= {})[cid] = name);
  const consts = [];
  for (const [kind, a] of calls) {
    if (kind === 'CONST') {
      const [group, id, value, ...names] = a;
      const g = group.toLowerCase();
      const c = { value: Number(value), aliases: names.map(unquote) };
      (schema.constants[g] ??= {})[c.aliases[0]] = c;
      consts.push({ group, id, c });
      idOf(group, id, c.aliases[0]);
    }
  }
  const valueOf = (id) => consts.find((x) => x.group === 'VALUE' && x.id === id).c.value;
  const vals = (expr) => {
    const ids = [...expr.matchAll(/VORDR_V\((\w+)\)/g)].map((m) => m[1]);
    return consts.filter((x) => x.group === 'VALUE' && ids.includes(x.id)).map((x) => x.c.aliases[0]);
  };
  let flagId = 0, cmdId = 0, attrId = 0;
  for (const [kind, a] of calls) {
    if (kind === 'FAMILY') {
      schema.family = { name: unquote(a[0]), version: Number(a[1]), group: unquote(a[2]), schemaCrc: 0x12345678 };
    } else if (kind === 'FLAG') {
      const [cid, name, access, def, allowed] = a;
      idOf('FLAG', cid, name);
      const d = /VORDR_VAL\((\w+)\)/.exec(def);
      schema.flags[name] = { id: ++flagId, writable: access === 'RW', default: d ? valueOf(d[1]) : Number(def), allowed: vals(allowed) };
    } else if (kind === 'CMD') {
      const [cid, name, perm, k] = a;
      idOf('CMD', cid, name);
      schema.commands[name] = { id: ++cmdId, admin: perm === 'ADMIN', kind: k.toLowerCase() };
    }
  }
  const bound = (e) => {
    const d = /VORDR_VAL\((\w+)\)/.exec(e);
    if (d) return valueOf(d[1]);
    if (e === 'VORDR_FLAG_MAX') return flagId;
    const k = consts.find((x) => `VORDR_${x.group}_${x.id}` === e);
    if (k) return k.c.value;
    return Number(e);
  };
  for (const [kind, a] of calls) {
    if (kind !== 'ATTR') continue;
    const [cid, name, type, dir, lo, hi] = a;
    idOf('ATTR', cid, name);
    schema.attrs[name] = { id: ++attrId, type: type.toLowerCase(), input: dir === 'IN', lo: bound(lo), hi: bound(hi) };
  }
  return schema;
}

function splitArgs(s) {
  const out = [];
  let depth = 0, cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { out.push(cur.trim()); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur.trim());
  return out;
}

function unquote(s) {
  return s.replace(/^"|"$/g, '');
}

let cached;
/** The real addon.schema when the addon is built (and then nothing else). */
function schema() {
  if (cached) return cached;
  if (addonBuilt()) {
    // Loaded the way the daemon loads it; a broken build fails the tests.
    const r = require('../dist/addon.js').loadAddon();
    if (r.isErr()) throw new Error(`the addon is built but does not load: ${r.error.message}`);
    cached = r.value.schema;
  } else if (process.env.CI) {
    // CI builds the addon first; testing against our own reading of defs.x
    // there would hide a broken build.
    throw new Error(`the native addon is not built (${ADDON_BINARY}); run 'npm run build'`);
  } else {
    process.emitWarning('addon not built: daemon tests use a schema read from defs.x');
    cached = schemaFromDefs();
  }
  return cached;
}

function kernelError(errno, code, message, attr) {
  const e = new Error(message);
  e.errno = errno;
  e.code = code;
  if (attr) e.attr = attr;
  return e;
}

const INT_TYPES = new Set(['u8', 'u16', 'u32', 'u64']);

/**
 * A fake addon.  options:
 *   notLoaded       open() rejects with ENOENT
 *   helloSchema     the schema crc the "module" reports
 *   unprivileged    admin commands reject with EPERM
 *   fail            { [command]: Error | Error[] } a rejection for every
 *                   request of that command, or one for each of the next ones
 *   capacity        the number of rules before ENOSPC
 *   noStats         STATS rejects with EOPNOTSUPP (a module without it)
 *
 * Events: emit(attrs) delivers one event message to the subscriber, as the
 * addon does for the module's multicast group; unload() and load() play the
 * module going and coming back (its family watch, a fresh open()); stats is a Map path -> counters
 * the STATS dump returns, dests the DESTS dump's rows.
 */
function fakeAddon(options = {}) {
  const s = options.schema ?? schema();
  const calls = [];
  const rules = new Map(); // `${prot} ${path}` -> rule
  const flags = new Map(Object.entries(s.flags).map(([, f]) => [f.id, BigInt(f.default)]));
  const value = (name) => s.constants.value[name].value;
  let clock = 1;
  let subscriber = null;
  const stats = new Map();
  const dests = [];

  let watcher = null;
  let present = true;
  let opens = 0;
  const notified = [];

  const makeConnection = () => { const connection = {
    closed: false,
    request(command, attrs) {
      const c = s.commands[command];
      if (!c || c.kind === 'event') throw new TypeError(`unknown command '${command}'`);
      for (const [name, v] of Object.entries(attrs ?? {})) {
        const a = s.attrs[name];
        if (!a || !a.input) throw new TypeError(`attribute '${name}' cannot be sent`);
        if (a.type === 'u64' ? typeof v !== 'bigint' && typeof v !== 'number' : INT_TYPES.has(a.type) ? typeof v !== 'number' : a.type === 'string' && typeof v !== 'string')
          throw new TypeError(`attribute '${name}' has the wrong type`);
      }
      calls.push({ command, attrs: attrs ? { ...attrs } : undefined });
      const f = options.fail?.[command];
      if (Array.isArray(f) ? f.length > 0 : f) return Promise.reject(Array.isArray(f) ? f.shift() : f);
      if (c.admin && options.unprivileged) return Promise.reject(kernelError(1, 'EPERM', 'Operation not permitted'));
      return new Promise((resolve) => resolve(handle(command, attrs ?? {})));
    },
    groupId: 1,
    subscribe(cb) {
      if (connection.closed) throw new Error('closed');
      subscriber = cb;
    },
    unsubscribe() {
      subscriber = null;
    },
    close() {
      connection.closed = true;
    },
  }; return connection; };
  const connection = makeConnection();

  // The qualifier attributes a request or a listed rule carries, side dropped when it names no port.
  const Q = ['qaddr', 'qplen', 'qside', 'qports', 'quser', 'qname'];
  function qualOf(a) {
    const q = {};
    for (const n of Q) if (a[n] !== undefined) q[n] = a[n];
    if (q.qaddr !== undefined && q.qplen === undefined) q.qplen = q.qaddr.length * 8;
    if (Object.keys(q).length === 0 || (q.qaddr === undefined && q.qports === undefined && q.quser === undefined && q.qname === undefined)) return {};
    // The side names a port: without ports the module keeps `to`.
    q.qside = q.qports === undefined ? s.constants.side.to.value : (q.qside ?? s.constants.side.to.value);
    return q;
  }
  function qualKey(a) {
    const q = qualOf(a);
    if (Object.keys(q).length === 0) return '';
    return Q.map((n) => (Buffer.isBuffer(q[n]) ? q[n].toString('hex') : String(q[n] ?? ''))).join('/');
  }

  function handle(command, a) {
    switch (command) {
      case 'hello':
        return [{ version: s.family.version, schema: options.helloSchema ?? s.family.schemaCrc }];
      case 'rule_add': {
        // A rule is its path, protocol and qualifiers (defs.x QADDR ... QUSER), as the module keeps it.
        const qk = qualKey(a);
        const key = qk === '' ? `${a.prot} ${a.path}` : `${a.prot} ${a.path} ${qk}`;
        if (!rules.has(key) && rules.size >= (options.capacity ?? Infinity)) throw kernelError(28, 'ENOSPC', 'rule table full');
        const r = { prot: a.prot, path: a.path, verdict: a.verdict, packets: 0n, bytes: 0n, lasthit: 0n, order: clock++, ...qualOf(a) };
        if (a.timeout !== undefined) r.timeout = a.timeout;
        if (a.life !== undefined) r.life = a.life;
        rules.set(key, r);
        return [];
      }
      case 'rule_del': {
        let n = 0;
        const qk = qualKey(a);
        for (const [k, r] of rules)
          if (r.path === a.path && (a.prot === undefined || (r.prot === a.prot && qualKey(r) === qk))) { rules.delete(k); n++; }
        if (n === 0) throw kernelError(2, 'ENOENT', 'no such rule');
        return [];
      }
      case 'rule_clear':
        for (const [k, r] of rules) if (a.verdict === undefined || r.verdict === a.verdict) rules.delete(k);
        return [];
      case 'rule_list':
        return [...rules.values()]
          .filter((r) => a.verdict === undefined || r.verdict === a.verdict)
          .map(({ order, ...r }) => ({ ...r }));
      case 'flag_set': {
        const f = Object.values(s.flags).find((x) => x.id === a.flag);
        if (!f || !f.writable) throw kernelError(22, 'EINVAL', 'flag is read-only', 'flag');
        const ok = f.allowed.map(value);
        if (!ok.includes(Number(a.value))) throw kernelError(22, 'EINVAL', 'value not allowed for this flag', 'value');
        flags.set(a.flag, BigInt(a.value));
        return [];
      }
      case 'stats':
        if (options.noStats) throw kernelError(95, 'EOPNOTSUPP', 'Operation not supported');
        return [...stats.entries()].map(([p, c]) => ({ path: p, dev: 2049, ino: 1n, apackets: 0n, abytes: 0n, bpackets: 0n, bbytes: 0n, lasthit: 0n, ...c }));
      case 'dests':
        if (options.noStats) throw kernelError(95, 'EOPNOTSUPP', 'Operation not supported');
        return dests.map((d) => ({ dev: 2049, ino: 1n, apackets: 0n, abytes: 0n, bpackets: 0n, bbytes: 0n, lasthit: 0n, ...d }));
      case 'flag_get':
        if (!flags.has(a.flag)) throw kernelError(22, 'EINVAL', 'no such flag', 'flag');
        return [{ flag: a.flag, value: flags.get(a.flag) }];
      default:
        return [];
    }
  }

  return {
    schema: s,
    calls,
    rules,
    flags,
    connection,
    /** Sets a rule's counters, as if traffic had matched it. */
    hit(prot, p, packets, bytes, lasthit) {
      const r = rules.get(`${prot} ${p}`);
      Object.assign(r, { packets: BigInt(packets), bytes: BigInt(bytes), lasthit: BigInt(lasthit) });
    },
    stats,
    /** The DESTS dump's rows (attributes by schema name; dev and ino default to the stats rows'). */
    dests,
    /** Whether someone listens to events. */
    get subscribed() {
      return subscriber !== null;
    },
    /** Delivers one event (attributes by schema name) to the subscriber. */
    emit(attrs) {
      if (subscriber) subscriber({ ...attrs });
    },
    open() {
      if (options.notLoaded || !present) return Promise.reject(kernelError(2, 'ENOENT', 'Generic netlink family vordr not found'));
      // A fresh connection after the first, as the addon's open() makes.
      return Promise.resolve(opens++ === 0 ? connection : makeConnection());
    },
    /** The controller's watch: unload() and load() report to it. */
    watch(cb) {
      watcher = cb;
      return Promise.resolve({ close() { watcher = null; } });
    },
    get watched() {
      return watcher !== null;
    },
    /** rmmod: the rules and flags go, the subscriber with them, and the watch is told. */
    unload() {
      present = false;
      rules.clear();
      for (const [, f] of Object.entries(s.flags)) flags.set(f.id, BigInt(f.default));
      subscriber = null;
      watcher?.({ family: s.family.name, present: false });
    },
    /** modprobe: the family is back. */
    load() {
      present = true;
      watcher?.({ family: s.family.name, present: true });
    },
    /** sd_notify: each state with the number of requests made before it. */
    notified,
    notify(state) {
      notified.push({ state, calls: calls.length });
      return true;
    },
  };
}

/** A writable that keeps what was written. */
function sink() {
  const { Writable } = require('node:stream');
  let text = '';
  const w = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  Object.defineProperty(w, 'text', { get: () => text });
  return w;
}

module.exports = { schema, schemaFromDefs, addonBuilt, fakeAddon, sink, ROOT };
