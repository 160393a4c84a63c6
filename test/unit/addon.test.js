// SPDX-License-Identifier: GPL-2.0
//
// The native addon on a host without the vordr module: the schema against
// an independent reading of defs.x, argument checking, the decoder, and the
// request machinery against the kernel's own "nlctrl" family.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const ADDON = path.join(__dirname, '..', '..', 'addon');
const addon = require(ADDON);
const DEFS = path.join(__dirname, '..', '..', 'defs.x');

// A reading of defs.x that shares no code with the addon's expansion.
function readDefs() {
  const text = fs.readFileSync(DEFS, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^#.*$/gm, '');
  const calls = (name) => [...text.matchAll(new RegExp(`\\b${name}\\(([^;]*?)\\)\\s*(?=\\n\\s*(?:VORDR_|$)|$)`, 'g'))]
    .map((m) => m[1].split(/,(?![^()]*\))/).map((s) => s.trim()));
  return {
    family: calls('VORDR_FAMILY'),
    consts: calls('VORDR_CONST'),
    flags: calls('VORDR_FLAG'),
    cmds: calls('VORDR_CMD'),
    attrs: calls('VORDR_ATTR'),
  };
}

const defs = readDefs();
const unquote = (s) => JSON.parse(s);

test('schema.family is defs.x family with the cksum of defs.x', () => {
  const [name, version, group] = defs.family[0];
  const crc = Number(execFileSync('sh', ['-c', `cksum < '${DEFS}' | cut -d' ' -f1`]).toString().trim());
  assert.deepEqual({ ...addon.schema.family }, {
    name: unquote(name), version: Number(version), group: unquote(group), schemaCrc: crc,
  });
});

test('schema.commands: every defs.x command, numbered from 1, with its permission and kind', () => {
  assert.ok(defs.cmds.length >= 8);
  const expect = {};
  defs.cmds.forEach(([, name, perm, kind], i) => {
    expect[name] = { id: i + 1, admin: perm === 'ADMIN', kind: kind.toLowerCase() };
  });
  assert.deepEqual(JSON.parse(JSON.stringify(addon.schema.commands)), expect);
  assert.equal(addon.schema.commands.rule_add.admin, true);
  assert.equal(addon.schema.commands.hello.admin, false);
  assert.equal(addon.schema.commands.rule_list.kind, 'dump');
  assert.equal(addon.schema.commands.event.kind, 'event');
});

test('schema.attrs: dense ids from 1, types and directions from defs.x', () => {
  const ids = Object.values(addon.schema.attrs).map((a) => a.id).sort((a, b) => a - b);
  assert.deepEqual(ids, ids.map((_, i) => i + 1));
  assert.equal(ids.length, defs.attrs.length);
  defs.attrs.forEach(([, name, type, dir, lo, hi], i) => {
    const a = addon.schema.attrs[name];
    assert.ok(a, name);
    assert.equal(a.id, i + 1, name);
    assert.equal(a.type, type.toLowerCase(), name);
    assert.equal(a.input, dir === 'IN', name);
    if (/^\d+$/.test(lo)) assert.equal(a.lo, Number(lo), name);
    if (/^\d+$/.test(hi)) assert.equal(a.hi, Number(hi), name);
  });
  // Symbolic bounds are expanded: VORDR_VAL(X) and VORDR_FLAG_MAX.
  const v = addon.schema.attrs.verdict;
  assert.deepEqual([v.lo, v.hi], [addon.schema.constants.value.allow.value, addon.schema.constants.value.block.value]);
  assert.equal(addon.schema.attrs.flag.hi, Object.keys(addon.schema.flags).length);
  // ...and a constant's C name: life's range is its constants'.
  const lives = Object.values(addon.schema.constants.life).map((c) => c.value);
  assert.deepEqual([addon.schema.attrs.life.lo, addon.schema.attrs.life.hi], [Math.min(...lives), Math.max(...lives)]);
  assert.equal(addon.schema.attrs.path.type, 'string');
  assert.equal(addon.schema.attrs.value.type, 'u64');
});

