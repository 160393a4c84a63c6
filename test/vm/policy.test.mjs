// The saved policy of any size holds from boot (issue 16, item 2).
//
// A rules file of 10,000 rules whose paths have spaces, '%', ',', ':' and
// non-ASCII characters; the module loaded closed, as the packaged
// modprobe.d loads it (mode=enabled unkrule=block); `vordr --load-policy`
// derives the policy file from the rules file and loads it in one netlink
// transaction.  Before the load an allowed application is refused; after
// it, the blocked one is refused and the allowed one connects, and every
// rule is in the table.  A corrupt policy file (cut inside a record, cut at
// a record's end, a byte of a path flipped, garbage, unreadable) fails
// closed and says why in `query` and the kernel log.  The transaction is
// its socket's: another socket's POLICY_BEGIN gets EBUSY, and a loader
// killed with SIGKILL mid-stream leaves nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, truncateSync, rmSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  C, Kernel, addon, bin, cli, copyExe, insmod, killAll, klogMark, klogSince, assertKlogClean,
  loaded, reloadDefault, rmmod, run, schema, track, waitFor, workdir,
} from './util.mjs';

const W = workdir('policy');
const rulesFile = join(W, 'rules');
const policyFile = join(W, 'lib', 'policy');
// 10,000 on Debian's kernel; the debug kernel (KASAN, lockdep) checks the
// same paths with fewer, in CI's time.
const N = process.env.VORDR_FLAVOR === 'debug' ? 1_000 : 10_000;
const ODD = '/opt/vordr pol/ä ö,%:';
const allowedExe = `${ODD}allowed 100%,a:b/python3`;
const blockedExe = `${ODD}blocked ü,1:2%/curl`;
const HEADER = 8 + 5 * 4; // policy.ts HEADER_SIZE
let port;
let server;
let mark;

const files = ['--rules', rulesFile, '--policy-file', policyFile];
const loadPolicy = () => run(process.execPath, [cli, ...files, '--load-policy'], { timeout: 300_000 });
const query = () => run(process.execPath, [cli, ...files], { input: 'query\n', timeout: 120_000 });

/** The module loaded as the packaged modprobe.d loads it: closed. */
function loadClosed() {
  if (loaded()) assert.equal(rmmod().code, 0, 'rmmod');
  const r = insmod(['mode=enabled', 'unkrule=block']);
  assert.equal(r.code, 0, `insmod closed: ${r.err}`);
}

function pyGet(exe) {
  return run(exe, ['-c', `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/', timeout=4).read()`], { timeout: 20_000 });
}
function curlGet(exe) {
  return run(exe, ['-s', '-o', '/dev/null', '--connect-timeout', '3', '--max-time', '5', `http://127.0.0.1:${port}/`]);
}
function assertCurlBlocked(r, what) {
  // 28: the SYN was dropped (timeout); 7: refused (EPERM).
  assert.ok(r.code === 28 || r.code === 7, `${what} is refused (exit ${r.code}: ${r.err})`);
}

async function state() {
  const k = await Kernel.open();
  try {
    const [r] = await k.request('flag_get', { flag: schema.flags.policy.id });
    return { policy: Object.entries(C.policy).find(([, v]) => v === Number(r.value))?.[0], unkrule: await k.flagName('unkrule'), mode: await k.flagName('mode') };
  } finally {
    k.close();
  }
}

/** POLICY_BEGIN on k once no other socket's transaction is open (a socket's release is at its close). */
function beginWhenFree(k, what) {
  return waitFor(async () => {
    try {
      await k.request('policy_begin', { records: 0, crc: 0 });
      return true;
    } catch (e) {
      if (e.code !== 'EBUSY') throw e;
      return false;
    }
  }, what, 10_000);
}

