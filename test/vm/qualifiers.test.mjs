// Qualified rules in the module (issue 14, item 2): a rule narrowed to a
// remote address or prefix (IPv4, IPv6), ports (remote with `to`, local
// with `from`) and a user, through the module's own interface (RULE_ADD,
// RULE_DEL, RULE_LIST and a policy load), with real connections from
// python agents: the most specific rule wins (user, then the longest
// prefix, then a port, then a named protocol, block between equals), a
// blocked connect() is refused at once, every malformed qualifier is
// refused with its reason and changes nothing. Root in the test VM with
// vordr.ko loaded; the kernel log stays clean.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  C, Agent, Kernel, assertKlogClean, bin, cli as vordrCli, copyExe, delNetns, killAll, klogMark, makeNetns, repo, run, schema, vordr,
  workdir,
} from './util.mjs';

const require = createRequire(import.meta.url);
const P = require(join(repo, 'daemon', 'dist', 'policy.js'));
const { vocabulary } = require(join(repo, 'daemon', 'dist', 'vocab.js'));

const W = workdir('qual');
const cliExe = copyExe(bin.python, join(W, 'cli', 'py'));
const srvExe = copyExe(bin.python, join(W, 'srv', 'py'));
const NOBODY = 65534;

let k;
let srv;      // the servers: TCP echo on every address, two ports, IPv4 and IPv6
let cli;      // root's client
let other;    // the same executable run by nobody
let ns;       // a veth pair: addresses 10.77.9.1 and fd77:9::1 are this host's
let mark;
const port = {};

const v4 = (s) => Buffer.from(s.split('.').map(Number));
function v6(s) {
  const [head, tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), 2 * i));
  return b;
}
const ports = (...ranges) => {
  const b = Buffer.alloc(4 * ranges.length);
  ranges.forEach(([lo, hi], i) => { b.writeUInt16LE(lo, 4 * i); b.writeUInt16LE(hi ?? lo, 4 * i + 2); });
  return b;
};

/** RULE_ADD with qualifiers: { addr, plen, side, ports, user }. */
function add(verdict, prot, path, q = {}) {
  return k.request('rule_add', {
    verdict: C.value[verdict], prot: C.prot[prot], path,
    qaddr: q.addr, qplen: q.plen, qside: q.side === undefined ? undefined : C.side[q.side],
    qports: q.ports, quser: q.user, timeout: q.timeout,
  });
}

before(async () => {
  k = await Kernel.open();
  await k.reset();
  delNetns('vordr-q1');
  ns = makeNetns('vordr-q1', 9);
  srv = await Agent.start(srvExe);
  cli = await Agent.start(cliExe);
  other = await Agent.start(cliExe, { uid: NOBODY });
  port.a = await srv.listen('tcp', '::', 'a');
  port.b = await srv.listen('tcp', '::', 'b');
});

after(async () => {
  killAll();
  delNetns('vordr-q1');
  if (k) await k.reset();
  k?.close();
});

afterEach(async () => {
  await k.reset();
  assertKlogClean(mark);
});

const fresh = () => { mark = klogMark(); };
const tcp = (who, host, p = port.a, extra = {}) => who.tcp(host, p, 'hi', 2, extra);

test('an address: allowed to one, refused at once elsewhere; the rule before it was cached', async () => {
  fresh();
  await add('block', 'tcp', cliExe);
  assert.equal(await tcp(cli, '127.0.0.2'), 'ECONNREFUSED', 'blocked (cached now)');
  await add('allow', 'tcp', cliExe, { addr: v4('127.0.0.2') });
  assert.equal(await tcp(cli, '127.0.0.2'), 'ok', 'to the address its rule names');
  const t0 = Date.now();
  assert.equal(await tcp(cli, '127.0.0.3'), 'ECONNREFUSED', 'elsewhere: the unqualified block');
  assert.ok(Date.now() - t0 < 1000, `refused at once (${Date.now() - t0} ms)`);
  assert.equal(await tcp(srv, '127.0.0.3'), 'ok', 'another program is not touched');
});

test('prefixes: the longest that holds the address wins, an exact address above all', async () => {
  fresh();
  await add('block', 'any', cliExe, { addr: v4('127.0.0.0'), plen: 8 });
  await add('allow', 'any', cliExe, { addr: v4('127.0.0.0'), plen: 16 });
  await add('block', 'any', cliExe, { addr: v4('127.0.5.9') });
  await add('allow', 'any', cliExe, { addr: v4('0.0.0.0'), plen: 0 });
  assert.equal(await tcp(cli, '127.0.5.1'), 'ok', '/16 over /8');
  assert.equal(await tcp(cli, '127.1.0.1'), 'ECONNREFUSED', '/8 over /0');
  assert.equal(await tcp(cli, '127.0.5.9'), 'ECONNREFUSED', '/32 over /16');
  assert.equal(await tcp(cli, ns.v4host), 'ok', 'outside 127/8: /0');
});