test('schema.constants: lowercased groups, canonical names, every alias', () => {
  const expect = {};
  for (const [group, , value, ...names] of defs.consts) {
    const g = (expect[group.toLowerCase()] ??= {});
    g[unquote(names[0])] = { value: Number(value), aliases: names.map(unquote) };
  }
  assert.deepEqual(JSON.parse(JSON.stringify(addon.schema.constants)), expect);
  assert.deepEqual(addon.schema.constants.value.enabled.aliases, ['enabled', 'enable']);
  assert.equal(addon.schema.constants.prot.tcp.value, 6);
});

test('schema.flags: ids from 1, access, defaults and allowed values from defs.x', () => {
  const val = addon.schema.constants.value;
  const byValue = (x) => Object.keys(val).find((k) => val[k].value === x);
  defs.flags.forEach(([, name, access, def, allowed], i) => {
    const f = addon.schema.flags[name];
    assert.ok(f, name);
    assert.equal(f.id, i + 1, name);
    assert.equal(f.writable, access === 'RW', name);
    const d = /VORDR_VAL\((\w+)\)/.exec(def);
    assert.equal(f.default, d ? val[byValue(Number(val[d[1].toLowerCase()]?.value))]?.value ?? -1 : Number(def), name);
    const want = [...allowed.matchAll(/VORDR_V\((\w+)\)/g)].map((m) => m[1].toLowerCase());
    assert.deepEqual([...f.allowed].sort(), want.sort(), name);
  });
  assert.deepEqual([...addon.schema.flags.mode.allowed].sort(), ['block', 'disabled', 'enabled']);
  assert.deepEqual([...addon.schema.flags.unkrule.allowed].sort(), ['allow', 'block', 'pending']);
  assert.equal(addon.schema.flags.mode.default, val.enabled.value);
  assert.equal(addon.schema.flags.uptime.writable, false);
});

test('schema is deeply frozen', () => {
  const s = addon.schema;
  for (const o of [s, s.family, s.commands, s.commands.hello, s.attrs, s.attrs.path, s.constants,
    s.constants.value, s.constants.value.enabled, s.constants.value.enabled.aliases, s.flags,
    s.flags.mode, s.flags.mode.allowed])
    assert.ok(Object.isFrozen(o));
});

test('open() rejects with ENOENT when the vordr module is not loaded', async () => {
  await assert.rejects(addon.open(), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, os.constants.errno.ENOENT);
    assert.match(e.message, /vordr kernel module is not loaded/);
    return true;
  });
});

// The vordr schema bound to the host's nlctrl family: arguments are checked
// exactly as for the real module, and whatever reaches the kernel is
// refused by nlctrl.
async function vordrOnCtrl() {
  return addon._openFamily('vordr', 'nlctrl');
}

test('request() throws TypeError synchronously for every kind of bad argument', async () => {
  const c = await vordrOnCtrl();
  try {
    const bad = [
      [undefined],
      [42],
      ['no_such_command'],
      ['event'],
      ['rule_add', 'path'],
      ['rule_add', [1, 2]],
      ['rule_add', { nosuch: 1 }],
      ['rule_add', { packets: 1n }],             // kernel-only attribute
      ['rule_add', { version: 1 }],
      ['rule_add', { prot: '6' }],               // wrong JS type
      ['rule_add', { prot: 6n }],
      ['rule_add', { prot: 1.5 }],
      ['rule_add', { prot: NaN }],
      ['rule_add', { prot: -1 }],                // out of the u8 range
      ['rule_add', { prot: 256 }],
      ['flag_set', { flag: 65536 }],             // out of the u16 range
      ['flag_set', { value: -1 }],
      ['flag_set', { value: -1n }],
      ['flag_set', { value: 2n ** 64n }],
      ['flag_set', { value: 2 ** 53 }],          // not a safe integer: use a bigint
      ['flag_set', { value: 'x' }],
      ['rule_add', { path: 5 }],
      ['rule_add', { path: '/usr/bin/\0curl' }], // NUL
      ['rule_add', { path: '/' + 'a'.repeat(addon.schema.attrs.path.hi) }], // hi + 1 bytes
      // hi counts UTF-8 bytes, not characters
      ['rule_add', { path: '/' + 'é'.repeat(Math.ceil(addon.schema.attrs.path.hi / 2)) }],
    ];
    for (const args of bad)
      assert.throws(() => c.request(...args), TypeError, `request(${args.map(String).join(', ')})`);
  } finally {
    c.close();
  }
});