before(async () => {
  copyExe(bin.python, allowedExe);
  copyExe(bin.curl, blockedExe);
  const lines = ['# 10,000 rules, written by test/vm/policy.test.mjs', 'set unkrule allow'];
  // In 100 directories, as programs share directories.
  for (let i = 0; i < N - 2; i++) lines.push(`${i % 2 ? 'allow' : 'block'} ${['tcp', 'udp', 'any'][i % 3]} "${ODD}d${i % 100} ∂/app ${i},x:y%"`);
  lines.push(`allow tcp "${allowedExe}"`, `block tcp "${blockedExe}"`);
  writeFileSync(rulesFile, lines.join('\n') + '\n');
  const portFile = join(W, 'port');
  server = track(spawn(bin.python, ['-c', `
import http.server
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
open(${JSON.stringify(portFile)}, 'w').write(str(s.server_address[1]))
s.serve_forever()
`], { cwd: W, stdio: 'ignore' }));
  await waitFor(() => existsSync(portFile) && readFileSync(portFile, 'utf8'), 'the test server', 60_000);
  port = Number(readFileSync(portFile, 'utf8'));
  mark = klogMark();
});

after(() => {
  killAll();
  server?.kill('SIGKILL');
  reloadDefault();
});

test(`${N.toLocaleString('en')} saved rules with odd paths: closed until --load-policy, then enforced whole`, async (t) => {
  loadClosed();
  // Before the load: closed.  The allowed application is refused too.
  assert.notEqual(pyGet(allowedExe).code, 0, 'the allowed python is refused before the policy is loaded');
  assert.deepEqual(await state(), { policy: 'none', unkrule: 'block', mode: 'enabled' });
  assert.match(query().out, /^policy: none$/m);

  const r = loadPolicy();
  t.diagnostic(`vordr --load-policy: ${r.out.trim()} (wall ${r.ms} ms)`);
  assert.equal(r.code, 0, `vordr --load-policy: ${r.out}${r.err}`);
  assert.match(r.out, new RegExp(`derived again from .*: ${N} rules, \\d+ flags in \\d+ ms`));
  assert.ok(statSync(policyFile).size > HEADER);

  assert.deepEqual(await state(), { policy: 'loaded', unkrule: 'allow', mode: 'enabled' });
  const q = query();
  assert.equal(q.code, 0, q.err);
  assert.match(q.out, /^policy: loaded$/m);
  const listed = q.out.split('\n').filter((l) => /^(allow|block) /.test(l));
  assert.equal(listed.length, N, 'every rule is listed');
  assert.ok(listed.some((l) => l.startsWith(`block tcp "${blockedExe}"`)), 'the blocked program\'s rule, its path intact');
  const i = N - 5; // one of before()'s numbered rules, as it wrote it
  const numbered = `${i % 2 ? 'allow' : 'block'} ${['tcp', 'udp', 'any'][i % 3]} "${ODD}d${i % 100} ∂/app ${i},x:y%"`;
  assert.ok(listed.some((l) => l.startsWith(numbered)), `a numbered rule, its path intact: ${numbered}`);

  assert.equal(pyGet(allowedExe).code, 0, 'the allowed python connects');
  assertCurlBlocked(curlGet(blockedExe), 'the blocked curl');
  assert.equal(curlGet(bin.curl).code, 0, 'curl, which no rule names, connects (the file sets unkrule allow)');

  // Loaded again over a table in force: replaced whole, not doubled.
  const again = loadPolicy();
  assert.equal(again.code, 0, again.err);
  assert.doesNotMatch(again.out, /derived again/, 'the file is current: not derived again');
  const k = await Kernel.open();
  try {
    assert.equal((await k.rules()).length, N);
  } finally {
    k.close();
  }
});

/** Loads a corrupted copy of the good policy file into a closed module and checks it fails closed. */
async function corrupt(t, what, mutate, reason) {
  const good = readFileSync(policyFile);
  try {
    mutate(good);
    loadClosed();
    const m = klogMark();
    const r = loadPolicy();
    t.diagnostic(`${what}: exit ${r.code}: ${r.err.trim()}`);
    assert.equal(r.code, 7, `${what}: --load-policy fails with 7 (${r.out}${r.err})`);
    assert.match(r.err, new RegExp(`\\(${reason}\\)|${reason}`), `${what}: stderr says why`);
    assert.deepEqual(await state(), { policy: reason, unkrule: 'block', mode: 'enabled' }, `${what}: failed closed`);
    assert.match(query().out, new RegExp(`^policy: ${reason}$`, 'm'), `${what}: query says why`);
    assert.ok(klogSince(m).some((l) => l.includes(`saved policy not loaded (${reason})`)), `${what}: the kernel log says why`);
    assert.notEqual(pyGet(allowedExe).code, 0, `${what}: the allowed python stays refused`);
    assertCurlBlocked(curlGet(bin.curl), `${what}: curl (no rule)`);
  } finally {
    rmSync(policyFile, { recursive: true, force: true });
    mkdirSync(join(W, 'lib'), { recursive: true });
    writeFileSync(policyFile, good);
  }
}