test('ports: a port beats none at one address; `port` alone narrows a path', async () => {
  fresh();
  await add('block', 'tcp', cliExe, { addr: v4('127.0.0.1') });
  await add('allow', 'tcp', cliExe, { addr: v4('127.0.0.1'), ports: ports([port.b]) });
  assert.equal(await tcp(cli, '127.0.0.1', port.b), 'ok', 'the address and its port');
  assert.equal(await tcp(cli, '127.0.0.1', port.a), 'ECONNREFUSED', 'the address, another port');
  await k.clear();
  const [lo, hi] = [Math.min(port.a, port.b), Math.max(port.a, port.b)];
  await add('block', 'tcp', cliExe);
  await add('allow', 'tcp', cliExe, { ports: ports([lo - 5, lo], [hi + 2, hi + 9]) });
  assert.equal(await tcp(cli, '127.0.0.1', lo), 'ok', 'in the first range');
  assert.equal(await tcp(cli, '127.0.0.1', hi), 'ECONNREFUSED', 'between the ranges');
  await add('allow', 'udp', cliExe, { ports: ports([hi]) });
  assert.equal(await tcp(cli, '127.0.0.1', hi), 'ECONNREFUSED', 'a udp rule does not let tcp through');
});

test('user: the same executable, told apart by who runs it; user beats address', async () => {
  fresh();
  await add('block', 'tcp', cliExe);
  await add('allow', 'tcp', cliExe, { user: NOBODY });
  assert.equal(await tcp(other, '127.0.0.1'), 'ok', 'nobody');
  assert.equal(await tcp(cli, '127.0.0.1'), 'ECONNREFUSED', 'root');
  await add('allow', 'tcp', cliExe, { addr: v4('127.0.0.1') });
  await add('block', 'tcp', cliExe, { user: NOBODY, ports: ports([port.b]) });
  assert.equal(await tcp(cli, '127.0.0.1'), 'ok', 'root: the address rule');
  assert.equal(await tcp(other, '127.0.0.1', port.b), 'ECONNREFUSED', "nobody: its user's rule beats the address");
  assert.equal(await tcp(other, '127.0.0.1', port.a), 'ok', "nobody: its user's portless rule");
});

test('IPv6: an address and a prefix, and an IPv4 rule that never matches IPv6', async () => {
  fresh();
  await add('block', 'tcp', cliExe, { addr: v6('::'), plen: 0 });
  await add('allow', 'tcp', cliExe, { addr: v6('fd77:9::'), plen: 64 });
  await add('allow', 'tcp', cliExe, { addr: v4('0.0.0.0'), plen: 0 });
  assert.equal(await tcp(cli, ns.v6host), 'ok', 'in fd77:9::/64');
  assert.equal(await tcp(cli, '::1'), 'ECONNREFUSED', '::/0');
  assert.equal(await tcp(cli, '127.0.0.1'), 'ok', 'IPv4: 0.0.0.0/0');
  await add('allow', 'tcp', cliExe, { addr: v6('::1') });
  assert.equal(await tcp(cli, '::1'), 'ok', '::1/128 over ::/0');
});

test('from: a server accepts one subnet on its own port and no other', async () => {
  fresh();
  await add('block', 'tcp', srvExe);
  await add('allow', 'tcp', srvExe, { addr: v4('127.0.0.0'), plen: 24, side: 'from', ports: ports([port.a]) });
  assert.equal(await tcp(cli, '127.0.0.1', port.a, { bind: '127.0.0.5' }), 'ok', 'from 127.0.0.0/24 to its port');
  assert.equal(await tcp(cli, '127.0.0.1', port.a, { bind: '127.0.1.5' }), 'TIMEOUT', 'from elsewhere: dropped in silence');
  assert.equal(await tcp(cli, '127.0.0.1', port.b, { bind: '127.0.0.5' }), 'TIMEOUT', 'its other port');
});