test('request() accepts well-typed arguments and reports the kernel refusal as an Error', async () => {
  const c = await vordrOnCtrl();
  try {
    const p = c.request('rule_add', {
      prot: addon.schema.constants.prot.tcp.value,
      path: '/' + 'a'.repeat(addon.schema.attrs.path.hi - 1),
      verdict: addon.schema.constants.value.allow.value,
      missing: undefined,
    });
    assert.ok(p instanceof Promise);
    // nlctrl has no handler for our command number.
    await assert.rejects(p, (e) => {
      assert.equal(typeof e.errno, 'number');
      assert.ok(e.errno > 0);
      assert.match(e.code, /^E[A-Z]+$/);
      assert.ok(e.message.length > 0);
      return true;
    });
    await assert.rejects(c.request('flag_set', { flag: 1, value: 2n ** 64n - 1n }), (e) => e.errno > 0);
    await assert.rejects(c.request('flag_set', { flag: 1, value: 2 ** 53 - 1 }), (e) => e.errno > 0);
  } finally {
    c.close();
  }
});

function msg(cmd, attrs, { type = 0x20, flags = 0, seq = 7 } = {}) {
  const parts = attrs.map(([id, payload]) => {
    const len = 4 + payload.length;
    const b = Buffer.alloc((len + 3) & ~3);
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(id, 2);
    payload.copy(b, 4);
    return b;
  });
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(20);
  h.writeUInt32LE(20 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h[16] = cmd;
  h[17] = 1;
  return Buffer.concat([h, body]);
}
const u8 = (v) => Buffer.from([v]);
const u16 = (v) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };
const str = (s) => Buffer.from(s + '\0');

test('decode() turns a hand-built event into schema-typed attributes', () => {
  const A = addon.schema.attrs;
  const m = msg(addon.schema.commands.event.id, [
    [A.verdict.id, u8(3)],
    [A.reason.id, u8(1)],
    [A.prot.id, u8(6)],
    [A.sport.id, u16(40000)],
    [A.dport.id, u16(443)],
    [A.pid.id, u32(1234)],
    [A.uid.id, u32(1000)],
    [A.path.id, str('/usr/bin/curl')],
    [A.packets.id, u64(2n ** 64n - 1n)],
    [A.saddr.id, Buffer.from([10, 0, 0, 1])],
    [4000, u32(1)],                       // an id this addon does not know
  ]);
  const d = addon.decode(m);
  assert.deepEqual(d, {
    verdict: 3, reason: 1, prot: 6, sport: 40000, dport: 443, pid: 1234, uid: 1000,
    path: '/usr/bin/curl', packets: 2n ** 64n - 1n, saddr: Buffer.from([10, 0, 0, 1]),
  });
  assert.deepEqual(addon.decode(msg(1, [])), {});
});