test('a policy file cut inside a record fails closed: truncated', async (t) => {
  await corrupt(t, 'cut inside a record', (good) => truncateSync(policyFile, good.length - 5), 'truncated');
});

test('a policy file cut at a record\'s end fails closed in the module: badcount', async (t) => {
  // The last record is a flag's: 11 bytes.
  await corrupt(t, 'cut at a record end', (good) => truncateSync(policyFile, good.length - 11), 'badcount');
});

test('one byte of a path flipped fails closed in the module: badsum', async (t) => {
  await corrupt(t, 'a byte flipped', (good) => {
    const b = Buffer.from(good);
    b[HEADER + 5 + 3] ^= 0x01; // inside the first rule's path
    writeFileSync(policyFile, b);
  }, 'badsum');
});

test('a file that is not a policy, or cannot be read, fails closed: badformat, unreadable', async (t) => {
  await corrupt(t, 'garbage', () => writeFileSync(policyFile, Buffer.from('not a policy file at all, just words\n')), 'badformat');
  await corrupt(t, 'unreadable', () => {
    rmSync(policyFile);
    mkdirSync(policyFile);
  }, 'unreadable');
});

test('an edited rules file is derived again at the next load', async () => {
  loadClosed();
  const text = readFileSync(rulesFile, 'utf8');
  try {
    writeFileSync(rulesFile, `${text}block tcp "${allowedExe}"\n`);
    const r = loadPolicy();
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /derived again/);
    assert.notEqual(pyGet(allowedExe).code, 0, 'the later line of the edited file holds: python now blocked');
  } finally {
    writeFileSync(rulesFile, text);
  }
  const back = loadPolicy();
  assert.equal(back.code, 0, back.err);
  assert.equal(pyGet(allowedExe).code, 0);
});