test('the table: qualifiers listed as given, equal rules replaced, one removed, then the path', async () => {
  fresh();
  await add('allow', 'tcp', cliExe, { addr: v4('10.1.0.0'), plen: 16, ports: ports([22], [8000, 8100]), user: 1000 });
  await add('block', 'tcp', cliExe, { addr: v4('10.1.0.0'), plen: 16, ports: ports([22], [8000, 8100]), user: 1000 });
  await add('allow', 'tcp', cliExe, { addr: v4('10.1.0.0'), plen: 16, ports: ports([22]), user: 1000 });
  await add('allow', 'tcp', cliExe, { addr: v6('2001:db8::'), plen: 32, side: 'from' });
  await add('allow', 'tcp', cliExe);
  let rules = await k.rules();
  assert.equal(rules.length, 4, JSON.stringify(rules.map((r) => [r.verdict, r.qaddr?.toString('hex'), r.qports?.toString('hex')])));
  const r1 = rules.find((r) => r.qports?.length === 8);
  assert.equal(r1.verdict, 'block', 'replaced: the later verdict');
  assert.deepEqual([...r1.qaddr], [10, 1, 0, 0]);
  assert.equal(r1.qplen, 16);
  assert.equal(r1.quser, 1000);
  assert.equal(r1.qside, C.side.to);
  assert.deepEqual(r1.qports, ports([22], [8000, 8100]));
  const r6 = rules.find((r) => r.qaddr?.length === 16);
  assert.equal(r6.qside, C.side.to, 'no port: the side names none, and is kept as to');
  assert.equal(r6.qplen, 32);
  assert.ok(rules.some((r) => r.qaddr === undefined && r.quser === undefined), 'the unqualified rule');
  await k.request('rule_del', { path: cliExe, prot: C.prot.tcp, qaddr: v4('10.1.0.0'), qplen: 16, qports: ports([22]), quser: 1000 });
  rules = await k.rules();
  assert.equal(rules.length, 3, 'that one rule');
  await assert.rejects(k.request('rule_del', { path: cliExe, prot: C.prot.tcp, qaddr: v4('10.1.0.0'), qplen: 16, qports: ports([22]), quser: 1000 }),
    (e) => e.code === 'ENOENT', 'removed already');
  await k.request('rule_del', { path: cliExe, prot: C.prot.tcp });
  assert.equal((await k.rules()).length, 2, 'with its protocol and no qualifier: the unqualified rule');
  await k.request('rule_del', { path: cliExe });
  assert.deepEqual(await k.rules(), [], 'without a protocol: every rule of the path');
  assert.equal(await tcp(cli, '127.0.0.1'), 'ok', 'nothing left to match');
});

test('every malformed qualifier is refused with its reason and changes nothing', async () => {
  fresh();
  await add('allow', 'tcp', cliExe, { addr: v4('10.0.0.1') });
  const before = JSON.stringify(await k.rules(), (_k, v) => (typeof v === 'bigint' ? String(v) : v));
  const bad = [
    [{ addr: Buffer.from([1, 2, 3, 4, 5]) }, /4 or 16 bytes/],
    [{ addr: v4('10.0.0.0'), plen: 33 }, /prefix longer/],
    [{ addr: v4('10.0.0.1'), plen: 8 }, /bits set past its prefix/],
    [{ addr: v6('2001:db8::1'), plen: 32 }, /bits set past its prefix/],
    [{ addr: Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]) }, /IPv4-mapped/],
    [{ plen: 8 }, /needs an address/],
    [{ ports: ports([90], [80]) }, /sorted/],
    [{ ports: ports([80], [81]) }, /apart/],
    [{ ports: ports([90, 80]) }, /first <= last/],
    [{ ports: Buffer.alloc(6) }, /4 bytes each/],
    [{ user: 0xffffffff }, /not a user/],
  ];
  await assert.rejects(k.request('rule_add', { verdict: C.value.block, prot: C.prot.icmp, path: cliExe, qports: ports([7]) }),
    (e) => e.code === 'EINVAL' && /icmp rule has no ports/.test(e.message ?? ''), 'ports on an icmp rule');
  for (const [q, why] of bad) {
    await assert.rejects(add('block', 'tcp', cliExe, q), (e) => e.code === 'EINVAL' && why.test(e.message ?? ''),
      `${JSON.stringify(q)} refused for ${why}`);
  }
  await assert.rejects(async () => k.request('rule_add', { verdict: C.value.block, prot: C.prot.tcp, path: cliExe, qside: 7 }),
    undefined, 'a side that is none (the addon or the module refuses it)');
  await assert.rejects(k.request('rule_del', { path: cliExe, qaddr: v4('10.0.0.1') }),
    (e) => e.code === 'EINVAL', 'a qualified rule is removed with its protocol');
  for (let i = 0; i < 64; i++) await add(i % 2 ? 'allow' : 'block', i < 32 ? 'tcp' : 'udp', cliExe, { addr: v4('10.0.0.2'), ports: ports([1000 + i]) });
  await assert.rejects(add('block', 'icmp', cliExe, { addr: v4('10.0.0.2') }),
    (e) => e.code === 'E2BIG' && /64 rules/.test(e.message ?? ''), 'a 65th rule on one path, user and address');
  const after = await k.rules();
  assert.equal(after.length, 65);
  assert.equal(JSON.stringify(after.filter((r) => r.qaddr?.[3] === 1), (_k, v) => (typeof v === 'bigint' ? String(v) : v)), before,
    'the rule before them unchanged');
});