test('decode() rejects malformed messages with EBADMSG and never crashes on garbage', () => {
  const A = addon.schema.attrs;
  const good = msg(1, [[A.path.id, str('/bin/sh')], [A.pid.id, u32(1)]]);
  for (let n = 0; n < good.length; n++) {
    // Every truncation either fails cleanly or (once the attributes are
    // whole) decodes a prefix: nlmsg_len still claims the full length.
    assert.throws(() => addon.decode(good.subarray(0, n)), (e) => e.code === 'EBADMSG');
  }
  const wrongSize = msg(1, [[A.pid.id, u16(1)]]);
  assert.throws(() => addon.decode(wrongSize), (e) => e.code === 'EBADMSG' && /wrong size/.test(e.message));
  const overlong = Buffer.from(good);
  overlong.writeUInt16LE(200, 20);
  assert.throws(() => addon.decode(overlong), (e) => e.code === 'EBADMSG');
  assert.throws(() => addon.decode('not a buffer'), TypeError);
  assert.throws(() => addon.decode(), TypeError);
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(good);
    for (let k = 0; k < 1 + (rnd() % 4); k++) b[rnd() % b.length] = rnd() & 0xff;
    try {
      const d = addon.decode(b.subarray(0, rnd() % (b.length + 1)));
      assert.equal(typeof d, 'object');
    } catch (e) {
      assert.equal(e.code, 'EBADMSG');
    }
  }
});

test('requests to nlctrl: a dump lists the families, including nlctrl itself', async () => {
  const c = await addon._openFamily('nlctrl');
  try {
    assert.equal(c.familyId, 0x10);
    assert.equal(typeof c.groupId, 'number');
    const families = await c.request('getfamily');
    const names = families.map((f) => f.family_name);
    assert.ok(names.includes('nlctrl'), names.join(','));
    const ctrl = families.find((f) => f.family_name === 'nlctrl');
    assert.equal(ctrl.family_id, 0x10);
    assert.ok(Buffer.isBuffer(ctrl.ops));
  } finally {
    c.close();
  }
});

test('several requests in flight settle independently, matched by sequence number', async () => {
  const c = await addon._openFamily('nlctrl');
  try {
    const long = 'x'.repeat(40);
    const all = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => (i % 3 === 2
        ? c.request('getfamily', { family_name: long })
        : c.request('getfamily'))));
    const first = all[0].value.map((f) => f.family_name);
    all.forEach((r, i) => {
      if (i % 3 === 2) assert.equal(r.status, 'rejected', String(i));
      else assert.deepEqual(r.value.map((f) => f.family_name), first, String(i));
    });
  } finally {
    c.close();
  }
});

test('a burst of requests neither overruns the socket nor loses one (bounded in-flight window)', async () => {
  const c = await vordrOnCtrl();
  try {
    const all = await Promise.allSettled(Array.from({ length: 2000 }, () => c.request('hello')));
    const codes = new Set(all.map((r) => r.reason?.code));
    // nlctrl has no command 'hello' has the number of: every one is refused alike.
    assert.deepEqual([...codes], ['EOPNOTSUPP']);
  } finally {
    c.close();
  }
});

test("kernel errors carry errno, code, the extended ack's message and the offending attribute", async () => {
  const c = await addon._openFamily('nlctrl');
  try {
    // Longer than the kernel's GENL_NAMSIZ: refused by nlctrl's policy.
    await assert.rejects(c.request('getfamily', { family_name: 'x'.repeat(40) }), (e) => {
      assert.equal(e.errno, os.constants.errno.EINVAL);
      assert.equal(e.code, 'EINVAL');
      assert.notEqual(e.message, 'Invalid argument', 'the extack message, not strerror');
      assert.equal(e.attr, 'family_name');
      return true;
    });
  } finally {
    c.close();
  }
});

test('close() rejects pending requests with ECLOSED; later calls fail the same way', async () => {
  const c = await addon._openFamily('nlctrl');
  const p = c.request('getfamily');
  c.close();
  await assert.rejects(p, (e) => e.code === 'ECLOSED');
  assert.equal(c.closed, true);
  await assert.rejects(c.request('getfamily'), (e) => e.code === 'ECLOSED');
  assert.throws(() => c.request('nosuch'), TypeError);
  assert.throws(() => c.subscribe(() => {}), (e) => e.code === 'ECLOSED');
  c.close();
});