test('the transaction is its socket\'s: another socket\'s BEGIN gets EBUSY; SIGKILL mid-stream leaves nothing', async () => {
  loadClosed();
  const a = await Kernel.open();
  const b = await Kernel.open();
  try {
    await a.request('policy_begin', { records: 2, crc: 0 });
    await a.request('rule_add', { verdict: C.value.allow, prot: C.prot.tcp, path: allowedExe, stage: 1 });
    await assert.rejects(b.request('policy_begin', { records: 1, crc: 0 }), (e) => e.code === 'EBUSY', 'a second socket\'s BEGIN');
    await assert.rejects(b.request('rule_add', { verdict: C.value.allow, prot: C.prot.tcp, path: '/x', stage: 1 }), (e) => e.code === 'EBUSY');
    await assert.rejects(b.request('policy_commit'), (e) => e.code === 'EBUSY');
    await assert.rejects(b.request('policy_fail', { policy: C.policy.unreadable }), (e) => e.code === 'EBUSY');
    assert.equal((await a.rules()).length, 0, 'staged, not applied');
    assert.equal(pyGet(allowedExe).code === 0, false, 'a staged rule does not apply');
  } finally {
    a.close();
  }
  // a's socket closed: its transaction is gone, b may begin (and abandon).
  await beginWhenFree(b, 'a closed socket\'s transaction to go');
  await assert.rejects(b.request('rule_add', { verdict: C.value.allow, prot: C.prot.tcp, path: allowedExe, life: C.life.exit, stage: 1 }),
    (e) => e.code === 'EINVAL', 'a policy holds lasting rules only');
  b.close();

  // A loader killed with SIGKILL in the middle of its stream. Its
  // connection must stay reachable while it lives: one the garbage
  // collector takes is closed, and its transaction goes with its socket
  // (what made the EBUSY check below fail now and then). The loader
  // collects garbage once its staging function has returned, before it
  // says so, which makes a lost reference fail every time.
  const LOADER = `
const a = require(${JSON.stringify(join(process.env.VORDR_REPO ?? new URL('../..', import.meta.url).pathname, 'addon', 'index.js'))});
(async () => {
  const c = await a.open();
  globalThis.loader = c;
  await c.request('policy_begin', { records: 1000, crc: 0 });
  for (let i = 0; i < 500; i++) await c.request('rule_add', { verdict: ${C.value.allow}, prot: ${C.prot.tcp}, path: '/opt/killed/' + i, stage: 1 });
})().then(() => setTimeout(() => {
  gc();
  setTimeout(() => {
    process.stdout.write('staged\\n');
    setInterval(() => {}, 1000);
  }, 500);
}, 0));
`;
  const child = track(spawn(process.execPath, ['--expose-gc', '-e', LOADER], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  await waitFor(() => out.includes('staged'), 'the loader to stage 500 records', 120_000);
  const c = await Kernel.open();
  try {
    await assert.rejects(c.request('policy_begin', { records: 0, crc: 0 }), (e) => e.code === 'EBUSY', 'the live loader owns it');
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    await beginWhenFree(c, 'the killed loader\'s transaction to go');
  } finally {
    c.close();
  }
  const k = await Kernel.open();
  try {
    assert.equal((await k.rules()).length, 0, 'nothing the killed loader staged applies');
  } finally {
    k.close();
  }
  const r = loadPolicy();
  assert.equal(r.code, 0, `a new load works: ${r.err}`);
  assert.equal(pyGet(allowedExe).code, 0);
});

test('a load replaces the lasting rules only: for TIME, until reboot and until exit rules stay, until exit still its socket\'s', async () => {
  loadClosed();
  assert.equal(loadPolicy().code, 0);
  const k = await Kernel.open();
  const list = async (c) => new Map((await c.request('rule_list')).map((r) => [`${r.prot} ${r.path}`, r]));
  try {
    const tmp = (n) => `/opt/vordr-test/temporary/${n}`;
    await k.request('rule_add', { verdict: C.value.block, prot: C.prot.tcp, path: tmp('for'), timeout: 3600 });
    await k.request('rule_add', { verdict: C.value.block, prot: C.prot.tcp, path: tmp('reboot'), life: C.life.reboot });
    await k.request('rule_add', { verdict: C.value.block, prot: C.prot.tcp, path: tmp('exit'), life: C.life.exit });
    // A temporary rule over a saved one: the later decision stays.
    await k.request('rule_add', { verdict: C.value.block, prot: C.prot.tcp, path: allowedExe, life: C.life.reboot });
    const r = loadPolicy();
    assert.equal(r.code, 0, r.err);
    const after = await list(k);
    for (const n of ['for', 'reboot', 'exit']) assert.ok(after.has(`${C.prot.tcp} ${tmp(n)}`), `the ${n} rule stays`);
    const f = after.get(`${C.prot.tcp} ${tmp('for')}`);
    assert.ok(f.timeout > 3500 && f.timeout <= 3600, `its time left goes on (${f.timeout})`);
    assert.equal(after.get(`${C.prot.tcp} ${allowedExe}`)?.verdict, C.value.block, 'the temporary block over the saved allow tcp stays');
    assert.equal(after.get(`${C.prot.tcp} ${allowedExe}`)?.life, C.life.reboot);
    assert.notEqual(pyGet(allowedExe).code, 0, 'and holds');
  } finally {
    k.close();
  }
  const k2 = await Kernel.open();
  try {
    await waitFor(async () => !(await list(k2)).has(`${C.prot.tcp} /opt/vordr-test/temporary/exit`), 'the until exit rule going with its socket, as before the load');
  } finally {
    k2.close();
  }
  // The next test starts from a closed load of its own.
});

test('the kernel log is clean', () => {
  // The expected warnings of the failed loads are not "bad" lines.
  assertKlogClean(mark, 'the policy loads');
});

void addon;