test('a policy load carries qualified rules; their bytes are in the sum', async () => {
  fresh();
  const v = vocabulary(schema);
  const recs = [
    { kind: 'rule', verdict: C.value.block, prot: C.prot.tcp, path: cliExe },
    { kind: 'rule', verdict: C.value.allow, prot: C.prot.tcp, path: cliExe, qual: { addr: v4('127.0.0.2') } },
    { kind: 'rule', verdict: C.value.allow, prot: C.prot.any, path: cliExe, qual: { ports: [[port.b, port.b]], user: 0 } },
  ];
  const body = Buffer.concat(recs.map((r) => P.encodeRecord(r, v)));
  const stage = (r) => k.request('rule_add', {
    verdict: r.verdict, prot: r.prot, path: r.path, stage: 1,
    qaddr: r.qual?.addr, qports: r.qual?.ports ? ports(...r.qual.ports) : undefined, quser: r.qual?.user,
  });
  // The sum without the qualifiers' bytes is refused: they are part of the record.
  const plain = Buffer.concat(recs.map((r) => P.encodeRecord({ ...r, qual: undefined }, v)));
  await k.request('policy_begin', { records: recs.length, crc: P.crc32(plain) });
  for (const r of recs) await stage(r);
  await assert.rejects(k.request('policy_commit'), (e) => e.code === 'EBADMSG', 'a sum leaving them out');
  await k.reset();
  await k.request('policy_begin', { records: recs.length, crc: P.crc32(body) });
  for (const r of recs) await stage(r);
  await k.request('policy_commit');
  assert.equal(await k.flag('policy'), C.policy.loaded, 'loaded');
  const rules = await k.rules();
  assert.equal(rules.length, 3);
  assert.equal(await tcp(cli, '127.0.0.2'), 'ok', 'the staged address rule');
  assert.equal(await tcp(cli, '127.0.0.3', port.b), 'ok', "root's port rule");
  assert.equal(await tcp(cli, '127.0.0.3', port.a), 'ECONNREFUSED', 'the unqualified block');
});

test('the daemon: command files, query, save, clear and the boot policy speak the qualifiers', async () => {
  fresh();
  const rulesFile = join(W, 'rules.vordr');
  const policyFile = join(W, 'policy');
  const files = ['--rules', rulesFile, '--policy-file', policyFile];
  const lines = [
    `block tcp ${cliExe}`,
    `allow tcp ${cliExe} to 127.0.0.2`,
    `allow tcp ${cliExe} to 127.0.0.0/24 port ${port.b}`,
    `block tcp ${cliExe} from 10.77.9.0/24 port 22 user nobody`,
  ];
  let r = vordr([...lines, `save ${rulesFile}`]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.equal(await tcp(cli, '127.0.0.2'), 'ok', 'to 127.0.0.2');
  assert.equal(await tcp(cli, '127.0.0.3', port.b), 'ok', 'to 127.0.0.0/24 port b');
  assert.equal(await tcp(cli, '127.0.0.3', port.a), 'ECONNREFUSED', 'the unqualified block');
  const q = run(process.execPath, [vordrCli], { input: 'query\n' });
  for (const l of lines) assert.ok(q.out.includes(`${l}  packets=`), `query prints ${l}:\n${q.out}`);
  const saved = readFileSync(rulesFile, 'utf8');
  for (const l of lines) assert.ok(saved.split('\n').includes(l), `saved: ${l}\n${saved}`);
  // A line the grammar refuses changes nothing and says why.
  r = vordr([`allow tcp ${cliExe} to 127.0.0.1/8`]);
  assert.notEqual(r.code, 0);
  assert.match(r.out + r.err, /bits set past its prefix: the network is 127\.0\.0\.0\/8/);
  r = vordr([`clear tcp ${cliExe} to 127.0.0.2`]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.equal(await tcp(cli, '127.0.0.2'), 'ECONNREFUSED', 'that one rule cleared');
  assert.equal(await tcp(cli, '127.0.0.3', port.b), 'ok', 'the other stays');
  // The boot path: the rules file derived into a policy and loaded whole.
  await k.reset();
  writeFileSync(rulesFile, saved);
  r = run(process.execPath, [vordrCli, ...files, '--load-policy'], { timeout: 120_000 });
  assert.equal(r.code, 0, `--load-policy: ${r.out}${r.err}`);
  assert.equal(await k.flag('policy'), C.policy.loaded);
  assert.equal((await k.rules()).length, lines.length, 'every rule, qualified ones too');
  assert.equal(await tcp(cli, '127.0.0.2'), 'ok', 'after the load: to 127.0.0.2');
  assert.equal(await tcp(cli, '127.0.0.4', port.a), 'ECONNREFUSED', 'after the load: the block');
});