test('subscribe() needs the family to have its group and a function', async () => {
  const v = await vordrOnCtrl();
  assert.throws(() => v.subscribe(() => {}), (e) => e.code === 'ENOENT' && /events/.test(e.message));
  v.close();
  const c = await addon._openFamily('nlctrl');
  assert.throws(() => c.subscribe('nope'), TypeError);
  c.subscribe(() => {});
  c.subscribe(() => {});  // replaces the callback
  c.unsubscribe();
  c.unsubscribe();
  c.close();
});

test('eventLoss: the event socket\'s overruns and the kernel\'s drop count for it', async () => {
  const c = await addon._openFamily('nlctrl');
  assert.deepEqual({ ...c.eventLoss }, { overruns: 0 });  // no event socket: no drop count
  c.subscribe(() => {});
  assert.deepEqual({ ...c.eventLoss }, { overruns: 0, drops: 0 });
  c.unsubscribe();
  c.close();
});

function runNode(script, { args = [], timeout = 10000 } = {}) {
  return spawnSync(process.execPath, [...args, '-e', script], {
    env: { ...process.env, VORDR_ADDON: ADDON }, timeout, encoding: 'utf8',
  });
}

test('a script exits by itself once its requests are done, without close()', () => {
  const r = runNode(`
    const a = require(process.env.VORDR_ADDON);
    a._openFamily('nlctrl').then(async (c) => {
      await c.request('getfamily');
      c.subscribe(() => {});
      c.unsubscribe();
      console.log('done');
    });`);
  assert.equal(r.error, undefined, 'it did not exit: the loop was kept alive');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'done');
});

test('an active subscription keeps the process alive', () => {
  const r = runNode(`
    const a = require(process.env.VORDR_ADDON);
    a._openFamily('nlctrl').then((c) => { c.subscribe(() => {}); console.log('subscribed'); });`,
  { timeout: 1500 });
  assert.equal(r.stdout.trim(), 'subscribed');
  assert.equal(r.signal, 'SIGTERM', 'killed by the timeout, i.e. still running');
});

test('garbage-collected connections and exits with requests pending do not crash', () => {
  const r = runNode(`
    const a = require(process.env.VORDR_ADDON);
    (async () => {
      for (let i = 0; i < 50; i++) { const c = await a._openFamily('nlctrl'); await c.request('getfamily'); }
      globalThis.gc(); await new Promise((r) => setImmediate(r)); globalThis.gc();
      const c = await a._openFamily('nlctrl');
      c.request('getfamily');
      c.subscribe(() => {});
      console.log('exiting');
      process.exit(0);
    })();`, { args: ['--expose-gc'] });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'exiting');
});

test('a worker thread has its own state and can be terminated mid-request', async () => {
  const { Worker } = require('node:worker_threads');
  for (let round = 0; round < 3; round++) {
    const w = new Worker(`
      const { parentPort } = require('node:worker_threads');
      const a = require(process.env.VORDR_ADDON);
      a._openFamily('nlctrl').then(async (c) => {
        const n = (await c.request('getfamily')).length;
        c.subscribe(() => {});
        for (let i = 0; i < 20; i++) c.request('getfamily');
        parentPort.postMessage(n);
      });`, { eval: true, env: { ...process.env, VORDR_ADDON: ADDON } });
    const n = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.ok(n > 0);
    await w.terminate();
  }
  // The main thread's addon still works.
  const c = await addon._openFamily('nlctrl');
  assert.ok((await c.request('getfamily')).length > 0);
  c.close();
});

test('the wire-format fuzz harness survives 200000 inputs under ASan/UBSan', { timeout: 120000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-fuzz-'));
  try {
    const r = spawnSync('sh', [path.join(ADDON, 'fuzz', 'run.sh'), '200000', '7'], {
      env: { ...process.env, VORDR_FUZZ_OUT: out }, encoding: 'utf8', timeout: 110000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /200000 inputs, no crash/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
